"""ClusterIP and NodePort allocation, inside the API server as in Kubernetes.

Each allocated IP or port is a marker key in the store, created in the *same* transaction as the
Service that holds it. Two concurrent creates that pick the same address therefore cannot both
commit: one transaction finds the marker already there and is retried with another address (or,
if the user asked for that address, answered 422). This works unchanged on etcd, where several
API servers allocate at once, which is why there is no in-memory bitmap.
"""
from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field

from ..store import Create, Delete, Store
from .errors import cause

CIP_PREFIX = "/registry/allocations/clusterips/"
NP_PREFIX = "/registry/allocations/nodeports/"


class AllocationError(Exception):
    def __init__(self, causes: list[dict]):
        super().__init__(causes[0]["message"])
        self.causes = causes


@dataclass
class Plan:
    ops: list = field(default_factory=list)
    requested: set[str] = field(default_factory=set)  # marker keys the user asked for by value


def wants_node_ports(spec: dict) -> bool:
    t = spec.get("type", "ClusterIP")
    return t == "NodePort" or (t == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True))


def wants_health_port(spec: dict) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def wants_cluster_ip(spec: dict) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


def held_keys(spec: dict) -> set[str]:
    """The marker keys a stored Service holds."""
    keys = set()
    if spec.get("clusterIP") and spec["clusterIP"] != "None":
        keys.add(CIP_PREFIX + spec["clusterIP"])
    for p in spec.get("ports") or []:
        if p.get("nodePort"):
            keys.add(NP_PREFIX + str(p["nodePort"]))
    if spec.get("healthCheckNodePort"):
        keys.add(NP_PREFIX + str(spec["healthCheckNodePort"]))
    return keys


class Allocator:
    def __init__(self, store: Store, service_cidr: str = "10.96.0.0/12",
                 node_ports: tuple[int, int] = (30000, 32767)):
        self.store = store
        self.net = ipaddress.ip_network(service_cidr)
        self.node_ports = node_ports
        self._rand = random.Random()

    # -- helpers ------------------------------------------------------------------------
    async def _taken(self, prefix: str) -> set[str]:
        recs, _, _ = await self.store.list(prefix)
        return {r.key[len(prefix):] for r in recs}

    async def _free_ip(self, exclude: set[str]) -> str:
        # The network address, the first address (kept for the `kubernetes` service, as in
        # Kubernetes) and the broadcast address are never handed out.
        first, size = int(self.net.network_address), self.net.num_addresses
        for _ in range(16):
            cand = str(ipaddress.ip_address(first + self._rand.randrange(2, size - 1)))
            if cand not in exclude and await self.store.get(CIP_PREFIX + cand) is None:
                return cand
        taken = await self._taken(CIP_PREFIX) | exclude
        for off in range(2, size - 1):
            cand = str(ipaddress.ip_address(first + off))
            if cand not in taken:
                return cand
        raise AllocationError([cause("spec.clusterIPs", "Internal error: failed to allocate a serviceIP: range is full")])

    async def _free_port(self, exclude: set[int], taken: set[str] | None) -> tuple[int, set[str]]:
        if taken is None:
            taken = await self._taken(NP_PREFIX)
        lo, hi = self.node_ports
        free = [p for p in range(lo, hi + 1) if str(p) not in taken and p not in exclude]
        if not free:
            raise AllocationError([cause("spec.ports", "Internal error: failed to allocate a nodePort: range is full")])
        return self._rand.choice(free), taken

    def _check_ip(self, value: str) -> list[dict]:
        addr = ipaddress.ip_address(value)
        if addr not in self.net or addr in (self.net.network_address, self.net.broadcast_address):
            return [cause("spec.clusterIPs", f'Invalid value: ["{value}"]: failed to allocate IP {value}: '
                          f"the provided IP ({value}) is not in the valid range. The range of valid IPs is {self.net}")]
        return []

    def _check_port(self, path: str, port: int) -> list[dict]:
        lo, hi = self.node_ports
        if not lo <= port <= hi:
            return [cause(path, f"Invalid value: {port}: provided port is not in the valid range. "
                          f"The range of valid ports is {lo}-{hi}")]
        return []

    # -- plans ----------------------------------------------------------------------------
    async def plan(self, spec: dict, old: dict | None = None) -> Plan:
        """Fill in spec's cluster IP and node ports; ops to create new markers and release old
        ones. `old` is the stored spec on update (None on create)."""
        old = old or {}
        plan = Plan()
        errors: list[dict] = []
        want: set[str] = set()

        if wants_cluster_ip(spec):
            ip = spec.get("clusterIP") or ""
            if ip:
                errors += self._check_ip(ip) if ip != old.get("clusterIP") else []
                if ip != old.get("clusterIP"):
                    plan.requested.add(CIP_PREFIX + ip)
            else:
                ip = await self._free_ip(set())
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
            want.add(CIP_PREFIX + ip)
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]

        taken: set[str] | None = None
        used: set[int] = set()
        old_ports = {str(p.get("nodePort")) for p in old.get("ports") or [] if p.get("nodePort")}
        for i, p in enumerate(spec.get("ports") or []):
            if not wants_node_ports(spec):
                p.pop("nodePort", None)
                continue
            if p.get("nodePort"):
                errors += self._check_port(f"spec.ports[{i}].nodePort", p["nodePort"])
                if p["nodePort"] in used:
                    errors.append(cause(f"spec.ports[{i}].nodePort", f"Duplicate value: {p['nodePort']}", "FieldValueDuplicate"))
                if str(p["nodePort"]) not in old_ports:
                    plan.requested.add(NP_PREFIX + str(p["nodePort"]))
            else:
                p["nodePort"], taken = await self._free_port(used, taken)
            used.add(p["nodePort"])
            want.add(NP_PREFIX + str(p["nodePort"]))

        if wants_health_port(spec):
            hc = spec.get("healthCheckNodePort")
            if hc:
                errors += self._check_port("spec.healthCheckNodePort", hc)
                if hc != old.get("healthCheckNodePort"):
                    plan.requested.add(NP_PREFIX + str(hc))
            else:
                hc, taken = await self._free_port(used, taken)
                spec["healthCheckNodePort"] = hc
            want.add(NP_PREFIX + str(hc))
        else:
            spec.pop("healthCheckNodePort", None)

        if errors:
            raise AllocationError(errors)
        have = held_keys(old)
        plan.ops = [Create(k, None) for k in sorted(want - have)]
        plan.ops += [Delete(k) for k in sorted(have - want)]
        return plan

    async def release(self, spec: dict) -> list:
        ops = []
        for k in sorted(held_keys(spec)):
            if await self.store.get(k) is not None:
                ops.append(Delete(k))
        return ops

    def describe(self, key: str) -> str:
        if key.startswith(CIP_PREFIX):
            ip = key[len(CIP_PREFIX):]
            return f'Invalid value: ["{ip}"]: failed to allocate IP {ip}: provided IP is already allocated'
        port = key[len(NP_PREFIX):]
        return f"Invalid value: {port}: provided port is already allocated"

    def field_of(self, key: str) -> str:
        return "spec.clusterIPs" if key.startswith(CIP_PREFIX) else "spec.ports"
