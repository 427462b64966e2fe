"""The verbs the overlay needs from the kernel; netlink.py implements them with pyroute2 and
fake.py with plain state. Flags and netlink details stay behind these verbs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .model import DeviceSpec, Fdb, Neighbour, Route


@dataclass(frozen=True)
class DeviceState:
    name: str
    kind: str
    vni: int
    port: int
    local_ip: str
    underlay_device: str
    mtu: int
    mac: str
    up: bool
    addresses: frozenset[str]   # "ip/prefix"

    def matches(self, spec: DeviceSpec) -> bool:
        """Whether the device can be kept (what cannot be changed in place is the same)."""
        return (self.kind == "vxlan" and self.vni == spec.vni and self.port == spec.port
                and self.local_ip == spec.local_ip and self.underlay_device == spec.underlay_device)


class OverlayBackend(Protocol):
    def device(self, name: str) -> DeviceState | None: ...
    def create_vxlan(self, spec: DeviceSpec) -> None: ...
    def delete_link(self, name: str) -> None: ...
    def configure(self, spec: DeviceSpec) -> None:
        """MTU, our /32 address, link up, tx checksum offload off."""
    def link_mtu(self, name: str) -> int: ...
    def neighbours(self, device: str) -> set[Neighbour]: ...
    def add_neighbour(self, device: str, n: Neighbour) -> None: ...
    def del_neighbour(self, device: str, n: Neighbour) -> None: ...
    def fdbs(self, device: str) -> set[Fdb]: ...
    def add_fdb(self, device: str, f: Fdb) -> None: ...
    def del_fdb(self, device: str, f: Fdb) -> None: ...
    def routes(self) -> set[Route]:
        """Our routes only (protocol RTPROT_NODEAGENT), on any device."""
    def add_route(self, r: Route) -> None: ...
    def del_route(self, r: Route) -> None: ...
