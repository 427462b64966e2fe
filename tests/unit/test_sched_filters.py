"""Scheduler filters as pure functions, with tables of cases."""
from __future__ import annotations

from collections import Counter

import pytest

from control.scheduler import filters as F
from control.scheduler.nodeinfo import NodeInfo, PodInfo, int_value, milli_value, parse_quantity


def pod(name="p", ns="default", labels=None, requests=None, tolerations=None, node_selector=None,
        affinity=None, host_ports=(), init_requests=None, owner=None, uid=None) -> PodInfo:
    c = {"name": "c", "image": "x"}
    if requests:
        c["resources"] = {"requests": requests}
    if host_ports:
        c["ports"] = [{"containerPort": p, "hostPort": p, **({"protocol": proto} if proto else {}),
                       **({"hostIP": ip} if ip else {})} for p, proto, ip in host_ports]
    spec = {"containers": [c]}
    if init_requests:
        spec["initContainers"] = [{"name": "i", "image": "x", "resources": {"requests": init_requests}}]
    if tolerations is not None:
        spec["tolerations"] = tolerations
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    meta = {"name": name, "namespace": ns, "uid": uid or f"uid-{name}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner,
                                    "controller": True}]
    return PodInfo({"metadata": meta, "spec": spec, "status": {}})


def node(name="n", labels=None, taints=None, unschedulable=False, ready="True", cpu="4", memory="8Gi",
         pods="110", extra=None) -> NodeInfo:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    spec: dict = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    conds = [{"type": "Ready", "status": ready}] if ready else []
    return NodeInfo(name, {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
                           "spec": spec, "status": {"allocatable": alloc, "conditions": conds}})


# -- quantities -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,milli", [("100m", 100), ("1", 1000), ("0.5", 500), ("2.5", 2500), (2, 2000),
                                        ("1e3", 1_000_000), ("250m", 250), ("0.0001", 1)])
def test_cpu_quantities(text, milli):
    assert milli_value(text) == milli


@pytest.mark.parametrize("text,value", [("1Ki", 1024), ("128Mi", 128 * 2**20), ("1G", 10**9), ("1.5Gi", 3 * 2**29),
                                        ("100", 100), ("1e6", 10**6), ("500m", 1)])
def test_memory_quantities(text, value):
    assert int_value(text) == value


@pytest.mark.parametrize("bad", ["", "1.2.3", "Mi", "1Q", "abc"])
def test_bad_quantities(bad):
    with pytest.raises(ValueError):
        parse_quantity(bad)


def test_pod_requests_sum_containers_and_take_the_largest_init_container():
    p = PodInfo({"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Mi"}}},
                       {"name": "b", "resources": {"requests": {"cpu": "200m", "nvidia.com/gpu": "1"}}}],
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}]}})
    assert (p.cpu, p.mem, p.scalars) == (1000, 2**20, {"nvidia.com/gpu": 1})
    # scoring uses kube's defaults for what a container does not request
    assert (p.nz_cpu, p.nz_mem) == (300, 2**20 + 200 * 2**20)


# -- static filters ---------------------------------------------------------------------------------
TAINT_GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize("toleration,taint,ok", [
    ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, TAINT_GPU, True),
    ({"key": "dedicated", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}, TAINT_GPU, False),
    ({"key": "dedicated", "operator": "Exists"}, TAINT_GPU, True),
    ({"operator": "Exists"}, TAINT_GPU, True),                                  # empty key + Exists: all
    ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, TAINT_GPU, False),
    ({"key": "other", "operator": "Exists"}, TAINT_GPU, False),
    ({"key": "dedicated", "value": "gpu"}, TAINT_GPU, True),                    # operator defaults to Equal
    ({"key": "k", "operator": "Equal"}, {"key": "k", "effect": "NoExecute"}, True),  # empty values match
])
def test_tolerates(toleration, taint, ok):
    assert F.tolerates(toleration, taint) is ok


