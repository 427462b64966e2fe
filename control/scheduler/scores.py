"""Scores: how good is this node for this pod? Pure functions, each giving 0..100 per node
(higher is better), combined by the scheduler as a weighted sum (``Weights``).

Per-node scores (``least_allocated``, ``balanced_allocation``) are final as computed; the others
take the whole list of feasible nodes because, as in kube-scheduler, they are normalised across
it (the node with the most matching preferred terms gets 100).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from typing import Iterable, Sequence

from .filters import match_node_selector_term, tolerated
from .nodeinfo import NodeInfo, PodInfo

MAX_SCORE = 100.0
ZONE_WEIGHTING = 2.0 / 3.0  # SelectorSpread: a zone counts twice as much as a node


@dataclass
class Weights:
    """kube-scheduler's default plugin weights (v1.26+): TaintToleration 3, NodeAffinity 2,
    PodTopologySpread (here: owner/service spreading) 2, InterPodAffinity 2, fit 1, balance 1."""
    least_allocated: float = 1.0
    balanced_allocation: float = 1.0
    selector_spread: float = 2.0
    node_affinity: float = 2.0
    inter_pod_affinity: float = 2.0
    taint_toleration: float = 3.0

    @classmethod
    def parse(cls, text: str) -> "Weights":
        """"least_allocated=1,selector_spread=3" (unnamed scores keep their defaults)."""
        w = cls()
        names = {f.name for f in fields(cls)}
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            name, _, value = part.partition("=")
            name = name.strip().replace("-", "_")
            if name not in names:
                raise ValueError(f"unknown score {name!r}: expected one of {', '.join(sorted(names))}")
            try:
                setattr(w, name, float(value))
            except ValueError:
                raise ValueError(f"score weight for {name} must be a number, got {value!r}")
        return w


# -- per-node ---------------------------------------------------------------------------------------
def least_allocated(pod: PodInfo, node: NodeInfo) -> float:
    """NodeResourcesFit LeastAllocated: the share of cpu and memory left free after placing the
    pod (requests with kube-scheduler's defaults for containers that have none), averaged."""
    score = 0.0
    if node.alloc_cpu > 0:
        used = node.nz_cpu + pod.nz_cpu
        if used <= node.alloc_cpu:
            score += (node.alloc_cpu - used) * MAX_SCORE / node.alloc_cpu
    if node.alloc_mem > 0:
        used = node.nz_mem + pod.nz_mem
        if used <= node.alloc_mem:
            score += (node.alloc_mem - used) * MAX_SCORE / node.alloc_mem
    return score / 2


def balanced_allocation(pod: PodInfo, node: NodeInfo) -> float:
    """NodeResourcesBalancedAllocation: 100 when cpu and memory would be equally used; the
    standard deviation of the two fractions, |a - b| / 2, taken off."""
    fc = min((node.cpu + pod.cpu) / node.alloc_cpu, 1.0) if node.alloc_cpu > 0 else 0.0
    fm = min((node.mem + pod.mem) / node.alloc_mem, 1.0) if node.alloc_mem > 0 else 0.0
    return (1.0 - abs(fc - fm) / 2) * MAX_SCORE


def node_affinity_raw(pod: PodInfo, node: NodeInfo) -> int:
    return sum(w for w, term in pod.preferred_node_terms if match_node_selector_term(term, node))


def taint_toleration_raw(pod: PodInfo, node: NodeInfo) -> int:
    """How many PreferNoSchedule taints the pod does not tolerate."""
    return sum(1 for t in node.taints if t.get("effect") == "PreferNoSchedule"
               and not tolerated(pod.tolerations, t))


# -- normalisation ----------------------------------------------------------------------------------
def normalize_max(raw: Sequence[float], reverse: bool = False) -> list[float]:
    """kube's DefaultNormalizeScore: scale so the largest is 100; ``reverse`` flips it."""
    top = max(raw, default=0)
    if top <= 0:
        return [MAX_SCORE if reverse else 0.0] * len(raw)
    out = [r * MAX_SCORE / top for r in raw]
    return [MAX_SCORE - s for s in out] if reverse else out


def normalize_min_max(raw: Sequence[float]) -> list[float]:
    lo, hi = min(raw, default=0), max(raw, default=0)
    if hi == lo:
        return [0.0] * len(raw)
    return [(r - lo) * MAX_SCORE / (hi - lo) for r in raw]


def node_affinity(pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[float]:
    if not pod.preferred_node_terms:
        return [0.0] * len(nodes)
    return normalize_max([node_affinity_raw(pod, n) for n in nodes])


def taint_toleration(pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[float]:
    return normalize_max([taint_toleration_raw(pod, n) for n in nodes], reverse=True)


# -- spreading --------------------------------------------------------------------------------------
def spread_count(pod: PodInfo, node: NodeInfo) -> int:
    """Pods on the node in all of the pod's groups (same controller, same services). Groups are
    counted separately, so the minimum over them is the (upper bound of the) intersection."""
    if not pod.groups:
        return 0
    get = node.groups.get
    return min(get(g, 0) for g in pod.groups)


def selector_spread(pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[float]:
    """SelectorSpread: fewer pods of the same owner or service on a node, and in its zone
    (``topology.kubernetes.io/zone``), is better; the zone weighs 2/3 when nodes have zones."""
    groups = pod.groups
    if not groups:
        return [MAX_SCORE] * len(nodes)
    if len(groups) == 1:
        g = groups[0]
        counts = [n.groups.get(g, 0) for n in nodes]
    else:
        counts = [spread_count(pod, n) for n in nodes]
    by_zone: dict[str, int] = {}
    have_zones = False
    for n, c in zip(nodes, counts):
        z = n.zone
        if z:
            have_zones = True
            by_zone[z] = by_zone.get(z, 0) + c
    max_node = max(counts, default=0)
    max_zone = max(by_zone.values(), default=0)
    node_scale = MAX_SCORE / max_node if max_node > 0 else 0.0
    if not have_zones:
        if max_node == 0:
            return [MAX_SCORE] * len(nodes)
        return [(max_node - c) * node_scale for c in counts]
    zone_scale = MAX_SCORE / max_zone if max_zone > 0 else 0.0
    zone_score = {z: ((max_zone - zc) * zone_scale if max_zone > 0 else MAX_SCORE) for z, zc in by_zone.items()}
    out = []
    for n, c in zip(nodes, counts):
        s = (max_node - c) * node_scale if max_node > 0 else MAX_SCORE
        if n.zone:
            s = s * (1 - ZONE_WEIGHTING) + ZONE_WEIGHTING * zone_score[n.zone]
        out.append(s)
    return out


# -- inter-pod affinity -----------------------------------------------------------------------------
def inter_pod_topology_weights(pod: PodInfo, placed: Iterable[tuple[PodInfo, NodeInfo]],
                               with_affinity: Iterable[tuple[PodInfo, NodeInfo]]) -> Counter:
    """(topologyKey, value) -> summed weight: + for the pod's preferred affinity terms matched by
    a placed pod in that domain, - for its anti-affinity terms; and, symmetrically, the placed
    pods' own preferred terms that match the incoming pod."""
    tw: Counter = Counter()
    if pod.affinity_preferred or pod.anti_preferred:
        for other, node in placed:
            if other.uid == pod.uid:
                continue
            for term in pod.affinity_preferred:
                if term.matches(other) and term.topology_key in node.labels:
                    tw[(term.topology_key, node.labels[term.topology_key])] += term.weight
            for term in pod.anti_preferred:
                if term.matches(other) and term.topology_key in node.labels:
                    tw[(term.topology_key, node.labels[term.topology_key])] -= term.weight
    for other, node in with_affinity:
        if other.uid == pod.uid:
            continue
        for term in other.affinity_preferred:
            if term.matches(pod) and term.topology_key in node.labels:
                tw[(term.topology_key, node.labels[term.topology_key])] += term.weight
        for term in other.anti_preferred:
            if term.matches(pod) and term.topology_key in node.labels:
                tw[(term.topology_key, node.labels[term.topology_key])] -= term.weight
    return tw


def inter_pod_affinity(topology_weights: Counter, nodes: Sequence[NodeInfo]) -> list[float]:
    if not topology_weights:
        return [0.0] * len(nodes)
    raw = []
    for n in nodes:
        s = 0
        for (k, v), w in topology_weights.items():
            if n.labels.get(k) == v:
                s += w
        raw.append(s)
    return normalize_min_max(raw)
