"""The proxy's model and change tracker: parsing, validation, endpoint selection, cancel-out."""
import pytest

from nodeagent.proxy.model import (Endpoint, Invalid, NodeConfig, ServiceName, ServicePortName, categorize,
                                   endpoints_for, ipv4, parse_slice, service_ports, usable)
from nodeagent.proxy.testing import endpoint, endpoint_slice, service
from nodeagent.proxy.tracker import ChangeTracker, ProxyState

SVC = ServiceName("default", "web")


def spn(name="http", proto="tcp", svc=SVC):
    return ServicePortName(svc, name, proto)


def test_service_ports_basic_and_protocols():
    ports = service_ports(service("web", "10.96.0.10", [("http", 80), ("dns", 53, "UDP"), ("s", 9, "SCTP")]))
    assert set(ports) == {spn(), spn("dns", "udp"), spn("s", "sctp")}
    assert ports[spn()].cluster_ip == "10.96.0.10" and ports[spn()].port == 80
    assert ports[spn()].node_port == 0 and not ports[spn()].has_external


def test_headless_externalname_and_ipv6_are_skipped():
    assert service_ports(service("web", None)) == {}
    obj = service("web")
    obj["spec"]["type"] = "ExternalName"
    assert service_ports(obj) == {}
    assert service_ports(service("web", "fd00::10")) == {}


def test_node_ports_external_and_load_balancer_ips():
    sp = service_ports(service("web", "10.96.0.10", [("http", 80, "TCP", 30080)], type="LoadBalancer",
                               external_ips=["1.2.3.4", "bogus"], lb_ips=["5.6.7.8"], etp="Local",
                               hc_port=31000))[spn()]
    assert sp.node_port == 30080 and sp.external_ips == ("1.2.3.4",) and sp.load_balancer_ips == ("5.6.7.8",)
    assert sp.external_local and sp.health_check_node_port == 31000
    # a nodePort on a ClusterIP service is not programmed (the API would not allocate one)
    assert service_ports(service("web", "10.96.0.10", [("http", 80, "TCP", 30080)]))[spn()].node_port == 0


def test_invalid_values_skip_only_what_is_invalid():
    obj = service("web", "10.96.0.10", [("http", 80), ("bad", 70000), ("x", 81, "ICMP")])
    assert set(service_ports(obj)) == {spn()}
    assert service_ports(service("web", "10.96.0.300")) == {}
    assert service_ports(service("web; drop", "10.96.0.10")) == {}
    with pytest.raises(Invalid):
        ipv4("10.0.0.1\nflush ruleset")


def test_affinity_timeout_default_and_bounds():
    assert service_ports(service("web", affinity=60))[spn()].affinity_timeout == 60
    obj = service("web", affinity=60)
    obj["spec"]["sessionAffinityConfig"] = {}
    assert service_ports(obj)[spn()].affinity_timeout == 10800
    obj["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": "60; drop"}}
    assert service_ports(obj)[spn()].affinity_timeout == 10800


def test_slice_conditions_defaults_and_named_ports():
    s = parse_slice(endpoint_slice("web-1", "web", [
        {"addresses": ["10.244.1.5"], "conditions": {}},
        {"addresses": ["10.244.1.6"], "conditions": {"ready": False, "serving": True, "terminating": True}},
        {"addresses": ["not-an-ip"]}], [("http", 8080)]))
    e = {x.ip: x for x in s.endpoints}
    assert set(e) == {"10.244.1.5", "10.244.1.6"}
    assert e["10.244.1.5"].ready and e["10.244.1.5"].serving and not e["10.244.1.5"].terminating
    assert not e["10.244.1.6"].ready and e["10.244.1.6"].serving
    # named target ports: two slices give different numbers for the same port name
    s2 = parse_slice(endpoint_slice("web-2", "web", ["10.244.2.7"], [("http", 9090)]))
    got = endpoints_for(spn(), [s, s2])
    assert [(x.ip, x.port) for x in got] == [("10.244.1.5", 8080), ("10.244.1.6", 8080), ("10.244.2.7", 9090)]
    assert endpoints_for(spn("other"), [s, s2]) == []
    assert endpoints_for(spn("http", "udp"), [s]) == []


def test_slices_for_other_address_types_or_without_service_are_ignored():
    obj = endpoint_slice("web-1", "web", ["10.0.0.1"])
    obj["addressType"] = "IPv6"
    assert parse_slice(obj) is None
    obj = endpoint_slice("web-1", "web", ["10.0.0.1"])
    del obj["metadata"]["labels"]
    assert parse_slice(obj) is None


def test_usable_prefers_ready_then_serving_terminating():
    ready = Endpoint("10.0.0.1", 80, True, True, False)
    term = Endpoint("10.0.0.2", 80, False, True, True)
    dead = Endpoint("10.0.0.3", 80, False, False, True)
    assert usable([ready, term, dead]) == [ready]
    assert usable([term, dead]) == [term]
    assert usable([dead]) == []


def test_categorize_local_and_policies():
    sp = service_ports(service("web", itp="Local", etp="Local", type="NodePort",
                               ports=[("http", 80, "TCP", 30080)]))[spn()]
    here = Endpoint("10.0.0.1", 80, node="n1")
    there = Endpoint("10.0.0.2", 80, node="n2")
    g = categorize(sp, [here, there], "n1")
    assert g.cluster == (here, there) and g.local == (here,) and g.internal == (here,) and g.external == (here,)
    assert categorize(sp, [here, there], "").local == ()


def test_node_config_validates():
    assert NodeConfig("n", "10.244.1.0/16").cluster_cidr == "10.244.0.0/16"
    with pytest.raises(Invalid):
        NodeConfig("n", "10.244.0.0/16; flush ruleset")
    with pytest.raises(Invalid):
        NodeConfig("n", "", masquerade_bit=40)


def test_tracker_merges_and_cancels_out():
    woken = []
    t = ChangeTracker(on_change=lambda: woken.append(1))
    a = service("web", "10.96.0.10")
    t.service_event("ADDED", a)
    b = service("web", "10.96.0.11")
    t.service_event("MODIFIED", b, a)
    ch = t.take()
    assert list(ch.services) == [SVC] and ch.services[SVC][0] == {} and ch.services[SVC][1]
    # back and forth before a sync: nothing pending
    t.service_event("MODIFIED", a, b)
    t.service_event("MODIFIED", b, a)
    assert t.pending() == 0 and not t.take()
    # an update that changes nothing the proxy uses is no change at all
    c = service("web", "10.96.0.11")
    c["metadata"]["annotations"] = {"x": "y"}
    t.service_event("MODIFIED", c, b)
    assert t.pending() == 0
    # added then deleted before a sync: nothing
    s = endpoint_slice("web-1", "web", ["10.0.0.1"])
    t.slice_event("ADDED", s)
    t.slice_event("DELETED", s, s)
    assert not t.take()
    assert woken


def test_proxy_state_touched_services_follow_slices():
    t, st = ChangeTracker(), ProxyState()
    t.service_event("ADDED", service("web"))
    t.slice_event("ADDED", endpoint_slice("web-1", "web", ["10.0.0.1"]))
    assert st.apply(t.take()) == {SVC}
    assert [e.ip for e in st.endpoints(spn())] == ["10.0.0.1"]
    # a slice relabelled to another service touches both
    moved = endpoint_slice("web-1", "api", ["10.0.0.1"])
    t.slice_event("MODIFIED", moved)
    assert st.apply(t.take()) == {SVC, ServiceName("default", "api")}
    assert st.endpoints(spn()) == []
