"""EndpointSlice and Endpoints decisions as pure functions: which pods, which conditions, which
ports, and how endpoints are packed into slices with as few writes as possible."""
from __future__ import annotations

import pytest

from control.controllers.endpoints import desired_subsets
from control.controllers.endpointslice import (desired_endpoints, endpoint_key, node_serves, plan_slices,
                                               resolve_port)

SVC = {"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"tier": "front"}},
       "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def pod(name, ip="10.0.0.1", *, ready=True, phase="Running", deleting=False, node="n1", port=8080,
        port_name="http", hostname=None, subdomain=None):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    spec = {"nodeName": node, "containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": port}]}]}
    if hostname:
        spec["hostname"], spec["subdomain"] = hostname, subdomain
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
    return {"metadata": meta, "spec": spec, "status": status}


NODES = {"n1": {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
         "dead": {"metadata": {"name": "dead"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}},
         "tainted": {"metadata": {"name": "tainted"}, "spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]},
                     "status": {"conditions": [{"type": "Ready", "status": "True"}]}}}


def conds(svc, p):
    eps = desired_endpoints(svc, [p], NODES)
    return next(iter(next(iter(eps.values())).values()))["conditions"] if eps else None


@pytest.mark.parametrize("p,publish,expected", [
    (pod("a"), False, {"ready": True, "serving": True, "terminating": False}),
    (pod("a", ready=False), False, {"ready": False, "serving": False, "terminating": False}),
    (pod("a", deleting=True), False, {"ready": False, "serving": True, "terminating": True}),
    (pod("a", deleting=True, ready=False), False, {"ready": False, "serving": False, "terminating": True}),
    (pod("a", ready=False), True, {"ready": True, "serving": True, "terminating": False}),
    (pod("a", deleting=True), True, {"ready": True, "serving": True, "terminating": True}),
    (pod("a", node="dead"), False, {"ready": False, "serving": False, "terminating": False}),
    (pod("a", node="tainted"), False, {"ready": False, "serving": False, "terminating": False}),
    (pod("a", node="unknown-node"), False, {"ready": True, "serving": True, "terminating": False}),
    (pod("a", ip=None), False, None),                       # no IP yet: not listed
    (pod("a", phase="Succeeded"), False, None),             # finished: not listed
    (pod("a", phase="Failed"), True, None),
])
def test_endpoint_conditions(p, publish, expected):
    svc = {**SVC, "spec": {**SVC["spec"], "publishNotReadyAddresses": publish}}
    assert conds(svc, p) == expected


def test_endpoint_fields():
    ep = next(iter(desired_endpoints(SVC, [pod("a", hostname="a", subdomain="web")], NODES).values()))["uid-a"]
    assert ep == {"addresses": ["10.0.0.1"], "conditions": {"ready": True, "serving": True, "terminating": False},
                  "hostname": "a", "nodeName": "n1", "zone": "z1",
                  "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}


@pytest.mark.parametrize("svc_port,port", [
    ({"port": 80, "targetPort": 9000}, 9000),
    ({"port": 80}, 80),
    ({"port": 80, "targetPort": "8081"}, 8081),
    ({"port": 80, "targetPort": "http"}, 8080),
    ({"port": 80, "targetPort": "http", "protocol": "UDP"}, None),   # named port of another protocol
    ({"port": 80, "targetPort": "metrics"}, None),
])
def test_resolve_port(svc_port, port):
    assert resolve_port(svc_port, pod("a")) == port


def test_pods_with_different_named_port_numbers_group_apart():
    d = desired_endpoints(SVC, [pod("a", port=8080), pod("b", "10.0.0.2", port=9090), pod("c", "10.0.0.3", port=8080)], NODES)
    assert {k: sorted(v) for k, v in d.items()} == {
        ("IPv4", (("http", 8080, "TCP", None),)): ["uid-a", "uid-c"],
        ("IPv4", (("http", 9090, "TCP", None),)): ["uid-b"]}


def test_node_serves():
    assert node_serves(None) and node_serves(NODES["n1"])
    assert not node_serves(NODES["dead"]) and not node_serves(NODES["tainted"])
    assert node_serves({"metadata": {"name": "x"}, "status": {}})  # no Ready reported yet: not held against it


# -- packing ----------------------------------------------------------------------------------------
def eps(n, start=0, port=8080):
    pods = [pod(f"p{i}", f"10.0.{i // 250}.{i % 250 + 1}", port=port) for i in range(start, start + n)]
    return desired_endpoints(SVC, pods, NODES)


def materialise(creates, updates, deletes, existing):
    """Apply a plan to a list of slices, as the API would (names for created ones)."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for s in deletes:
        by_name.pop(s["metadata"]["name"])
    for s in updates:
        by_name[s["metadata"]["name"]] = s
    for i, s in enumerate(creates):
        name = f"web-{len(by_name) + i}-{id(s) % 1000}"
        by_name[name] = {**s, "metadata": {**s["metadata"], "name": name}}
    return list(by_name.values())


def test_packing_at_most_max_per_slice_and_no_writes_when_unchanged():
    creates, updates, deletes = plan_slices(SVC, [], eps(250))
    assert [len(s["endpoints"]) for s in creates] == [100, 100, 50] and not updates and not deletes
    s0 = creates[0]
    assert s0["metadata"]["labels"] == {"tier": "front", "kubernetes.io/service-name": "web",
                                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert s0["metadata"]["ownerReferences"][0]["uid"] == "svc-uid" and s0["addressType"] == "IPv4"
    assert s0["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    slices = materialise(creates, updates, deletes, [])
    assert plan_slices(SVC, slices, eps(250)) == ([], [], [])


def test_one_change_rewrites_one_slice_and_new_endpoints_fill_room_first():
    slices = materialise(*plan_slices(SVC, [], eps(150)), [])
    d = eps(150)
    group = next(iter(d))
    d[group]["uid-p3"]["conditions"]["ready"] = False
    creates, updates, deletes = plan_slices(SVC, slices, d)
    assert not creates and not deletes and len(updates) == 1
    slices = materialise(creates, updates, deletes, slices)
    # 30 more: they go into the slice with room (50 used), no new slice
    d = eps(180)
    d[group]["uid-p3"]["conditions"]["ready"] = False
    creates, updates, deletes = plan_slices(SVC, slices, d)
    assert not creates and not deletes and len(updates) == 1
    assert sorted(len(s["endpoints"]) for s in materialise(creates, updates, deletes, slices)) == [80, 100]


def test_endpoints_leaving_delete_empty_slices_but_keep_a_placeholder():
    slices = materialise(*plan_slices(SVC, [], eps(150)), [])
    creates, updates, deletes = plan_slices(SVC, slices, eps(40, start=110))
    after = materialise(creates, updates, deletes, slices)
    assert sorted(len(s["endpoints"]) for s in after) == [40] and len(deletes) == 1
    creates, updates, deletes = plan_slices(SVC, after, {})
    placeholder = materialise(creates, updates, deletes, after)
    assert len(placeholder) == 1 and not placeholder[0]["endpoints"] and placeholder[0]["ports"] == []
    assert plan_slices(SVC, placeholder, {}) == ([], [], [])


def test_a_port_change_moves_endpoints_to_a_new_slice():
    slices = materialise(*plan_slices(SVC, [], eps(10)), [])
    creates, updates, deletes = plan_slices(SVC, slices, eps(10, port=9999))
    assert len(creates) == 1 and len(deletes) == 1 and not updates
    assert creates[0]["ports"][0]["port"] == 9999


def test_endpoints_subsets():
    svc = {**SVC, "spec": {**SVC["spec"], "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}
    pods = [pod("b", "10.0.0.2"), pod("a", "10.0.0.1"), pod("c", "10.0.0.3", ready=False), pod("d", "10.0.0.4", deleting=True)]
    assert desired_subsets(svc, pods, NODES) == [{
        "addresses": [{"ip": "10.0.0.1", "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}},
                      {"ip": "10.0.0.2", "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
        "notReadyAddresses": [{"ip": "10.0.0.3", "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "c", "uid": "uid-c"}}],
        "ports": [{"port": 8080, "protocol": "TCP"}]}]
    assert desired_subsets(svc, [], NODES) == []


def test_endpoint_key():
    assert endpoint_key({"addresses": ["1.2.3.4"], "targetRef": {"uid": "u"}}) == "u"
    assert endpoint_key({"addresses": ["1.2.3.4"]}) == "1.2.3.4"
