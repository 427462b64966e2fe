"""A state-based fake kernel for the overlay: links, neighbours, FDB and routes, with the
kernel's side effects that matter here (deleting a link takes its entries with it; a route's
device must exist; an on-link route's gateway needs no neighbour), and injectable failures."""
from __future__ import annotations

import dataclasses
import secrets

from .backend import DeviceState
from .model import DeviceSpec, Fdb, Neighbour, Route


class FakeNetlink:
    def __init__(self, links: dict[str, int] | None = None):
        # underlay links the "host" has: name -> MTU
        self.links: dict[str, DeviceState] = {}
        for name, mtu in (links or {"eth0": 1500}).items():
            self.links[name] = DeviceState(name, "veth", 0, 0, "", "", mtu, _mac(), True, frozenset())
        self.neigh: dict[str, set[Neighbour]] = {}
        self.fdb: dict[str, set[Fdb]] = {}
        self.our_routes: set[Route] = set()
        self.other_routes: set[Route] = set()      # someone else's: must survive every reconcile
        self.other_neigh: dict[str, set[Neighbour]] = {}
        self.tx_csum_off: set[str] = set()
        self.fail: set[str] = set()                # verbs that raise, e.g. {"add_fdb"}
        self.calls: list[str] = []

    def _check(self, verb: str) -> None:
        self.calls.append(verb)
        if verb in self.fail:
            raise OSError(f"injected failure in {verb}")

    def device(self, name: str) -> DeviceState | None:
        return self.links.get(name)

    def create_vxlan(self, spec: DeviceSpec) -> None:
        self._check("create_vxlan")
        if spec.name in self.links:
            raise FileExistsError(spec.name)
        if spec.underlay_device not in self.links:
            raise OSError(f"no underlay device {spec.underlay_device}")
        self.links[spec.name] = DeviceState(spec.name, "vxlan", spec.vni, spec.port, spec.local_ip,
                                            spec.underlay_device, 1500, _mac(), False, frozenset())

    def delete_link(self, name: str) -> None:
        self._check("delete_link")
        self.links.pop(name, None)
        self.neigh.pop(name, None)
        self.fdb.pop(name, None)
        self.other_neigh.pop(name, None)
        self.our_routes = {r for r in self.our_routes if r.device != name}
        self.tx_csum_off.discard(name)

    def configure(self, spec: DeviceSpec) -> None:
        self._check("configure")
        d = self.links[spec.name]
        self.links[spec.name] = dataclasses.replace(d, mtu=spec.mtu, up=True,
                                                    addresses=frozenset({f"{spec.address}/32"}))
        if not spec.tx_checksum_offload:
            self.tx_csum_off.add(spec.name)

    def link_mtu(self, name: str) -> int:
        return self.links[name].mtu

    def neighbours(self, device: str) -> set[Neighbour]:
        return set(self.neigh.get(device, set()))

    def add_neighbour(self, device: str, n: Neighbour) -> None:
        self._check("add_neighbour")
        self._need(device)
        self.neigh.setdefault(device, set()).add(n)

    def del_neighbour(self, device: str, n: Neighbour) -> None:
        self._check("del_neighbour")
        self.neigh.get(device, set()).discard(n)

    def fdbs(self, device: str) -> set[Fdb]:
        return set(self.fdb.get(device, set()))

    def add_fdb(self, device: str, f: Fdb) -> None:
        self._check("add_fdb")
        self._need(device)
        self.fdb.setdefault(device, set()).add(f)

    def del_fdb(self, device: str, f: Fdb) -> None:
        self._check("del_fdb")
        self.fdb.get(device, set()).discard(f)

    def routes(self) -> set[Route]:
        return set(self.our_routes)

    def add_route(self, r: Route) -> None:
        self._check("add_route")
        self._need(r.device)
        if any(o.dst == r.dst for o in self.our_routes | self.other_routes):
            raise FileExistsError(f"route {r.dst} exists")
        self.our_routes.add(r)

    def del_route(self, r: Route) -> None:
        self._check("del_route")
        self.our_routes.discard(r)

    def _need(self, device: str) -> None:
        if device not in self.links:
            raise OSError(f"no such device {device}")


def _mac() -> str:
    b = bytearray(secrets.token_bytes(6))
    b[0] = (b[0] & 0xFE) | 0x02  # locally administered, unicast
    return ":".join(f"{x:02x}" for x in b)