@pytest.mark.parametrize("n,p,reasons", [
    (node(), pod(), ()),
    (node(unschedulable=True), pod(), (F.ERR_UNSCHEDULABLE,)),
    (node(unschedulable=True), pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                                 "effect": "NoSchedule"}]), ()),
    (node(ready="False"), pod(), ("node(s) had untolerated taint {node.kubernetes.io/not-ready: }",)),
    (node(ready=""), pod(), ("node(s) had untolerated taint {node.kubernetes.io/not-ready: }",)),
    (node(ready="Unknown"), pod(), ("node(s) had untolerated taint {node.kubernetes.io/unreachable: }",)),
    (node(ready="Unknown"), pod(tolerations=[{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]), ()),
    (node(taints=[TAINT_GPU]), pod(), ("node(s) had untolerated taint {dedicated: gpu}",)),
    (node(taints=[{"key": "x", "effect": "NoExecute"}]), pod(), ("node(s) had untolerated taint {x: }",)),
    (node(taints=[{"key": "x", "effect": "PreferNoSchedule"}]), pod(), ()),
    (node(taints=[TAINT_GPU]), pod(tolerations=[{"key": "dedicated", "operator": "Exists"}]), ()),
    (node(labels={"disk": "ssd"}), pod(node_selector={"disk": "ssd"}), ()),
    (node(labels={"disk": "hdd"}), pod(node_selector={"disk": "ssd"}), (F.ERR_NODE_AFFINITY,)),
    (node(), pod(node_selector={"disk": "ssd"}), (F.ERR_NODE_AFFINITY,)),
])
def test_static_filter(n, p, reasons):
    assert F.static_filter(p, n) == reasons


def req(key, op, values=None):
    return {"key": key, "operator": op, **({"values": values} if values is not None else {})}


