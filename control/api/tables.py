"""Server-side ``meta.k8s.io/v1`` Table rendering for ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and
prints the columns and cells the server hands back.  This module mirrors the
Kubernetes server-side printers (``pkg/printers/internalversion/printers.go``),
``apimachinery``'s ``duration.HumanDuration`` and the apiserver's ``asTable``
handling of ``includeObject``.

Like the real apiserver (``printers/storage.TableConvertor`` generates with
``Wide: true``), every row carries *all* cells, wide ones included; kubectl
only shows ``priority: 1`` columns with ``-o wide``.

Resources without a dedicated printer get ``Name`` + ``Age``, the columns
apiextensions gives a CustomResourceDefinition without printer columns (there
``Age`` is ``type: date``; the built-in printers declare it ``string``).

Objects are plain JSON-decoded dicts and are never modified.  Rows reference
(not copy) the object / its metadata, so do not mutate a rendered Table.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

__all__ = [
    "render_table",
    "render_watch_table",
    "table_row",
    "column_definitions",
    "human_duration",
    "INCLUDE_OBJECT_VALUES",
]

INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")

# ---------------------------------------------------------------------------
# Column definitions
# ---------------------------------------------------------------------------

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is "
    "in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."


def _col(name: str, type_: str = "string", description: str = "", priority: int = 0) -> dict:
    return {
        "name": name,
        "type": type_,
        "format": "name" if name == "Name" else "",
        "description": description,
        "priority": priority,
    }


_NAME = _col("Name", description=_NAME_DOC)
_AGE = _col("Age", description=_AGE_DOC)

_POD_COLUMNS = [
    _NAME,
    _col("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", description="The aggregate status of the containers in this pod."),
    _col("Restarts", description="The number of times the containers in this pod have been "
         "restarted and when the last container in this pod has restarted."),
    _AGE,
    _col("IP", priority=1, description="podIP address allocated to the pod. Routable at least "
         "within the cluster. Empty if not yet allocated."),
    _col("Node", priority=1, description="NodeName indicates in which node this pod is scheduled."),
    _col("Nominated Node", priority=1, description="nominatedNodeName is set only when this pod "
         "preempts other pods on the node, but it cannot be scheduled right away."),
    _col("Readiness Gates", priority=1, description="If specified, all readiness gates will be "
         "evaluated for pod readiness."),
]

_SERVICE_COLUMNS = [
    _NAME,
    _col("Type", description="type determines how the Service is exposed."),
    _col("Cluster-IP", description="clusterIP is the IP address of the service and is usually "
         "assigned randomly."),
    _col("External-IP", description="externalIPs is a list of IP addresses for which nodes in "
         "the cluster will also accept traffic for this service."),
    _col("Port(s)", description="The list of ports that are exposed by this service."),
    _AGE,
    _col("Selector", priority=1, description="Route service traffic to pods with label keys "
         "and values matching this selector."),
]

_NODE_COLUMNS = [
    _NAME,
    _col("Status", description="The status of the node"),
    _col("Roles", description="The roles of the node"),
    _AGE,
    _col("Version", description="Kubelet Version reported by the node."),
    _col("Internal-IP", priority=1, description="List of addresses reachable to the node."),
    _col("External-IP", priority=1, description="List of addresses reachable to the node."),
    _col("OS-Image", priority=1, description="OS Image reported by the node from "
         "/etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    _col("Kernel-Version", priority=1, description="Kernel Version reported by the node from "
         "'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    _col("Container-Runtime", priority=1, description="ContainerRuntime Version reported by the "
         "node through runtime remote API (e.g. containerd://1.4.2)."),
]

_NAMESPACE_COLUMNS = [_NAME, _col("Status", description="The status of the namespace"), _AGE]

_ENDPOINTS_COLUMNS = [
    _NAME,
    _col("Endpoints", description="The set of all endpoints is the union of all subsets."),
    _AGE,
]

_ENDPOINTSLICE_COLUMNS = [
    _NAME,
    _col("AddressType", description="addressType specifies the type of address carried by "
         "this EndpointSlice."),
    _col("Ports", description="ports specifies the list of network ports exposed by each "
         "endpoint in this slice."),
    _col("Endpoints", description="endpoints is a list of unique endpoints in this slice."),
    _AGE,
]

_DEPLOYMENT_COLUMNS = [
    _NAME,
    _col("Ready", description="Number of the pod with ready state"),
    _col("Up-to-date", description="Total number of non-terminated pods targeted by this "
         "deployment that have the desired template spec."),
    _col("Available", description="Total number of available pods (ready for at least "
         "minReadySeconds) targeted by this deployment."),
    _AGE,
    _col("Containers", priority=1, description=_CONTAINERS_DOC),
    _col("Images", priority=1, description=_IMAGES_DOC),
    _col("Selector", priority=1, description="Label selector for pods."),
]

_REPLICASET_COLUMNS = [
    _NAME,
    _col("Desired", "integer", "Replicas is the number of desired replicas."),
    _col("Current", "integer", "Replicas is the most recently observed number of replicas."),
    _col("Ready", "integer", "The number of ready replicas for this replica set."),
    _AGE,
    _col("Containers", priority=1, description=_CONTAINERS_DOC),
    _col("Images", priority=1, description=_IMAGES_DOC),
    _col("Selector", priority=1, description="Selector is a label query over pods that should "
         "match the replica count."),
]

_LEASE_COLUMNS = [
    _NAME,
    _col("Holder", description="holderIdentity contains the identity of the holder of a "
         "current lease."),
    _AGE,
]

_DEFAULT_COLUMNS = [_NAME, _col("Age", "date", _AGE_DOC)]

# ---------------------------------------------------------------------------
# Time helpers
# ---------------------------------------------------------------------------


def human_duration(d: timedelta) -> str:
    """Port of k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    micros = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    seconds = abs(micros) // 1_000_000 * (-1 if micros < 0 else 1)  # Go truncates toward 0
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> datetime | None:
    """RFC 3339 -> aware datetime; None when missing/empty; ValueError when malformed."""
    if not value:
        return None
    t = datetime.fromisoformat(str(value))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)


