"""A small multi-node network for tests, all in network namespaces made for it: an underlay
namespace holding a bridge (with the control plane's address on it), node namespaces with an
`eth0` on that bridge, and simple pods (a veth into a pod namespace, default route via the node).
Everything is removed by close(), which tests call in a finally (the fixture does)."""
from __future__ import annotations

import ipaddress
import os
import signal
import subprocess

from tests.conftest import unique


def remove_namespace(ns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


class NetLab:
    def __init__(self, subnet: str = "192.168.201.0/24"):
        self.tag = unique("")
        self.net = ipaddress.ip_network(subnet)
        self.hosts = self.net.hosts()
        self.namespaces: list[str] = []
        self.underlay = self._ns("ul")
        sh("ip", "-n", self.underlay, "link", "add", "br0", "type", "bridge")
        self.control_ip = str(next(self.hosts))
        sh("ip", "-n", self.underlay, "addr", "add", f"{self.control_ip}/{self.net.prefixlen}", "dev", "br0")
        sh("ip", "-n", self.underlay, "link", "set", "br0", "up")
        self.nodes: dict[str, tuple[str, str]] = {}   # name -> (namespace, underlay ip)

    def _ns(self, role: str) -> str:
        name = f"na-{role}-{self.tag}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def add_node(self, name: str) -> str:
        ns = self._ns(name)
        ip = str(next(self.hosts))
        port = f"ul-{name}"[:15]
        sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", self.underlay)
        sh("ip", "-n", self.underlay, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/{self.net.prefixlen}", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", self.control_ip)
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.nodes[name] = (ns, ip)
        return ns

    def add_pod(self, node: str, pod: str, pod_cidr: str, host_octet: int = 2, mtu: int = 1500) -> tuple[str, str]:
        """A pod by hand (until the pod runtime makes them): returns (namespace, pod IP)."""
        node_ns = self.nodes[node][0]
        ns = self._ns(f"{node}-{pod}")
        net = ipaddress.ip_network(pod_cidr)
        gw, ip = net.network_address + 1, net.network_address + host_octet
        hostif = f"h{pod}"[:15]
        sh("ip", "-n", node_ns, "link", "add", hostif, "mtu", str(mtu), "type", "veth", "peer", "name", "eth0",
           "netns", ns, "mtu", str(mtu))
        existing = sh("ip", "-n", node_ns, "-o", "addr", "show")
        if f" {gw}/" not in existing:
            sh("ip", "-n", node_ns, "addr", "add", f"{gw}/{net.prefixlen}", "dev", hostif)
        sh("ip", "-n", node_ns, "link", "set", hostif, "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/{net.prefixlen}", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", str(gw))
        return ns, str(ip)

    def close(self) -> None:
        """Remove every namespace this lab made, and those named with its tag (pods), after
        killing what runs in them: pod processes outlive their agent on purpose."""
        names = list(reversed(self.namespaces))
        if os.path.isdir("/run/netns"):
            names += [n for n in os.listdir("/run/netns") if n.startswith(self.tag) and n not in names]
        for ns in names:
            remove_namespace(ns)
        self.namespaces.clear()


def listening_socket_in(ns: str, ip: str, port: int = 0):
    """A TCP socket bound and listening inside namespace `ns` (a socket keeps the namespace it
    was made in), so that this process never leaves its own namespace."""
    import socket

    from nodeagent.proxy.netns import socket_in
    # IPPROTO_TCP explicitly: see ThreadServer (asyncio sets TCP_NODELAY only then)
    s = socket_in(ns, socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(128)
    return s
