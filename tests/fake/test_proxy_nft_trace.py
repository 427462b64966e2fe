"""Tier 2: the nftables proxier on the fake backend, checked by tracing packets through the rules it
rendered (every feature of issue 7), plus convergence (a sync with nothing to do sends nothing)."""
import pytest

from nodeagent.proxy.model import NodeConfig
from nodeagent.proxy.nft.backend import NftError
from nodeagent.proxy.nft.fake import FakeNft
from nodeagent.proxy.nft.proxier import NftProxier
from nodeagent.proxy.nft.tracer import Tracer, parse_rule
from nodeagent.proxy.testing import endpoint, endpoint_slice, service
from tests.fake import proxy_harness
from tests.fake.proxy_harness import LOCAL_ADDRESSES, NODE_IP, OUTSIDE, POD, eps

TABLE = "natest"


class Harness(proxy_harness.Harness):
    def new_fake(self, clock):
        return FakeNft(clock=clock)

    def new_proxier(self):
        return NftProxier(self.fake, self.cfg, TABLE)

    def new_tracer(self):
        return Tracer(self.fake, TABLE, local_addresses=list(LOCAL_ADDRESSES))


@pytest.fixture
def h():
    return Harness()


# -- ClusterIP ------------------------------------------------------------------------------------
@pytest.mark.parametrize("proto", ["TCP", "UDP", "SCTP"])
def test_cluster_ip_all_protocols(h, proto):
    h.apply(service("web", "10.96.0.10", [("p", 80, proto)]),
            endpoint_slice("web-1", "web", ["10.244.2.5", "10.244.3.6"], [("p", 8080, proto)]))
    p = proto.lower()
    t = h.trace(POD, "10.96.0.10", 80, p)
    assert t.verdict == "ACCEPT" and eps(t) == ["10.244.2.5:8080", "10.244.3.6:8080"]
    assert t.masquerade is False                                       # pod to ClusterIP: no SNAT
    assert h.trace(OUTSIDE, "10.96.0.10", 80, p).masquerade is True    # from outside the cluster
    assert h.trace(NODE_IP, "10.96.0.10", 80, p, local=True).masquerade is True  # from the node
    other = "udp" if p == "tcp" else "tcp"
    assert eps(h.trace(POD, "10.96.0.10", 80, other)) == []            # other protocol: untouched
    assert eps(h.trace(POD, "10.96.0.10", 81, p)) == []


def test_multi_port_and_named_target_ports(h):
    # two deployments behind one service use different numbers for the named port "http"
    h.apply(service("web", "10.96.0.10", [("http", 80), ("metrics", 9100)]),
            endpoint_slice("web-a", "web", ["10.244.2.5"], [("http", 8080), ("metrics", 9100)]),
            endpoint_slice("web-b", "web", ["10.244.3.6"], [("http", 8081)]))
    assert eps(h.trace(POD, "10.96.0.10", 80)) == ["10.244.2.5:8080", "10.244.3.6:8081"]
    assert eps(h.trace(POD, "10.96.0.10", 9100)) == ["10.244.2.5:9100"]


def test_service_without_selector_uses_hand_made_slices_and_headless_is_skipped(h):
    h.apply(service("ext", "10.96.0.20", [("", 5432)]),
            endpoint_slice("ext-manual", "ext", ["192.0.2.10"], [("", 5432)]),
            service("headless", None, [("", 80)]),
            endpoint_slice("headless-1", "headless", ["10.244.2.9"], [("", 80)]))
    assert eps(h.trace(POD, "10.96.0.20", 5432)) == ["192.0.2.10:5432"]
    assert all("10.244.2.9" not in k for m in h.fake.read("ip", TABLE).maps.values() for k in m)


# -- NodePort, external IPs, load balancers -------------------------------------------------------
def test_node_port_on_node_addresses_with_masquerade(h):
    h.apply(service("web", "10.96.0.10", [("http", 80, "TCP", 30080)], type="NodePort"),
            endpoint_slice("web-1", "web", ["10.244.2.5"], [("http", 8080)]))
    t = h.trace(OUTSIDE, NODE_IP, 30080)
    assert eps(t) == ["10.244.2.5:8080"] and t.masquerade is True
    assert eps(h.trace(NODE_IP, NODE_IP, 30080, local=True)) == ["10.244.2.5:8080"]
    assert eps(h.trace(OUTSIDE, "198.51.100.1", 30080)) == []          # not one of the node's addresses
    assert eps(h.trace(NODE_IP, "127.0.0.1", 30080, local=True)) == []  # not on loopback