def _since(timestamp: Any, now: datetime | None) -> str:
    """translateTimestampSince: "<unknown>" for a zero/missing timestamp."""
    try:
        t = _parse_time(timestamp)
    except ValueError:
        return "<invalid>"
    if t is None:
        return "<unknown>"
    return human_duration(_now(now) - t)


# ---------------------------------------------------------------------------
# Small formatting helpers (labels, selectors, containers)
# ---------------------------------------------------------------------------


def _dig(obj: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(obj, dict) or obj.get(key) is None:
            return default
        obj = obj[key]
    return obj


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _age(obj: dict, now: datetime | None) -> str:
    return _since(_meta(obj).get("creationTimestamp"), now)


def _format_labels(labels: dict | None) -> str:
    """labels.FormatLabels: sorted k=v pairs, "<none>" when empty."""
    text = ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))
    return text or "<none>"


def _selector_string(selector: dict | None) -> str:
    """metav1.LabelSelectorAsSelector(selector).String(); raises ValueError on a bad operator."""
    if not selector:
        return ""  # nil -> Nothing(), empty -> Everything(): both print as ""
    reqs: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        reqs.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator")
        values = ",".join(sorted(expr.get("values") or []))
        if op == "In":
            reqs.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
        else:
            raise ValueError(f"{op!r} is not a valid label selector operator")
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def _format_selector(selector: dict | None) -> str:
    """metav1.FormatLabelSelector: "<none>" when empty, "<error>" when invalid."""
    try:
        return _selector_string(selector) or "<none>"
    except ValueError:
        return "<error>"


def _container_cells(template_spec: dict | None) -> list[str]:
    """layoutContainerCells: comma-joined names and images."""
    containers = (template_spec or {}).get("containers") or []
    return [
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    ]


