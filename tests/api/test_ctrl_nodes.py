"""Node lifecycle and node IPAM against a real in-process API server, with short timeouts: a node
whose lease expires loses its endpoints at once and its pods are replaced elsewhere after their
toleration; pod CIDRs are handed out once and come back when a node goes."""
from __future__ import annotations

import time

import pytest

from .test_ctrl_support import Cluster, FakeAgent, wait_until


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.close()


def slice_endpoints(c: Cluster, ns: str, svc: str) -> list[dict]:
    items = c.api.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                      params={"labelSelector": f"kubernetes.io/service-name={svc}"}).json()["items"]
    return [ep for s in items for ep in s.get("endpoints") or []]


def test_node_whose_lease_expires_loses_its_endpoints_at_once_and_its_pods_move(cluster):
    c = cluster
    for i in range(3):
        c.add_node(f"n{i}", zone=f"z{i}")
    agent = FakeAgent(c.url, lease_seconds=2).start()
    try:
        wait_until(lambda: len(c.api.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
                               .json()["items"]) == 3, 5, what="node leases")
        c.controllers(node_monitor_grace_period=1.5, node_monitor_period=0.1, default_toleration_seconds=2.0)
        c.scheduler()
        c.deployment("default", "web", 3)
        c.ok(c.api.post("/api/v1/namespaces/default/services", json={
            "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
        wait_until(lambda: sum(1 for ep in slice_endpoints(c, "default", "web") if ep["conditions"]["ready"]) == 3,
                   15, what="3 ready endpoints")
        victim = slice_endpoints(c, "default", "web")[0]["nodeName"]
        doomed = {ep["targetRef"]["name"] for ep in slice_endpoints(c, "default", "web") if ep["nodeName"] == victim}
        agent.kill(victim)
        killed = time.monotonic()

        def node_unknown():
            n = c.api.get(f"/api/v1/nodes/{victim}").json()
            ready = [x for x in n["status"]["conditions"] if x["type"] == "Ready"][0]
            return ready["status"] == "Unknown" and n
        node = wait_until(node_unknown, 10, interval=0.02, what="node Ready Unknown")
        unknown_at = time.monotonic()
        # the grace runs from the last renewal, which may precede the kill by a renew interval
        # (0.3 s) plus a slow write: not before about half the grace period
        assert unknown_at - killed >= 0.75, "marked Unknown before the grace period"
        wait_until(lambda: ("node.kubernetes.io/unreachable", "NoExecute") in {
            (t["key"], t["effect"]) for t in c.api.get(f"/api/v1/nodes/{victim}").json()["spec"].get("taints") or []},
            1, interval=0.02, what="the unreachable taint")

        def endpoints_not_ready():
            eps = [ep for ep in slice_endpoints(c, "default", "web") if ep["nodeName"] == victim]
            return eps and all(not ep["conditions"]["ready"] and not ep["conditions"]["serving"] for ep in eps)
        wait_until(endpoints_not_ready, 2, interval=0.02, what="endpoints on the dead node not ready")
        assert time.monotonic() - unknown_at < 1.0, "endpoints were not taken out at once"
        # pods stay until their toleration (2 s) ends, then are evicted and replaced elsewhere
        pods = {p["metadata"]["name"]: p for p in c.pods("default", "app=web")}
        assert all(not pods[name]["metadata"].get("deletionTimestamp") for name in doomed)

        def replaced():
            live = [p for p in c.pods("default", "app=web") if not p["metadata"].get("deletionTimestamp")]
            ready = [ep for ep in slice_endpoints(c, "default", "web") if ep["conditions"]["ready"]]
            return (len(live) == 3 and all(p["spec"].get("nodeName") not in (None, victim) for p in live)
                    and len(ready) == 3 and all(ep["nodeName"] != victim for ep in ready))
        wait_until(replaced, 15, what="pods replaced on live nodes")
        evicted_after = time.monotonic() - unknown_at
        assert evicted_after >= 1.5, f"evicted after {evicted_after:.1f}s, before the 2 s toleration"
        gone = [p for p in c.pods("default", "app=web") if p["metadata"]["name"] in doomed]
        assert all(p["metadata"].get("deletionTimestamp") for p in gone)  # terminating on the dead node
        term = [ep for ep in slice_endpoints(c, "default", "web") if ep["nodeName"] == victim]
        assert all(ep["conditions"]["terminating"] and not ep["conditions"]["ready"] for ep in term)
        # the agent comes back: taints go once it reports Ready again
        agent.dead.discard(victim)
        n = c.api.get(f"/api/v1/nodes/{victim}").json()
        n["status"]["conditions"] = [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
        c.ok(c.api.put(f"/api/v1/nodes/{victim}/status", json=n))
        wait_until(lambda: not [t for t in c.api.get(f"/api/v1/nodes/{victim}").json()["spec"].get("taints") or []
                                if t["key"] == "node.kubernetes.io/unreachable"], 5, what="taints removed")
    finally:
        agent.stop()


def test_tolerating_pod_stays_and_untolerated_taint_evicts_at_once(cluster):
    c = cluster
    c.add_node("a")
    agent = FakeAgent(c.url).start()
    try:
        c.controllers(controllers=("nodelifecycle",), node_monitor_period=0.1)
        for name, tol in (("stays", [{"key": "maintenance", "operator": "Exists", "effect": "NoExecute"}]),
                          ("goes", None)):
            spec = {"nodeName": "a", "containers": [{"name": "c", "image": "x"}]}
            if tol:
                spec["tolerations"] = tol
            c.ok(c.api.post("/api/v1/namespaces/default/pods", json={"metadata": {"name": name}, "spec": spec}))
        wait_until(lambda: all(p["status"].get("phase") == "Running" for p in c.pods("default")), 5)
        n = c.api.get("/api/v1/nodes/a").json()
        n["spec"]["taints"] = [{"key": "maintenance", "effect": "NoExecute"}]
        c.ok(c.api.put("/api/v1/nodes/a", json=n))
        wait_until(lambda: [p["metadata"]["name"] for p in c.pods("default")] == ["stays"], 5,
                   what="the untolerating pod evicted")
        time.sleep(0.5)
        assert [p["metadata"]["name"] for p in c.pods("default")] == ["stays"]
    finally:
        agent.stop()


def test_node_ipam_hands_out_each_cidr_once_and_reuses_freed_ones(cluster):
    c = cluster
    c.add_node("pre")
    pre = c.api.get("/api/v1/nodes/pre").json()
    pre["spec"]["podCIDR"] = "10.99.1.0/24"
    pre["spec"]["podCIDRs"] = ["10.99.1.0/24"]
    c.ok(c.api.put("/api/v1/nodes/pre", json=pre))
    c.controllers(controllers=("nodeipam",), cluster_cidr="10.99.0.0/22", node_cidr_mask_size=24)
    names = ["a", "b", "c"]
    for n in names:
        c.add_node(n)

    def cidrs():
        out = {n["metadata"]["name"]: n["spec"].get("podCIDR") for n in c.api.get("/api/v1/nodes").json()["items"]}
        return all(out.values()) and out
    got = wait_until(cidrs, 5, what="every node has a pod CIDR")
    assert got["pre"] == "10.99.1.0/24"
    assert sorted(got.values()) == ["10.99.0.0/24", "10.99.1.0/24", "10.99.2.0/24", "10.99.3.0/24"]
    # the range is full: a fifth node waits; deleting one frees its CIDR for it
    c.add_node("d")
    time.sleep(0.5)
    assert not c.api.get("/api/v1/nodes/d").json()["spec"].get("podCIDR")
    freed = got["b"]
    c.ok(c.api.delete("/api/v1/nodes/b"))
    assert wait_until(lambda: c.api.get("/api/v1/nodes/d").json()["spec"].get("podCIDR"), 10,
                      what="the freed CIDR to be reused") == freed
