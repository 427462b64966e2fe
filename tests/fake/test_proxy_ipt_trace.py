"""Tier 2: the iptables proxier on the fake iptables, checked by tracing packets through the chains
it rendered (the same features as the nftables mode), plus convergence, restart, stale chains,
cleanup of ours only, the backend-mismatch check, and the tracer and fake themselves."""
import ipaddress
import logging

import pytest

from nodeagent.proxy.iptables.backend import IptablesError, foreign_rules, mismatch_warning
from nodeagent.proxy.iptables.fake import FakeIptables
from nodeagent.proxy.iptables.proxier import IptablesProxier, cleanup_text
from nodeagent.proxy.iptables.render import JUMPS, chain_name, our_chains
from nodeagent.proxy.iptables.tracer import Tracer, parse_rule
from nodeagent.proxy.model import NodeConfig, ServiceName, ServicePortName
from nodeagent.proxy.testing import endpoint, endpoint_slice, service
from tests.fake import proxy_harness
from tests.fake.proxy_harness import LOCAL_ADDRESSES, NODE_IP, OUTSIDE, POD, eps

VIP = "10.96.0.10"


class Harness(proxy_harness.Harness):
    def new_fake(self, clock):
        return FakeIptables(clock=clock)

    def new_proxier(self):
        return IptablesProxier(self.fake, self.cfg)

    def new_tracer(self):
        return Tracer(self.fake, local_addresses=list(LOCAL_ADDRESSES))


@pytest.fixture
def h():
    return Harness()


def all_unmarked(trace):
    return all(o.mark == 0 for o in trace.outcomes)


# -- ClusterIP ------------------------------------------------------------------------------------
@pytest.mark.parametrize("proto", ["TCP", "UDP", "SCTP"])
def test_cluster_ip_spreads_evenly_over_endpoints_all_protocols(h, proto):
    h.apply(service("web", VIP, [("p", 80, proto)]),
            endpoint_slice("web-1", "web", ["10.244.2.5", "10.244.3.6", "10.244.4.7"], [("p", 8080, proto)]))
    p = proto.lower()
    t = h.trace(POD, VIP, 80, p)
    assert t.verdict == "ACCEPT" and eps(t) == ["10.244.2.5:8080", "10.244.3.6:8080", "10.244.4.7:8080"]
    assert all(share == pytest.approx(1 / 3, abs=1e-6) for share in t.spread.values())
    assert t.masquerade is False and all_unmarked(t)                   # pod to ClusterIP: no SNAT
    assert h.trace(OUTSIDE, VIP, 80, p).masquerade is True             # from outside the cluster
    assert h.trace(NODE_IP, VIP, 80, p, local=True).masquerade is True  # from the node itself
    other = "udp" if p == "tcp" else "tcp"
    assert h.trace(POD, VIP, 80, other).result == "no-match"           # other protocol: untouched
    assert h.trace(POD, VIP, 81, p).result == "no-match"


def test_spread_with_two_and_one_endpoints(h):
    h.apply(service("web", VIP), endpoint_slice("web-1", "web", ["10.244.2.5", "10.244.3.6"], [("http", 80)]))
    assert h.trace(POD, VIP, 80).spread == pytest.approx({"10.244.2.5:80": 0.5, "10.244.3.6:80": 0.5})
    h.apply(endpoint_slice("web-1", "web", ["10.244.3.6"], [("http", 80)]), etype="MODIFIED")
    assert h.trace(POD, VIP, 80).spread == {"10.244.3.6:80": 1.0}
    assert not any("statistic" in r for r in h.fake.rules("nat", chain_name("SVC", spn("web", "http"))))


def spn(name, port="http", proto="tcp"):
    return ServicePortName(ServiceName("default", name), port, proto)


def test_multi_port_and_named_target_ports(h):
    h.apply(service("web", VIP, [("http", 80), ("metrics", 9100)]),
            endpoint_slice("web-a", "web", ["10.244.2.5"], [("http", 8080), ("metrics", 9100)]),
            endpoint_slice("web-b", "web", ["10.244.3.6"], [("http", 8081)]))
    assert eps(h.trace(POD, VIP, 80)) == ["10.244.2.5:8080", "10.244.3.6:8081"]
    assert eps(h.trace(POD, VIP, 9100)) == ["10.244.2.5:9100"]


