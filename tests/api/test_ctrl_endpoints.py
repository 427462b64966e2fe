"""EndpointSlice and Endpoints controllers against a real in-process API server. Pods are
created already bound (spec.nodeName) and their status is written by the test, as a node agent
would: no scheduler needed."""
from __future__ import annotations

import time

import pytest

from .test_ctrl_support import Cluster, rfc_now, wait_until


@pytest.fixture
def cluster():
    c = Cluster()
    c.add_node("n1", zone="zone-a")
    c.add_node("n2", zone="zone-b")
    c.controllers(controllers=("endpointslice", "endpoints", "garbagecollector"))
    yield c
    c.close()


def make_pod(c: Cluster, name: str, ip: str, *, labels: dict, node: str = "n1", ready: bool = True,
             port_name: str = "http", port: int = 8080) -> None:
    body = {"metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x",
                                                       "ports": [{"name": port_name, "containerPort": port}]}]}}
    c.ok(c.api.post("/api/v1/namespaces/default/pods", json=body))
    set_status(c, name, ip, ready)


def set_status(c: Cluster, name: str, ip: str, ready: bool) -> None:
    st = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
          "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": rfc_now()}]}
    c.ok(c.api.patch(f"/api/v1/namespaces/default/pods/{name}/status", json={"status": st},
                     headers={"Content-Type": "application/merge-patch+json"}))


def slices(c: Cluster, svc: str) -> list[dict]:
    return c.api.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                     params={"labelSelector": f"kubernetes.io/service-name={svc}"}).json()["items"]


def service(c: Cluster, name: str, selector: dict, **spec) -> dict:
    body = {"metadata": {"name": name}, "spec": {"selector": selector,
                                                 "ports": [{"name": "web", "port": 80, "targetPort": "http"}], **spec}}
    return c.ok(c.api.post("/api/v1/namespaces/default/services", json=body))


def by_ip(sls: list[dict]) -> dict[str, dict]:
    return {ep["addresses"][0]: ep for s in sls for ep in s.get("endpoints") or []}


