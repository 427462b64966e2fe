"""Filters: may this pod run on this node? Pure functions of (PodInfo, NodeInfo[, state]).

Each returns a tuple of reasons, empty when the node passes. The reasons are kube-scheduler's
own strings, so the "0/3 nodes are available: ..." message reads like Kubernetes'.

Filters split in two kinds, and the scheduler exploits it:

- *static* ones look only at the node object and the pod's spec (readiness, cordon, taints,
  node selector, required node affinity). Pods with the same ``PodInfo.static_key`` pass the same
  nodes, so the scheduler computes them once per (pod shape, node set version).
- *dynamic* ones look at what is on the node (resources, host ports, inter-pod anti-affinity),
  which changes with every binding; they run per pod.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from .nodeinfo import NodeInfo, PodInfo

ERR_UNSCHEDULABLE = "node(s) were unschedulable"
ERR_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
ERR_PORTS = "node(s) didn't have free ports for the requested pod ports"
ERR_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
ERR_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_TOO_MANY_PODS = "Too many pods"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

PASS: tuple[str, ...] = ()


def _int(text) -> int | None:
    try:
        return int(str(text).strip())
    except ValueError:
        return None


def taint_reason(taint: dict) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"


# -- tolerations ----------------------------------------------------------------------------------
def tolerates(toleration: dict, taint: dict) -> bool:
    """v1.Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerated(tolerations: Iterable[dict], taint: dict) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


# -- static filters -------------------------------------------------------------------------------
def node_unschedulable(pod: PodInfo, node: NodeInfo) -> tuple[str, ...]:
    """A cordoned node takes only pods tolerating node.kubernetes.io/unschedulable:NoSchedule."""
    if node.unschedulable and not tolerated(pod.tolerations, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}):
        return (ERR_UNSCHEDULABLE,)
    return PASS