# -- NodePort, external IPs, load balancers -------------------------------------------------------
def test_node_port_on_node_addresses_with_masquerade(h):
    h.apply(service("web", VIP, [("http", 80, "TCP", 30080)], type="NodePort"),
            endpoint_slice("web-1", "web", ["10.244.2.5"], [("http", 8080)]))
    t = h.trace(OUTSIDE, NODE_IP, 30080)
    assert eps(t) == ["10.244.2.5:8080"] and t.masquerade is True and all_unmarked(t)
    assert eps(h.trace(NODE_IP, NODE_IP, 30080, local=True)) == ["10.244.2.5:8080"]
    assert h.trace(OUTSIDE, "198.51.100.1", 30080).result == "no-match"     # not one of ours
    assert h.trace(NODE_IP, "127.0.0.1", 30080, local=True).result == "no-match"   # not on loopback


def test_node_port_addresses_are_configurable():
    h = Harness(NodeConfig("node1", "10.244.0.0/16", nodeport_addresses=("192.168.50.0/24",)))
    h.tracer.local.add(ipaddress.IPv4Address("172.16.0.1"))
    h.apply(service("web", VIP, [("http", 80, "TCP", 30080)], type="NodePort"),
            endpoint_slice("web-1", "web", ["10.244.2.5"], [("http", 8080)]),
            service("none", "10.96.0.11", [("http", 80, "TCP", 30081)], type="NodePort"))
    assert eps(h.trace(OUTSIDE, NODE_IP, 30080)) == ["10.244.2.5:8080"]
    assert h.trace(OUTSIDE, "172.16.0.1", 30080).result == "no-match"   # local, outside the CIDR
    assert h.trace(OUTSIDE, NODE_IP, 30081).verdict == "REJECT"
    assert h.trace(OUTSIDE, "172.16.0.1", 30081).result == "no-match"


def test_external_ips_and_load_balancer_ips(h):
    h.apply(service("web", VIP, [("http", 80, "TCP", 30080)], type="LoadBalancer",
                    external_ips=["198.51.100.7"], lb_ips=["198.51.100.8"]),
            endpoint_slice("web-1", "web", ["10.244.2.5"], [("http", 8080)]))
    for ip in ("198.51.100.7", "198.51.100.8"):
        t = h.trace(OUTSIDE, ip, 80)
        assert eps(t) == ["10.244.2.5:8080"] and t.masquerade is True
        assert h.trace(POD, ip, 80).masquerade is True     # policy Cluster: external traffic always


# -- traffic policies -----------------------------------------------------------------------------
def test_external_traffic_policy_local(h):
    h.apply(service("web", VIP, [("http", 80, "TCP", 30080)], type="LoadBalancer",
                    lb_ips=["198.51.100.8"], etp="Local", hc_port=32000),
            endpoint_slice("web-1", "web", [endpoint("10.244.1.5", node="node1"),
                                            endpoint("10.244.2.5", node="node2")], [("http", 8080)]))
    for dst, port in ((NODE_IP, 30080), ("198.51.100.8", 80)):
        t = h.trace(OUTSIDE, dst, port)
        assert eps(t) == ["10.244.1.5:8080"] and t.masquerade is False    # source IP preserved
        t = h.trace(POD, dst, port)                                         # pods: every endpoint
        assert eps(t) == ["10.244.1.5:8080", "10.244.2.5:8080"] and t.masquerade is False
        t = h.trace(NODE_IP, dst, port, local=True)                         # the node itself
        assert eps(t) == ["10.244.1.5:8080", "10.244.2.5:8080"] and t.masquerade is True
    assert eps(h.trace(POD, VIP, 80)) == ["10.244.1.5:8080", "10.244.2.5:8080"]   # ClusterIP: all
    assert h.engine.view.health_check_ports()[32000][1] == 1