def test_node_port_addresses_are_configurable():
    h = Harness(NodeConfig("node1", "10.244.0.0/16", nodeport_addresses=("192.168.50.0/24",)))
    h.tracer.local.add(__import__("ipaddress").IPv4Address("172.16.0.1"))
    h.apply(service("web", "10.96.0.10", [("http", 80, "TCP", 30080)], type="NodePort"),
            endpoint_slice("web-1", "web", ["10.244.2.5"], [("http", 8080)]))
    assert eps(h.trace(OUTSIDE, NODE_IP, 30080)) == ["10.244.2.5:8080"]
    assert eps(h.trace(OUTSIDE, "172.16.0.1", 30080)) == []   # local, but outside the configured CIDR


def test_external_ips_and_load_balancer_ips(h):
    h.apply(service("web", "10.96.0.10", [("http", 80, "TCP", 30080)], type="LoadBalancer",
                    external_ips=["198.51.100.7"], lb_ips=["198.51.100.8"]),
            endpoint_slice("web-1", "web", ["10.244.2.5"], [("http", 8080)]))
    for ip in ("198.51.100.7", "198.51.100.8"):
        t = h.trace(OUTSIDE, ip, 80)
        assert eps(t) == ["10.244.2.5:8080"] and t.masquerade is True


# -- traffic policies -----------------------------------------------------------------------------
def local_policy_setup(h, **kw):
    h.apply(service("web", "10.96.0.10", [("http", 80, "TCP", 30080)], type="LoadBalancer",
                    lb_ips=["198.51.100.8"], etp="Local", hc_port=32000, **kw),
            endpoint_slice("web-1", "web", [endpoint("10.244.1.5", node="node1"),
                                            endpoint("10.244.2.5", node="node2")], [("http", 8080)]))


def test_external_traffic_policy_local(h):
    local_policy_setup(h)
    for dst, port in ((NODE_IP, 30080), ("198.51.100.8", 80)):
        t = h.trace(OUTSIDE, dst, port)
        assert eps(t) == ["10.244.1.5:8080"] and t.masquerade is False   # source IP preserved
        t = h.trace(POD, dst, port)                                        # pods: every endpoint
        assert eps(t) == ["10.244.1.5:8080", "10.244.2.5:8080"] and t.masquerade is False
        t = h.trace(NODE_IP, dst, port, local=True)                        # the node itself
        assert eps(t) == ["10.244.1.5:8080", "10.244.2.5:8080"] and t.masquerade is True
    # ClusterIP traffic is not affected by the external policy
    assert eps(h.trace(POD, "10.96.0.10", 80)) == ["10.244.1.5:8080", "10.244.2.5:8080"]
    assert h.engine.view.health_check_ports()[32000][1] == 1


def test_external_policy_local_without_local_endpoints_rejects_outside_clients_only(h):
    h.apply(service("web", "10.96.0.10", [("http", 80, "TCP", 30080)], type="NodePort", etp="Local"),
            endpoint_slice("web-1", "web", [endpoint("10.244.2.5", node="node2")], [("http", 8080)]))
    t = h.trace(OUTSIDE, NODE_IP, 30080)
    assert t.verdict == "REJECT" and t.reject == "tcp reset"
    assert eps(h.trace(POD, NODE_IP, 30080)) == ["10.244.2.5:8080"]


def test_internal_traffic_policy_local(h):
    h.apply(service("web", "10.96.0.10", itp="Local"),
            endpoint_slice("web-1", "web", [endpoint("10.244.1.5", node="node1"),
                                            endpoint("10.244.2.5", node="node2")], [("http", 80)]))
    assert eps(h.trace(POD, "10.96.0.10", 80)) == ["10.244.1.5:80"]
    h.apply(endpoint_slice("web-1", "web", [endpoint("10.244.2.5", node="node2")], [("http", 80)]),
            etype="MODIFIED")
    assert h.trace(POD, "10.96.0.10", 80).verdict == "REJECT"


