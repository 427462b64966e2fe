"""Real VXLAN between two nodes (network namespaces on an underlay bridge): pods on different
nodes reach each other by pod IP; a removed node loses its entries; a deleted device is repaired."""
from __future__ import annotations

import subprocess
import sys

import pytest

from nodeagent.overlay.apply import OverlayApplier
from nodeagent.overlay.model import OverlayConfig, OverlayNode
from nodeagent.overlay.netlink import NetlinkBackend
from nodeagent.overlay.plan import plan
from tests.conftest import unique


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def two_nodes():
    tag = unique("")
    ul, names = f"na-ul-{tag}", {}
    made = [ul]
    try:
        sh("ip", "netns", "add", ul)
        sh("ip", "-n", ul, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", ul, "link", "set", "br0", "up")
        for i, n in enumerate(("a", "b"), start=2):
            node, pod = f"na-n{n}-{tag}", f"na-p{n}-{tag}"
            for ns in (node, pod):
                sh("ip", "netns", "add", ns)
                made.append(ns)
                sh("ip", "-n", ns, "link", "set", "lo", "up")
            # underlay: node's eth0 on the shared bridge
            sh("ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", f"ul{n}", "netns", ul)
            sh("ip", "-n", ul, "link", "set", f"ul{n}", "master", "br0", "up")
            sh("ip", "-n", node, "addr", "add", f"192.168.200.{i}/24", "dev", "eth0")
            sh("ip", "-n", node, "link", "set", "eth0", "up")
            sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            # a pod: its eth0 in the pod namespace, the host end in the node with the gateway
            sh("ip", "-n", node, "link", "add", "podh", "type", "veth", "peer", "name", "eth0", "netns", pod)
            sh("ip", "-n", node, "addr", "add", f"10.244.{i - 1}.1/24", "dev", "podh")
            sh("ip", "-n", node, "link", "set", "podh", "up")
            sh("ip", "-n", pod, "addr", "add", f"10.244.{i - 1}.2/24", "dev", "eth0")
            sh("ip", "-n", pod, "link", "set", "eth0", "up")
            sh("ip", "-n", pod, "route", "add", "default", "via", f"10.244.{i - 1}.1")
            names[n] = (node, pod, f"192.168.200.{i}", f"10.244.{i - 1}.0/24")
        yield names
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def converge(names, present=("a", "b")):
    """Bring up each node's overlay as its agent would: device first (to learn its VTEP MAC),
    then the entries for the other nodes."""
    cfg = OverlayConfig(device="navx0")
    macs = {}
    backends = {n: NetlinkBackend(netns=names[n][0]) for n in names}
    try:
        for n, (node, _, ip, cidr) in names.items():
            me = OverlayNode(n, ip, "02:00:00:00:00:00", cidr)
            macs[n], _ = OverlayApplier(backends[n]).ensure_device(plan(me, [], cfg, underlay_device="eth0", underlay_mtu=1500).device)
        nodes = {n: OverlayNode(n, names[n][2], macs[n], names[n][3]) for n in names}
        results = {}
        for n in names:
            if n not in present:
                continue
            peers = [nodes[m] for m in present]
            results[n] = OverlayApplier(backends[n]).reconcile(plan(nodes[n], peers, cfg, underlay_device="eth0", underlay_mtu=1500))
        return results
    finally:
        for b in backends.values():
            b.close()


def tcp_reachable(from_ns: str, ip: str, port: int) -> bool:
    code = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close(); print('ok')\n"
            "except OSError as e: print('fail', e)\n")
    out = subprocess.run(["ip", "netns", "exec", from_ns, sys.executable, "-c", code, ip, str(port)],
                         capture_output=True, text=True, timeout=20).stdout
    return out.startswith("ok")


def serve(ns: str, ip: str):
    """A TCP listener inside ns; returns (port, stop)."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                             "import socket,sys\ns=socket.socket(); s.bind((sys.argv[1],0)); s.listen(64)\n"
                             "print(s.getsockname()[1], flush=True)\nwhile True: s.accept()[0].close()\n", ip],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return port, proc


def test_pods_on_two_nodes_reach_each_other_over_vxlan(two_nodes):
    res = converge(two_nodes)
    assert all(r.ok for r in res.values())
    port, srv = serve(two_nodes["b"][1], "10.244.2.2")
    try:
        assert tcp_reachable(two_nodes["a"][1], "10.244.2.2", port)
        route = sh("ip", "-n", two_nodes["a"][0], "route", "show", "10.244.2.0/24")
        assert "via 10.244.2.0 dev navx0" in route and "onlink" in route and "proto 211" in route
        assert "tx-checksum-ip-generic: on" in sh("ip", "netns", "exec", two_nodes["a"][0], "ethtool", "-k", "navx0")
        # a second pass changes nothing
        again = converge(two_nodes)
        assert all(r.added == [] and r.removed == 0 for r in again.values())
        # node b leaves: a drops its entries, and the path is gone
        converge(two_nodes, present=("a",))
        assert sh("ip", "-n", two_nodes["a"][0], "route", "show", "10.244.2.0/24").strip() == ""
        assert "02:" not in sh("ip", "-n", two_nodes["a"][0], "neigh", "show", "dev", "navx0")
        assert not tcp_reachable(two_nodes["a"][1], "10.244.2.2", port)
        # a deleted device is recreated with its entries on the next pass (with a new VTEP MAC,
        # which node b follows as it would from a's updated Node annotation)
        converge(two_nodes)
        sh("ip", "-n", two_nodes["a"][0], "link", "del", "navx0")
        assert not tcp_reachable(two_nodes["a"][1], "10.244.2.2", port)
        res = converge(two_nodes)
        assert res["a"].added == ["b"] and res["b"].added == ["a"]
        assert tcp_reachable(two_nodes["a"][1], "10.244.2.2", port)
    finally:
        srv.kill()
        srv.wait()