def test_external_policy_local_without_local_endpoints_rejects_outside_clients_only(h):
    h.apply(service("web", VIP, [("http", 80, "TCP", 30080)], type="NodePort", etp="Local",
                    external_ips=["198.51.100.7"]),
            endpoint_slice("web-1", "web", [endpoint("10.244.2.5", node="node2")], [("http", 8080)]))
    for dst, port in ((NODE_IP, 30080), ("198.51.100.7", 80)):
        t = h.trace(OUTSIDE, dst, port)
        assert t.verdict == "REJECT" and t.reject == "tcp reset"
        assert eps(h.trace(POD, dst, port)) == ["10.244.2.5:8080"]
        assert eps(h.trace(NODE_IP, dst, port, local=True)) == ["10.244.2.5:8080"]


def test_internal_traffic_policy_local(h):
    h.apply(service("web", VIP, itp="Local"),
            endpoint_slice("web-1", "web", [endpoint("10.244.1.5", node="node1"),
                                            endpoint("10.244.2.5", node="node2")], [("http", 80)]))
    assert eps(h.trace(POD, VIP, 80)) == ["10.244.1.5:80"]
    assert h.trace(OUTSIDE, VIP, 80).masquerade is True     # off-cluster clients still masqueraded
    h.apply(endpoint_slice("web-1", "web", [endpoint("10.244.2.5", node="node2")], [("http", 80)]),
            etype="MODIFIED")
    assert h.trace(POD, VIP, 80).verdict == "REJECT"


def test_both_policies_local_share_the_local_chain(h):
    h.apply(service("web", VIP, [("http", 80, "TCP", 30080)], type="NodePort", etp="Local", itp="Local"),
            endpoint_slice("web-1", "web", [endpoint("10.244.1.5", node="node1"),
                                            endpoint("10.244.2.5", node="node2")], [("http", 8080)]))
    svl = h.fake.rules("nat", chain_name("SVL", spn("web")))
    assert len(svl) == 2      # masquerade off-cluster ClusterIP clients + one endpoint, not doubled
    t = h.trace(OUTSIDE, NODE_IP, 30080)
    assert eps(t) == ["10.244.1.5:8080"] and t.masquerade is False
    assert h.trace(OUTSIDE, VIP, 80).masquerade is True


# -- endpoint conditions, no endpoints ------------------------------------------------------------
def test_ready_first_then_serving_terminating(h):
    h.apply(service("web", VIP), endpoint_slice("web-1", "web", [
        endpoint("10.244.2.5"), endpoint("10.244.2.6", ready=False, serving=True, terminating=True)],
        [("http", 80)]))
    assert eps(h.trace(POD, VIP, 80)) == ["10.244.2.5:80"]
    h.apply(endpoint_slice("web-1", "web", [
        endpoint("10.244.2.5", ready=False, serving=False, terminating=True),
        endpoint("10.244.2.6", ready=False, serving=True, terminating=True),
        endpoint("10.244.2.7", ready=False, serving=False)], [("http", 80)]), etype="MODIFIED")
    assert eps(h.trace(POD, VIP, 80)) == ["10.244.2.6:80"]


@pytest.mark.parametrize("proto,how", [("TCP", "tcp reset"), ("UDP", "icmp port-unreachable"),
                                       ("SCTP", "icmp port-unreachable")])
def test_no_endpoints_rejects_in_filter(h, proto, how):
    h.apply(service("web", VIP, [("p", 80, proto, 30080)], type="NodePort", external_ips=["198.51.100.7"]))
    p = proto.lower()
    for src, dst, port, local in ((POD, VIP, 80, False), (NODE_IP, VIP, 80, True), (OUTSIDE, VIP, 80, False),
                                  (OUTSIDE, NODE_IP, 30080, False), (NODE_IP, NODE_IP, 30080, True),
                                  (OUTSIDE, "198.51.100.7", 80, False)):
        t = h.trace(src, dst, port, p, local=local)
        assert t.verdict == "REJECT" and t.reject == how, (src, dst, port)
    assert not any("REJECT" in r for c in h.fake.tables["nat"].values() for r in c.rules)   # filter only
    s = endpoint_slice("web-1", "web", ["10.244.2.5"], [("p", 8080, proto)])
    h.apply(s)
    assert eps(h.trace(POD, VIP, 80, p)) == ["10.244.2.5:8080"]
    assert eps(h.trace(OUTSIDE, NODE_IP, 30080, p)) == ["10.244.2.5:8080"]
    assert h.fake.rules("filter", "NA-SERVICES") == [r for r in h.fake.rules("filter", "NA-SERVICES") if "REJECT" not in r]
    h.delete(s)
    assert h.trace(POD, VIP, 80, p).verdict == "REJECT"


