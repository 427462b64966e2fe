"""What scheduling needs to know of pods and nodes, computed once per object version.

``PodInfo`` decodes a pod's requests, host ports, tolerations, node selector and affinity once,
so that filtering it against a thousand nodes touches only plain attributes. ``NodeInfo`` holds
one node's allocatable resources and the running sums of what the pods on it request (the pods
the API reports bound there, plus the ones this scheduler has assumed but the watch has not shown
yet). Nothing here does I/O.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import orjson

from control.api.selectors import LabelSelector, SelectorError, selector_from_dict

# Requests kube-scheduler assumes for a container without any, when *scoring* (not filtering):
# DefaultMilliCPURequest and DefaultMemoryRequest in pkg/scheduler/util/pod_resources.go.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024

ZONE_LABEL = "topology.kubernetes.io/zone"
LEGACY_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
HOSTNAME_LABEL = "kubernetes.io/hostname"

# -- quantities ---------------------------------------------------------------------------------
_SUFFIX = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


class QuantityError(ValueError):
    pass


def parse_quantity(value) -> Decimal:
    """A Kubernetes resource.Quantity ("100m", "1.5Gi", "2e3", 4) as an exact Decimal."""
    if isinstance(value, bool):
        raise QuantityError(f"quantities must be numbers or strings, not {value!r}")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}")
    try:
        number = Decimal(m.group(1))
    except InvalidOperation as err:  # pragma: no cover - the regex already checked the form
        raise QuantityError(str(err))
    if m.group(2):
        return number * (Decimal(10) ** int(m.group(2)[1:]))
    return number * _SUFFIX[m.group(3) or ""]


def milli_value(value) -> int:
    """Quantity in thousandths, rounded up (Quantity.MilliValue): cpu "250m" -> 250, "1" -> 1000."""
    d = parse_quantity(value) * 1000
    return int(d.to_integral_value(rounding="ROUND_CEILING"))


def int_value(value) -> int:
    """Quantity as an integer, rounded up (Quantity.Value): memory "1Ki" -> 1024, "1.5" -> 2."""
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))


def resource_amount(name: str, value) -> int:
    """CPU counts in millicores, everything else in whole units (bytes, pods, devices)."""
    try:
        return milli_value(value) if name == "cpu" else int_value(value)
    except QuantityError:
        return 0


# -- pods ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AffinityTerm:
    """One compiled PodAffinityTerm: which pods (selector, namespaces) and which topology key."""
    selector: LabelSelector
    namespaces: frozenset[str] | None  # None: every namespace
    topology_key: str
    weight: int = 0

    def matches(self, pod: "PodInfo") -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        return self.selector.matches(pod.labels)


def _affinity_term(term: dict, own_ns: str, weight: int = 0) -> AffinityTerm | None:
    try:
        sel = selector_from_dict(term.get("labelSelector"), null_matches_nothing=True)
    except SelectorError:
        sel = LabelSelector.nothing()
    namespaces: frozenset[str] | None = frozenset(term.get("namespaces") or ())
    ns_sel = term.get("namespaceSelector")
    if ns_sel is not None and not ns_sel.get("matchLabels") and not ns_sel.get("matchExpressions"):
        namespaces = None  # an empty namespaceSelector means all namespaces
    elif not namespaces:
        namespaces = frozenset((own_ns,))
    key = term.get("topologyKey") or ""
    if not key:
        return None
    return AffinityTerm(sel, namespaces, key, weight)


def _terms(pod_ns: str, block: dict | None, required: bool) -> tuple[AffinityTerm, ...]:
    if not block:
        return ()
    out = []
    if required:
        for t in block.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            term = _affinity_term(t, pod_ns)
            if term:
                out.append(term)
    else:
        for wt in block.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            term = _affinity_term(wt.get("podAffinityTerm") or {}, pod_ns, int(wt.get("weight") or 0))
            if term:
                out.append(term)
    return tuple(out)


def pod_requests(spec: dict) -> tuple[dict[str, int], int, int]:
    """Effective requests (max of the sum over containers and each init container), plus the
    non-zero cpu and memory used for scoring."""
    total: dict[str, int] = {}
    nz_cpu = nz_mem = 0
    for c in spec.get("containers") or []:
        req = ((c.get("resources") or {}).get("requests")) or {}
        for k, v in req.items():
            total[k] = total.get(k, 0) + resource_amount(k, v)
        nz_cpu += resource_amount("cpu", req["cpu"]) if "cpu" in req else DEFAULT_MILLI_CPU
        nz_mem += resource_amount("memory", req["memory"]) if "memory" in req else DEFAULT_MEMORY
    for c in spec.get("initContainers") or []:
        req = ((c.get("resources") or {}).get("requests")) or {}
        for k, v in req.items():
            total[k] = max(total.get(k, 0), resource_amount(k, v))
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, 0) + resource_amount(k, v)
    return total, nz_cpu, nz_mem


def host_ports(spec: dict) -> tuple[tuple[str, str, int], ...]:
    out = []
    for c in spec.get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"])))
    return tuple(out)


def controller_uid(meta: dict) -> str:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid", "")
    return ""


class PodInfo:
    """A pod as scheduling sees it."""

    __slots__ = ("uid", "namespace", "name", "key", "labels", "node_name", "scheduler_name",
                 "priority", "cpu", "mem", "pods", "scalars", "nz_cpu", "nz_mem", "host_ports",
                 "tolerations", "node_selector", "required_node_terms", "preferred_node_terms",
                 "affinity_required", "anti_required", "affinity_preferred", "anti_preferred",
                 "owner_uid", "static_key", "groups", "deleting", "phase", "obj")

    def __init__(self, obj: dict):
        meta, spec = obj["metadata"], obj.get("spec") or {}
        status = obj.get("status") or {}
        self.obj = obj
        self.uid = meta.get("uid", "")
        self.namespace = meta.get("namespace", "")
        self.name = meta["name"]
        self.key = (self.namespace, self.name)
        self.labels = meta.get("labels") or {}
        self.node_name = spec.get("nodeName") or ""
        self.scheduler_name = spec.get("schedulerName") or "default-scheduler"
        self.priority = int(spec.get("priority") or 0)
        self.deleting = bool(meta.get("deletionTimestamp"))
        self.phase = status.get("phase") or ""
        req, self.nz_cpu, self.nz_mem = pod_requests(spec)
        self.cpu = req.pop("cpu", 0)
        self.mem = req.pop("memory", 0)
        req.pop("pods", None)
        self.pods = 1
        self.scalars = {k: v for k, v in req.items() if v}
        self.host_ports = host_ports(spec)
        self.tolerations = tuple(spec.get("tolerations") or ())
        self.node_selector = spec.get("nodeSelector") or {}
        aff = spec.get("affinity") or {}
        na = aff.get("nodeAffinity") or {}
        req_na = na.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
        self.required_node_terms = tuple(req_na.get("nodeSelectorTerms") or ()) if req_na else None
        self.preferred_node_terms = tuple(
            (int(p.get("weight") or 0), p.get("preference") or {})
            for p in na.get("preferredDuringSchedulingIgnoredDuringExecution") or ())
        pa, paa = aff.get("podAffinity"), aff.get("podAntiAffinity")
        self.affinity_required = _terms(self.namespace, pa, True)
        self.anti_required = _terms(self.namespace, paa, True)
        self.affinity_preferred = _terms(self.namespace, pa, False)
        self.anti_preferred = _terms(self.namespace, paa, False)
        self.owner_uid = controller_uid(meta)
        # Everything the node-only ("static") filters look at: pods with the same key pass the
        # same nodes, so a deployment's pods share one computation.
        self.static_key = orjson.dumps([self.tolerations, self.node_selector, req_na],
                                       option=orjson.OPT_SORT_KEYS)
        self.groups: tuple[str, ...] = ()

    @property
    def has_pod_affinity(self) -> bool:
        return bool(self.affinity_required or self.anti_required or self.affinity_preferred
                    or self.anti_preferred)

    def __repr__(self) -> str:
        return f"PodInfo({self.namespace}/{self.name} on {self.node_name or '-'})"


# -- nodes --------------------------------------------------------------------------------------
def node_ready(node: dict) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


class NodeInfo:
    """A node and the running sums of its pods' requests."""

    __slots__ = ("name", "node", "labels", "taints", "unschedulable", "ready", "zone",
                 "alloc_cpu", "alloc_mem", "alloc_pods", "alloc_scalars", "cpu", "mem", "num_pods",
                 "scalars", "nz_cpu", "nz_mem", "ports", "pods", "groups", "static_fingerprint")

    def __init__(self, name: str, node: dict | None = None):
        self.name = name
        self.pods: dict[str, PodInfo] = {}
        self.cpu = self.mem = self.num_pods = self.nz_cpu = self.nz_mem = 0
        self.scalars: Counter = Counter()
        self.ports: Counter = Counter()
        self.groups: Counter = Counter()
        self.node: dict | None = None
        self.set_node(node)

    def set_node(self, node: dict | None) -> None:
        self.node = node
        node = node or {"metadata": {"name": self.name}}
        meta, spec, status = node["metadata"], node.get("spec") or {}, node.get("status") or {}
        self.labels = meta.get("labels") or {}
        self.taints = tuple(spec.get("taints") or ())
        self.unschedulable = bool(spec.get("unschedulable"))
        self.ready = node_ready(node)
        self.zone = self.labels.get(ZONE_LABEL) or self.labels.get(LEGACY_ZONE_LABEL) or ""
        alloc = status.get("allocatable") or status.get("capacity") or {}
        self.alloc_cpu = resource_amount("cpu", alloc.get("cpu", 0))
        self.alloc_mem = resource_amount("memory", alloc.get("memory", 0))
        self.alloc_pods = resource_amount("pods", alloc.get("pods", 0))
        self.alloc_scalars = {k: resource_amount(k, v) for k, v in alloc.items()
                              if k not in ("cpu", "memory", "pods")}
        self.static_fingerprint = orjson.dumps(
            [self.labels, self.taints, self.unschedulable, self.ready], option=orjson.OPT_SORT_KEYS)

    def add_pod(self, p: PodInfo) -> None:
        if p.uid in self.pods:
            self.remove_pod(self.pods[p.uid])
        self.pods[p.uid] = p
        self.cpu += p.cpu
        self.mem += p.mem
        self.nz_cpu += p.nz_cpu
        self.nz_mem += p.nz_mem
        self.num_pods += 1
        for k, v in p.scalars.items():
            self.scalars[k] += v
        for port in p.host_ports:
            self.ports[port] += 1
        for g in p.groups:
            self.groups[g] += 1

    def remove_pod(self, p: PodInfo) -> None:
        p = self.pods.pop(p.uid, None)
        if p is None:
            return
        self.cpu -= p.cpu
        self.mem -= p.mem
        self.nz_cpu -= p.nz_cpu
        self.nz_mem -= p.nz_mem
        self.num_pods -= 1
        for k, v in p.scalars.items():
            self.scalars[k] -= v
        for port in p.host_ports:
            self.ports[port] -= 1
            if self.ports[port] <= 0:
                del self.ports[port]
        for g in p.groups:
            self.groups[g] -= 1
            if self.groups[g] <= 0:
                del self.groups[g]

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}: {self.num_pods} pods, cpu {self.cpu}/{self.alloc_cpu}m)"
