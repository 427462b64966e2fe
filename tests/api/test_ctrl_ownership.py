"""ReplicaSet adoption and release, and the garbage collector's three propagation policies,
against a real in-process API server (no scheduler: the pods stay unbound)."""
from __future__ import annotations

import pytest

from .test_ctrl_support import Cluster, wait_until

RS = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
      "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "rs"}},
               "template": {"metadata": {"labels": {"app": "rs"}},
                            "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


@pytest.fixture
def cluster():
    c = Cluster()
    c.controllers(controllers=("replicaset", "deployment", "garbagecollector"))
    yield c
    c.close()


def owners(p: dict) -> list[str]:
    return [r["name"] for r in p["metadata"].get("ownerReferences") or []]


def test_replicaset_adopts_orphans_and_releases_pods_that_stop_matching(cluster):
    c = cluster
    orphan = {"metadata": {"name": "orphan", "labels": {"app": "rs"}},
              "spec": {"containers": [{"name": "c", "image": "x"}]}}
    c.ok(c.api.post("/api/v1/namespaces/default/pods", json=orphan))
    rs = c.ok(c.api.post("/apis/apps/v1/namespaces/default/replicasets", json=RS))
    wait_until(lambda: len(c.pods("default", "app=rs")) == 3, 5, what="3 pods")
    pods = {p["metadata"]["name"]: p for p in c.pods("default", "app=rs")}
    assert "orphan" in pods  # adopted, not replaced
    for p in pods.values():
        ref = p["metadata"]["ownerReferences"][0]
        assert ref["uid"] == rs["metadata"]["uid"] and ref["controller"] is True and ref["kind"] == "ReplicaSet"
    # relabel one: released (owner reference removed) and replaced
    c.ok(c.api.patch("/api/v1/namespaces/default/pods/orphan", json={"metadata": {"labels": {"app": "other"}}},
                     headers={"Content-Type": "application/merge-patch+json"}))
    wait_until(lambda: not owners(c.api.get("/api/v1/namespaces/default/pods/orphan").json()), 5, what="release")
    wait_until(lambda: len(c.pods("default", "app=rs")) == 3, 5, what="a replacement")
    st = wait_until(lambda: (lambda s: s.get("replicas") == 3 and s)(
        c.api.get("/apis/apps/v1/namespaces/default/replicasets/rs").json().get("status") or {}), 5)
    assert st["readyReplicas"] == 0 and st["availableReplicas"] == 0 and st["observedGeneration"] == 1


def test_background_orphan_and_foreground_deletion(cluster):
    c = cluster
    # background: the RS goes at once, its pods after it
    c.ok(c.api.post("/apis/apps/v1/namespaces/default/replicasets", json=RS))
    wait_until(lambda: len(c.pods("default", "app=rs")) == 3, 5)
    c.ok(c.api.delete("/apis/apps/v1/namespaces/default/replicasets/rs",
                      params={"propagationPolicy": "Background"}))
    wait_until(lambda: not c.pods("default", "app=rs"), 5, what="pods collected")
    # orphan: the pods stay, without the owner reference
    c.ok(c.api.post("/apis/apps/v1/namespaces/default/replicasets", json=RS))
    wait_until(lambda: len(c.pods("default", "app=rs")) == 3, 5)
    c.ok(c.api.delete("/apis/apps/v1/namespaces/default/replicasets/rs", params={"propagationPolicy": "Orphan"}))
    wait_until(lambda: c.api.get("/apis/apps/v1/namespaces/default/replicasets/rs").status_code == 404, 5,
               what="the RS gone once its pods are orphaned")
    pods = c.pods("default", "app=rs")
    assert len(pods) == 3 and all(not owners(p) for p in pods)
    for p in pods:
        c.ok(c.api.delete(f"/api/v1/namespaces/default/pods/{p['metadata']['name']}"))
    # foreground: the deployment stays (deletionTimestamp set) until its RS and pods are gone
    c.deployment("default", "fg", 2)
    wait_until(lambda: len(c.pods("default", "app=fg")) == 2, 5)
    c.ok(c.api.delete("/apis/apps/v1/namespaces/default/deployments/fg", params={"propagationPolicy": "Foreground"}))
    wait_until(lambda: c.api.get("/apis/apps/v1/namespaces/default/deployments/fg").status_code == 404, 10,
               what="the deployment gone after its dependents")
    assert not c.pods("default", "app=fg")
    assert not c.api.get("/apis/apps/v1/namespaces/default/replicasets").json()["items"]
