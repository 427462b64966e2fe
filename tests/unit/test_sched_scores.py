"""Scheduler scores as pure functions, with tables of cases; the scheduler's fused hot loop held
equal to the pure functions; weights parsing; the adaptive number of nodes to find."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from control.scheduler import filters as F
from control.scheduler import scores as S
from control.scheduler.cache import Cache
from control.scheduler.scheduler import fit_and_score, num_feasible_to_find

from .test_sched_filters import node, placed, pod


@pytest.mark.parametrize("n,p,score", [
    (node(cpu="4", memory="4Gi"), pod(requests={"cpu": "1", "memory": "1Gi"}), 75.0),
    (node(cpu="4", memory="4Gi"), pod(requests={"cpu": "4", "memory": "4Gi"}), 0.0),
    (node(cpu="4", memory="4Gi"), pod(requests={"cpu": "2", "memory": "1Gi"}), (50 + 75) / 2),
    (placed(node(cpu="4", memory="4Gi"), pod("a", requests={"cpu": "2", "memory": "2Gi"})),
     pod(requests={"cpu": "1", "memory": "1Gi"}), 25.0),
    (node(cpu="1", memory="1Gi"), pod(requests={"cpu": "2", "memory": "2Gi"}), 0.0),  # over: 0, not negative
    (node(cpu="0", memory="0"), pod(), 0.0),
])
def test_least_allocated(n, p, score):
    assert S.least_allocated(p, n) == pytest.approx(score)


def test_least_allocated_counts_default_requests_for_pods_without():
    n = node(cpu="1", memory="2000Mi")
    assert S.least_allocated(pod(), n) == pytest.approx((90 + 90) / 2)  # 100m of 1000m, 200Mi of 2000Mi


@pytest.mark.parametrize("n,p,score", [
    (node(cpu="4", memory="4Gi"), pod(requests={"cpu": "1", "memory": "1Gi"}), 100.0),
    (node(cpu="4", memory="4Gi"), pod(requests={"cpu": "2", "memory": "0"}), 75.0),   # |0.5 - 0| / 2 off
    (node(cpu="4", memory="4Gi"), pod(requests={"cpu": "4"}), 50.0),
    (node(cpu="4", memory="4Gi"), pod(requests={"cpu": "8"}), 50.0),                  # fractions capped at 1
])
def test_balanced_allocation(n, p, score):
    assert S.balanced_allocation(p, n) == pytest.approx(score)


def test_selector_spread_prefers_fewer_of_the_same_owner_and_zone():
    c = Cache()
    nodes = []
    for name, zone in (("a", "z1"), ("b", "z1"), ("c", "z2")):
        c.set_node({"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
                    "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"},
                               "conditions": [{"type": "Ready", "status": "True"}]}})
    nodes = c.node_list
    c.assume(pod("p1", owner="rs1"), "a")
    new = pod("p2", owner="rs1")
    new.groups = c.groups_for(new)
    s = S.selector_spread(new, nodes)
    # a: 1 pod on the node and 1 in its zone: 0; b: none on it but 1 in its zone: 100/3; c: 100
    assert s == pytest.approx([0.0, 100 / 3, 100.0])
    other = pod("q", owner="rs2")
    other.groups = c.groups_for(other)
    assert S.selector_spread(other, nodes) == [100.0, 100.0, 100.0]


def test_services_make_spreading_groups_too():
    c = Cache()
    c.set_node({"metadata": {"name": "a"}, "status": {"allocatable": {"pods": "10"}}})
    c.set_service({"metadata": {"namespace": "default", "name": "web"}, "spec": {"selector": {"app": "web"}}})
    c.assume(pod("w1", labels={"app": "web", "v": "1"}), "a")
    assert c.nodes["a"].groups == Counter({"s:default/web": 1})
    c.remove_service({"metadata": {"namespace": "default", "name": "web"}})
    assert c.nodes["a"].groups == Counter()


def test_node_affinity_and_taint_scores_normalise():
    pref = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 5, "preference": {"matchExpressions": [{"key": "fast", "operator": "Exists"}]}}]}}
    nodes = [node("a", labels={"disk": "ssd", "fast": ""}), node("b", labels={"disk": "ssd"}), node("c")]
    assert S.node_affinity(pod(affinity=pref), nodes) == pytest.approx([100.0, 100 * 10 / 15, 0.0])
    soft = {"key": "spot", "effect": "PreferNoSchedule"}
    nodes = [node("a", taints=[soft]), node("b")]
    assert S.taint_toleration(pod(), nodes) == [0.0, 100.0]
    tol = [{"key": "spot", "operator": "Exists"}]
    assert S.taint_toleration(pod(tolerations=tol), nodes) == [100.0, 100.0]


def test_preferred_inter_pod_affinity():
    a = placed(node("a", labels={"topology.kubernetes.io/zone": "z1"}), pod("cache", labels={"app": "cache"}))
    b = node("b", labels={"topology.kubernetes.io/zone": "z2"})
    aff = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}},
                                           "topologyKey": "topology.kubernetes.io/zone"}}]}}
    p = pod("web", affinity=aff)
    tw = S.inter_pod_topology_weights(p, [(q, n) for n in (a, b) for q in n.pods.values()], [])
    assert tw == Counter({("topology.kubernetes.io/zone", "z1"): 50})
    assert S.inter_pod_affinity(tw, [a, b]) == [100.0, 0.0]
    # an existing pod's preferred anti-affinity pushes the newcomer away (symmetry)
    from .test_sched_filters import anti
    placed(b, pod("loner", labels={"app": "loner"}, affinity=anti({"app": "web"}, required=False, weight=30)))
    everything = [(q, n) for n in (a, b) for q in n.pods.values()]
    tw = S.inter_pod_topology_weights(pod("web2", labels={"app": "web"}), everything,
                                      [(q, n) for q, n in everything if q.anti_preferred])
    assert tw == Counter({("kubernetes.io/hostname", "b"): -30})


def test_weights_parse():
    w = S.Weights.parse("least_allocated=2, selector-spread=0")
    assert (w.least_allocated, w.selector_spread, w.taint_toleration) == (2.0, 0.0, 3.0)
    with pytest.raises(ValueError):
        S.Weights.parse("bogus=1")
    with pytest.raises(ValueError):
        S.Weights.parse("least_allocated=x")


@pytest.mark.parametrize("nodes,pct,want", [(50, 0, 50), (100, 0, 100), (1000, 0, 420), (5000, 0, 500),
                                            (10000, 0, 500), (1000, 10, 100), (1000, 100, 1000), (300, 0, 144)])
def test_num_feasible_to_find(nodes, pct, want):
    assert num_feasible_to_find(nodes, pct) == want


def test_fused_hot_loop_equals_the_pure_functions():
    rnd = random.Random(7)
    for trial in range(200):
        nodes = []
        for i in range(rnd.randint(1, 30)):
            n = node(f"n{i}", cpu=str(rnd.choice([0, 1, 2, 4])), memory=f"{rnd.choice([0, 1, 2, 8])}Gi",
                     pods=str(rnd.choice([0, 1, 3, 110])))
            for j in range(rnd.randint(0, 3)):
                n.add_pod(pod(f"x{i}-{j}", requests=rnd.choice([None, {"cpu": "500m"}, {"memory": "512Mi"},
                                                                 {"cpu": "1", "memory": "1Gi"}])))
            nodes.append(n)
        p = pod("p", requests=rnd.choice([None, {"cpu": "250m"}, {"memory": "300Mi"}, {"cpu": "2", "memory": "3Gi"}]))
        start, want = rnd.randrange(len(nodes)), rnd.randint(1, len(nodes))
        wl, wb = rnd.choice([1.0, 0.0, 2.5]), rnd.choice([1.0, 0.0, 3.0])
        reasons: Counter = Counter()
        got, scores, processed = fit_and_score(p, nodes, start, want, wl, wb, reasons)
        # the same with the pure functions
        exp_nodes, exp_reasons, exp_processed = [], Counter(), 0
        for k in range(len(nodes)):
            n = nodes[(start + k) % len(nodes)]
            exp_processed += 1
            r = F.fits_resources(p, n)
            if r:
                exp_reasons.update(r)
                continue
            exp_nodes.append(n)
            if len(exp_nodes) >= want:
                break
        assert [n.name for n in got] == [n.name for n in exp_nodes]
        assert processed == exp_processed and reasons == exp_reasons
        assert scores == pytest.approx([wl * S.least_allocated(p, n) + wb * S.balanced_allocation(p, n)
                                        for n in exp_nodes])
