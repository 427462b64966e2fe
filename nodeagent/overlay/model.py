"""What the overlay is made of: configuration, nodes as the overlay sees them, and kernel entries."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

# Our routes carry this protocol number (rtnetlink's rtm_protocol), so a reconcile recognises
# its own routes and never touches anyone else's. Unassigned in /etc/iproute2/rt_protos.
RTPROT_NODEAGENT = 211
NUD_PERMANENT = 0x80
VTEP_MAC_ANNOTATION = "nodeagent.io/vtep-mac"
UNDERLAY_IP_ANNOTATION = "nodeagent.io/underlay-ip"


@dataclass(frozen=True)
class OverlayConfig:
    device: str = "nodeagent.1"
    vni: int = 1
    port: int = 8472
    mtu: int = 0              # 0: the underlay's MTU minus 50 (the VXLAN header over IPv4)
    direct_routing: bool = False
    # kubernetes/kubernetes#88986 (63-second stalls) came from encapsulated VXLAN packets being
    # masqueraded again, which broke their offloaded UDP checksum. We keep NAT off them instead
    # (our masquerade matches only pod sources; the proxy clears its masquerade mark, as
    # kube-proxy's fix #92035 does), so the offload, worth ~5x in throughput here, stays on.
    # For kernels or rules we cannot vouch for, turning it off is one flag away.
    tx_checksum_offload: bool = True

    def device_mtu(self, underlay_mtu: int) -> int:
        return self.mtu or underlay_mtu - 50


@dataclass(frozen=True)
class OverlayNode:
    """A node as the overlay needs it: from its Node object's podCIDR and annotations."""
    name: str
    underlay_ip: str
    vtep_mac: str
    pod_cidr: str

    @property
    def gateway(self) -> str:
        """The podCIDR's network address: the on-link next hop that stands for the node."""
        return str(ipaddress.ip_network(self.pod_cidr).network_address)


@dataclass(frozen=True)
class Neighbour:
    ip: str
    mac: str


@dataclass(frozen=True)
class Fdb:
    mac: str
    dst: str


@dataclass(frozen=True)
class Route:
    dst: str            # CIDR
    gateway: str
    device: str         # our VXLAN device, or the underlay interface for direct routes
    onlink: bool = True


@dataclass(frozen=True)
class PeerEntries:
    """The entries that stand for one remote node, in the order they are added."""
    neighbour: Neighbour | None
    fdb: Fdb | None
    route: Route


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    vni: int
    port: int
    local_ip: str
    underlay_device: str
    mtu: int
    address: str        # our own podCIDR's network address, /32 on the device
    tx_checksum_offload: bool = True


@dataclass
class Desired:
    device: DeviceSpec
    peers: dict[str, PeerEntries] = field(default_factory=dict)
