"""Tier 3: the nftables proxier against the real kernel, in throwaway namespaces (nodeagent.proxy.
testing.Lab: a node namespace routing between pod namespaces and a client outside the cluster).
Real TCP and UDP through VIPs and node ports, scapy-crafted SYNs and SCTP INITs, affinity, a UDP
flow moving off a removed endpoint."""
import os
import subprocess
import sys
import time

import pytest

from nodeagent.proxy.conntrack import Conntrack
from nodeagent.proxy.engine import SyncEngine
from nodeagent.proxy.model import NodeConfig
from nodeagent.proxy.nft.backend import NftBackend, NftError
from nodeagent.proxy.nft.proxier import NftProxier
from nodeagent.proxy.testing import Lab, endpoint, endpoint_slice, service
from tests.api.server import ROOT
from tests.conftest import unique
from tests.kernel.proxy_probes import (  # noqa: F401  (tests shared by both modes, run here)
    test_scapy_syn_to_vip_without_endpoints_gets_a_reset, test_sctp_init_is_dnated_to_an_endpoint,
    test_udp_flow_moves_off_a_removed_endpoint)
from tests.waiting import wait

VIP = "10.96.0.10"


class Proxy:
    def __init__(self, lab: Lab, table: str):
        self.lab = lab
        self.backend = NftBackend(netns=lab.node)
        self.proxier = NftProxier(self.backend, NodeConfig("node1", "10.244.0.0/16"), table)
        self.engine = SyncEngine(self.proxier, "node1", conntrack=Conntrack(netns=lab.node))

    def apply(self, *objs, etype="ADDED"):
        for o in objs:
            self.engine.event("service" if o["kind"] == "Service" else "slice", etype, o)
        return self.engine.sync().result


@pytest.fixture
def lab():
    with Lab(pods=2) as lab:
        yield lab


@pytest.fixture
def proxy(lab):
    p = Proxy(lab, unique("na"))
    yield p
    p.proxier.cleanup()


def pods_slice(lab, port=8080, proto="TCP", nodes=("node1", "node1"), name="web-1", svc="web", pname="http"):
    return endpoint_slice(name, svc, [endpoint(lab.pod_ip(i), node=n) for i, n in enumerate(nodes, 1)],
                          [(pname, port, proto)])


def test_tcp_and_udp_through_cluster_ip_with_masquerade_where_needed(lab, proxy):
    for ns in lab.pods:
        lab.serve(ns, 8080)
        lab.serve(ns, 8080, "udp")
    proxy.apply(service("web", VIP, [("http", 80)]), pods_slice(lab),
                service("dns", "10.96.0.53", [("dns", 53, "UDP")]), pods_slice(lab, 8080, "UDP", name="dns-1",
                                                                               svc="dns", pname="dns"))
    seen = set()
    for _ in range(30):
        who, src = lab.tcp(lab.client, VIP, 80).split()
        seen.add(who)
        assert src.startswith("10.244.")     # outside the cluster -> masqueraded to the node
    assert seen == set(lab.pods)            # both endpoints are used
    who, src = lab.tcp(lab.pods[0], VIP, 80).split()
    assert src == lab.pod_ip(1) or who == lab.pods[0]   # pod -> ClusterIP keeps its address
    if who != lab.pods[0]:
        assert src == lab.pod_ip(1)
    who, src = lab.udp(lab.client, "10.96.0.53", 53).split()
    assert who in lab.pods


def test_node_port_and_external_traffic_policy_local_preserves_source(lab, proxy):
    for ns in lab.pods:
        lab.serve(ns, 8080)
    proxy.apply(service("web", VIP, [("http", 80, "TCP", 30080)], type="NodePort"), pods_slice(lab))
    who, src = lab.tcp(lab.client, Lab.NODE_IP, 30080).split()
    assert src != Lab.CLIENT_IP          # policy Cluster: masqueraded
    proxy.apply(service("web", VIP, [("http", 80, "TCP", 30080)], type="NodePort", etp="Local"),
                pods_slice(lab, nodes=("node1", "node2")), etype="MODIFIED")
    for _ in range(10):
        who, src = lab.tcp(lab.client, Lab.NODE_IP, 30080).split()
        assert who == lab.pods[0] and src == Lab.CLIENT_IP   # local endpoint only, source preserved


def test_no_endpoints_fails_fast_for_tcp_and_udp(lab, proxy):
    proxy.apply(service("web", VIP, [("http", 80), ("dns", 53, "UDP")]))
    t = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        lab.tcp(lab.client, VIP, 80, timeout=5)
    with pytest.raises(ConnectionRefusedError):
        lab.tcp(lab.pods[0], VIP, 80, timeout=5)
    with pytest.raises(ConnectionRefusedError):   # ICMP port unreachable on a connected UDP socket
        lab.udp(lab.client, VIP, 53, timeout=5)
    assert time.monotonic() - t < 2


def test_a_cluster_ip_on_a_port_no_service_uses_is_refused_at_once(lab, proxy):
    # A real node routes the service range somewhere (its default route), so the packet reaches
    # the forward hook, where the check refuses it. Without a route it would fail with "network
    # unreachable" before any hook, which proves nothing; with this one and no check, "no route
    # to host".
    subprocess.run(["ip", "netns", "exec", lab.node, "ip", "route", "add", "default", "dev", "lo"], check=True)
    lab.serve(lab.pods[0], 8080)
    proxy.apply(service("web", VIP, [("http", 80), ("dns", 53, "UDP")]),
                endpoint_slice("web-1", "web", [lab.pod_ip(1)], [("http", 8080), ("dns", 53, "UDP")]))
    assert lab.tcp(lab.client, VIP, 80).split()[0] == lab.pods[0]
    t = time.monotonic()
    for ns in (lab.client, lab.pods[1], lab.node):
        with pytest.raises(ConnectionRefusedError):
            lab.tcp(ns, VIP, 81, timeout=5)
    with pytest.raises(ConnectionRefusedError):   # ICMP port unreachable on a connected UDP socket
        lab.udp(lab.client, VIP, 54, timeout=5)
    assert time.monotonic() - t < 2