def node_ready(pod: PodInfo, node: NodeInfo) -> tuple[str, ...]:
    """A node whose Ready condition is not True counts as tainted not-ready (Ready False or
    missing) or unreachable (Unknown) with NoSchedule, as Kubernetes' TaintNodesByCondition
    would have tainted it; pods tolerating that taint may still go there."""
    if node.ready:
        return PASS
    status = ""
    for c in ((node.node or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            status = c.get("status") or ""
    taint = {"key": TAINT_UNREACHABLE if status == "Unknown" else TAINT_NOT_READY, "effect": "NoSchedule"}
    if tolerated(pod.tolerations, taint):
        return PASS
    return (taint_reason(taint),)


def taint_toleration(pod: PodInfo, node: NodeInfo) -> tuple[str, ...]:
    """Every NoSchedule and NoExecute taint must be tolerated (PreferNoSchedule only scores)."""
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(pod.tolerations, taint):
            return (taint_reason(taint),)
    return PASS


def match_node_requirement(req: dict, value: str | None) -> bool:
    """One NodeSelectorRequirement against a label value (None: the node lacks the key)."""
    op, values = req.get("operator"), req.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        have, want = _int(value), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def match_node_selector_term(term: dict, node: NodeInfo) -> bool:
    """A NodeSelectorTerm: all its expressions (labels) and fields (metadata.name) hold; an empty
    term matches no node."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    for req in exprs:
        if not match_node_requirement(req, node.labels.get(req.get("key"))):
            return False
    for req in fields:
        if req.get("key") != "metadata.name" or not match_node_requirement(req, node.name):
            return False
    return True


def node_affinity(pod: PodInfo, node: NodeInfo) -> tuple[str, ...]:
    """spec.nodeSelector (every label equal) and the required node affinity (any term)."""
    labels = node.labels
    for k, v in pod.node_selector.items():
        if labels.get(k) != v:
            return (ERR_NODE_AFFINITY,)
    terms = pod.required_node_terms
    if terms is not None and not any(match_node_selector_term(t, node) for t in terms):
        return (ERR_NODE_AFFINITY,)
    return PASS


STATIC_FILTERS = (node_unschedulable, node_ready, taint_toleration, node_affinity)


def static_filter(pod: PodInfo, node: NodeInfo) -> tuple[str, ...]:
    """The first failing static filter's reasons, as kube-scheduler stops at the first plugin."""
    for f in STATIC_FILTERS:
        r = f(pod, node)
        if r:
            return r
    return PASS


# -- dynamic filters ------------------------------------------------------------------------------
def fits_resources(pod: PodInfo, node: NodeInfo) -> tuple[str, ...]:
    """NodeResourcesFit: requests within allocatable minus what the node's pods request. Lists
    every insufficient resource, as Kubernetes does."""
    out = []
    if node.num_pods + 1 > node.alloc_pods:
        out.append(ERR_TOO_MANY_PODS)
    if pod.cpu and pod.cpu > node.alloc_cpu - node.cpu:
        out.append("Insufficient cpu")
    if pod.mem and pod.mem > node.alloc_mem - node.mem:
        out.append("Insufficient memory")
    for k, v in pod.scalars.items():
        if v > node.alloc_scalars.get(k, 0) - node.scalars.get(k, 0):
            out.append(f"Insufficient {k}")
    return tuple(out)


def host_ports_free(pod: PodInfo, node: NodeInfo) -> tuple[str, ...]:
    """NodePorts: a wanted (ip, protocol, port) must not clash with one in use; 0.0.0.0 clashes
    with every address."""
    if not pod.host_ports or not node.ports:
        return PASS
    for ip, proto, port in pod.host_ports:
        for uip, uproto, uport in node.ports:
            if uport == port and uproto == proto and (ip == uip or ip == "0.0.0.0" or uip == "0.0.0.0"):
                return (ERR_PORTS,)
    return PASS


@dataclass
class InterPodState:
    """What inter-pod (anti-)affinity filtering of one pod needs to know of the other pods,
    gathered once per pod (kube-scheduler's InterPodAffinity PreFilter)."""
    existing_anti: Counter = field(default_factory=Counter)   # (topologyKey, value) forbidden by existing pods
    anti_counts: list[Counter] = field(default_factory=list)  # per required anti-affinity term: value -> pods
    affinity_counts: list[Counter] = field(default_factory=list)  # per required affinity term: value -> pods
    any_affinity_match: bool = False

    @property
    def empty(self) -> bool:
        return not self.existing_anti and not self.anti_counts and not self.affinity_counts


def prefilter_inter_pod(pod: PodInfo, placed: Iterable[tuple[PodInfo, NodeInfo]],
                        with_anti: Iterable[tuple[PodInfo, NodeInfo]]) -> InterPodState:
    """``placed``: every pod with its node (walked only when the pod has required terms);
    ``with_anti``: the pods that carry required anti-affinity terms, with their nodes."""
    st = InterPodState()
    for other, node in with_anti:
        if other.uid == pod.uid:
            continue
        for term in other.anti_required:
            if term.matches(pod):
                v = node.labels.get(term.topology_key)
                if v is not None:
                    st.existing_anti[(term.topology_key, v)] += 1
    if pod.anti_required or pod.affinity_required:
        st.anti_counts = [Counter() for _ in pod.anti_required]
        st.affinity_counts = [Counter() for _ in pod.affinity_required]
        for other, node in placed:
            if other.uid == pod.uid:
                continue
            for i, term in enumerate(pod.anti_required):
                if term.matches(other):
                    v = node.labels.get(term.topology_key)
                    if v is not None:
                        st.anti_counts[i][v] += 1
            for i, term in enumerate(pod.affinity_required):
                if term.matches(other):
                    st.any_affinity_match = True
                    v = node.labels.get(term.topology_key)
                    if v is not None:
                        st.affinity_counts[i][v] += 1
    return st


def inter_pod_affinity(pod: PodInfo, node: NodeInfo, st: InterPodState) -> tuple[str, ...]:
    """In kube-scheduler's order: the pod's required affinity, its required anti-affinity, then
    the existing pods' required anti-affinity."""
    labels = node.labels
    if pod.affinity_required:
        ok = all(labels.get(t.topology_key) is not None and st.affinity_counts[i].get(labels[t.topology_key])
                 for i, t in enumerate(pod.affinity_required))
        if not ok:
            # Kubernetes lets the first pod of a group that selects itself go anywhere its
            # topology keys exist; otherwise it could never start.
            self_match = all(t.matches(pod) for t in pod.affinity_required)
            keys_present = all(labels.get(t.topology_key) is not None for t in pod.affinity_required)
            if st.any_affinity_match or not self_match or not keys_present:
                return (ERR_AFFINITY,)
    for i, term in enumerate(pod.anti_required):
        v = labels.get(term.topology_key)
        if v is not None and st.anti_counts[i].get(v):
            return (ERR_ANTI_AFFINITY,)
    if st.existing_anti:
        for k, v in labels.items():
            if st.existing_anti.get((k, v)):
                return (ERR_EXISTING_ANTI_AFFINITY,)
    return PASS


def dynamic_filter(pod: PodInfo, node: NodeInfo, st: InterPodState | None = None) -> tuple[str, ...]:
    r = fits_resources(pod, node)
    if r:
        return r
    r = host_ports_free(pod, node)
    if r:
        return r
    if st is not None and not st.empty:
        return inter_pod_affinity(pod, node, st)
    return PASS


def all_filters(pod: PodInfo, node: NodeInfo, st: InterPodState | None = None) -> tuple[str, ...]:
    return static_filter(pod, node) or dynamic_filter(pod, node, st)


# -- the message ----------------------------------------------------------------------------------
def unschedulable_message(num_nodes: int, reasons: Counter) -> str:
    """kube-scheduler's FitError text: "0/3 nodes are available: 1 node(s) had untolerated taint
    {k: v}, 2 Insufficient cpu." (counts first, sorted as strings)."""
    parts = sorted(f"{n} {r}" for r, n in reasons.items())
    msg = f"0/{num_nodes} nodes are available"
    return msg + (": " + ", ".join(parts) + "." if parts else ".")
