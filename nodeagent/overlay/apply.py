"""Make the kernel hold the desired overlay: create or repair the device, then change only the
difference between the entries we own and the plan. Idempotent: a second pass with nothing
changed does nothing (tests check this on the fake, counting calls)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .backend import OverlayBackend
from .model import Desired, DeviceSpec, PeerEntries

log = logging.getLogger("nodeagent.overlay")


@dataclass
class Result:
    added: list[str] = field(default_factory=list)      # peer names whose entries were added
    removed: int = 0                                     # stale entries removed
    failed: dict[str, str] = field(default_factory=dict)  # peer -> error
    device_created: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed


class OverlayApplier:
    def __init__(self, backend: OverlayBackend):
        self.kernel = backend

    def ensure_device(self, spec: DeviceSpec) -> tuple[str, bool]:
        """The device exists and is configured as spec says; returns (VTEP MAC, created). An
        existing device whose VNI, port, local address or underlay differ is replaced (as
        flannel does), since those cannot change in place."""
        d = self.kernel.device(spec.name)
        created = False
        if d is not None and not d.matches(spec):
            log.warning("replacing %s: it does not match the configuration", spec.name)
            self.kernel.delete_link(spec.name)
            d = None
        if d is None:
            self.kernel.create_vxlan(spec)
            created = True
            d = self.kernel.device(spec.name)
        if created or d.mtu != spec.mtu or not d.up or f"{spec.address}/32" not in d.addresses:
            self.kernel.configure(spec)
            d = self.kernel.device(spec.name)
        return d.mac, created

    def reconcile(self, desired: Desired) -> Result:
        res = Result()
        _, res.device_created = self.ensure_device(desired.device)
        dev = desired.device.name
        want_routes = {p.route for p in desired.peers.values()}
        want_neigh = {p.neighbour for p in desired.peers.values() if p.neighbour}
        want_fdb = {p.fdb for p in desired.peers.values() if p.fdb}
        have_routes, have_neigh, have_fdb = self.kernel.routes(), self.kernel.neighbours(dev), self.kernel.fdbs(dev)

        # Stale entries first, in the reverse of the adding order: route, FDB, neighbour.
        for r in have_routes - want_routes:
            self._quietly(self.kernel.del_route, r)
            res.removed += 1
        for f in have_fdb - want_fdb:
            self._quietly(self.kernel.del_fdb, dev, f)
            res.removed += 1
        for n in have_neigh - want_neigh:
            self._quietly(self.kernel.del_neighbour, dev, n)
            res.removed += 1
        have_routes &= want_routes
        have_fdb &= want_fdb
        have_neigh &= want_neigh

        for name, peer in sorted(desired.peers.items()):
            try:
                if self._add_peer(dev, peer, have_neigh, have_fdb, have_routes):
                    res.added.append(name)
            except OSError as err:
                res.failed[name] = str(err)
                log.warning("overlay entries for node %s failed: %s", name, err)
        return res

    def _add_peer(self, dev: str, p: PeerEntries, neigh: set, fdb: set, routes: set) -> bool:
        undo = []
        try:
            if p.neighbour and p.neighbour not in neigh:
                self.kernel.add_neighbour(dev, p.neighbour)
                undo.append(lambda: self.kernel.del_neighbour(dev, p.neighbour))
            if p.fdb and p.fdb not in fdb:
                self.kernel.add_fdb(dev, p.fdb)
                undo.append(lambda: self.kernel.del_fdb(dev, p.fdb))
            if p.route not in routes:
                self.kernel.add_route(p.route)
                undo.append(lambda: None)
        except OSError:
            for step in reversed(undo):
                self._quietly(step)
            raise
        return bool(undo)

    def remove_all(self, device: str) -> None:
        """Everything the overlay owns: our routes and the device (its entries go with it)."""
        for r in self.kernel.routes():
            self._quietly(self.kernel.del_route, r)
        if self.kernel.device(device) is not None:
            self.kernel.delete_link(device)

    @staticmethod
    def _quietly(fn, *args) -> None:
        try:
            fn(*args)
        except OSError as err:
            log.info("cleanup step failed (already gone?): %s", err)