# -- masquerade -------------------------------------------------------------------------------------
def test_hairpin_is_masqueraded_only_when_the_pod_reaches_itself(h):
    h.apply(service("web", VIP), endpoint_slice("web-1", "web", [
        endpoint("10.244.1.5", node="node1"), endpoint("10.244.2.5", node="node2")], [("http", 80)]))
    t = h.trace("10.244.1.5", VIP, 80)
    assert {o.endpoint: o.masquerade for o in t.outcomes} == {"10.244.1.5:80": True, "10.244.2.5:80": False}
    assert all_unmarked(t)


def test_mark_is_cleared_before_masquerade_kubernetes_92035(h):
    h.apply(service("web", VIP), endpoint_slice("web-1", "web", ["10.244.2.5"], [("http", 80)]))
    post = h.fake.rules("nat", "NA-POSTROUTING")
    assert post == ["-m mark ! --mark 0x4000/0x4000 -j RETURN", "-j MARK --xor-mark 0x4000",
                    "-m comment --comment nodeagent -j MASQUERADE --random-fully"]
    t = h.trace(OUTSIDE, VIP, 80)
    assert t.masquerade is True and all_unmarked(t)   # left POSTROUTING with the bit cleared
    # a packet that already carries the bit (from another program) keeps its other bits
    assert h.fake.rules("nat", "NA-MARK-MASQ") == ["-j MARK --or-mark 0x4000"]


def test_masquerade_bit_is_configurable():
    h = Harness(NodeConfig("node1", "10.244.0.0/16", masquerade_bit=5))
    h.apply(service("web", VIP), endpoint_slice("web-1", "web", ["10.244.2.5"], [("http", 80)]))
    assert h.fake.rules("nat", "NA-MARK-MASQ") == ["-j MARK --or-mark 0x20"]
    assert h.trace(OUTSIDE, VIP, 80).masquerade is True


# -- session affinity ------------------------------------------------------------------------------
def test_session_affinity_client_ip_rules_and_behaviour(h):
    h.apply(service("web", VIP, affinity=60),
            endpoint_slice("web-1", "web", ["10.244.2.5", "10.244.2.6", "10.244.2.7"], [("http", 80)]))
    svc = h.fake.rules("nat", chain_name("SVC", spn("web")))
    checks = [r for r in svc if "--rcheck" in r]
    assert len(checks) == 3 and all("--seconds 60 --reap" in r for r in checks)
    assert svc.index(checks[-1]) < min(i for i, r in enumerate(svc) if "statistic" in r)   # before the spread
    sep = chain_name("SEP", spn("web"), "10.244.2.6:80")
    assert any(f"--set --name {sep} " in r and "DNAT" in r for r in h.fake.rules("nat", sep))
    first = h.trace(POD, VIP, 80, pick=1, record=True).endpoints
    assert first == ["10.244.2.6:80"]
    for pick in range(3):   # whatever statistic says, the client sticks
        assert h.trace(POD, VIP, 80, pick=pick, record=True).endpoints == first
    assert h.trace("10.244.1.78", VIP, 80, pick=2, record=True).endpoints == ["10.244.2.7:80"]
    h.clock.now += 61       # timeout passed: free choice again
    assert h.trace(POD, VIP, 80, pick=0, record=True).endpoints == ["10.244.2.5:80"]