# -- endpoint conditions, no endpoints ------------------------------------------------------------
def test_ready_first_then_serving_terminating(h):
    h.apply(service("web", "10.96.0.10"), endpoint_slice("web-1", "web", [
        endpoint("10.244.2.5"), endpoint("10.244.2.6", ready=False, serving=True, terminating=True)],
        [("http", 80)]))
    assert eps(h.trace(POD, "10.96.0.10", 80)) == ["10.244.2.5:80"]
    h.apply(endpoint_slice("web-1", "web", [
        endpoint("10.244.2.5", ready=False, serving=False, terminating=True),
        endpoint("10.244.2.6", ready=False, serving=True, terminating=True),
        endpoint("10.244.2.7", ready=False, serving=False)], [("http", 80)]), etype="MODIFIED")
    assert eps(h.trace(POD, "10.96.0.10", 80)) == ["10.244.2.6:80"]


@pytest.mark.parametrize("proto,how", [("TCP", "tcp reset"), ("UDP", "icmp port-unreachable"),
                                       ("SCTP", "icmp port-unreachable")])
def test_no_endpoints_rejects_at_once(h, proto, how):
    h.apply(service("web", "10.96.0.10", [("p", 80, proto, 30080)], type="NodePort", external_ips=["198.51.100.7"]))
    for src, dst, port, local in ((POD, "10.96.0.10", 80, False), (NODE_IP, "10.96.0.10", 80, True),
                                  (OUTSIDE, NODE_IP, 30080, False), (OUTSIDE, "198.51.100.7", 80, False)):
        t = h.trace(src, dst, port, proto.lower(), local=local)
        assert t.verdict == "REJECT" and t.reject == how, (dst, port)
    # an endpoint appears: accepted and DNATed; it goes: rejected again
    s = endpoint_slice("web-1", "web", ["10.244.2.5"], [("p", 8080, proto)])
    h.apply(s)
    assert eps(h.trace(POD, "10.96.0.10", 80, proto.lower())) == ["10.244.2.5:8080"]
    h.delete(s)
    assert h.trace(POD, "10.96.0.10", 80, proto.lower()).verdict == "REJECT"


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_cluster_ip_on_a_port_no_service_uses_is_refused(h, proto):
    web, dns = service("web", "10.96.0.10", [("http", 80), ("dns", 53, "UDP")], external_ips=["192.0.2.10"]), \
        endpoint_slice("web-1", "web", ["10.244.2.5"], [("http", 8080), ("dns", 53, "UDP")])
    h.apply(web, dns)
    how = "tcp reset" if proto == "tcp" else "icmp port-unreachable"
    for src, local in ((POD, False), (OUTSIDE, False), (NODE_IP, True)):
        t = h.trace(src, "10.96.0.10", 81, proto, local=local)
        assert t.verdict == "REJECT" and t.outcomes[0].reject == how, (src, t)
    assert eps(h.trace(POD, "10.96.0.10", 80)) == ["10.244.2.5:8080"]          # the service's own ports
    assert eps(h.trace(POD, "10.96.0.10", 53, "udp")) == ["10.244.2.5:53"]
    assert h.trace(OUTSIDE, "192.0.2.10", 81, proto).verdict == "ACCEPT"       # external IPs: not ours to refuse
    h.delete(web)
    assert h.trace(POD, "10.96.0.10", 81, proto).verdict == "ACCEPT"           # no longer a ClusterIP


# -- masquerade: hairpin ---------------------------------------------------------------------------
def test_hairpin_is_masqueraded_only_when_the_pod_reaches_itself(h):
    h.apply(service("web", "10.96.0.10"), endpoint_slice("web-1", "web", [
        endpoint("10.244.1.5", node="node1"), endpoint("10.244.2.5", node="node2")], [("http", 80)]))
    t = h.trace("10.244.1.5", "10.96.0.10", 80)
    by_ep = {o.endpoint: o.masquerade for o in t.outcomes}
    assert by_ep == {"10.244.1.5:80": True, "10.244.2.5:80": False}


