"""The node's subnet file (flannel's subnet.env format), which the CNI plugin reads."""
from __future__ import annotations

import ipaddress
import os


def render(cluster_cidr: str, pod_cidr: str, mtu: int, masquerade: bool = True) -> str:
    net = ipaddress.ip_network(pod_cidr, strict=True)
    gateway = next(net.hosts())
    return (f"NODEAGENT_NETWORK={ipaddress.ip_network(cluster_cidr, strict=True)}\n"
            f"NODEAGENT_SUBNET={gateway}/{net.prefixlen}\n"
            f"NODEAGENT_MTU={int(mtu)}\n"
            f"NODEAGENT_IPMASQ={'true' if masquerade else 'false'}\n")


def write(path: str, content: str) -> bool:
    """Atomically (re)write the file; False if it already held exactly this."""
    try:
        with open(path) as f:
            if f.read() == content:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(content)
    os.replace(tmp, path)
    return True
