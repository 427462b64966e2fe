"""Deployment arithmetic as pure functions: fenceposts, how far the new RS grows, how far the old
ones shrink, proportional scaling, the pod-template hash, status and conditions."""
from __future__ import annotations

import pytest

from control.controllers import deployment as D
from control.controllers.replicaset import deletion_rank, pod_from_template, replicaset_status


@pytest.mark.parametrize("surge,unavail,desired,expected", [
    ("25%", "25%", 4, (1, 1)), ("25%", "25%", 10, (3, 2)), (1, 0, 3, (1, 0)), (0, 0, 3, (0, 1)),
    ("0%", "0%", 5, (0, 1)), ("50%", 2, 3, (2, 2)), ("10%", "10%", 1, (1, 0)), (2, "100%", 4, (2, 4)),
])
def test_resolve_fenceposts(surge, unavail, desired, expected):
    assert D.resolve_fenceposts(surge, unavail, desired) == expected


@pytest.mark.parametrize("desired,surge,total,new,expected", [
    (4, 1, 4, 0, 1),    # 4 old + surge 1: the new RS may start one
    (4, 1, 5, 1, 1),    # at the ceiling: no growth
    (4, 1, 3, 1, 3),    # two old pods went: two more new (5 - 3 of room)
    (4, 2, 0, 0, 4),    # a fresh deployment: straight to the desired count
    (4, 1, 4, 4, 4),
])
def test_new_rs_replicas(desired, surge, total, new, expected):
    assert D.new_rs_replicas(desired, surge, total, new) == expected


@pytest.mark.parametrize("desired,unavail,new_spec,new_avail,olds,total_avail,expected", [
    # 4 replicas, maxUnavailable 1: one old pod may go while the new one is not yet available
    (4, 1, 1, 0, [("old", 4, 4)], 4, {"old": 3}),
    # nothing can go: the new pods are unavailable and we are at the minimum
    (4, 1, 2, 0, [("old", 3, 3)], 3, {}),
    # new ones available: old ones go as far as minAvailable allows
    (4, 1, 2, 2, [("old", 3, 3)], 5, {"old": 1}),
    # unhealthy old pods are cleaned up first, regardless of availability
    (4, 1, 1, 0, [("old", 4, 2)], 2, {"old": 3}),
    # oldest first
    (6, 2, 2, 2, [("v1", 2, 2), ("v2", 4, 4)], 8, {"v1": 0, "v2": 2}),
    # nothing old left
    (4, 1, 4, 4, [("old", 0, 0)], 4, {}),
])
def test_plan_old_scale_down(desired, unavail, new_spec, new_avail, olds, total_avail, expected):
    assert D.plan_old_scale_down(desired, unavail, new_spec, new_avail, olds, total_avail) == expected


def test_available_never_counts_more_than_the_spec():
    assert D.available({"spec": {"replicas": 2}, "status": {"availableReplicas": 4}}) == 2
    assert D.available({"spec": {"replicas": 4}, "status": {"availableReplicas": 3}}) == 3


def rs(name, spec, created, max_replicas=None):
    ann = {D.MAX_REPLICAS: str(max_replicas)} if max_replicas else {}
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": ann}, "spec": {"replicas": spec}}


def test_proportional_scaling_keeps_shares():
    rses = [rs("old", 6, "2024-01-01T00:00:00Z", 12), rs("new", 4, "2024-01-02T00:00:00Z", 12)]
    # 10 replicas + 2 surge became 20 + 4: each doubles its share of 12 (12 and 8), and the
    # leftover up to the new total of 24 goes to the largest, as in kube
    assert D.proportional_sizes(20, 4, rses, 10) == {"old": 16, "new": 8}
    # scaled down to 5 + 1: about half each, the rest from the largest
    sizes = D.proportional_sizes(5, 1, rses, 10)
    assert sum(sizes.values()) == 6 and sizes["old"] >= sizes["new"]
    assert D.proportional_sizes(0, 0, rses, 10) == {"old": 0, "new": 0}


def test_template_hash_is_stable_and_depends_on_the_template_and_collisions():
    t = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "v1"}]}}
    h = D.template_hash(t)
    assert h == D.template_hash({"spec": {"containers": [{"image": "v1", "name": "c"}]}, "metadata": {"labels": {"app": "web"}}})
    assert h != D.template_hash({**t, "spec": {"containers": [{"name": "c", "image": "v2"}]}})
    assert h != D.template_hash(t, 1)
    assert set(h) <= set(D.SAFE) and 1 <= len(h) <= 10
    assert D.fnv32a(b"") == 0x811C9DC5 and D.fnv32a(b"a") == 0xE40C292C  # FNV-1a test vectors


def test_equal_ignore_hash():
    a = {"metadata": {"labels": {"app": "x", "pod-template-hash": "abc"}}, "spec": {"containers": []}}
    b = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}
    assert D.equal_ignore_hash(a, b) and not D.equal_ignore_hash(a, {**b, "spec": {"containers": [1]}})


def deploy(replicas=4, generation=2, status=None, deadline=600):
    spec = {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {"metadata": {"name": "web", "generation": generation}, "spec": spec, "status": status or {}}


def rs_status(name, spec, replicas, ready, available):
    return {"metadata": {"name": name}, "spec": {"replicas": spec},
            "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": available}}