# -- session affinity ------------------------------------------------------------------------------
def test_session_affinity_client_ip_with_timeout(h):
    h.apply(service("web", "10.96.0.10", affinity=60),
            endpoint_slice("web-1", "web", ["10.244.2.5", "10.244.2.6", "10.244.2.7"], [("http", 80)]))
    first = h.trace(POD, "10.96.0.10", 80, pick=1, record=True).endpoints
    assert len(first) == 1
    for pick in range(3):   # whatever numgen says, the client sticks
        assert h.trace(POD, "10.96.0.10", 80, pick=pick, record=True).endpoints == first
    other = h.trace("10.244.1.78", "10.96.0.10", 80, pick=2, record=True).endpoints
    assert other == ["10.244.2.7:80"]
    h.clock.now += 61       # timeout passed: free choice again
    assert h.trace(POD, "10.96.0.10", 80, pick=2, record=True).endpoints == ["10.244.2.7:80"]


def test_affinity_entries_of_removed_endpoints_are_deleted(h):
    h.apply(service("web", "10.96.0.10", affinity=600),
            endpoint_slice("web-1", "web", ["10.244.2.5", "10.244.2.6"], [("http", 80)]))
    assert h.trace(POD, "10.96.0.10", 80, pick=0, record=True).endpoints == ["10.244.2.5:80"]
    h.apply(endpoint_slice("web-1", "web", ["10.244.2.6"], [("http", 80)]), etype="MODIFIED")
    assert h.trace(POD, "10.96.0.10", 80, pick=0, record=True).endpoints == ["10.244.2.6:80"]


# -- sync behaviour ----------------------------------------------------------------------------------
def many(h, n=20):
    objs = []
    for i in range(n):
        objs.append(service(f"s{i}", f"10.96.1.{i}", [("http", 80, "TCP", 30100 + i)], type="NodePort"))
        objs.append(endpoint_slice(f"s{i}-1", f"s{i}", [f"10.244.5.{i}", f"10.244.6.{i}"], [("http", 8080)]))
    return h.apply(*objs)


def test_convergence_second_sync_sends_nothing(h):
    first = many(h)
    assert first.full and h.fake.transactions == 1
    again = h.engine.sync().result
    assert again.sent_nothing and h.fake.transactions == 1
    assert h.engine.sync(full=True).result.sent_nothing   # a full reconcile finds nothing to fix


def test_partial_sync_sends_only_what_changed(h):
    many(h)
    r = h.apply(endpoint_slice("s3-1", "s3", ["10.244.5.3", "10.244.6.3", "10.244.7.3"], [("http", 8080)]),
                etype="MODIFIED")
    assert not r.full
    # this service's slots move from the 2-endpoint chain's map to the 3-endpoint one (ClusterIP
    # and node port: 2 x 2 deleted, 2 x 3 added), its two verdicts are replaced (delete + add
    # each), one hairpin pair: nothing of the 19 other services
    assert r.elements == 4 + 6 + 4 + 1
    assert "s4" not in h.fake.last_script and "10.96.1.4 " not in h.fake.last_script
    assert eps(h.trace(POD, "10.96.1.3", 80)) == ["10.244.5.3:8080", "10.244.6.3:8080", "10.244.7.3:8080"]


def test_restart_reconciles_without_flushing(h):
    many(h)
    before = h.fake.read("ip", TABLE)
    # a new process: fresh proxier and engine on the same kernel state, same objects listed again
    h2 = Harness(h.cfg, h.fake, h.clock)
    r = many(h2)
    assert r.full and r.sent_nothing and h.fake.read("ip", TABLE) == before
    # and one that missed a deletion while it was down corrects only that
    h3 = Harness(h.cfg, h.fake, h.clock)
    objs = []
    for i in range(19):
        objs.append(service(f"s{i}", f"10.96.1.{i}", [("http", 80, "TCP", 30100 + i)], type="NodePort"))
        objs.append(endpoint_slice(f"s{i}-1", f"s{i}", [f"10.244.5.{i}", f"10.244.6.{i}"], [("http", 8080)]))
    r = h3.apply(*objs)
    assert r.full and "delete table" not in h.fake.last_script and "10.96.1.19" in h.fake.last_script
    assert h.trace(POD, "10.96.1.19", 80).verdict == "ACCEPT" and eps(h.trace(POD, "10.96.1.19", 80)) == []
    assert eps(h.trace(POD, "10.96.1.18", 80)) == ["10.244.5.18:8080", "10.244.6.18:8080"]