def test_session_affinity_holds(lab, proxy):
    for ns in lab.pods:
        lab.serve(ns, 8080)
    proxy.apply(service("web", VIP, [("http", 80)], affinity=300), pods_slice(lab))
    first = lab.tcp(lab.client, VIP, 80).split()[0]
    assert all(lab.tcp(lab.client, VIP, 80).split()[0] == first for _ in range(20))


def test_hairpin_pod_reaches_itself_through_its_service(lab, proxy):
    lab.serve(lab.pods[0], 8080)
    proxy.apply(service("web", VIP, [("http", 80)]),
                endpoint_slice("web-1", "web", [endpoint(lab.pod_ip(1), node="node1")], [("http", 8080)]))
    who, src = lab.tcp(lab.pods[0], VIP, 80).split()
    assert who == lab.pods[0] and src != lab.pod_ip(1)   # masqueraded, or the reply would go astray


def test_restart_keeps_rules_and_resends_nothing_and_cleanup_removes_only_ours(lab, proxy):
    lab.serve(lab.pods[0], 8080)
    objs = [service("web", VIP, [("http", 80)]),
            endpoint_slice("web-1", "web", [lab.pod_ip(1)], [("http", 8080)])]
    proxy.apply(*objs)
    # someone else's table in the same namespace must survive our cleanup
    other = unique("ot")
    proxy.backend.apply(f"add table ip {other}\nadd chain ip {other} c\n")
    again = Proxy(lab, proxy.proxier.table)
    r = again.apply(*objs)
    assert r.full and r.sent_nothing
    assert lab.tcp(lab.client, VIP, 80).split()[0] == lab.pods[0]
    assert again.proxier.cleanup()
    assert not again.backend.read_exists("ip", proxy.proxier.table)
    assert again.backend.read_exists("ip", other)
    with pytest.raises(OSError):
        lab.tcp(lab.client, VIP, 80, timeout=1)


def test_partial_sync_against_the_kernel_and_reconcile_converges(lab, proxy):
    objs = []
    for i in range(50):
        objs.append(service(f"s{i}", f"10.96.3.{i}", [("http", 80, "TCP", 30100 + i)], type="NodePort"))
        objs.append(endpoint_slice(f"s{i}-1", f"s{i}", [f"10.244.7.{i}"], [("http", 8080)]))
    proxy.apply(*objs)
    r = proxy.apply(endpoint_slice("s7-1", "s7", ["10.244.7.7", "10.244.8.7"], [("http", 8080)]), etype="MODIFIED")
    assert not r.full and 0 < r.elements < 12
    assert proxy.engine.sync(full=True).result.sent_nothing   # the kernel holds exactly what we think
    # 2 -> 1 -> 2 endpoints: the shared 2-endpoint chain goes (its map with it) and comes back empty
    for count in (1, 2):
        for i in range(50):
            ips = [f"10.244.7.{i}", f"10.244.8.{i}"][:count]
            proxy.engine.event("slice", "MODIFIED", endpoint_slice(f"s{i}-1", f"s{i}", ips, [("http", 8080)]))
        assert not proxy.engine.sync().result.full
    assert proxy.engine.sync(full=True).result.sent_nothing


WRITER = r"""
import os, sys
from nodeagent.proxy.nft.backend import NftBackend
netns, table, end = sys.argv[1:]
s = NftBackend(netns=netns).stream()
s.write(f"add table ip {table}\nadd set ip {table} s {{ type ipv4_addr ; }}\nadd element ip {table} s {{ 10.0.0.1 }}\n")
s.write(f"add element ip {table} s {{ 10.0.0.2 }}\n")
if end == "finish":
    s.finish().wait()
else:
    print(s.proc.pid, flush=True)
    os.kill(os.getpid(), 9)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"   # a zombie nobody reaps
    except FileNotFoundError:
        return True


def test_a_streamed_transaction_whose_writer_is_killed_commits_nothing(lab):
    """nft commits what it has read once the pipe ends: the writer holds back the end of each
    piece, so that a writer killed between pieces leaves nft an unclosed command."""
    table, backend = unique("st"), NftBackend(netns=lab.node)
    env = dict(os.environ, PYTHONPATH=ROOT)
    killed = subprocess.run([sys.executable, "-c", WRITER, lab.node, table, "kill"], capture_output=True,
                            text=True, env=env, timeout=30)
    assert killed.returncode == -9, killed.stderr
    wait(lambda: _gone(int(killed.stdout)), 30, "nft to end")
    assert not backend.read_exists("ip", table)
    subprocess.run([sys.executable, "-c", WRITER, lab.node, table, "finish"], check=True, env=env, timeout=30)
    try:
        assert "10.0.0.1, 10.0.0.2" in backend.list_text("ip", table)
    finally:
        backend.apply(f"delete table ip {table}\n")


def test_a_streamed_transaction_that_nft_refuses_reports_nfts_error_and_commits_nothing(lab):
    table, backend = unique("st"), NftBackend(netns=lab.node)
    s = backend.stream()
    s.write(f"add table ip {table}\nadd set ip {table} s {{ type ipv4_addr ; }}\n"
            f"add element ip {table} s {{ 10.0.0.1 }}\n")
    s.write(f"add element ip {table} nosuchset {{ 10.0.0.2 }}\n")
    with pytest.raises(NftError, match="nosuchset|No such file"):
        s.finish().wait()
    assert not backend.read_exists("ip", table)
