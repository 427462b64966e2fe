"""The overlay planner: desired kernel entries from the node list. Pure: no kernel, no API."""
from __future__ import annotations

import ipaddress
import re

from .model import (UNDERLAY_IP_ANNOTATION, VTEP_MAC_ANNOTATION, DeviceSpec, Desired, Fdb,
                    Neighbour, OverlayConfig, OverlayNode, PeerEntries, Route)

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class NodeNotReady(ValueError):
    """The Node lacks what the overlay needs (podCIDR, annotations): skip it until it has them."""


def overlay_node(node: dict) -> OverlayNode:
    """Read a Node object; raises NodeNotReady with the reason when it is not usable yet."""
    meta = node.get("metadata") or {}
    name = meta.get("name", "?")
    ann = meta.get("annotations") or {}
    cidr = (node.get("spec") or {}).get("podCIDR")
    mac = (ann.get(VTEP_MAC_ANNOTATION) or "").lower()
    ip = ann.get(UNDERLAY_IP_ANNOTATION) or ""
    if not cidr:
        raise NodeNotReady(f"node {name} has no podCIDR yet")
    if not MAC.match(mac):
        raise NodeNotReady(f"node {name} has no valid {VTEP_MAC_ANNOTATION} annotation")
    try:
        net = ipaddress.ip_network(cidr, strict=True)
        addr = ipaddress.ip_address(ip)
    except ValueError as err:
        raise NodeNotReady(f"node {name}: {err}") from None
    if net.version != 4 or addr.version != 4:
        raise NodeNotReady(f"node {name}: only IPv4 overlays are supported")
    return OverlayNode(name, str(addr), mac, str(net))


def plan(local: OverlayNode, nodes: list[OverlayNode], config: OverlayConfig, *,
         underlay_device: str, underlay_mtu: int, underlay_net: str = "") -> Desired:
    device = DeviceSpec(config.device, config.vni, config.port, local.underlay_ip, underlay_device,
                        config.device_mtu(underlay_mtu), local.gateway, config.tx_checksum_offload)
    desired = Desired(device)
    same_l2 = ipaddress.ip_network(underlay_net, strict=False) if (config.direct_routing and underlay_net) else None
    taken: dict[str, str] = {}
    for n in sorted(nodes, key=lambda n: n.name):
        if n.name == local.name or n.underlay_ip == local.underlay_ip:
            continue
        # Two nodes claiming one podCIDR (a stale Node object): the first by name wins, so the
        # plan stays deterministic; the other is left out until the conflict is gone.
        if n.pod_cidr in taken or n.pod_cidr == local.pod_cidr:
            continue
        taken[n.pod_cidr] = n.name
        if same_l2 is not None and ipaddress.ip_address(n.underlay_ip) in same_l2:
            desired.peers[n.name] = PeerEntries(None, None, Route(n.pod_cidr, n.underlay_ip, underlay_device, onlink=False))
            continue
        desired.peers[n.name] = PeerEntries(Neighbour(n.gateway, n.vtep_mac), Fdb(n.vtep_mac, n.underlay_ip),
                                            Route(n.pod_cidr, n.gateway, config.device))
    return desired
