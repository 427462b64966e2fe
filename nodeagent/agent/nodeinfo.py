"""What a node reports about itself: addresses, capacity, system info. Read from this machine
(or, in the lab, from the network namespace the agent runs in)."""
from __future__ import annotations

import ipaddress
import os
import platform
import socket

from nodeagent import __version__

KUBELET_VERSION = "v1.30.0-nodeagent"


def interface_ipv4(name: str) -> tuple[str, int, int]:
    """(address, prefix length, MTU) of an interface, from the kernel via the standard library."""
    import fcntl
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("256s", name.encode()[:15])
        try:
            addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])      # SIOCGIFADDR
            mask = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x891B, req)[20:24])      # SIOCGIFNETMASK
            mtu = struct.unpack("i", fcntl.ioctl(s.fileno(), 0x8921, req)[16:20])[0]  # SIOCGIFMTU
        except OSError as err:
            raise OSError(f"interface {name}: no IPv4 address ({err.strerror})") from None
    prefix = ipaddress.ip_network(f"0.0.0.0/{mask}").prefixlen
    return addr, prefix, mtu


def default_interface() -> str:
    """The interface of the IPv4 default route (flannel's default --iface choice)."""
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000" and int(fields[3], 16) & 2:
                return fields[0]
    raise OSError("no IPv4 default route: pass --underlay-interface")


def memory_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def capacity(max_pods: int) -> dict:
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_bytes() // 1024}Ki", "pods": str(max_pods)}


def node_info() -> dict:
    return {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
            "osImage": os_image(), "kernelVersion": platform.release(), "operatingSystem": "linux",
            "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
            "containerRuntimeVersion": f"nodeagent://{__version__}",
            "machineID": "", "systemUUID": "", "bootID": ""}