def affinity(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize("labels,terms,ok", [
    ({"zone": "a"}, [{"matchExpressions": [req("zone", "In", ["a", "b"])]}], True),
    ({"zone": "c"}, [{"matchExpressions": [req("zone", "In", ["a", "b"])]}], False),
    ({}, [{"matchExpressions": [req("zone", "In", ["a"])]}], False),
    ({"zone": "c"}, [{"matchExpressions": [req("zone", "NotIn", ["a", "b"])]}], True),
    ({}, [{"matchExpressions": [req("zone", "NotIn", ["a"])]}], True),
    ({"gpu": ""}, [{"matchExpressions": [req("gpu", "Exists")]}], True),
    ({}, [{"matchExpressions": [req("gpu", "Exists")]}], False),
    ({}, [{"matchExpressions": [req("gpu", "DoesNotExist")]}], True),
    ({"gpu": "1"}, [{"matchExpressions": [req("gpu", "DoesNotExist")]}], False),
    ({"cores": "16"}, [{"matchExpressions": [req("cores", "Gt", ["8"])]}], True),
    ({"cores": "8"}, [{"matchExpressions": [req("cores", "Gt", ["8"])]}], False),
    ({"cores": "4"}, [{"matchExpressions": [req("cores", "Lt", ["8"])]}], True),
    ({"cores": "many"}, [{"matchExpressions": [req("cores", "Lt", ["8"])]}], False),
    ({"cores": "4"}, [{"matchExpressions": [req("cores", "Lt", ["8", "9"])]}], False),   # one value only
    # terms are ORed, expressions in a term ANDed
    ({"zone": "a", "gpu": "1"}, [{"matchExpressions": [req("zone", "In", ["b"])]},
                                 {"matchExpressions": [req("zone", "In", ["a"]), req("gpu", "Exists")]}], True),
    ({"zone": "a"}, [{"matchExpressions": [req("zone", "In", ["a"]), req("gpu", "Exists")]}], False),
    ({"zone": "a"}, [{}], False),                                               # an empty term matches nothing
    ({}, [{"matchFields": [req("metadata.name", "In", ["n"])]}], True),
    ({}, [{"matchFields": [req("metadata.name", "NotIn", ["n"])]}], False),
])
def test_required_node_affinity(labels, terms, ok):
    assert (F.node_affinity(pod(affinity=affinity(*terms)), node(labels=labels)) == ()) is ok


# -- dynamic filters --------------------------------------------------------------------------------
def placed(n: NodeInfo, *pods: PodInfo) -> NodeInfo:
    for p in pods:
        n.add_pod(p)
    return n


@pytest.mark.parametrize("n,p,reasons", [
    (node(cpu="1"), pod(requests={"cpu": "1"}), ()),
    (node(cpu="1"), pod(requests={"cpu": "1001m"}), ("Insufficient cpu",)),
    (placed(node(cpu="1"), pod("a", requests={"cpu": "600m"})), pod(requests={"cpu": "500m"}), ("Insufficient cpu",)),
    (placed(node(cpu="1"), pod("a", requests={"cpu": "500m"})), pod(requests={"cpu": "500m"}), ()),
    (node(memory="1Gi"), pod(requests={"memory": "2Gi"}), ("Insufficient memory",)),
    (node(cpu="1", memory="1Gi"), pod(requests={"cpu": "2", "memory": "2Gi"}), ("Insufficient cpu", "Insufficient memory")),
    (placed(node(pods="1"), pod("a")), pod(), (F.ERR_TOO_MANY_PODS,)),
    (node(cpu="0"), pod(), ()),                                                  # no requests: only the pod count
    (node(), pod(requests={"nvidia.com/gpu": "1"}), ("Insufficient nvidia.com/gpu",)),
    (node(extra={"nvidia.com/gpu": "2"}), pod(requests={"nvidia.com/gpu": "1"}), ()),
    (node(cpu="1"), pod(init_requests={"cpu": "2"}), ("Insufficient cpu",)),
])
def test_fits_resources(n, p, reasons):
    assert F.fits_resources(p, n) == reasons


@pytest.mark.parametrize("used,wanted,clash", [
    ([(80, None, None)], [(80, None, None)], True),
    ([(80, None, None)], [(81, None, None)], False),
    ([(80, "UDP", None)], [(80, "TCP", None)], False),
    ([(80, None, "10.0.0.1")], [(80, None, "10.0.0.2")], False),
    ([(80, None, "10.0.0.1")], [(80, None, None)], True),                  # 0.0.0.0 clashes with every address
    ([(80, None, None)], [(80, None, "10.0.0.2")], True),
])
def test_host_ports(used, wanted, clash):
    n = placed(node(), pod("a", host_ports=used))
    assert (F.host_ports_free(pod("b", host_ports=wanted), n) == (F.ERR_PORTS,)) is clash


def anti(labels, key="kubernetes.io/hostname", required=True, weight=1):
    term = {"labelSelector": {"matchLabels": labels}, "topologyKey": key}
    if required:
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": weight, "podAffinityTerm": term}]}}


def inter_pod(p: PodInfo, nodes: list[NodeInfo]) -> dict[str, tuple]:
    everything = [(q, n) for n in nodes for q in n.pods.values()]
    st = F.prefilter_inter_pod(p, everything, [(q, n) for q, n in everything if q.anti_required])
    return {n.name: F.inter_pod_affinity(p, n, st) for n in nodes}


def test_required_anti_affinity_hostname_and_zone():
    a = placed(node("a", labels={"topology.kubernetes.io/zone": "z1"}), pod("db0", labels={"app": "db"}))
    b = node("b", labels={"topology.kubernetes.io/zone": "z1"})
    c = node("c", labels={"topology.kubernetes.io/zone": "z2"})
    host = pod("db1", labels={"app": "db"}, affinity=anti({"app": "db"}))
    assert inter_pod(host, [a, b, c]) == {"a": (F.ERR_ANTI_AFFINITY,), "b": (), "c": ()}
    zone = pod("db1", labels={"app": "db"}, affinity=anti({"app": "db"}, "topology.kubernetes.io/zone"))
    assert inter_pod(zone, [a, b, c]) == {"a": (F.ERR_ANTI_AFFINITY,), "b": (F.ERR_ANTI_AFFINITY,), "c": ()}
    # other namespaces do not count unless the term names them
    other_ns = pod("x", ns="other", labels={"app": "db"}, affinity=anti({"app": "db"}))
    assert inter_pod(other_ns, [a, b, c]) == {"a": (), "b": (), "c": ()}


def test_existing_pods_anti_affinity_is_symmetric():
    a = placed(node("a"), pod("guard", labels={"app": "guard"}, affinity=anti({"app": "web"})))
    b = node("b")
    assert inter_pod(pod("w", labels={"app": "web"}), [a, b]) == {"a": (F.ERR_EXISTING_ANTI_AFFINITY,), "b": ()}
    assert inter_pod(pod("o", labels={"app": "other"}), [a, b]) == {"a": (), "b": ()}


def test_required_pod_affinity_and_the_first_pod_of_a_group():
    aff = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    a, b = node("a"), node("b")
    # no cache pod anywhere, and the pod is itself a cache pod: it may go anywhere
    assert inter_pod(pod("c0", labels={"app": "cache"}, affinity=aff), [a, b]) == {"a": (), "b": ()}
    # not a cache pod itself: nowhere
    assert inter_pod(pod("w", labels={"app": "web"}, affinity=aff), [a, b]) == {"a": (F.ERR_AFFINITY,), "b": (F.ERR_AFFINITY,)}
    placed(a, pod("c1", labels={"app": "cache"}))
    assert inter_pod(pod("w", labels={"app": "web"}, affinity=aff), [a, b]) == {"a": (), "b": (F.ERR_AFFINITY,)}


# -- the message ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,reasons,msg", [
    (3, Counter({"node(s) had untolerated taint {dedicated: gpu}": 1, "Insufficient cpu": 2}),
     "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."),
    (5, Counter({"Insufficient memory": 5, "Insufficient cpu": 5}),
     "0/5 nodes are available: 5 Insufficient cpu, 5 Insufficient memory."),
    (0, Counter(), "0/0 nodes are available."),
])
def test_unschedulable_message(n, reasons, msg):
    assert F.unschedulable_message(n, reasons) == msg
