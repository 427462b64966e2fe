"""Pure pieces around the sync: transaction validation, conntrack plans, health and metrics."""
import pytest

from nodeagent.proxy.conntrack import plan
from nodeagent.proxy.health import ProxyHealth, service_health_response
from nodeagent.proxy.metrics import ProxyMetrics
from nodeagent.proxy.model import NodeConfig, categorize, service_ports
from nodeagent.proxy.nft.layout import fingerprint
from nodeagent.proxy.nft.transaction import Transaction
from nodeagent.proxy.testing import service
from nodeagent.proxy.model import Endpoint
from nodeagent.proxy.view import PortView


def test_transaction_script_is_exact_and_validates_every_value():
    tx = Transaction("ip", "na1")
    tx.add_elements("service-ips", [("10.96.0.1 . tcp . 80", "goto ip-c-1")])
    tx.delete_elements("hairpin", ["10.0.0.1 . 10.0.0.1"])
    assert str(tx) == ("add element ip na1 service-ips { 10.96.0.1 . tcp . 80 : goto ip-c-1 }\n"
                       "delete element ip na1 hairpin { 10.0.0.1 . 10.0.0.1 }\n")
    assert tx.element_ops() == 2
    for bad in [("10.96.0.1 . tcp . 80 } ; flush ruleset ; add element ip x y { 1.1.1.1 . tcp . 1", "goto a"),
                ("10.96.0.01 . tcp . 80", "goto a"), ("10.96.0.1 . icmp . 80", "goto a"),
                ("10.96.0.1 . tcp . 65536", "goto a"), ("10.96.0.1 . tcp . 80", "accept; flush ruleset")]:
        t = Transaction("ip", "na1")
        t.add_elements("service-ips", [bad])   # building never raises...
        with pytest.raises(ValueError):
            t.script()                         # ...the script does, before anything is sent
    t = Transaction("ip", "na1; flush ruleset")
    t.add_table()
    with pytest.raises(ValueError):
        t.script()
    t = Transaction("ip", "ok")
    t.add_chain("bad name")
    with pytest.raises(ValueError):
        t.script()


def test_fingerprint_depends_on_configuration_only():
    a = fingerprint(NodeConfig("n1", "10.244.0.0/16"))
    assert a == fingerprint(NodeConfig("n2", "10.244.0.0/16"))
    assert a != fingerprint(NodeConfig("n1", "10.245.0.0/16"))
    assert a != fingerprint(NodeConfig("n1", "10.244.0.0/16", masquerade_bit=13))


def view(svc, eps):
    sp = next(iter(service_ports(svc).values()))
    return PortView(sp, categorize(sp, eps, "n1"))


def test_conntrack_plan_deletes_flows_of_removed_udp_endpoints_only():
    svc = service("dns", "10.96.0.53", [("dns", 53, "UDP", 30053)], type="NodePort", external_ips=["198.51.100.1"])
    a, b = Endpoint("10.244.1.5", 5353), Endpoint("10.244.2.5", 5353)
    cmds = plan({"x": (view(svc, [a, b]), view(svc, [b]))})
    assert ["-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--orig-port-dst", "53", "--dst-nat", "10.244.1.5"] in cmds
    assert ["-D", "-p", "udp", "--orig-dst", "198.51.100.1", "--orig-port-dst", "53", "--dst-nat", "10.244.1.5"] in cmds
    assert ["-D", "-p", "udp", "--orig-port-dst", "30053", "--dst-nat", "10.244.1.5"] in cmds
    assert not any("10.244.2.5" in c for c in cmds) and len(cmds) == 3
    # first endpoint of a UDP service: flows that were never DNATed go
    first = plan({"x": (view(svc, []), view(svc, [a]))})
    assert ["-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--orig-port-dst", "53"] in first
    # TCP: nothing (a reset ends those connections), and no change: nothing
    tcp = service("web", "10.96.0.10", [("http", 80)])
    assert plan({"x": (view(tcp, [a, b]), view(tcp, [b]))}) == []
    assert plan({"x": (view(svc, [a]), view(svc, [a]))}) == []
    # the service is deleted: its endpoints are all gone
    assert len(plan({"x": (view(svc, [a]), None)})) == 3


def test_health_is_kube_proxy_semantics():
    now = [100.0]
    h = ProxyHealth(timeout=60, clock=lambda: now[0], wall=lambda: 1_700_000_000.0)
    assert h.healthy()                        # starting: healthy until the timeout passes
    now[0] += 61
    assert not h.healthy() and h.response()[0] == 503
    h.updated()
    assert h.healthy() and h.response()[1]["lastUpdated"]
    h.queued()
    now[0] += 59
    assert h.healthy()
    h.queued()                                # a second change does not restart the clock
    now[0] += 2
    assert not h.healthy()


def test_service_health_response():
    status, body, headers = service_health_response("ns", "svc", 2)
    assert status == 200 and body == {"service": {"namespace": "ns", "name": "svc"}, "localEndpoints": 2,
                                      "serviceProxyHealthy": True}
    assert headers["X-Load-Balancing-Endpoint-Weight"] == "2"
    assert service_health_response("ns", "svc", 0)[0] == 503
    assert service_health_response("ns", "svc", 3, proxy_healthy=False)[0] == 503


def test_metrics_text_format():
    m = ProxyMetrics()
    m.sync_duration.observe(0.003)
    m.failures.inc()
    m.rules.set(42, kind="elements")
    text = m.render()
    assert 'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.004"} 1' in text
    assert "kubeproxy_sync_proxy_rules_duration_seconds_count 1" in text
    assert "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 1" in text
    assert 'nodeagent_proxy_rules_total{kind="elements"} 42' in text
    assert "# TYPE kubeproxy_network_programming_duration_seconds histogram" in text
