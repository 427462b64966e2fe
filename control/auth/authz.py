"""Authorization by a few fixed roles (no RBAC objects), as pure functions of who asks and what.

- admin (group system:masters): everything.
- node (group system:nodes, user system:node:<name>), after Kubernetes' Node authorizer and
  NodeRestriction: reads nodes, services, endpoints, endpoint slices and namespaces; reads only the
  pods bound to it (a list or watch must select spec.nodeName=<itself>); writes only its own Node,
  its own Lease in kube-node-lease, and the status of pods bound to it; it may also delete the pods
  bound to it, which is how a node agent finishes a graceful deletion.
- scheduler (system:kube-scheduler): reads everything, binds pods, writes pod status (the
  Unschedulable condition), and its leader-election Lease in kube-system.
- controllers (system:kube-controller-manager): reads everything, writes the objects controllers
  own (pods, endpoints, endpoint slices, replica sets, deployments, node spec and status), deletes
  dependents for garbage collection, and its Lease in kube-system.
"""
from __future__ import annotations

from dataclasses import dataclass

ADMIN_GROUP = "system:masters"
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
SCHEDULER = "system:kube-scheduler"
CONTROLLERS = "system:kube-controller-manager"
READ = frozenset({"get", "list", "watch"})
WRITE = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()

    @property
    def node(self) -> str:
        """The node this user is, or "" for any other user."""
        if NODES_GROUP in self.groups and self.name.startswith(NODE_PREFIX):
            return self.name[len(NODE_PREFIX):]
        return ""


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True)
class Attributes:
    verb: str
    plural: str
    group: str = ""
    namespace: str = ""
    name: str = ""
    sub: str = ""
    selected_node: str = ""   # the value of an exact spec.nodeName= field selector, if any

    @property
    def resource(self) -> str:
        return f"{self.plural}/{self.sub}" if self.sub else self.plural


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    # Set when the answer depends on the object: allowed only if the pod is bound to this node.
    requires_pod_on_node: str = ""


ALLOW = Decision(True)


def deny(reason: str) -> Decision:
    return Decision(False, reason)


def authorize(user: User, a: Attributes) -> Decision:
    if ADMIN_GROUP in user.groups:
        return ALLOW
    if user.node:
        return _node(user.node, a)
    if user.name == SCHEDULER:
        return _scheduler(a)
    if user.name == CONTROLLERS:
        return _controllers(a)
    return deny("no role grants this user access")


NODE_READABLE = {"nodes", "services", "endpoints", "endpointslices", "namespaces"}


def _node(node: str, a: Attributes) -> Decision:
    if a.plural in NODE_READABLE and a.verb in READ and not a.sub:
        return ALLOW
    if a.plural == "nodes":
        if a.verb in ("create", "update", "patch", "get") and a.name == node:
            return ALLOW
        return deny(f"node {node!r} can only modify its own Node object")
    if a.plural == "leases":
        if a.namespace == "kube-node-lease" and a.name == node and a.verb in ("get", "create", "update", "patch"):
            return ALLOW
        return deny(f"node {node!r} can only access its own Lease in kube-node-lease")
    if a.plural == "pods":
        if a.verb in ("list", "watch"):
            if a.selected_node == node:
                return ALLOW
            return deny(f"node {node!r} can only list and watch pods with fieldSelector spec.nodeName={node}")
        if (a.verb == "get" and not a.sub) or (a.sub == "status" and a.verb in ("get", "update", "patch")) \
                or (a.verb == "delete" and not a.sub):
            return Decision(True, requires_pod_on_node=node)
        return deny(f"node {node!r} can only read, update the status of, and delete pods bound to it")
    return deny(f"node {node!r} has no access to {a.resource}")


def _own_lease(a: Attributes) -> bool:
    return a.plural == "leases" and a.namespace == "kube-system" and a.verb in ("get", "list", "watch", "create", "update", "patch")


def _scheduler(a: Attributes) -> Decision:
    if a.verb in READ and not a.sub:
        return ALLOW
    if a.plural == "pods" and a.sub == "binding" and a.verb == "create":
        return ALLOW
    if a.plural == "pods" and a.sub == "status" and a.verb in ("get", "update", "patch"):
        return ALLOW
    if _own_lease(a):
        return ALLOW
    return deny("the scheduler may only read, bind pods and write pod status")


CONTROLLER_OWNED = {"pods", "endpoints", "endpointslices", "replicasets", "deployments"}


def _controllers(a: Attributes) -> Decision:
    if a.verb in READ:
        return ALLOW
    if a.plural in CONTROLLER_OWNED:
        return ALLOW
    if a.plural == "nodes" and a.verb in ("update", "patch"):
        return ALLOW
    if a.verb == "delete" and a.namespace and a.plural != "namespaces":
        return ALLOW  # garbage collection of dependents
    if _own_lease(a):
        return ALLOW
    return deny("the controller manager may not do this")


def verb_of(method: str, has_name: bool, watch: bool) -> str:
    if method == "GET":
        return "get" if has_name else ("watch" if watch else "list")
    return {"POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if has_name else "deletecollection"}.get(method, method.lower())