def test_affinity_list_of_a_removed_endpoint_goes_with_its_chain(h):
    h.apply(service("web", VIP, affinity=600),
            endpoint_slice("web-1", "web", ["10.244.2.5", "10.244.2.6"], [("http", 80)]))
    assert h.trace(POD, VIP, 80, pick=0, record=True).endpoints == ["10.244.2.5:80"]
    gone = chain_name("SEP", spn("web"), "10.244.2.5:80")
    assert POD in h.fake.recent[gone]
    h.apply(endpoint_slice("web-1", "web", ["10.244.2.6"], [("http", 80)]), etype="MODIFIED")
    assert gone not in h.fake.recent and gone not in h.fake.tables["nat"]
    assert h.trace(POD, VIP, 80, pick=0, record=True).endpoints == ["10.244.2.6:80"]


# -- names -------------------------------------------------------------------------------------------
def test_chain_names_are_deterministic_hashed_and_short():
    a = chain_name("SVC", spn("web"))
    assert a == chain_name("SVC", spn("web")) and a.startswith("NA-SVC-") and len(a) <= 28
    assert a != chain_name("SVC", spn("web", proto="udp")) != chain_name("SVC", spn("web2"))
    long = ServicePortName(ServiceName("n" * 63, "s" * 63), "p" * 15, "sctp")
    assert len(chain_name("SEP", long, "10.244.255.255:65535")) == 23


# -- sync behaviour ----------------------------------------------------------------------------------
def many(h, n=20):
    objs = []
    for i in range(n):
        objs.append(service(f"s{i}", f"10.96.1.{i}", [("http", 80, "TCP", 30100 + i)], type="NodePort"))
        objs.append(endpoint_slice(f"s{i}-1", f"s{i}", [f"10.244.5.{i}", f"10.244.6.{i}"], [("http", 8080)]))
    return h.apply(*objs)


def test_convergence_second_sync_sends_nothing_and_full_sync_rewrites_the_same(h):
    first = many(h)
    # first start: the static chains are created empty, the jumps inserted while the table is
    # small, then everything in one restore
    assert first.full and h.fake.restores == 2 and first.jumps_added == len(JUMPS)
    before = h.fake.save()
    again = h.engine.sync().result
    assert again.sent_nothing and h.fake.restores == 2
    full = h.engine.sync(full=True).result
    assert full.full and full.jumps_added == 0 and full.operations == 1 and h.fake.restores == 3
    assert h.fake.save() == before   # applied twice: no change
    assert h.fake.inserted == len(JUMPS)


def test_partial_sync_rewrites_only_the_changed_ports_chains_and_the_dispatch_chains(h):
    many(h)
    kept = {k: v for k, v in h.proxier.fragments.items() if k.service.name != "s3"}
    r = h.apply(endpoint_slice("s3-1", "s3", ["10.244.5.3", "10.244.6.3", "10.244.7.3"], [("http", 8080)]),
                etype="MODIFIED")
    assert not r.full and r.operations == 1
    assert all(h.proxier.fragments[k] is v for k, v in kept.items())    # not re-rendered
    s3 = {c for k, f in h.proxier.fragments.items() if k.service.name == "s3" for c in f.chains}
    declared = {line[1:].split()[0] for line in h.fake.last_text.splitlines() if line.startswith(":NA-")}
    assert declared == s3 | {"NA-SERVICES", "NA-NODEPORTS", "NA-POSTROUTING", "NA-MARK-MASQ", "NA-EXTERNAL-SERVICES"}
    assert h.fake.last_text.count("-A NA-SERVICES -d 10.96.1.") == 20   # the dispatch chain whole
    assert eps(h.trace(POD, "10.96.1.3", 80)) == ["10.244.5.3:8080", "10.244.6.3:8080", "10.244.7.3:8080"]
    assert eps(h.trace(POD, "10.96.1.4", 80)) == ["10.244.5.4:8080", "10.244.6.4:8080"]
    after = h.fake.save()
    assert h.engine.sync(full=True).result.full and h.fake.save() == after   # what a full sync writes


def test_partial_sync_of_a_removed_service_without_chains_rewrites_the_filter_rejects(h):
    many(h, 3)
    empty = service("empty", "10.96.2.1", [("http", 80)])
    h.apply(empty)
    assert h.trace(POD, "10.96.2.1", 80).verdict == "REJECT"
    r = h.delete(empty)
    assert not r.full and r.operations == 1 and r.stale_chains == 0
    assert h.trace(POD, "10.96.2.1", 80).verdict != "REJECT"
    assert h.engine.sync().result.sent_nothing


