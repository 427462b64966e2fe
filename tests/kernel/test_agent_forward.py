"""Tier 3: pod traffic through a host firewall whose FORWARD drops (nodeagent/agent/forward.py),
in both iptables backends, in throwaway namespaces: two pods routed through a node namespace."""
import socket
import subprocess
import sys

import pytest

from nodeagent.agent import forward
from nodeagent.proxy.netns import socket_in
from tests.api.server import ROOT
from tests.netlab import NetLab, listening_socket_in

CIDR = "10.244.0.0/16"


@pytest.fixture
def net():
    lab = NetLab("192.168.203.0/24")
    try:
        node = lab.add_node("fw")
        a = lab.add_pod("fw", "a", "10.244.1.0/24")
        b = lab.add_pod("fw", "b", "10.244.2.0/24")
        yield lab, node, a, b
    finally:
        lab.close()


def connects(src_ns: str, dst_ns: str, dst_ip: str) -> bool:
    srv = listening_socket_in(dst_ns, dst_ip)
    c = socket_in(src_ns, socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(1.0)
    try:
        c.connect((dst_ip, srv.getsockname()[1]))
        return True
    except OSError:
        return False
    finally:
        c.close()
        srv.close()


def in_ns(ns: str, call: str) -> str:
    """Run `forward.<call>` inside ns, as the agent does in its node's namespace."""
    p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c",
                        f"from nodeagent.agent import forward; print(forward.{call})"],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def ipt(ns: str, tool: str, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, tool, "-w", *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("tool", ["iptables-legacy", "iptables-nft"])
def test_a_dropping_forward_lets_pod_traffic_through_and_only_ours_is_touched(net, tool):
    lab, node, (a_ns, a_ip), (b_ns, b_ip) = net
    assert connects(a_ns, b_ns, b_ip)
    ipt(node, tool, "-P", "FORWARD", "DROP")
    ipt(node, tool, "-A", "FORWARD", "-s", "192.0.2.0/24", "-j", "ACCEPT")   # the host's own rule
    assert not connects(a_ns, b_ns, b_ip)

    assert in_ns(node, f"apply({CIDR!r})") == f"[{tool!r}]"
    assert connects(a_ns, b_ns, b_ip) and connects(b_ns, a_ns, a_ip)
    assert in_ns(node, f"apply({CIDR!r})") == "[]"            # converged: nothing rewritten
    # something inserted above our jump: it goes back to the top, once
    ipt(node, tool, "-I", "FORWARD", "1", "-s", "10.244.0.0/16", "-j", "DROP")
    assert not connects(a_ns, b_ns, b_ip)
    assert in_ns(node, f"apply({CIDR!r})") == f"[{tool!r}]"
    rules = ipt(node, tool, "-S", "FORWARD").splitlines()
    assert rules[1] == f"-A FORWARD -j {forward.CHAIN}" and sum(forward.CHAIN in r for r in rules) == 1
    assert connects(a_ns, b_ns, b_ip)

    in_ns(node, "remove()")
    rules = ipt(node, tool, "-S").splitlines()
    assert not any(forward.CHAIN in r for r in rules)
    assert "-P FORWARD DROP" in rules and "-A FORWARD -s 192.0.2.0/24 -j ACCEPT" in rules   # the host's, kept
    assert not connects(a_ns, b_ns, b_ip)


def test_nothing_is_created_where_nothing_drops(net):
    lab, node, _, _ = net
    assert in_ns(node, f"apply({CIDR!r})") == "[]"
    assert subprocess.run(["ip", "netns", "exec", node, "nft", "list", "tables"], capture_output=True,
                          text=True).stdout.strip() == ""
    names = subprocess.run(["ip", "netns", "exec", node, "cat", "/proc/net/ip_tables_names"], capture_output=True,
                           text=True).stdout.split()
    assert "filter" not in names


def test_our_jump_goes_below_the_proxys_and_only_drops_make_it_needed():
    na = '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "nodeagent service portals" -j NA-SERVICES'
    ours = f"-A FORWARD -j {forward.CHAIN}"
    assert not forward.needed(["-P FORWARD ACCEPT", na, "-A FORWARD -s 10.0.0.0/8 -j ACCEPT"])
    assert forward.needed(["-P FORWARD DROP", na])
    assert forward.needed(["-P FORWARD ACCEPT", "-A FORWARD -j REJECT --reject-with icmp-host-prohibited"])
    assert forward._position(["-P FORWARD DROP", na, "-A FORWARD -j DOCKER-USER"]) == 2
    assert forward._position(["-P FORWARD DROP", "-A FORWARD -j DOCKER-USER", na]) == 1
    assert forward.in_place(["-P FORWARD DROP", na, ours, "-A FORWARD -j DOCKER-USER"])
    assert not forward.in_place(["-P FORWARD DROP", "-A FORWARD -j DOCKER-USER", ours])
    assert not forward.in_place(["-P FORWARD DROP", ours, na, ours])


def test_bad_cluster_cidrs_are_refused_before_any_command():
    for bad in ("10.244.0.1/16", "fd00::/64", "10.244.0.0/16 -j DROP", "x"):
        with pytest.raises(ValueError):
            forward.restore_input(bad)
