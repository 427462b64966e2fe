"""The lab's namespaces and links. Every name starts with `nal-<lab>-`, so a lab's pieces are
found (and removed) by name even after a crash, and two labs never touch each other."""
from __future__ import annotations

import os
import re
import signal
import subprocess

NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")
NETNS_DIR = "/run/netns"


class LabError(Exception):
    pass


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise LabError(f"lab name {name!r}: use 1-8 lowercase letters and digits, starting with a letter")
    return name


def prefix(lab: str) -> str:
    return f"nal-{lab}-"


def ns_name(lab: str, role: str) -> str:
    return prefix(lab) + role


def sh(*args: str) -> str:
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise LabError(f"{' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def exists(ns: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, ns))


def lab_namespaces(lab: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix(lab)))
    except FileNotFoundError:
        return []


def all_labs() -> list[str]:
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted({n.split("-")[1] for n in names if n.startswith("nal-") and n.count("-") >= 2})


def make_underlay(lab: str, control_ip: str, prefixlen: int) -> str:
    ns = ns_name(lab, "ul")
    if not exists(ns):
        sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    if "br0" not in sh("ip", "-n", ns, "-o", "link", "show"):
        sh("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
    if f" {control_ip}/" not in sh("ip", "-n", ns, "-o", "addr", "show", "dev", "br0"):
        sh("ip", "-n", ns, "addr", "add", f"{control_ip}/{prefixlen}", "dev", "br0")
    sh("ip", "-n", ns, "link", "set", "br0", "up")
    return ns


def make_host(lab: str, role: str, ip: str, prefixlen: int, gateway: str) -> str:
    """A namespace with eth0 on the underlay bridge (a node, or the outside client)."""
    ns = ns_name(lab, role)
    ul = ns_name(lab, "ul")
    if not exists(ns):
        sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    links = sh("ip", "-n", ns, "-o", "link", "show")
    if " eth0@" not in links and " eth0:" not in links:
        sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p-{role}"[:15], "netns", ul)
        sh("ip", "-n", ul, "link", "set", f"p-{role}"[:15], "master", "br0", "up")
    if f" {ip}/" not in sh("ip", "-n", ns, "-o", "addr", "show", "dev", "eth0"):
        sh("ip", "-n", ns, "addr", "add", f"{ip}/{prefixlen}", "dev", "eth0")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    if "default" not in sh("ip", "-n", ns, "route", "show", "default"):
        sh("ip", "-n", ns, "route", "add", "default", "via", gateway)
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    return ns


def remove_all(lab: str) -> list[str]:
    """Kill everything running in the lab's namespaces, then remove them."""
    removed = []
    for ns in lab_namespaces(lab):
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    for ns in reversed(lab_namespaces(lab)):  # pods' namespaces (longer names) sort after their node's
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        removed.append(ns)
    return removed