def test_drift_is_repaired_by_a_full_sync(h):
    many(h, 3)
    h.fake.apply(f"delete element ip {TABLE} service-ips {{ 10.96.1.1 . tcp . 80 }}\n"
                 f"flush chain ip {TABLE} services\n")
    assert eps(h.trace(POD, "10.96.1.1", 80)) == []
    r = h.engine.sync(full=True).result
    assert not r.sent_nothing and not r.rebuilt
    assert eps(h.trace(POD, "10.96.1.1", 80)) == ["10.244.5.1:8080", "10.244.6.1:8080"]


def test_another_configuration_is_rebuilt_in_one_transaction(h):
    many(h, 2)
    h2 = Harness(NodeConfig("node1", "10.245.0.0/16"), h.fake, h.clock)
    r = many(h2, 2)
    assert r.rebuilt and h.fake.last_script.startswith(f"add table ip {TABLE}\ndelete table ip {TABLE}\n")
    assert h2.trace("10.244.1.9", "10.96.1.1", 80).masquerade is True   # new CIDR in effect


def test_a_first_sync_streams_in_pieces_and_a_failure_midway_commits_nothing(h, monkeypatch):
    monkeypatch.setattr(NftProxier, "STREAM_OWNERS", 3)
    render, calls = h.proxier._render, []

    def failing(view):
        calls.append(view)
        if len(calls) == 12:   # after three pieces were written
            raise ValueError("bad element")
        return render(view)
    monkeypatch.setattr(h.proxier, "_render", failing)
    with pytest.raises(ValueError):
        many(h)
    assert h.fake.read("ip", TABLE) is None and h.fake.transactions == 0
    monkeypatch.setattr(h.proxier, "_render", render)
    r = h.engine.sync().result
    assert r.full and r.elements == many(Harness()).elements and h.fake.transactions == 1
    assert eps(h.trace(POD, "10.96.1.19", 80)) == ["10.244.5.19:8080", "10.244.6.19:8080"]
    assert h.fake.last_script.rstrip().splitlines()[-1].startswith(f"add element ip {TABLE} fingerprint")
    assert h.engine.sync(full=True).result.sent_nothing


def test_a_table_cut_short_before_its_fingerprint_is_rebuilt(h):
    many(h, 3)
    whole = h.fake.last_script
    h2 = Harness(h.cfg, FakeNft(clock=h.clock), h.clock)
    h2.fake.apply(whole[:whole.index(f"add element ip {TABLE} fingerprint")])   # what nft would commit
    r = many(h2, 3)
    assert r.full and r.rebuilt
    assert h2.engine.sync(full=True).result.sent_nothing


@pytest.mark.parametrize("full", [False, True])
def test_two_services_with_one_external_ip_and_different_endpoint_counts(h, full):
    """The smaller service wins the key; the other's endpoints wait, in a map whose chain nobody
    uses yet, and take over when the winner goes. A conflict must never fail the whole sync."""
    a = service("a", "10.96.0.10", external_ips=["192.0.2.10"])
    objs = [a, endpoint_slice("a-1", "a", ["10.244.2.1", "10.244.2.2"], [("http", 80)]),
            service("b", "10.96.0.11", external_ips=["192.0.2.10"]),
            endpoint_slice("b-1", "b", ["10.244.3.1", "10.244.3.2", "10.244.3.3"], [("http", 80)])]
    h.apply(*objs)
    assert eps(h.trace(OUTSIDE, "192.0.2.10", 80)) == ["10.244.2.1:80", "10.244.2.2:80"]
    assert h.engine.sync(full=True).result.sent_nothing
    if full:   # a restarted proxy finds the table and must agree with it: nothing to send
        h = Harness(h.cfg, h.fake, h.clock)
        assert h.apply(*reversed(objs)).sent_nothing
    h.delete(a)
    assert eps(h.trace(OUTSIDE, "192.0.2.10", 80)) == ["10.244.3.1:80", "10.244.3.2:80", "10.244.3.3:80"]
    assert h.engine.sync(full=True).result.sent_nothing


