"""Tier 3: the iptables proxier against the real kernel (iptables-legacy), in throwaway namespaces
(nodeagent.proxy.testing.Lab: a node namespace routing between pod namespaces and a client
outside the cluster). Never touches the machine's own ruleset: every command runs in the lab's
node namespace, and deleting the namespaces removes every rule with them."""
import re
import subprocess
import time

import pytest

from nodeagent.proxy.conntrack import Conntrack
from nodeagent.proxy.engine import SyncEngine
from nodeagent.proxy.iptables.backend import IptablesBackend
from nodeagent.proxy.iptables.proxier import IptablesProxier
from nodeagent.proxy.iptables.render import JUMPS
from nodeagent.proxy.model import NodeConfig
from nodeagent.proxy.netns import command_prefix
from nodeagent.proxy.testing import Lab, endpoint, endpoint_slice, service
from tests.kernel.proxy_probes import (  # noqa: F401  (tests shared by both modes, run here)
    test_scapy_syn_to_vip_without_endpoints_gets_a_reset, test_sctp_init_is_dnated_to_an_endpoint,
    test_udp_flow_moves_off_a_removed_endpoint)

VIP = "10.96.0.10"
CFG = NodeConfig("node1", "10.244.0.0/16")


class Proxy:
    def __init__(self, lab: Lab, backend: str = "legacy"):
        self.lab = lab
        self.backend = IptablesBackend(backend, netns=lab.node)
        self.proxier = IptablesProxier(self.backend, CFG)
        self.engine = SyncEngine(self.proxier, "node1", conntrack=Conntrack(netns=lab.node))

    def apply(self, *objs, etype="ADDED"):
        for o in objs:
            self.engine.event("service" if o["kind"] == "Service" else "slice", etype, o)
        return self.engine.sync().result


def in_node(lab: Lab, *args: str) -> str:
    """A command in the lab's node namespace (never the machine's own)."""
    r = subprocess.run(command_prefix(lab.node) + list(args), capture_output=True, check=True, timeout=30)
    return r.stdout.decode()


def saved(proxy: Proxy) -> str:
    """iptables-save of both tables, without the timestamp comments and counters."""
    text = proxy.backend.save("filter") + proxy.backend.save("nat")
    return "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in text.splitlines() if not line.startswith("#"))


@pytest.fixture
def lab():
    with Lab(pods=2, prefix="ipt") as lab:
        # A real node has a default route (to its uplink). iptables can REJECT only after routing
        # (INPUT, FORWARD, OUTPUT), so without one a VIP with no endpoints would fail with "network
        # unreachable" before our reject rule sees it (docs/proxy.md, iptables mode). Not via the
        # client: the ICMP redirect would use up the per-host ICMP rate limit before the reject.
        in_node(lab, "ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1")  # no dummy driver here
        in_node(lab, "ip", "addr", "add", "198.18.0.1/24", "dev", "uplink0")
        for dev in ("uplink0", "uplink1"):
            in_node(lab, "ip", "link", "set", dev, "up")
        in_node(lab, "ip", "route", "add", "default", "via", "198.18.0.254")
        yield lab


@pytest.fixture
def proxy(lab):
    p = Proxy(lab)
    yield p
    p.proxier.cleanup()   # the namespace goes anyway; this also exercises cleanup on a full table


def pods_slice(lab, port=8080, proto="TCP", nodes=("node1", "node1"), name="web-1", svc="web", pname="http"):
    return endpoint_slice(name, svc, [endpoint(lab.pod_ip(i), node=n) for i, n in enumerate(nodes, 1)],
                          [(pname, port, proto)])


def test_tcp_and_udp_through_cluster_ip_and_node_port(lab, proxy):
    for ns in lab.pods:
        lab.serve(ns, 8080)
        lab.serve(ns, 8080, "udp")
    r = proxy.apply(service("web", VIP, [("http", 80, "TCP", 30080)], type="NodePort"), pods_slice(lab),
                    service("dns", "10.96.0.53", [("dns", 53, "UDP", 30053)], type="NodePort"),
                    pods_slice(lab, 8080, "UDP", name="dns-1", svc="dns", pname="dns"))
    assert r.full and r.jumps_added == len(JUMPS)
    seen = set()
    for _ in range(30):
        who, src = lab.tcp(lab.client, VIP, 80).split()
        seen.add(who)
        assert src.startswith("10.244.") and src.endswith(".1")   # off-cluster client: masqueraded
    assert seen == set(lab.pods)                                  # both endpoints are used
    who, src = lab.tcp(lab.pods[0], VIP, 80).split()
    assert src == lab.pod_ip(1) or who == lab.pods[0]             # pod -> other pod keeps its address
    who, src = lab.tcp(lab.client, Lab.NODE_IP, 30080).split()
    assert who in lab.pods and src != Lab.CLIENT_IP               # node port, policy Cluster: masqueraded
    for dst, port in ((("10.96.0.53", 53)), (Lab.NODE_IP, 30053)):
        who, src = lab.udp(lab.client, dst, port).split()
        assert who in lab.pods and src != Lab.CLIENT_IP


def test_no_endpoints_is_refused_at_once(lab, proxy):
    proxy.apply(service("web", VIP, [("http", 80, "TCP", 30080), ("dns", 53, "UDP")], type="NodePort"))
    t = time.monotonic()
    for ns, dst, port in ((lab.client, VIP, 80), (lab.pods[0], VIP, 80), (lab.client, Lab.NODE_IP, 30080)):
        with pytest.raises(ConnectionRefusedError):
            lab.tcp(ns, dst, port, timeout=5)
    with pytest.raises(ConnectionRefusedError):   # ICMP port unreachable on a connected UDP socket
        lab.udp(lab.client, VIP, 53, timeout=5)
    assert time.monotonic() - t < 2
    lab.serve(lab.pods[0], 8080)                  # an endpoint appears: served
    proxy.apply(endpoint_slice("web-1", "web", [lab.pod_ip(1)], [("http", 8080)]))
    assert lab.tcp(lab.client, VIP, 80).split()[0] == lab.pods[0]