def test_stale_chains_are_deleted(h):
    many(h, 3)
    old = chain_name("SEP", spn("s1"), "10.244.6.1:8080")
    assert old in h.fake.tables["nat"]
    r = h.apply(endpoint_slice("s1-1", "s1", ["10.244.5.1"], [("http", 8080)]), etype="MODIFIED")
    assert r.stale_chains == 1 and old not in h.fake.tables["nat"]
    assert h.engine.sync().result.sent_nothing          # the deletion does not make the next sync differ
    h.delete(service("s2", "10.96.1.2", [("http", 80, "TCP", 30102)], type="NodePort"))
    assert not [c for c in h.fake.tables["nat"] if c.endswith(chain_name("SVC", spn("s2"))[7:])]
    assert h.trace(POD, "10.96.1.2", 80).result == "no-match"


def test_restart_reconciles_without_duplicating_jumps_and_deletes_what_went_away(h):
    many(h, 5)
    before = h.fake.save()
    h2 = Harness(h.cfg, h.fake, h.clock)
    r = many(h2, 5)
    assert r.full and r.jumps_added == 0 and h.fake.save() == before
    h3 = Harness(h.cfg, h.fake, h.clock)   # missed the deletion of s4 while it was down
    r = many(h3, 4)
    assert r.stale_chains == 4       # s4's SVC, EXT and two SEP chains
    assert not (our_chains(h.fake.save("nat")) - h3.proxier.applied["nat"])
    assert h.trace(POD, "10.96.1.4", 80).result == "no-match"
    assert eps(h.trace(POD, "10.96.1.3", 80)) == ["10.244.5.3:8080", "10.244.6.3:8080"]


def test_drift_is_repaired_by_a_full_sync(h):
    many(h, 3)
    h.fake.restore("*nat\n-D PREROUTING -m comment --comment nodeagent -j NA-SERVICES\n:NA-SERVICES - [0:0]\nCOMMIT\n")
    assert h.trace(POD, "10.96.1.1", 80).result == "no-match"
    assert h.engine.sync().result.sent_nothing          # a partial sync cannot know
    restores = h.fake.restores
    r = h.engine.sync(full=True).result
    assert r.jumps_added == 1 and h.fake.restores == restores + 1   # the chain existed: not re-created
    assert eps(h.trace(POD, "10.96.1.1", 80)) == ["10.244.5.1:8080", "10.244.6.1:8080"]


def test_failed_restore_changes_nothing_and_is_retried_in_full(h):
    many(h, 2)
    before = h.fake.save()
    h.fake.fail_next = "iptables-restore: line 3 failed"
    with pytest.raises(IptablesError):
        h.apply(endpoint_slice("s1-1", "s1", ["10.244.9.9"], [("http", 8080)]), etype="MODIFIED")
    assert h.fake.save() == before and h.proxier.needs_full_sync()
    r = h.engine.sync().result
    assert r.full and eps(h.trace(POD, "10.96.1.1", 80)) == ["10.244.9.9:8080"]


def test_conflicting_external_ip_goes_to_one_service_deterministically(h):
    h.apply(service("a", VIP, external_ips=["198.51.100.7"]),
            endpoint_slice("a-1", "a", ["10.244.2.5"], [("http", 80)]),
            service("b", "10.96.0.11", external_ips=["198.51.100.7"]),
            endpoint_slice("b-1", "b", ["10.244.3.5"], [("http", 80)]))
    assert eps(h.trace(OUTSIDE, "198.51.100.7", 80)) == ["10.244.2.5:80"]
    h.delete(service("a", VIP, external_ips=["198.51.100.7"]))
    assert eps(h.trace(OUTSIDE, "198.51.100.7", 80)) == ["10.244.3.5:80"]


