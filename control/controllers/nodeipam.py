"""Node IPAM: every node gets a pod CIDR (a /24 of the cluster CIDR 10.244.0.0/16 by default),
never one another node holds; deleting the node frees it.

Before handing out anything, the allocator marks every CIDR the existing nodes already hold
(after the node cache's first full list), so a restart of the controller-manager never hands a
CIDR out twice. A node that already has a podCIDR keeps it (set by an administrator, or by an
earlier run). Allocation is lowest-free-first from a rotating start, like kube's CidrSet.
"""
from __future__ import annotations

import ipaddress
import logging

from control.client import ApiStatusError
from control.client.client import MERGE_PATCH

from .manager import Controller, Manager

log = logging.getLogger("nodeagent.controllers.nodeipam")


class CidrSetFull(Exception):
    pass


class CidrSet:
    """The /mask subnets of a cluster CIDR, each free or taken. Pure, no I/O."""

    def __init__(self, cluster_cidr: str, mask: int):
        self.net = ipaddress.ip_network(cluster_cidr, strict=False)
        if mask < self.net.prefixlen or mask > self.net.max_prefixlen:
            raise ValueError(f"node mask /{mask} does not fit in cluster CIDR {self.net}")
        if mask - self.net.prefixlen > 24:
            raise ValueError(f"cluster CIDR {self.net} with node mask /{mask} has too many subnets")
        self.mask = mask
        self.size = 1 << (mask - self.net.prefixlen)
        self.step = 1 << (self.net.max_prefixlen - mask)
        self.used: set[int] = set()
        self.next = 0

    def _index(self, cidr: str) -> int | None:
        try:
            sub = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if sub.version != self.net.version or sub.prefixlen != self.mask or not sub.subnet_of(self.net):
            return None
        return (int(sub.network_address) - int(self.net.network_address)) // self.step

    def _cidr(self, i: int) -> str:
        return str(ipaddress.ip_network((int(self.net.network_address) + i * self.step, self.mask)))

    def occupy(self, cidr: str) -> bool:
        """Mark a CIDR taken; False when it is not one of ours (other size or outside)."""
        i = self._index(cidr)
        if i is None:
            return False
        self.used.add(i)
        return True

    def release(self, cidr: str) -> None:
        i = self._index(cidr)
        if i is not None:
            self.used.discard(i)

    def allocate(self) -> str:
        if len(self.used) >= self.size:
            raise CidrSetFull(f"no free /{self.mask} left in {self.net}")
        i = self.next
        while i in self.used:
            i = (i + 1) % self.size
        self.used.add(i)
        self.next = (i + 1) % self.size
        return self._cidr(i)

    def in_use(self, cidr: str) -> bool:
        i = self._index(cidr)
        return i is not None and i in self.used


def node_cidrs(node: dict) -> list[str]:
    spec = node.get("spec") or {}
    out = list(spec.get("podCIDRs") or [])
    if spec.get("podCIDR") and spec["podCIDR"] not in out:
        out.insert(0, spec["podCIDR"])
    return out


class NodeIpamController(Controller):
    name = "nodeipam"

    def __init__(self, manager: Manager, cluster_cidr: str = "10.244.0.0/16", node_mask: int = 24):
        super().__init__(manager)
        self.cidrs = CidrSet(cluster_cidr, node_mask)
        self.owner: dict[str, str] = {}  # cidr -> node holding it
        self.ready = False

    def register(self) -> None:
        self.nodes = self.mgr.cache("nodes")
        self.mgr.subscribe("nodes", self.on_node)

    async def started(self) -> None:
        for node in self.nodes.list():
            self._claim(node)
        self.ready = True
        for node in self.nodes.list():
            if not node_cidrs(node):
                self.queue.add(node["metadata"]["name"])

    def _claim(self, node: dict) -> None:
        name = node["metadata"]["name"]
        for c in node_cidrs(node):
            holder = self.owner.get(c)
            if holder and holder != name:
                log.error("nodes %s and %s both hold pod CIDR %s: fix one of them by hand", holder, name, c)
                continue
            if self.cidrs.occupy(c):
                self.owner[c] = name

    def on_node(self, etype: str, obj: dict, old: dict | None) -> None:
        if not self.ready:
            return
        name = obj["metadata"]["name"]
        if etype == "DELETED":
            for c in node_cidrs(obj):
                if self.owner.get(c) == name:
                    del self.owner[c]
                    self.cidrs.release(c)
                    log.info("released pod CIDR %s of deleted node %s", c, name)
            return
        self._claim(obj)
        if not node_cidrs(obj):
            self.queue.add(name)

    async def sync(self, name) -> None:
        node = self.nodes.get("", name)
        if node is None or node_cidrs(node):
            return
        cidr = self.cidrs.allocate()
        self.owner[cidr] = name
        patch = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                 "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
        try:
            out = await self.client.patch("v1", "nodes", "", name, patch, content_type=MERGE_PATCH)
        except BaseException as err:
            del self.owner[cidr]
            self.cidrs.release(cidr)
            if isinstance(err, ApiStatusError) and err.code == 404:
                return
            raise
        self.nodes.observe(out)
        log.info("node %s: pod CIDR %s", name, cidr)