def test_external_traffic_policy_local_preserves_source(lab, proxy):
    for ns in lab.pods:
        lab.serve(ns, 8080)
    proxy.apply(service("web", VIP, [("http", 80, "TCP", 30080)], type="NodePort", etp="Local"),
                pods_slice(lab, nodes=("node1", "node2")))
    for _ in range(10):
        who, src = lab.tcp(lab.client, Lab.NODE_IP, 30080).split()
        assert who == lab.pods[0] and src == Lab.CLIENT_IP   # local endpoint only, source preserved


def test_session_affinity_holds_and_hairpin_is_masqueraded(lab, proxy):
    for ns in lab.pods:
        lab.serve(ns, 8080)
    proxy.apply(service("web", VIP, [("http", 80)], affinity=300), pods_slice(lab))
    first = lab.tcp(lab.client, VIP, 80).split()[0]
    assert all(lab.tcp(lab.client, VIP, 80).split()[0] == first for _ in range(20))
    proxy.apply(endpoint_slice("web-1", "web", [endpoint(lab.pod_ip(1), node="node1")], [("http", 8080)]),
                etype="MODIFIED")
    who, src = lab.tcp(lab.pods[0], VIP, 80).split()
    assert who == lab.pods[0] and src != lab.pod_ip(1)   # hairpin: masqueraded, or the reply goes astray


def test_convergence_a_second_sync_changes_nothing(lab, proxy):
    objs = []
    for i in range(30):
        kw = {"affinity": 60} if i % 3 == 0 else {"etp": "Local"} if i % 3 == 1 else {}
        objs.append(service(f"s{i}", f"10.96.3.{i}", [("http", 80, "TCP", 30100 + i)], type="NodePort", **kw))
        objs.append(endpoint_slice(f"s{i}-1", f"s{i}", [endpoint(f"10.244.7.{i}", node="node1"),
                                                        endpoint(f"10.244.8.{i}", node="node2")], [("http", 8080)]))
    objs.append(service("empty", "10.96.3.200", [("http", 80, "TCP", 30300)], type="NodePort"))
    proxy.apply(*objs)
    before = saved(proxy)
    assert before.count("-j NA-SEP-") >= 60 and before.count("--comment nodeagent -j NA-SERVICES") + \
        before.count('--comment "nodeagent" -j NA-SERVICES') == 5
    assert proxy.engine.sync().result.sent_nothing
    r = proxy.engine.sync(full=True).result                 # applied again, as Neutron's debug mode
    assert r.full and r.jumps_added == 0 and r.stale_chains == 0
    assert saved(proxy) == before
    again = Proxy(lab)                                        # a restart: same objects listed again
    r = again.apply(*objs)
    assert r.full and r.jumps_added == 0 and saved(again) == before
    # an endpoint goes: its chain is deleted, and the next sync converges again
    r = again.apply(endpoint_slice("s4-1", "s4", [endpoint("10.244.7.4", node="node1")], [("http", 8080)]),
                    etype="MODIFIED")
    assert r.stale_chains == 1 and again.engine.sync().result.sent_nothing
    after = saved(again)
    assert again.engine.sync(full=True).result.stale_chains == 0 and saved(again) == after


def test_cleanup_removes_only_ours(lab, proxy):
    lab.serve(lab.pods[0], 8080)
    proxy.apply(service("web", VIP, [("http", 80)]), endpoint_slice("web-1", "web", [lab.pod_ip(1)], [("http", 8080)]))
    in_node(lab, "iptables-legacy", "-w", "5", "-t", "nat", "-N", "OTHER-CHAIN")
    in_node(lab, "iptables-legacy", "-w", "5", "-t", "nat", "-A", "PREROUTING", "-s", "192.0.2.1/32", "-j", "OTHER-CHAIN")
    in_node(lab, "iptables-legacy", "-w", "5", "-t", "filter", "-A", "INPUT", "-s", "192.0.2.2/32", "-j", "DROP")
    assert lab.tcp(lab.client, VIP, 80).split()[0] == lab.pods[0]
    assert proxy.proxier.cleanup()
    text = saved(proxy)
    assert "NA-" not in text and "nodeagent" not in text
    assert "-A PREROUTING -s 192.0.2.1/32 -j OTHER-CHAIN" in text and ":OTHER-CHAIN - [0:0]" in text
    assert "-A INPUT -s 192.0.2.2/32 -j DROP" in text
    with pytest.raises(OSError):
        lab.tcp(lab.client, VIP, 80, timeout=1)
    assert not proxy.proxier.cleanup()


def test_rules_in_the_other_backend_are_noticed(lab):
    # kubernetes#71305: something wrote its rules with iptables-nft in this (the lab's) namespace
    in_node(lab, "iptables-nft", "-t", "filter", "-A", "INPUT", "-s", "192.0.2.1/32", "-j", "ACCEPT")
    p = Proxy(lab)
    p.apply(service("web", VIP, [("http", 80)]))
    assert p.proxier.mismatch and "iptables-nft holds 1 rules" in p.proxier.mismatch
    ok = Proxy(lab, backend="nft")    # writing to nft instead: no warning, and the rules work there
    ok.apply(service("web", VIP, [("http", 80)]))
    assert ok.proxier.mismatch == ""
    ok.proxier.cleanup()
    p.proxier.cleanup()
