"""ClusterIP and NodePort allocation, and optimistic concurrency under real concurrent requests."""
from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor

import httpx

from .conftest import service, status_of
from .server import ThreadServer


def test_cluster_ip_allocated_from_service_cidr(api, ns):
    s = api.post(f"/api/v1/namespaces/{ns}/services", json=service("a")).json()
    ip = ipaddress.ip_address(s["spec"]["clusterIP"])
    assert ip in ipaddress.ip_network("10.96.0.0/12") and s["spec"]["clusterIPs"] == [str(ip)]
    assert ip not in (ipaddress.ip_address("10.96.0.0"), ipaddress.ip_address("10.96.0.1"))


def test_requested_ip_honoured_taken_ip_refused_released_on_delete(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    s = api.post(coll, json=service("want", clusterIP="10.96.200.7")).json()
    assert s["spec"]["clusterIP"] == "10.96.200.7"
    st = status_of(api.post(coll, json=service("again", clusterIP="10.96.200.7")))
    assert st["code"] == 422 and "already allocated" in st["message"]
    st = status_of(api.post(coll, json=service("outside", clusterIP="192.168.1.1")))
    assert st["code"] == 422 and "not in the valid range" in st["message"]
    api.delete(f"{coll}/want")
    assert api.post(coll, json=service("again", clusterIP="10.96.200.7")).status_code == 201


def test_headless_and_external_name_get_no_ip(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    h = api.post(coll, json=service("headless", clusterIP="None")).json()
    assert h["spec"]["clusterIP"] == "None" and h["spec"]["clusterIPs"] == ["None"]
    e = api.post(coll, json={"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}).json()
    assert "clusterIP" not in e["spec"]


def test_node_ports(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    s = api.post(coll, json=service("np", type="NodePort", ports=[
        {"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 31081}])).json()
    ports = {p["name"]: p["nodePort"] for p in s["spec"]["ports"]}
    assert ports["b"] == 31081 and 30000 <= ports["a"] <= 32767 and ports["a"] != 31081
    st = status_of(api.post(coll, json=service("np2", type="NodePort", ports=[{"port": 80, "nodePort": 31081}])))
    assert st["code"] == 422 and "provided port is already allocated" in st["message"]
    st = status_of(api.post(coll, json=service("np3", type="NodePort", ports=[{"port": 80, "nodePort": 1234}])))
    assert st["code"] == 422 and "30000-32767" in st["message"]
    # an update that omits node ports keeps them (kubectl apply does this)
    s["spec"]["ports"][0].pop("nodePort")
    kept = api.put(f"{coll}/np", json=s).json()
    assert {p["name"]: p["nodePort"] for p in kept["spec"]["ports"]} == ports
    # back to ClusterIP releases them
    kept["spec"]["type"] = "ClusterIP"
    for p in kept["spec"]["ports"]:
        p.pop("nodePort")
    kept["spec"].pop("externalTrafficPolicy")
    assert api.put(f"{coll}/np", json=kept).status_code == 200
    assert api.post(coll, json=service("np4", type="NodePort", ports=[{"port": 80, "nodePort": 31081}])).status_code == 201


def test_load_balancer_local_gets_health_check_port(api, ns):
    s = api.post(f"/api/v1/namespaces/{ns}/services",
                 json=service("lbl", type="LoadBalancer", externalTrafficPolicy="Local")).json()
    hc = s["spec"]["healthCheckNodePort"]
    assert 30000 <= hc <= 32767 and hc != s["spec"]["ports"][0]["nodePort"]


def test_concurrent_creates_never_share_an_address():
    """Many clients create services at once in a small range: no IP or port is handed out twice,
    and when the range is full the error says so."""
    s = ThreadServer(service_cidr="10.100.0.0/26", node_ports=(30000, 30059)).start()
    try:
        with s.client() as api:
            api.post("/api/v1/namespaces", json={"metadata": {"name": "race"}})

        def create(i: int) -> httpx.Response:
            with httpx.Client(base_url=s.url, timeout=30) as c:
                return c.post("/api/v1/namespaces/race/services", json=service(f"s{i}", type="NodePort"))

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(create, range(70)))
        ok = [r.json() for r in results if r.status_code == 201]
        failed = [r.json() for r in results if r.status_code != 201]
        ips = [o["spec"]["clusterIP"] for o in ok]
        ports = [o["spec"]["ports"][0]["nodePort"] for o in ok]
        assert len(set(ips)) == len(ips) and len(set(ports)) == len(ports)
        assert len(ok) == 60  # the node port range (60) is the tighter one; the /26 has 61 usable IPs
        assert all(f["code"] == 422 and "range is full" in f["message"] for f in failed)
    finally:
        s.stop()


def test_two_updates_with_the_same_resource_version_exactly_one_wins(server, ns):
    with server.client() as api:
        base = api.post(f"/api/v1/namespaces/{ns}/services", json=service("race")).json()

    def update(i: int) -> int:
        body = dict(base, metadata={**base["metadata"], "labels": {"writer": str(i)}})
        with httpx.Client(base_url=server.url, timeout=30) as c:
            return c.put(f"/api/v1/namespaces/{ns}/services/race", json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(update, range(8)))
    assert sorted(codes) == [200] + [409] * 7