def test_status_counts_and_available_condition():
    new, old = rs_status("web-new", 2, 2, 1, 1), rs_status("web-old", 3, 3, 3, 3)
    st = D.deployment_status(deploy(), new, [old, new])
    assert {k: st[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                               "availableReplicas", "unavailableReplicas")} == {
        "observedGeneration": 2, "replicas": 5, "updatedReplicas": 2, "readyReplicas": 4,
        "availableReplicas": 4, "unavailableReplicas": 1}
    avail = [c for c in st["conditions"] if c["type"] == "Available"][0]
    assert (avail["status"], avail["reason"]) == ("True", "MinimumReplicasAvailable")
    st = D.deployment_status(deploy(), new, [rs_status("web-old", 3, 3, 1, 1), new])
    avail = [c for c in st["conditions"] if c["type"] == "Available"][0]
    assert (avail["status"], avail["reason"]) == ("False", "MinimumReplicasUnavailable")


def test_progressing_conditions_as_kubectl_reads_them():
    d = deploy(status={"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "readyReplicas": 3})
    new = rs_status("web-new", 4, 4, 4, 4)
    st = D.rollout_conditions(d, new, D.deployment_status(d, new, [new]))
    prog = [c for c in st["conditions"] if c["type"] == "Progressing"][0]
    assert (prog["status"], prog["reason"], prog["message"]) == (
        "True", "NewReplicaSetAvailable", 'ReplicaSet "web-new" has successfully progressed.')
    # progress without completion
    half = rs_status("web-new", 2, 2, 2, 2)
    st = D.rollout_conditions(d, half, D.deployment_status(d, half, [half, rs_status("o", 2, 2, 2, 2)]))
    prog = [c for c in st["conditions"] if c["type"] == "Progressing"][0]
    assert (prog["reason"], prog["message"]) == ("ReplicaSetUpdated", 'ReplicaSet "web-new" is progressing.')
    # no progress past the deadline: timed out
    stuck = deploy(deadline=10, status={"replicas": 4, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2,
                                        "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                                                        "lastUpdateTime": "2020-01-01T00:00:00Z",
                                                        "lastTransitionTime": "2020-01-01T00:00:00Z"}]})
    st = D.rollout_conditions(stuck, half, D.deployment_status(stuck, half, [half, rs_status("o", 2, 2, 0, 0)]))
    prog = [c for c in st["conditions"] if c["type"] == "Progressing"][0]
    assert (prog["status"], prog["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_complete():
    d = deploy(replicas=2, generation=3)
    assert D.complete(d, {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2, "observedGeneration": 3})
    assert not D.complete(d, {"updatedReplicas": 2, "replicas": 3, "availableReplicas": 2, "observedGeneration": 3})
    assert not D.complete(d, {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2, "observedGeneration": 2})


# -- replica sets -----------------------------------------------------------------------------------
def rpod(name, *, node="n", phase="Running", ready=True, since="2024-01-01T00:00:00Z", created="2024-01-01T00:00:00Z", restarts=0):
    return {"metadata": {"name": name, "creationTimestamp": created, "labels": {"app": "x"}},
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "containerStatuses": [{"restartCount": restarts}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": since}]}}


def test_deletion_rank_prefers_the_least_useful_pods():
    pods = [rpod("ready-old", since="2024-01-01T00:00:00Z"), rpod("unscheduled", node=None, phase="Pending", ready=False),
            rpod("pending", phase="Pending", ready=False), rpod("not-ready", ready=False),
            rpod("ready-new", since="2024-06-01T00:00:00Z"), rpod("crashy", ready=False, restarts=5)]
    order = [p["metadata"]["name"] for p in sorted(pods, key=deletion_rank)]
    assert order == ["unscheduled", "pending", "crashy", "not-ready", "ready-new", "ready-old"]


def test_replicaset_status_and_pod_template():
    rs = {"metadata": {"name": "rs", "namespace": "ns", "uid": "u", "generation": 4},
          "spec": {"replicas": 3, "minReadySeconds": 0, "selector": {"matchLabels": {"app": "x"}},
                   "template": {"metadata": {"labels": {"app": "x", "v": "1"}, "annotations": {"a": "b"}},
                                "spec": {"containers": [{"name": "c"}]}}}}
    pods = [rpod("a"), rpod("b", ready=False)]
    pods[0]["metadata"]["labels"]["v"] = "1"
    assert replicaset_status(rs, pods) == {"replicas": 2, "fullyLabeledReplicas": 1, "readyReplicas": 1,
                                           "availableReplicas": 1, "observedGeneration": 4}
    rs["spec"]["minReadySeconds"] = 10**9
    assert replicaset_status(rs, pods)["availableReplicas"] == 0
    p = pod_from_template(rs)
    assert p["metadata"] == {"generateName": "rs-", "namespace": "ns", "labels": {"app": "x", "v": "1"},
                             "annotations": {"a": "b"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u",
                                                  "controller": True, "blockOwnerDeletion": True}]}
    assert p["spec"] == {"containers": [{"name": "c"}]}