def _with_more(items: list[str], count: int, limit: int = 3, empty: str = "<unset>") -> str:
    """listWithMoreString: first `limit` items, then " + N more..."."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or empty


def _join_host_port(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------------------
# Per-resource cells
# ---------------------------------------------------------------------------


def _condition_true(status: dict, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in status.get("conditions") or [])


def _last_termination(cs: dict) -> datetime | None:
    try:
        return _parse_time(_dig(cs, "lastState", "terminated", "finishedAt"))
    except ValueError:
        return None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return b if b is not None and a < b else a


def _pod_cells(pod: dict, now: datetime | None) -> list:
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, _meta(pod)
    init_specs = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + sum(
        1 for c in init_specs if c.get("restartPolicy") == "Always")
    ready = restarts = sidecar_restarts = 0
    last_restart = last_sidecar_restart = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += cs.get("restartCount") or 0
        last_restart = _later(last_restart, _last_termination(cs))
        is_sidecar = cs.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += cs.get("restartCount") or 0
            last_sidecar_restart = _later(last_sidecar_restart, _last_termination(cs))
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and (terminated.get("exitCode") or 0) == 0:
            continue
        if is_sidecar and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode') or 0}"
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount") or 0
            last_restart = _later(last_restart, _last_termination(cs))
            state = cs.get("state") or {}
            terminated, waiting = state.get("terminated"), state.get("waiting")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                reason = (f"Signal:{terminated['signal']}" if terminated.get("signal")
                          else f"ExitCode:{terminated.get('exitCode') or 0}")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(_now(now) - last_restart)} ago)"

    pod_ips = status.get("podIPs") or []
    pod_ip = status.get("podIP") or (pod_ips[0].get("ip") if pod_ips else "") or "<none>"
    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        conditions = status.get("conditions") or []
        passed = 0
        for gate in gates:
            match = next((c for c in conditions if c.get("type") == gate.get("conditionType")), None)
            passed += 1 if match is not None and match.get("status") == "True" else 0
        gates_cell = f"{passed}/{len(gates)}"

    return [
        meta.get("name", ""), f"{ready}/{total}", reason, restarts_cell, _age(pod, now),
        pod_ip, spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
        gates_cell,
    ]


def _pod_conditions(pod: dict) -> list[dict]:
    phase = _dig(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod failed."}]
    return []


def _service_external_ip(spec: dict, status: dict) -> str:
    svc_type = spec.get("type") or "ClusterIP"
    external = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if svc_type == "LoadBalancer":
        ingress = _dig(status, "loadBalancer", "ingress", default=[])
        lb = sorted({i.get("ip") or i.get("hostname") for i in ingress
                     if i.get("ip") or i.get("hostname")})
        if external:
            return ",".join(lb + external)
        return ",".join(lb) or "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def _service_cells(svc: dict, now: datetime | None) -> list:
    spec, status = svc.get("spec") or {}, svc.get("status") or {}
    cluster_ips = spec.get("clusterIPs") or []
    cluster_ip = spec.get("clusterIP") or (cluster_ips[0] if cluster_ips else "") or "<none>"
    ports = []
    for p in spec.get("ports") or []:
        protocol = p.get("protocol") or "TCP"
        node_port = p.get("nodePort") or 0
        ports.append(f"{p.get('port')}:{node_port}/{protocol}" if node_port > 0
                     else f"{p.get('port')}/{protocol}")
    return [
        _meta(svc).get("name", ""), spec.get("type") or "ClusterIP", cluster_ip,
        _service_external_ip(spec, status), ",".join(ports) or "<none>", _age(svc, now),
        _format_labels(spec.get("selector")),
    ]


def _node_cells(node: dict, now: datetime | None) -> list:
    meta, spec, status = _meta(node), node.get("spec") or {}, node.get("status") or {}
    ready = {c.get("type"): c for c in status.get("conditions") or []}.get("Ready")
    if ready is None:
        states = ["Unknown"]
    else:
        states = ["Ready" if ready.get("status") == "True" else "NotReady"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")

    roles = set()
    for key, value in (meta.get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/"):]:
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)

    def address(kind: str) -> str:
        return next((a.get("address") for a in status.get("addresses") or []
                     if a.get("type") == kind), "<none>")

    info = status.get("nodeInfo") or {}
    return [
        meta.get("name", ""), ",".join(states), ",".join(sorted(roles)) or "<none>",
        _age(node, now), info.get("kubeletVersion") or "",
        address("InternalIP"), address("ExternalIP"),
        info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _namespace_cells(ns: dict, now: datetime | None) -> list:
    return [_meta(ns).get("name", ""), _dig(ns, "status", "phase", default=""), _age(ns, now)]


def _format_endpoints(subsets: list[dict]) -> str:
    """formatEndpoints(endpoints, nil): at most 3 host:port pairs, then " + N more..."."""
    if not subsets:
        return "<none>"
    items: list[str] = []
    limit, more, count = 3, False, 0
    for ss in subsets:
        addresses = [a.get("ip", "") for a in ss.get("addresses") or []]
        ports = ss.get("ports") or []
        if not ports:  # headless services may have no ports
            count += len(addresses)
            for ip in addresses:
                if len(items) == limit:
                    more = True
                    break
                items.append(ip)
            continue
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(items) == limit:
                    more = True
                    break
                items.append(_join_host_port(ip, port.get("port")))
    text = ",".join(items)
    return f"{text} + {count - limit} more..." if more else text


def _endpoints_cells(ep: dict, now: datetime | None) -> list:
    return [_meta(ep).get("name", ""), _format_endpoints(ep.get("subsets") or []), _age(ep, now)]


def _endpointslice_cells(eps: dict, now: datetime | None) -> list:
    ports = []
    for p in eps.get("ports") or []:
        ports.append(str(p["port"]) if p.get("port") is not None
                     else p["name"] if p.get("name") is not None else "*")
    addresses = [a for e in eps.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        _meta(eps).get("name", ""), eps.get("addressType") or "",
        _with_more(ports, len(ports)), _with_more(addresses, len(addresses)), _age(eps, now),
    ]


def _deployment_cells(d: dict, now: datetime | None) -> list:
    spec, status = d.get("spec") or {}, d.get("status") or {}
    desired = spec.get("replicas") if spec.get("replicas") is not None else 1
    try:
        selector = _selector_string(spec.get("selector"))
    except ValueError:
        selector = "<invalid>"
    return [
        _meta(d).get("name", ""), f"{status.get('readyReplicas') or 0}/{desired}",
        status.get("updatedReplicas") or 0, status.get("availableReplicas") or 0, _age(d, now),
        *_container_cells(_dig(spec, "template", "spec")), selector,
    ]


def _replicaset_cells(rs: dict, now: datetime | None) -> list:
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    desired = spec.get("replicas") if spec.get("replicas") is not None else 1
    return [
        _meta(rs).get("name", ""), desired, status.get("replicas") or 0,
        status.get("readyReplicas") or 0, _age(rs, now),
        *_container_cells(_dig(spec, "template", "spec")), _format_selector(spec.get("selector")),
    ]


def _lease_cells(lease: dict, now: datetime | None) -> list:
    return [_meta(lease).get("name", ""), _dig(lease, "spec", "holderIdentity", default=""),
            _age(lease, now)]


def _default_cells(obj: dict, now: datetime | None) -> list:
    return [_meta(obj).get("name", ""), _age(obj, now)]


CellsFunc = Callable[[dict, "datetime | None"], list]

PRINTERS: dict[str, tuple[list[dict], CellsFunc]] = {
    "pods": (_POD_COLUMNS, _pod_cells),
    "services": (_SERVICE_COLUMNS, _service_cells),
    "nodes": (_NODE_COLUMNS, _node_cells),
    "namespaces": (_NAMESPACE_COLUMNS, _namespace_cells),
    "endpoints": (_ENDPOINTS_COLUMNS, _endpoints_cells),
    "endpointslices": (_ENDPOINTSLICE_COLUMNS, _endpointslice_cells),
    "deployments": (_DEPLOYMENT_COLUMNS, _deployment_cells),
    "replicasets": (_REPLICASET_COLUMNS, _replicaset_cells),
    "leases": (_LEASE_COLUMNS, _lease_cells),
}
_DEFAULT_PRINTER: tuple[list[dict], CellsFunc] = (_DEFAULT_COLUMNS, _default_cells)

# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def column_definitions(plural: str) -> list[dict]:
    """The Table columnDefinitions for a resource plural (fresh copies)."""
    return [dict(c) for c in PRINTERS.get(plural, _DEFAULT_PRINTER)[0]]


def _row_object(obj: dict, include_object: str | None) -> tuple[bool, Any]:
    if include_object in ("Metadata", "", None):
        return True, {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                      "metadata": _meta(obj)}
    if include_object == "Object":
        return True, obj
    if include_object == "None":
        return False, None
    raise ValueError(f"unrecognized includeObject value: {include_object!r}")


def table_row(plural: str, obj: dict, include_object: str = "Metadata",
              now: datetime | None = None) -> dict:
    """One Table row: all cells (wide ones included) plus the object per includeObject.

    include_object is the ``?includeObject=`` value: "Metadata" (default, also "" / None)
    embeds a PartialObjectMetadata, "Object" the full object, "None" omits the key.
    Any other value raises ValueError (the apiserver answers 400 BadRequest).
    """
    has_object, embedded = _row_object(obj, include_object)
    cells_func = PRINTERS.get(plural, _DEFAULT_PRINTER)[1]
    row: dict[str, Any] = {"cells": cells_func(obj, now)}
    if plural == "pods" and (conditions := _pod_conditions(obj)):
        row["conditions"] = conditions
    if has_object:
        row["object"] = embedded
    return row


def _table(plural: str, rows: list[dict], metadata: dict, include_headers: bool) -> dict:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(plural) if include_headers else [],
        "rows": rows,
    }


def render_table(plural: str, objects: list[dict], *, include_object: str = "Metadata",
                 resource_version: str = "", continue_token: str = "",
                 now: datetime | None = None, include_headers: bool = True) -> dict:
    """Render a list response as a meta.k8s.io/v1 Table.

    resource_version / continue_token go into the Table's ListMeta (omitted when empty).
    include_headers=False mirrors ``?noHeaders=true`` (empty columnDefinitions).
    """
    now = _now(now)  # one clock reading for the whole table
    rows = [table_row(plural, obj, include_object, now) for obj in objects]
    metadata: dict[str, str] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    return _table(plural, rows, metadata, include_headers)


def render_watch_table(plural: str, obj: dict, include_object: str = "Metadata",
                       now: datetime | None = None, *, include_headers: bool = True) -> dict:
    """A one-row Table for a single object, e.g. the ``object`` of a watch event.

    Its metadata.resourceVersion is the object's own (as for a single-object GET).
    The real apiserver sends columnDefinitions only with the first watch event of a
    stream; pass include_headers=False for the later events to do the same.
    """
    metadata = {}
    if _meta(obj).get("resourceVersion"):
        metadata["resourceVersion"] = _meta(obj)["resourceVersion"]
    return _table(plural, [table_row(plural, obj, include_object, now)], metadata,
                  include_headers)
