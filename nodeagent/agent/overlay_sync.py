"""Keeps this node's overlay in line with the Node objects: a node informer marks the overlay
dirty, and one loop plans and applies it, also every few seconds to repair drift (a deleted
device, a removed route). The planner and the applier are in nodeagent/overlay.

Kernel calls run on one worker thread that owns the netlink socket: pyroute2's synchronous API
drives an event loop of its own and cannot run inside the agent's. The informer's handler only
records nodes on the agent's loop; each pass hands the worker a snapshot."""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor

from nodeagent.overlay.apply import OverlayApplier
from nodeagent.overlay.model import OverlayConfig, OverlayNode
from nodeagent.overlay.plan import NodeNotReady, overlay_node, plan

log = logging.getLogger("nodeagent.overlay")


class OverlaySync:
    def __init__(self, applier: OverlayApplier, node: str, config: OverlayConfig, *, underlay_device: str,
                 underlay_ip: str, underlay_mtu: int, underlay_net: str, repair_interval: float = 5.0,
                 kernel: Executor | None = None):
        self.applier = applier
        self.kernel = kernel
        self.node = node
        self.config = config
        self.underlay_device, self.underlay_ip = underlay_device, underlay_ip
        self.underlay_mtu, self.underlay_net = underlay_mtu, underlay_net
        self.repair_interval = repair_interval
        self.nodes: dict[str, dict] = {}
        self.dirty = asyncio.Event()
        self.in_place = False          # the overlay has been applied at least once without error
        self.vtep_mac = ""
        self.pod_cidr = ""
        self.last_sync = 0.0

    def on_node(self, etype: str, obj: dict, old: dict | None) -> None:
        name = obj["metadata"]["name"]
        if etype == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = obj
            if name == self.node:
                self.pod_cidr = (obj.get("spec") or {}).get("podCIDR") or ""
        self.dirty.set()

    def ensure_device(self) -> str:
        """Create the VXLAN device early: its MAC goes into our Node's annotations."""
        local = OverlayNode(self.node, self.underlay_ip, "00:00:00:00:00:00", self.pod_cidr or "0.0.0.0/32")
        spec = plan(local, [], self.config, underlay_device=self.underlay_device,
                    underlay_mtu=self.underlay_mtu).device
        self.vtep_mac, _ = self.applier.ensure_device(spec)
        return self.vtep_mac

    def sync(self, nodes: list[dict] | None = None, pod_cidr: str | None = None) -> bool:
        pod_cidr = self.pod_cidr if pod_cidr is None else pod_cidr
        if not pod_cidr:
            return False
        peers = []
        for obj in (list(self.nodes.values()) if nodes is None else nodes):
            try:
                peers.append(overlay_node(obj))
            except NodeNotReady as why:
                log.debug("%s", why)
        local = OverlayNode(self.node, self.underlay_ip, self.vtep_mac, pod_cidr)
        desired = plan(local, peers, self.config, underlay_device=self.underlay_device,
                       underlay_mtu=self.underlay_mtu, underlay_net=self.underlay_net)
        t0 = time.monotonic()
        res = self.applier.reconcile(desired)
        self.vtep_mac = self.applier.kernel.device(self.config.device).mac
        self.last_sync = time.monotonic()
        if res.added or res.removed or res.device_created:
            log.info("overlay synced in %.1f ms: %d peers added, %d stale entries removed%s",
                     (self.last_sync - t0) * 1000, len(res.added), res.removed,
                     ", device recreated" if res.device_created else "")
        self.in_place = self.in_place or res.ok
        return res.ok

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.dirty.wait(), self.repair_interval)
            except TimeoutError:
                pass
            self.dirty.clear()
            snapshot = list(self.nodes.values())
            try:
                await asyncio.get_running_loop().run_in_executor(self.kernel, self.sync, snapshot, self.pod_cidr)
            except OSError as err:
                log.warning("overlay sync failed: %s", err)