def test_cleanup_removes_our_chains_and_jumps_only(h):
    h.fake.restore("*nat\n:OTHER - [0:0]\n-A OTHER -s 192.0.2.1/32 -j RETURN\n"
                   "-A PREROUTING -s 192.0.2.2/32 -j OTHER\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n"
                   "*filter\n-A INPUT -s 192.0.2.3/32 -j DROP\nCOMMIT\n")
    many(h, 3)
    assert h.proxier.cleanup()
    nat, flt = h.fake.save("nat"), h.fake.save("filter")
    assert "NA-" not in nat and "NA-" not in flt and "nodeagent" not in nat + flt
    assert h.fake.rules("nat", "PREROUTING") == ["-s 192.0.2.2/32 -j OTHER"]
    assert h.fake.rules("nat", "POSTROUTING") == ["-j MASQUERADE"]
    assert h.fake.rules("filter", "INPUT") == ["-s 192.0.2.3/32 -j DROP"]
    assert h.fake.rules("nat", "OTHER") == ["-s 192.0.2.1/32 -j RETURN"]
    assert not h.proxier.cleanup()      # nothing left to remove


def test_cleanup_text_is_pure_and_uses_the_saved_rule_text():
    save = ("*nat\n:PREROUTING ACCEPT [0:0]\n:NA-SERVICES - [0:0]\n:KUBE-SERVICES - [0:0]\n"
            '-A PREROUTING -m comment --comment "nodeagent" -j NA-SERVICES\n'
            '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'
            '-A PREROUTING -m comment --comment "nodeagent" -j ACCEPT\nCOMMIT\n')
    assert cleanup_text({"nat": save}) == (
        "*nat\n:NA-SERVICES - [0:0]\n"
        '-D PREROUTING -m comment --comment "nodeagent" -j NA-SERVICES\n-X NA-SERVICES\nCOMMIT\n')
    assert cleanup_text({"nat": "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"}) == ""


# -- the other backend (kubernetes#71305) ------------------------------------------------------------
LEGACY_WITH_OURS = ("*nat\n:PREROUTING ACCEPT [0:0]\n:NA-SERVICES - [0:0]\n"
                    '-A PREROUTING -m comment --comment "nodeagent" -j NA-SERVICES\n'
                    "-A NA-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j NA-SVC-X\nCOMMIT\n")
NFT_WITH_KUBELET = ("# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n"
                    "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n-A INPUT -j KUBE-FIREWALL\n"
                    "-A KUBE-FIREWALL -m mark --mark 0x8000/0x8000 -j DROP\nCOMMIT\n")


def test_mismatch_warning_is_a_pure_function_of_the_saved_texts():
    assert foreign_rules(LEGACY_WITH_OURS) == 0 and foreign_rules(NFT_WITH_KUBELET) == 2
    w = mismatch_warning("legacy", {"legacy": LEGACY_WITH_OURS, "nft": NFT_WITH_KUBELET})
    assert w and "iptables-nft holds 2 rules" in w and "71305" in w and "--iptables-backend nft" in w
    assert mismatch_warning("nft", {"legacy": LEGACY_WITH_OURS, "nft": NFT_WITH_KUBELET}) is None
    assert mismatch_warning("legacy", {"legacy": "", "nft": ""}) is None
    legacy_busy = NFT_WITH_KUBELET.replace("# Warning", "# x") + LEGACY_WITH_OURS
    assert mismatch_warning("legacy", {"legacy": legacy_busy, "nft": NFT_WITH_KUBELET}) is None   # tie


def test_proxier_warns_once_when_other_rules_live_in_the_other_backend(h, caplog):
    h.fake.other_backend_save = NFT_WITH_KUBELET
    with caplog.at_level(logging.WARNING, "nodeagent.proxy.iptables"):
        many(h, 1)
        h.engine.sync(full=True)
    assert [r.message for r in caplog.records].count(h.proxier.mismatch) == 1 and "71305" in h.proxier.mismatch


# -- the tracer and the fake themselves -----------------------------------------------------------------
def test_tracer_rejects_unknown_fragments():
    for bad in ("-d 10.0.0.1/32 -j LOG --log-prefix x", "-p tcp --dport 80 -j ACCEPT", "-m tcp --dport 80 -j ACCEPT",
                "-m statistic --mode nth --every 2 -j X", "-j DNAT --to-destination 10.0.0.1:80",
                "-p udp -j REJECT --reject-with tcp-reset", "-j RETURN -s 10.0.0.1", "! -p tcp -j RETURN",
                "-m recent --rcheck --name X --rsource -j X"):
        with pytest.raises(ValueError):
            parse_rule(bad)
    r = parse_rule("! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j NA-MARK-MASQ")
    assert [m.op for m in r.matches] == ["addr", "addr", "proto", "dport"] and r.target.args == ("NA-MARK-MASQ",)


