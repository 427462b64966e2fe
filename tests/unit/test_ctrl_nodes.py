"""Node IPAM's CIDR set and the node lifecycle decisions (taints, conditions, eviction times)."""
from __future__ import annotations

import pytest

from control.controllers import nodelifecycle as L
from control.controllers.gc import dangling
from control.controllers.manager import parse_time
from control.controllers.nodeipam import CidrSet, CidrSetFull, node_cidrs


def test_cidr_set_allocates_lowest_free_in_rotation_and_never_twice():
    s = CidrSet("10.244.0.0/16", 24)
    assert [s.allocate() for _ in range(3)] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    s.release("10.244.1.0/24")
    assert s.allocate() == "10.244.3.0/24"           # rotation: the freed one comes round later
    assert s.occupy("10.244.4.0/24") and s.allocate() == "10.244.5.0/24"
    assert not s.occupy("10.1.0.0/24") and not s.occupy("10.244.0.0/25") and not s.occupy("garbage")


def test_cidr_set_full_and_reuse():
    s = CidrSet("10.0.0.0/23", 24)
    a, b = s.allocate(), s.allocate()
    with pytest.raises(CidrSetFull):
        s.allocate()
    s.release(a)
    assert s.allocate() == a and s.in_use(b)


@pytest.mark.parametrize("cidr,mask", [("10.0.0.0/24", 16), ("10.0.0.0/8", 33), ("10.0.0.0/4", 30)])
def test_cidr_set_rejects_impossible_sizes(cidr, mask):
    with pytest.raises(ValueError):
        CidrSet(cidr, mask)


def test_ipv6_cidrs():
    s = CidrSet("fd00::/48", 64)
    assert s.allocate() == "fd00::/64" and s.allocate() == "fd00:0:0:1::/64"


def test_node_cidrs():
    assert node_cidrs({"spec": {"podCIDR": "a", "podCIDRs": ["a", "b"]}}) == ["a", "b"]
    assert node_cidrs({"spec": {"podCIDR": "a"}}) == ["a"] and node_cidrs({}) == []


# -- lifecycle --------------------------------------------------------------------------------------
def node(ready, taints=None):
    return {"metadata": {"name": "n"}, "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": ready}] if ready else []}}


@pytest.mark.parametrize("ready,before,after", [
    ("True", [], []),
    ("Unknown", [], [("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")]),
    ("False", [], [("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")]),
    # recovered: the condition taints go, the others stay
    ("True", [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}, {"key": "gpu", "effect": "NoSchedule"}],
     [("gpu", "NoSchedule")]),
    # unreachable -> not ready: the taints are swapped
    ("False", [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}],
     [("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")]),
])
def test_wanted_taints(ready, before, after):
    got = L.wanted_taints(node(ready, before), "2024-01-01T00:00:00Z")
    assert [(t["key"], t["effect"]) for t in got] == after
    assert all(t.get("timeAdded") for t in got if t["key"].startswith("node.kubernetes.io/") and t["effect"] == "NoExecute")


def test_unknown_conditions():
    n = {"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "h"},
                                   {"type": "MemoryPressure", "status": "False"}]}}
    out = L.unknown_conditions(n, "now")
    assert [(c["type"], c["status"], c["reason"]) for c in out] == [
        ("Ready", "Unknown", "NodeStatusUnknown"), ("MemoryPressure", "Unknown", "NodeStatusUnknown")]
    assert out[0]["lastHeartbeatTime"] == "h" and out[0]["message"] == "Kubelet stopped posting node status."
    assert L.unknown_conditions({"status": {}}, "now")[0]["reason"] == "NodeStatusNeverUpdated"


T0 = "2024-01-01T00:00:00Z"
UNREACH = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": T0}


def epod(tolerations=None):
    return {"metadata": {"name": "p"}, "spec": {"tolerations": tolerations or []}}


@pytest.mark.parametrize("tolerations,taints,after", [
    (None, [UNREACH], 300),                                             # the default toleration
    ([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
     [UNREACH], 5),
    ([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}], [UNREACH], None),  # forever
    ([{"operator": "Exists"}], [UNREACH], None),
    (None, [{"key": "maint", "effect": "NoExecute", "timeAdded": T0}], 0),          # untolerated: now
    ([{"key": "maint", "operator": "Exists", "tolerationSeconds": 60}, {"operator": "Exists", "key": "maint"}],
     [{"key": "maint", "effect": "NoExecute", "timeAdded": T0}], 60),               # smallest limit wins
    (None, [{"key": "soft", "effect": "NoSchedule"}], None),                        # not NoExecute
    ([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 0}], [UNREACH], 0),
])
def test_eviction_deadline(tolerations, taints, after):
    got = L.eviction_deadline(epod(tolerations), taints, 300)
    if after is None:
        assert got is None
    elif after == 0 and not any(t.get("key") == "node.kubernetes.io/unreachable" for t in taints):
        assert got == 0.0
    else:
        assert got == pytest.approx(parse_time(T0) + after)


def test_taint_added_prefers_our_finer_time_within_the_second():
    t = {"timeAdded": T0}
    assert L.taint_added(t, parse_time(T0) + 0.7) == parse_time(T0) + 0.7
    assert L.taint_added(t, parse_time(T0) + 500) == parse_time(T0)    # a restart: trust timeAdded
    assert L.taint_added({}, 12.5) == 12.5


@pytest.mark.parametrize("refs,present,delete,keep", [
    ([{"uid": "a"}], {"a": False}, True, []),
    ([{"uid": "a"}, {"uid": "b"}], {"a": False, "b": True}, False, [{"uid": "b"}]),
    ([{"uid": "a"}], {"a": True}, False, [{"uid": "a"}]),
    ([], {}, False, []),
])
def test_dangling(refs, present, delete, keep):
    assert dangling(refs, present) == (delete, keep)
