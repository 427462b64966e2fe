"""Deployments end to end: a rolling update never goes below the allowed availability nor above
the allowed surge, finishes with status that `kubectl rollout status` accepts, and scaling works
through the scale subresource."""
from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from control.apiserver import write_kubeconfig

from .server import ROOT
from .test_ctrl_support import Cluster, FakeAgent, wait_until

KUBECTL = os.path.join(ROOT, ".tools", "kubectl-1.20")


@pytest.fixture
def cluster():
    c = Cluster()
    for i in range(3):
        c.add_node(f"n{i}", zone=f"z{i}")
    c.controllers(controllers=("replicaset", "deployment", "garbagecollector"))
    c.scheduler()
    agent = FakeAgent(c.url, ready_after=0.3).start()
    c.agent = agent
    yield c
    agent.stop()
    c.close()


def available(pods: list[dict]) -> int:
    return sum(1 for p in pods if not p["metadata"].get("deletionTimestamp")
               and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []))


def rolled_out(c: Cluster, ns: str, name: str, replicas: int) -> bool:
    d = c.api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}").json()
    st = d.get("status") or {}
    return (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and st.get("updatedReplicas") == replicas
            and st.get("replicas") == replicas and st.get("availableReplicas") == replicas)


def test_rolling_update_keeps_availability_and_surge_bounds(cluster, tmp_path):
    c = cluster
    c.deployment("default", "web", 4, max_surge=1, max_unavailable=1)
    wait_until(lambda: rolled_out(c, "default", "web", 4), 15, what="first rollout")
    samples: list[tuple[int, int]] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            pods = c.pods("default", "app=web")
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            samples.append((available(pods), len(live)))
            time.sleep(0.01)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "netexec:2"}]}}}}
        c.ok(c.api.patch("/apis/apps/v1/namespaces/default/deployments/web", json=patch,
                         headers={"Content-Type": "application/strategic-merge-patch+json"}))
        wait_until(lambda: rolled_out(c, "default", "web", 4), 20, what="rolling update to finish")
        wait_until(lambda: all(p["spec"]["containers"][0]["image"] == "netexec:2"
                               for p in c.pods("default", "app=web")), 10, what="old pods gone")
    finally:
        stop.set()
        t.join(5)
    assert len(samples) > 20
    assert min(a for a, _ in samples) >= 3, "availability went below replicas - maxUnavailable"
    assert max(n for _, n in samples) <= 5, "more pods than replicas + maxSurge"
    rses = c.api.get("/apis/apps/v1/namespaces/default/replicasets").json()["items"]
    assert sorted(rs["spec"]["replicas"] for rs in rses) == [0, 4]
    d = c.api.get("/apis/apps/v1/namespaces/default/deployments/web").json()
    conds = {x["type"]: x for x in d["status"]["conditions"]}
    assert conds["Available"]["status"] == "True" and conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    new_rs = [rs for rs in rses if rs["spec"]["replicas"] == 4][0]
    h = new_rs["metadata"]["labels"]["pod-template-hash"]
    assert new_rs["metadata"]["name"] == f"web-{h}"
    assert all(p["metadata"]["labels"]["pod-template-hash"] == h for p in c.pods("default", "app=web"))
    if os.path.exists(KUBECTL):
        kubeconfig = str(tmp_path / "kubeconfig")
        write_kubeconfig(kubeconfig, c.url)
        out = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "rollout", "status", "deployment/web",
                              "--timeout=10s"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert 'deployment "web" successfully rolled out' in out.stdout


def test_scale_up_and_down_through_the_scale_subresource(cluster):
    c = cluster
    c.deployment("default", "api", 2)
    wait_until(lambda: rolled_out(c, "default", "api", 2), 15, what="first rollout")
    c.ok(c.api.patch("/apis/apps/v1/namespaces/default/deployments/api/scale", json={"spec": {"replicas": 5}},
                     headers={"Content-Type": "application/merge-patch+json"}))
    wait_until(lambda: rolled_out(c, "default", "api", 5), 15, what="scale to 5")
    c.ok(c.api.patch("/apis/apps/v1/namespaces/default/deployments/api/scale", json={"spec": {"replicas": 1}},
                     headers={"Content-Type": "application/merge-patch+json"}))
    wait_until(lambda: rolled_out(c, "default", "api", 1), 15, what="scale to 1")
    wait_until(lambda: len(c.pods("default", "app=api")) == 1, 10, what="extra pods gone")
    rses = c.api.get("/apis/apps/v1/namespaces/default/replicasets").json()["items"]
    assert len(rses) == 1 and rses[0]["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "1"


def test_deleting_a_deployment_collects_its_replica_sets_and_pods(cluster):
    c = cluster
    c.deployment("default", "gone", 3)
    wait_until(lambda: rolled_out(c, "default", "gone", 3), 15, what="rollout")
    c.ok(c.api.delete("/apis/apps/v1/namespaces/default/deployments/gone"))
    wait_until(lambda: not c.api.get("/apis/apps/v1/namespaces/default/replicasets").json()["items"], 10,
               what="replica sets collected")
    wait_until(lambda: not c.pods("default", "app=gone"), 10, what="pods collected")
