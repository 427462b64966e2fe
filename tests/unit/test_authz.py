"""Each role's decisions, as a table of (who, what) -> allowed."""
from __future__ import annotations

import pytest

from control.auth.authz import Attributes, User, authorize

ADMIN = User("kubernetes-admin", ("system:masters",))
NODE1 = User("system:node:n1", ("system:nodes",))
FAKE_NODE = User("system:node:n1", ())          # the name alone does not make a node
SCHED = User("system:kube-scheduler")
CTRL = User("system:kube-controller-manager")
NOBODY = User("alice", ("developers",))

A = Attributes
CASES = [
    (ADMIN, A("delete", "namespaces", name="x"), True),
    (ADMIN, A("create", "pods", namespace="d", name="p", sub="binding"), True),
    # node: reads
    (NODE1, A("list", "nodes"), True),
    (NODE1, A("watch", "services"), True),
    (NODE1, A("list", "endpointslices", "discovery.k8s.io"), True),
    (NODE1, A("list", "pods"), False),
    (NODE1, A("watch", "pods", selected_node="n2"), False),
    (NODE1, A("watch", "pods", selected_node="n1"), True),
    (NODE1, A("list", "deployments", "apps"), False),
    # node: its own Node and Lease only
    (NODE1, A("create", "nodes", name="n1"), True),
    (NODE1, A("patch", "nodes", name="n1", sub="status"), True),
    (NODE1, A("patch", "nodes", name="n2", sub="status"), False),
    (NODE1, A("update", "nodes", name="n2"), False),
    (NODE1, A("delete", "nodes", name="n1"), False),
    (NODE1, A("update", "leases", "coordination.k8s.io", "kube-node-lease", "n1"), True),
    (NODE1, A("update", "leases", "coordination.k8s.io", "kube-node-lease", "n2"), False),
    (NODE1, A("update", "leases", "coordination.k8s.io", "kube-system", "n1"), False),
    # node: writes nothing else
    (NODE1, A("create", "services", namespace="d"), False),
    (NODE1, A("update", "pods", namespace="d", name="p"), False),
    (NODE1, A("create", "pods", namespace="d"), False),
    (FAKE_NODE, A("list", "nodes"), False),
    # scheduler
    (SCHED, A("list", "pods"), True),
    (SCHED, A("create", "pods", namespace="d", name="p", sub="binding"), True),
    (SCHED, A("patch", "pods", namespace="d", name="p", sub="status"), True),
    (SCHED, A("update", "pods", namespace="d", name="p"), False),
    (SCHED, A("delete", "pods", namespace="d", name="p"), False),
    (SCHED, A("update", "leases", "coordination.k8s.io", "kube-system", "kube-scheduler"), True),
    (SCHED, A("update", "leases", "coordination.k8s.io", "kube-node-lease", "n1"), False),
    # controllers
    (CTRL, A("create", "pods", namespace="d"), True),
    (CTRL, A("update", "endpointslices", "discovery.k8s.io", "d", "s"), True),
    (CTRL, A("patch", "nodes", name="n1"), True),
    (CTRL, A("delete", "services", namespace="d", name="s"), True),
    (CTRL, A("create", "services", namespace="d"), False),
    (CTRL, A("delete", "namespaces", name="d"), False),
    (CTRL, A("create", "nodes"), False),
    # anyone else
    (NOBODY, A("get", "pods", namespace="d", name="p"), False),
]


@pytest.mark.parametrize("user,attrs,allowed", CASES)
def test_role_decisions(user, attrs, allowed):
    d = authorize(user, attrs)
    assert d.allowed is allowed, d.reason
    if not allowed:
        assert d.reason


@pytest.mark.parametrize("attrs", [A("get", "pods", namespace="d", name="p"),
                                   A("patch", "pods", namespace="d", name="p", sub="status"),
                                   A("delete", "pods", namespace="d", name="p")])
def test_node_pod_access_depends_on_the_binding(attrs):
    d = authorize(NODE1, attrs)
    assert d.allowed and d.requires_pod_on_node == "n1"
