"""What the server itself sets or keeps on create and update (Kubernetes' rest strategies):
identity and timestamps, generation, which half of the object a request may change (spec via the
main resource, status via /status), and the fields that are immutable."""
from __future__ import annotations

import copy
import secrets
import uuid
from datetime import datetime, timezone

from .alloc import wants_node_ports
from .errors import cause
from .resources import Resource

# Metadata the server owns: a client cannot set it on create or change it on update.
SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
               "generation", "resourceVersion", "selfLink")

# Status a newly created object starts with; a client's status on create is dropped, except for
# Nodes, whose agent creates them with capacity and addresses already filled in.
INITIAL_STATUS = {
    "Pod": lambda: {"phase": "Pending", "qosClass": "BestEffort"},
    "Service": lambda: {"loadBalancer": {}},
    "Deployment": lambda: {},
    "ReplicaSet": lambda: {"replicas": 0},
    "Namespace": lambda: {"phase": "Active"},
}

# Kinds whose metadata.generation counts changes of their desired state (controllers compare it
# with status.observedGeneration).
GENERATION_KINDS = ("Pod", "Service", "Deployment", "ReplicaSet")

# Pod spec fields that may change after creation (Kubernetes' ValidatePodUpdate).
POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(prefix: str) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' name generator avoids vowels and look-alikes
    return prefix + "".join(secrets.choice(alphabet) for _ in range(5))


def prepare_create(res: Resource, obj: dict) -> None:
    meta = obj["metadata"]
    for k in SERVER_META:
        meta.pop(k, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now()
    if res.kind in GENERATION_KINDS:
        meta["generation"] = 1
    if res.has_status and res.kind in INITIAL_STATUS:
        obj["status"] = INITIAL_STATUS[res.kind]()
    if res.kind == "Pod" and obj["spec"].get("nodeName"):
        obj["status"]["conditions"] = [scheduled_condition()]


def scheduled_condition() -> dict:
    return {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()}


def _spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def prepare_update(res: Resource, old: dict, new: dict, subresource: str = "") -> list[dict]:
    """Carry over what this request may not change; returns causes for immutable-field changes."""
    meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
    for k in SERVER_META:
        if k in old_meta:
            meta[k] = old_meta[k]
        else:
            meta.pop(k, None)
    if subresource == "status":
        # Only status changes through /status: keep everything else as stored.
        status = new.get("status")
        new.clear()
        new.update(copy.deepcopy(old))
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = status
        return []
    if res.has_status:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if "generation" in old_meta and _spec_part(old) != _spec_part(new):
        meta["generation"] = old_meta["generation"] + 1
    return immutable(res, old, new)


def immutable(res: Resource, old: dict, new: dict) -> list[dict]:
    out: list[dict] = []

    def fixed(path: str, a, b):
        if a != b:
            out.append(cause(path, "Invalid value: field is immutable", "FieldValueInvalid"))

    if res.kind == "Service":
        o, n = old.get("spec") or {}, new.get("spec") or {}
        if o.get("clusterIP") and n.get("type") != "ExternalName":
            if not n.get("clusterIP"):
                n["clusterIP"] = o["clusterIP"]  # an omitted clusterIP keeps the allocated one
                n["clusterIPs"] = o.get("clusterIPs", [o["clusterIP"]])
            fixed("spec.clusterIP", o["clusterIP"], n["clusterIP"])
        # Node ports left out of an update keep their allocation (as kubectl apply expects).
        old_np = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in o.get("ports") or []}
        for p in (n.get("ports") or []) if wants_node_ports(n) else []:
            if not p.get("nodePort") and old_np.get((p.get("port"), p.get("protocol", "TCP"))):
                p["nodePort"] = old_np[(p.get("port"), p.get("protocol", "TCP"))]
    elif res.kind == "Pod":
        o, n = old["spec"], new.get("spec") or {}
        if o.get("nodeName"):
            fixed("spec.nodeName", o.get("nodeName"), n.get("nodeName"))
        strip = lambda s: {k: v for k, v in s.items() if k not in POD_MUTABLE and k != "containers"
                           and k != "initContainers"}
        images = lambda s: [{k: v for k, v in c.items() if k != "image"}
                            for c in (s.get("initContainers") or []) + s.get("containers", [])]
        if strip(o) != strip(n) or images(o) != images(n):
            out.append(cause("spec", "Forbidden: pod updates may not change fields other than "
                             "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                             "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                             "tolerations) or `spec.terminationGracePeriodSeconds`", "FieldValueForbidden"))
    elif res.kind in ("Deployment", "ReplicaSet"):
        fixed("spec.selector", old["spec"].get("selector"), new.get("spec", {}).get("selector"))
    elif res.kind == "EndpointSlice":
        fixed("addressType", old.get("addressType"), new.get("addressType"))
    return out