def test_slices_resolve_named_ports_per_pod_and_carry_conditions(cluster):
    c = cluster
    make_pod(c, "a", "10.244.1.2", labels={"app": "web"}, port=8080)
    make_pod(c, "b", "10.244.1.3", labels={"app": "web"}, port=9090, node="n2")
    make_pod(c, "c", "10.244.1.4", labels={"app": "web"}, ready=False)
    svc = service(c, "web", {"app": "web"})
    wait_until(lambda: len(by_ip(slices(c, "web"))) == 3, 5, what="3 endpoints")
    sls = slices(c, "web")
    ports = sorted(s["ports"][0]["port"] for s in sls)
    assert ports == [8080, 9090]  # one slice per resolved port set
    for s in sls:
        assert s["addressType"] == "IPv4" and s["ports"][0]["name"] == "web"
        assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
        assert s["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
    eps = by_ip(sls)
    assert eps["10.244.1.2"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert eps["10.244.1.4"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert eps["10.244.1.3"]["nodeName"] == "n2" and eps["10.244.1.3"]["zone"] == "zone-b"
    assert eps["10.244.1.2"]["targetRef"]["kind"] == "Pod" and eps["10.244.1.2"]["targetRef"]["name"] == "a"
    # the Endpoints object of older tools
    ep = wait_until(lambda: c.api.get("/api/v1/namespaces/default/endpoints/web").json().get("subsets"), 5)
    assert sorted((s["ports"][0]["port"], [a["ip"] for a in s.get("addresses", [])],
                   [a["ip"] for a in s.get("notReadyAddresses", [])]) for s in ep) == [
        (8080, ["10.244.1.2"], ["10.244.1.4"]), (9090, ["10.244.1.3"], [])]
    # readiness flips are followed
    set_status(c, "c", "10.244.1.4", True)
    wait_until(lambda: by_ip(slices(c, "web"))["10.244.1.4"]["conditions"]["ready"], 5)
    # a terminating pod: ready false, serving as its probe says, terminating true
    c.ok(c.api.delete("/api/v1/namespaces/default/pods/a"))
    wait_until(lambda: by_ip(slices(c, "web"))["10.244.1.2"]["conditions"]
               == {"ready": False, "serving": True, "terminating": True}, 5, what="terminating endpoint")
    # and the older Endpoints object no longer lists it as ready
    wait_until(lambda: sorted(a["ip"] for s in c.api.get("/api/v1/namespaces/default/endpoints/web").json()["subsets"]
                              for a in s.get("addresses", [])) == ["10.244.1.3", "10.244.1.4"], 5,
               what="the terminating pod out of the Endpoints addresses")


def test_publish_not_ready_addresses(cluster):
    c = cluster
    make_pod(c, "x", "10.244.2.2", labels={"app": "pn"}, ready=False)
    service(c, "pn", {"app": "pn"}, publishNotReadyAddresses=True, clusterIP="None")
    eps = wait_until(lambda: by_ip(slices(c, "pn")), 5)
    assert eps["10.244.2.2"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    ep = wait_until(lambda: c.api.get("/api/v1/namespaces/default/endpoints/pn").json().get("subsets"), 5)
    assert [a["ip"] for a in ep[0]["addresses"]] == ["10.244.2.2"]


def test_at_most_100_per_slice_and_no_write_without_change(cluster):
    c = cluster
    service(c, "big", {"app": "big"})
    for i in range(130):
        make_pod(c, f"big-{i}", f"10.244.3.{i + 2}", labels={"app": "big"})
    wait_until(lambda: len(by_ip(slices(c, "big"))) == 130, 10, what="130 endpoints")
    sizes = sorted(len(s["endpoints"]) for s in slices(c, "big"))
    assert sizes == [30, 100]
    versions = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices(c, "big")}
    # a change that touches no endpoint (an annotation) writes nothing
    c.ok(c.api.patch("/api/v1/namespaces/default/pods/big-5", json={"metadata": {"annotations": {"x": "y"}}},
                     headers={"Content-Type": "application/merge-patch+json"}))
    time.sleep(0.5)
    assert {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices(c, "big")} == versions
    # one pod turning unready rewrites exactly one slice
    set_status(c, "big-7", "10.244.3.9", False)
    wait_until(lambda: not by_ip(slices(c, "big"))["10.244.3.9"]["conditions"]["ready"], 5)
    after = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices(c, "big")}
    assert sum(1 for k in versions if after[k] != versions[k]) == 1
    # pods going away empty and delete slices (the service keeps the rest)
    for i in range(100):
        c.ok(c.api.delete(f"/api/v1/namespaces/default/pods/big-{i}", params={"gracePeriodSeconds": "0"}))
    wait_until(lambda: len(by_ip(slices(c, "big"))) == 30, 10, what="30 endpoints left")
    assert len(slices(c, "big")) == 1


def test_service_without_pods_keeps_a_placeholder_and_deleting_it_removes_its_slices(cluster):
    c = cluster
    service(c, "empty", {"app": "none"})
    sl = wait_until(lambda: slices(c, "empty"), 5, what="placeholder slice")
    assert len(sl) == 1 and not sl[0].get("endpoints")
    make_pod(c, "one", "10.244.4.2", labels={"app": "none"})
    wait_until(lambda: len(by_ip(slices(c, "empty"))) == 1, 5)
    assert len(slices(c, "empty")) == 1
    c.ok(c.api.delete("/api/v1/namespaces/default/services/empty"))
    wait_until(lambda: not slices(c, "empty"), 5, what="slices deleted with the service")
    wait_until(lambda: c.api.get("/api/v1/namespaces/default/endpoints/empty").status_code == 404, 5,
               what="endpoints deleted with the service")
