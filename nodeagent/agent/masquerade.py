"""Masquerade for traffic from pods to destinations outside the cluster, in a table of our own.

Pod to pod keeps its source (the destination is in the cluster CIDR); pod to service keeps it too,
since the proxy's DNAT (prerouting/output) has already turned the VIP into a pod IP by the time
postrouting sees the packet. Only the cluster CIDR is interpolated, after ipaddress validates it."""
from __future__ import annotations

import ipaddress
import subprocess

TABLE = "nodeagent-masq"


def cluster_net(cluster_cidr: str) -> ipaddress.IPv4Network:
    """The cluster CIDR, validated before it goes into any ruleset: IPv4, a network address."""
    net = ipaddress.ip_network(cluster_cidr, strict=True)
    if net.version != 4:
        raise ValueError("only IPv4 cluster CIDRs are supported")
    return net


def ruleset(cluster_cidr: str) -> str:
    net = cluster_net(cluster_cidr)
    # Declaring the table then deleting it, inside one transaction, empties it atomically
    # whether or not it existed; nothing outside our table is touched.
    return (f"table ip {TABLE} {{}}\n"
            f"delete table ip {TABLE}\n"
            f"table ip {TABLE} {{\n"
            f"  chain postrouting {{\n"
            f"    type nat hook postrouting priority srcnat + 10; policy accept;\n"
            f"    ip saddr {net} ip daddr != {net} masquerade fully-random\n"
            f"  }}\n"
            f"}}\n")


def apply(cluster_cidr: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=ruleset(cluster_cidr), text=True, check=True, capture_output=True)


def remove() -> None:
    subprocess.run(["nft", "delete", "table", "ip", TABLE], capture_output=True)


def present(cluster_cidr: str) -> bool:
    out = subprocess.run(["nft", "list", "table", "ip", TABLE], capture_output=True, text=True)
    return out.returncode == 0 and f"ip saddr {ipaddress.ip_network(cluster_cidr)}" in out.stdout