def test_failed_transaction_changes_nothing_and_is_retried_in_full(h):
    many(h, 2)
    before = h.fake.read("ip", TABLE)
    h.fake.fail_next = "Could not process rule: Device or resource busy"
    with pytest.raises(NftError):
        h.apply(endpoint_slice("s1-1", "s1", ["10.244.9.9"], [("http", 8080)]), etype="MODIFIED")
    assert h.fake.read("ip", TABLE) == before and h.proxier.needs_full_sync()
    r = h.engine.sync().result
    assert r.full and eps(h.trace(POD, "10.96.1.1", 80)) == ["10.244.9.9:8080"]


def test_shared_chains_come_and_go_with_endpoint_counts(h):
    h.apply(service("web", "10.96.0.10"), endpoint_slice("web-1", "web", ["10.244.2.5"], [("http", 80)]))
    assert "ip-c-1" in h.fake.read("ip", TABLE).chains
    h.apply(endpoint_slice("web-1", "web", ["10.244.2.5", "10.244.2.6"], [("http", 80)]), etype="MODIFIED")
    chains = h.fake.read("ip", TABLE).chains
    assert "ip-c-2" in chains and "ip-c-1" not in chains


def test_a_shared_chain_that_comes_back_gets_its_elements_again(h):
    # 3 -> 2 -> 3 endpoints (a pod briefly unready): the 3-endpoint chain and its map are deleted,
    # then created empty; every slot must be sent again, not taken for still there
    three = ["10.244.2.5", "10.244.2.6", "10.244.2.7"]
    h.apply(service("web", "10.96.0.10"), endpoint_slice("web-1", "web", three, [("http", 80)]))
    h.apply(endpoint_slice("web-1", "web", three[:2], [("http", 80)]), etype="MODIFIED")
    h.apply(endpoint_slice("web-1", "web", three, [("http", 80)]), etype="MODIFIED")
    assert sorted(eps(h.trace(POD, "10.96.0.10", 80))) == [f"{ip}:80" for ip in three]
    assert h.engine.sync(full=True).result.sent_nothing


def test_conflicting_external_ip_goes_to_one_service_deterministically(h):
    h.apply(service("a", "10.96.0.10", external_ips=["198.51.100.7"]),
            endpoint_slice("a-1", "a", ["10.244.2.5"], [("http", 80)]),
            service("b", "10.96.0.11", external_ips=["198.51.100.7"]),
            endpoint_slice("b-1", "b", ["10.244.3.5"], [("http", 80)]))
    assert eps(h.trace(OUTSIDE, "198.51.100.7", 80)) == ["10.244.2.5:80"]
    h.delete(service("a", "10.96.0.10", external_ips=["198.51.100.7"]))
    assert eps(h.trace(OUTSIDE, "198.51.100.7", 80)) == ["10.244.3.5:80"]


# -- the tracer and the fake themselves -----------------------------------------------------------------
def test_tracer_rejects_unknown_fragments():
    with pytest.raises(ValueError, match="does not know"):
        parse_rule("ip daddr 10.0.0.1 counter accept")
    with pytest.raises(ValueError, match="terminal"):
        parse_rule("goto x accept")
    assert [f.op for f in parse_rule("meta l4proto tcp reject with tcp reset")] == ["l4proto", "reject_tcp"]


def test_fake_refuses_rules_the_tracer_cannot_follow_and_behaves_like_the_kernel():
    f = FakeNft()
    f.apply("add table ip t\nadd chain ip t c\nadd map ip t m { type ipv4_addr : verdict ; }\n")
    with pytest.raises(NftError, match="does not know"):
        f.apply("add rule ip t c ip daddr 10.0.0.1 log prefix x\n")
    with pytest.raises(NftError, match="chain zz"):
        f.apply("add element ip t m { 10.0.0.1 : goto zz }\n")
    f.apply("add element ip t m { 10.0.0.1 : goto c }\n")
    with pytest.raises(NftError, match="another value"):
        f.apply("add chain ip t d\nadd element ip t m { 10.0.0.1 : goto d }\n")
    assert "d" not in f.read("ip", "t").chains       # the failed transaction left nothing behind
    with pytest.raises(NftError, match="busy"):
        f.apply("delete chain ip t c\n")
    with pytest.raises(NftError, match="No such file"):
        f.apply("delete element ip t m { 10.0.0.2 }\n")