def test_tracer_follows_built_in_policies_and_foreign_rules():
    f = FakeIptables()
    f.restore("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -s 10.0.0.1/32 -j ACCEPT\nCOMMIT\n")
    t = Tracer(f, ["192.168.50.2"])
    assert t.trace("10.0.0.1", "10.0.0.9", 80).result == "no-match"
    assert t.trace("10.0.0.2", "10.0.0.9", 80).verdict == "DROP"
    assert t.trace("10.0.0.2", "192.168.50.2", 80).verdict == "ACCEPT"   # INPUT, not FORWARD


def test_fake_behaves_like_the_kernel():
    f = FakeIptables()
    f.restore("*nat\n:NA-A - [0:0]\n:NA-B - [0:0]\n-A NA-A -j NA-B\nCOMMIT\n")
    with pytest.raises(IptablesError, match="does not know"):
        f.restore("*nat\n-A NA-A -m limit --limit 1/s -j RETURN\nCOMMIT\n")
    with pytest.raises(IptablesError, match="No chain"):
        f.restore("*nat\n-A NA-A -j NA-ZZ\nCOMMIT\n")
    with pytest.raises(IptablesError, match="referenced"):
        f.restore("*nat\n:NA-B - [0:0]\n-X NA-B\nCOMMIT\n")
    with pytest.raises(IptablesError, match="not empty"):
        f.restore("*nat\n:NA-C - [0:0]\n-A NA-C -j RETURN\n-X NA-C\nCOMMIT\n")
    with pytest.raises(IptablesError, match="loop"):
        f.restore("*nat\n-A NA-B -j NA-A\n-A PREROUTING -j NA-A\nCOMMIT\n")
    with pytest.raises(IptablesError, match="MASQUERADE reached from PREROUTING"):
        f.restore("*nat\n-A NA-B -j MASQUERADE\n-A PREROUTING -j NA-A\nCOMMIT\n")
    with pytest.raises(IptablesError, match="filter table only"):
        f.restore("*nat\n-A NA-B -j REJECT\nCOMMIT\n")
    with pytest.raises(IptablesError, match="Bad rule"):
        f.restore("*nat\n-D PREROUTING -j NA-A\nCOMMIT\n")
    # a table commits at COMMIT: filter went in, the failing nat did not
    with pytest.raises(IptablesError):
        f.restore("*filter\n:NA-F - [0:0]\nCOMMIT\n*nat\n:NA-N - [0:0]\n-A NA-N -j NOPE-X\nCOMMIT\n")
    assert "NA-F" in f.tables["filter"] and "NA-N" not in f.tables["nat"]
    assert f.rules("nat", "PREROUTING") == [] and f.rules("nat", "NA-A") == ["-j NA-B"]
    assert f.ensure_rule("nat", "PREROUTING", ["-j", "NA-A"]) and not f.ensure_rule("nat", "PREROUTING", ["-j", "NA-A"])


def test_two_services_with_one_external_ip_and_different_endpoint_counts(h):
    a = service("a", "10.96.0.10", external_ips=["192.0.2.10"])
    h.apply(a, endpoint_slice("a-1", "a", ["10.244.2.1", "10.244.2.2"], [("http", 80)]),
            service("b", "10.96.0.11", external_ips=["192.0.2.10"]),
            endpoint_slice("b-1", "b", ["10.244.3.1", "10.244.3.2", "10.244.3.3"], [("http", 80)]))
    assert eps(h.trace(OUTSIDE, "192.0.2.10", 80)) == ["10.244.2.1:80", "10.244.2.2:80"]
    h.delete(a)
    assert eps(h.trace(OUTSIDE, "192.0.2.10", 80)) == ["10.244.3.1:80", "10.244.3.2:80", "10.244.3.3:80"]
