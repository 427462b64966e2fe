"""The scheduler and the controllers together against a real in-process API server: where the
pods of a deployment land (spread, cordon, taints), and what an unschedulable pod is told."""
from __future__ import annotations

import pytest

from .test_ctrl_support import Cluster, pods_per_node, wait_until


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.close()


def bound(c: Cluster, ns: str, selector: str) -> list[dict]:
    return [p for p in c.pods(ns, selector) if p["spec"].get("nodeName")]


def test_six_replicas_on_three_ready_nodes_land_two_per_node(cluster):
    for i in range(3):
        cluster.add_node(f"n{i}", zone=f"zone-{i}")
    cluster.controllers(controllers=("replicaset", "deployment"))
    cluster.scheduler()
    cluster.deployment("default", "web", 6)
    wait_until(lambda: len(bound(cluster, "default", "app=web")) == 6, 10, what="6 pods bound")
    assert pods_per_node(bound(cluster, "default", "app=web")) == {"n0": 2, "n1": 2, "n2": 2}


def test_cordoned_node_gets_none(cluster):
    cluster.add_node("a")
    cluster.add_node("b")
    cluster.add_node("cordoned", unschedulable=True)
    cluster.controllers(controllers=("replicaset", "deployment"))
    cluster.scheduler()
    cluster.deployment("default", "web", 6)
    wait_until(lambda: len(bound(cluster, "default", "app=web")) == 6, 10, what="6 pods bound")
    assert pods_per_node(bound(cluster, "default", "app=web")) == {"a": 3, "b": 3}


def test_tainted_node_takes_only_tolerating_pods(cluster):
    cluster.add_node("a")
    cluster.add_node("b")
    cluster.add_node("gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    cluster.controllers(controllers=("replicaset", "deployment"))
    cluster.scheduler()
    cluster.deployment("default", "plain", 6)
    cluster.deployment("default", "tolerant", 3,
                       tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])
    wait_until(lambda: len(bound(cluster, "default", "app in (plain,tolerant)")) == 9, 10, what="9 pods bound")
    plain = pods_per_node(bound(cluster, "default", "app=plain"))
    tolerant = pods_per_node(bound(cluster, "default", "app=tolerant"))
    assert "gpu" not in plain and sum(plain.values()) == 6
    # spreading and the empty node's free room both pull a tolerating pod there
    assert tolerant.get("gpu", 0) >= 1


def test_unschedulable_pod_gets_kube_style_message_and_is_retried_when_a_node_comes(cluster):
    cluster.add_node("small-1", cpu="1")
    cluster.add_node("small-2", cpu="1")
    cluster.add_node("gpu", cpu="8", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    cluster.scheduler()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
           "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}}}]}}
    cluster.ok(cluster.api.post("/api/v1/namespaces/default/pods", json=pod))

    def condition():
        p = cluster.api.get("/api/v1/namespaces/default/pods/big").json()
        return next((c for c in p["status"].get("conditions") or [] if c["type"] == "PodScheduled"), None)
    cond = wait_until(condition, 10, what="PodScheduled condition")
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert cond["message"] == ("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
                               "2 Insufficient cpu.")
    cluster.add_node("large", cpu="4")
    p = wait_until(lambda: cluster.api.get("/api/v1/namespaces/default/pods/big").json()["spec"].get("nodeName"),
                   10, what="the pod to be bound after a node came")
    assert p == "large"
    p = cluster.api.get("/api/v1/namespaces/default/pods/big").json()
    assert [c for c in p["status"]["conditions"] if c["type"] == "PodScheduled"][0]["status"] == "True"


def test_assumed_pods_never_overcommit_a_node(cluster):
    """Room for exactly two pods: of five created at once, two are bound and three wait."""
    cluster.add_node("only", cpu="1")
    cluster.scheduler()
    for i in range(5):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "labels": {"app": "x"}},
               "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "500m"}}}]}}
        cluster.ok(cluster.api.post("/api/v1/namespaces/default/pods", json=pod))

    def waiting():
        ps = cluster.pods("default", "app=x")
        msgs = [c.get("message") for p in ps for c in p["status"].get("conditions") or []
                if c["type"] == "PodScheduled" and c["status"] == "False"]
        return len(msgs) == 3 and msgs
    msgs = wait_until(waiting, 10, what="three pods unschedulable")
    assert set(msgs) == {"0/1 nodes are available: 1 Insufficient cpu."}
    assert len(bound(cluster, "default", "app=x")) == 2


def test_required_anti_affinity_on_hostname_and_host_ports(cluster):
    for i in range(3):
        cluster.add_node(f"n{i}", zone="z1" if i < 2 else "z2")
    cluster.scheduler()
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    for i in range(4):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"db{i}", "labels": {"app": "db"}},
               "spec": {"affinity": anti, "containers": [{"name": "c", "image": "x"}]}}
        cluster.ok(cluster.api.post("/api/v1/namespaces/default/pods", json=pod))
    wait_until(lambda: len(bound(cluster, "default", "app=db")) == 3, 10, what="3 db pods bound")
    assert pods_per_node(bound(cluster, "default", "app=db")) == {"n0": 1, "n1": 1, "n2": 1}

    def message():
        for p in cluster.pods("default", "app=db"):
            for c in p["status"].get("conditions") or []:
                if c["type"] == "PodScheduled" and c["status"] == "False":
                    return c["message"]
    assert wait_until(message, 10) == "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."

    # zone anti-affinity: two pods, at most one per zone
    zone_anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "z"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}
    for i in range(3):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"z{i}", "labels": {"app": "z"}},
               "spec": {"affinity": zone_anti, "containers": [{"name": "c", "image": "x"}]}}
        cluster.ok(cluster.api.post("/api/v1/namespaces/default/pods", json=pod))
    wait_until(lambda: len(bound(cluster, "default", "app=z")) == 2, 10, what="2 zone pods bound")
    zones = {"n0": "z1", "n1": "z1", "n2": "z2"}
    assert sorted(zones[p["spec"]["nodeName"]] for p in bound(cluster, "default", "app=z")) == ["z1", "z2"]

    # host ports: two pods wanting hostPort 8080 on a one-node selection
    for i in range(2):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"hp{i}", "labels": {"app": "hp"}},
               "spec": {"nodeSelector": {"kubernetes.io/hostname": "n0"},
                        "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}
        cluster.ok(cluster.api.post("/api/v1/namespaces/default/pods", json=pod))
    wait_until(lambda: len(bound(cluster, "default", "app=hp")) == 1, 10, what="one host-port pod bound")

    def hp_message():
        for p in cluster.pods("default", "app=hp"):
            for c in p["status"].get("conditions") or []:
                if c["type"] == "PodScheduled" and c["status"] == "False":
                    return c["message"]
    assert wait_until(hp_message, 10) == ("0/3 nodes are available: 1 node(s) didn't have free ports for the "
                                          "requested pod ports, 2 node(s) didn't match Pod's node affinity/selector.")
