"""EndpointSlice controller: for every Service with a selector, EndpointSlices listing the pods it
selects (addresses, ready/serving/terminating, nodeName, zone, targetRef), at most
``max_endpoints`` per slice, one set of slices per (address type, resolved ports).

Kubernetes' rules, plus one of ours:
- a pod is listed once it has an IP and until it finishes (Succeeded/Failed); a terminating pod
  stays, with terminating=true and ready=false (serving tells whether it still passes its
  readiness probe);
- ``publishNotReadyAddresses`` makes every listed endpoint ready and serving;
- a named targetPort is resolved per pod (its container port of that name and protocol); pods
  resolving to different numbers land in different slices;
- ours: a pod on a node that is not Ready (heartbeat lost: Ready Unknown, or an unreachable
  taint) is listed not ready and not serving at once, instead of after the node lifecycle
  controller has rewritten each pod's status; traffic stops going to a dead node in one write.

The reconciler keeps endpoints in the slices they are in (only changed slices are written),
fills slices with room before creating new ones, and writes nothing when nothing changed.
The desired state is a pure function of (service, pods, nodes); see ``desired_endpoints`` and
``plan_slices``.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging

from control.client import ApiStatusError

from .manager import (Controller, Manager, ObjectCache, key_of, label_pairs, namespace_of, node_of,
                      node_ready_status, pod_ready, pod_terminal, pods_for_selector, rv_of,
                      service_selector_pair, services_for_pod)

log = logging.getLogger("nodeagent.controllers.endpointslice")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
MAX_ENDPOINTS = 100


# -- pure: what a service's endpoints should be ---------------------------------------------------
def node_serves(node: dict | None) -> bool:
    """False for a node known to be down: Ready not True (when reported) or tainted unreachable."""
    if node is None:
        return True
    status = node_ready_status(node)
    if status and status != "True":
        return False
    return not any(t.get("key") == UNREACHABLE_TAINT for t in (node.get("spec") or {}).get("taints") or [])


def pod_ips(pod: dict) -> list[str]:
    st = pod.get("status") or {}
    ips = [p.get("ip") for p in st.get("podIPs") or [] if p.get("ip")]
    if not ips and st.get("podIP"):
        ips = [st["podIP"]]
    return ips


def address_type(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def resolve_port(svc_port: dict, pod: dict) -> int | None:
    """The pod's port for a service port: a number as is, a name looked up among the pod's
    container ports (same protocol)."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    proto = svc_port.get("protocol") or "TCP"
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return p.get("containerPort")
    return None


def endpoint_ports(svc: dict, pod: dict) -> tuple:
    """The slice ports for this pod: (name, port, protocol, appProtocol) per service port that
    resolves, sorted so equal sets compare equal."""
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        port = resolve_port(sp, pod)
        if port is None:
            continue
        out.append((sp.get("name") or "", port, sp.get("protocol") or "TCP", sp.get("appProtocol")))
    return tuple(sorted(out, key=lambda p: (p[0], p[1], p[2])))


def ports_json(ports: tuple) -> list[dict]:
    out = []
    for name, port, proto, app in ports:
        d = {"name": name, "port": port, "protocol": proto}
        if app:
            d["appProtocol"] = app
        out.append(d)
    return out


def make_endpoint(svc: dict, pod: dict, ip: str, node: dict | None) -> dict:
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    serving = publish or (pod_ready(pod) and node_serves(node))
    ready = serving and (publish or not terminating)
    meta, spec = pod["metadata"], pod.get("spec") or {}
    ep: dict = {"addresses": [ip], "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
        ep["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        ep["nodeName"] = spec["nodeName"]
    zone = ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL)
    if zone:
        ep["zone"] = zone
    ep["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta["name"],
                       "uid": meta.get("uid", "")}
    return ep


def include_pod(pod: dict, include_terminating: bool = True) -> bool:
    """ShouldPodBeInEndpoints."""
    if pod_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not pod["metadata"].get("deletionTimestamp")


def desired_endpoints(svc: dict, pods: list[dict], nodes: dict[str, dict]) -> dict[tuple, dict[str, dict]]:
    """(addressType, ports) -> {endpoint key: endpoint} for the service's pods."""
    families = (svc.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    out: dict[tuple, dict[str, dict]] = {}
    for pod in pods:
        if not include_pod(pod):
            continue
        ports = endpoint_ports(svc, pod)
        node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        for family in families:
            ip = next((i for i in pod_ips(pod) if address_type(i) == family), None)
            if ip is None:
                continue
            ep = make_endpoint(svc, pod, ip, node)
            out.setdefault((family, ports), {})[endpoint_key(ep)] = ep
    return out


def endpoint_key(ep: dict) -> str:
    ref = ep.get("targetRef") or {}
    return ref.get("uid") or ep["addresses"][0]


def slice_ports_key(sl: dict) -> tuple:
    ports = []
    for p in sl.get("ports") or []:
        ports.append((p.get("name") or "", p.get("port"), p.get("protocol") or "TCP", p.get("appProtocol")))
    return (sl.get("addressType"), tuple(sorted(ports, key=lambda p: (p[0], p[1], p[2]))))


def slice_labels(svc: dict) -> dict:
    labels = dict(svc["metadata"].get("labels") or {})
    labels[SERVICE_NAME_LABEL] = svc["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def service_owner(svc: dict) -> dict:
    m = svc["metadata"]
    return {"apiVersion": "v1", "kind": "Service", "name": m["name"], "uid": m["uid"],
            "controller": True, "blockOwnerDeletion": True}


def new_slice(svc: dict, family: str, ports: tuple, endpoints: list[dict]) -> dict:
    m = svc["metadata"]
    prefix = m["name"][:57] + "-"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": prefix, "namespace": m.get("namespace", ""),
                         "labels": slice_labels(svc), "ownerReferences": [service_owner(svc)]},
            "addressType": family, "endpoints": endpoints, "ports": ports_json(ports)}


def plan_slices(svc: dict, existing: list[dict], desired: dict[tuple, dict[str, dict]],
                max_endpoints: int = MAX_ENDPOINTS) -> tuple[list[dict], list[dict], list[dict]]:
    """(to create, to update, to delete). Endpoints stay in their slice; slices changed anyway
    take new endpoints first, then slices with room, then new slices. An empty slice is deleted,
    except that a service with no endpoints at all keeps one empty placeholder slice."""
    creates: list[dict] = []
    updates: list[dict] = []
    deletes: list[dict] = []
    labels, owner = slice_labels(svc), [service_owner(svc)]
    groups: dict[tuple, list[dict]] = {}
    for sl in existing:
        groups.setdefault(slice_ports_key(sl), []).append(sl)
    kept: list[dict] = []  # slices that remain, with their final endpoints
    for gkey in set(groups) | set(desired):
        want = desired.get(gkey, {})
        slices = sorted(groups.get(gkey, []), key=lambda s: s["metadata"]["name"])
        placed: set[str] = set()
        work = []  # [slice, new endpoints, changed]
        for sl in slices:
            eps = []
            for ep in sl.get("endpoints") or []:
                k = endpoint_key(ep)
                if k in want and k not in placed and len(eps) < max_endpoints:
                    eps.append(want[k])
                    placed.add(k)
            work.append([sl, eps, eps != (sl.get("endpoints") or [])])
        remaining = [want[k] for k in sorted(want) if k not in placed]
        # Fill: slices already changing first, then any with room (fewest writes).
        for pass_changed in (True, False):
            for w in work:
                if not remaining:
                    break
                if w[2] != pass_changed or len(w[1]) >= max_endpoints:
                    continue
                room = max_endpoints - len(w[1])
                w[1].extend(remaining[:room])
                del remaining[:room]
                w[2] = True
        for w in work:
            sl, eps, changed = w
            if not eps:
                deletes.append(sl)
                continue
            meta_changed = (sl["metadata"].get("labels") or {}) != labels or \
                (sl["metadata"].get("ownerReferences") or []) != owner
            if changed or meta_changed:
                new = {**sl, "metadata": {**sl["metadata"], "labels": labels, "ownerReferences": owner},
                       "endpoints": eps}
                updates.append(new)
                kept.append(new)
            else:
                kept.append(sl)
        family, ports = gkey
        for i in range(0, len(remaining), max_endpoints):
            sl = new_slice(svc, family, ports, remaining[i:i + max_endpoints])
            creates.append(sl)
            kept.append(sl)
    if not kept:
        # A placeholder, as Kubernetes keeps: consumers can tell "no endpoints" from "not synced".
        families = (svc.get("spec") or {}).get("ipFamilies") or ["IPv4"]
        placeholder_key = (families[0], ())
        for i, sl in enumerate(deletes):
            if slice_ports_key(sl) == placeholder_key and not sl.get("endpoints"):
                deletes.pop(i)
                if (sl["metadata"].get("labels") or {}) != labels or sl["metadata"].get("ownerReferences") != owner:
                    updates.append({**sl, "metadata": {**sl["metadata"], "labels": labels, "ownerReferences": owner}})
                break
        else:
            creates.append(new_slice(svc, families[0], (), []))
    return creates, updates, deletes


# -- the controller -------------------------------------------------------------------------------
def managed_slice_service(sl: dict) -> list[str]:
    labels = sl["metadata"].get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not labels.get(SERVICE_NAME_LABEL):
        return []
    return [f"{sl['metadata'].get('namespace', '')}/{labels[SERVICE_NAME_LABEL]}"]


def register_pod_service_indexes(mgr: Manager) -> tuple[ObjectCache, ObjectCache, ObjectCache]:
    pods, services, nodes = mgr.cache("pods"), mgr.cache("services"), mgr.cache("nodes")
    pods.add_index("labels", label_pairs)
    pods.add_index("node", node_of)
    pods.add_index("namespace", namespace_of)
    services.add_index("selector", service_selector_pair)
    return pods, services, nodes


class ServiceEndpointsController(Controller):
    """What the EndpointSlice and Endpoints controllers share: a queue of services, fed by
    service, pod and node events."""

    workers = 4

    def register(self) -> None:
        self.pods, self.services, self.nodes = register_pod_service_indexes(self.mgr)
        self.mgr.subscribe("services", self.on_service)
        self.mgr.subscribe("pods", self.on_pod)
        self.mgr.subscribe("nodes", self.on_node)

    async def started(self) -> None:
        for svc in self.services.list():
            self.queue.add(key_of(svc))

    def on_service(self, etype: str, obj: dict, old: dict | None) -> None:
        self.queue.add(key_of(obj))

    def _enqueue_for_pod(self, pod: dict) -> None:
        for svc in services_for_pod(self.services, pod):
            self.queue.add(key_of(svc))

    def on_pod(self, etype: str, obj: dict, old: dict | None) -> None:
        if old is not None and etype == "MODIFIED" and not endpoint_relevant(old, obj):
            return
        self._enqueue_for_pod(obj)
        if old is not None and (old["metadata"].get("labels") != obj["metadata"].get("labels")):
            self._enqueue_for_pod(old)

    def on_node(self, etype: str, obj: dict, old: dict | None) -> None:
        if etype == "MODIFIED" and old is not None:
            if node_serves(old) == node_serves(obj) and \
                    (old["metadata"].get("labels") or {}).get(ZONE_LABEL) == (obj["metadata"].get("labels") or {}).get(ZONE_LABEL):
                return
        for pod in self.pods.by_index("node", obj["metadata"]["name"]):
            self._enqueue_for_pod(pod)

    def selected_pods(self, svc: dict) -> list[dict]:
        return pods_for_selector(self.pods, svc["metadata"].get("namespace", ""), svc["spec"]["selector"])

    def node_map(self, pods: list[dict]) -> dict[str, dict]:
        out = {}
        for p in pods:
            n = (p.get("spec") or {}).get("nodeName")
            if n and n not in out:
                node = self.nodes.get("", n)
                if node is not None:
                    out[n] = node
        return out


def endpoint_relevant(old: dict, new: dict) -> bool:
    """Whether a pod change can change any endpoint: IPs, readiness, phase, deletion, node,
    labels, hostname/subdomain, container ports."""
    def view(p: dict):
        st, spec, meta = p.get("status") or {}, p.get("spec") or {}, p["metadata"]
        return (pod_ips(p), pod_ready(p), st.get("phase"), bool(meta.get("deletionTimestamp")),
                spec.get("nodeName"), meta.get("labels"), spec.get("hostname"), spec.get("subdomain"),
                [c.get("ports") for c in spec.get("containers") or []])
    return view(old) != view(new)


class EndpointSliceController(ServiceEndpointsController):
    name = "endpointslice"

    def __init__(self, manager: Manager, max_endpoints: int = MAX_ENDPOINTS):
        super().__init__(manager)
        self.max_endpoints = max_endpoints
        self.writes = 0
        self._written: dict[tuple, int] = {}  # (ns, slice) -> resourceVersion we wrote (-2: deleted)

    def register(self) -> None:
        super().register()
        self.slices = self.mgr.cache("endpointslices")
        self.slices.add_index("service", managed_slice_service)
        self.mgr.subscribe("endpointslices", self.on_slice)

    def on_slice(self, etype: str, obj: dict, old: dict | None) -> None:
        # Someone else changed or deleted one of our slices: put it right. The echo of our own
        # write (the version we wrote, or a delete we made) needs nothing.
        name = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        mine = self._written.pop(name, None)
        if mine is not None and (mine == rv_of(obj) or (etype == "DELETED" and mine == -2)):
            return
        for svc in managed_slice_service(obj):
            ns, _, name = svc.partition("/")
            self.queue.add((ns, name))

    async def sync(self, key) -> None:
        ns, name = key
        svc = self.services.get(ns, name)
        existing = self.slices.by_index("service", f"{ns}/{name}")
        if svc is None or not (svc.get("spec") or {}).get("selector") or \
                svc["metadata"].get("deletionTimestamp"):
            # Service gone or selectorless: our slices go (the garbage collector would also
            # remove them through their owner reference; this is quicker).
            await asyncio.gather(*(self._delete(sl) for sl in existing))
            return
        existing = [sl for sl in existing
                    if any(r.get("uid") == svc["metadata"]["uid"] for r in sl["metadata"].get("ownerReferences") or [])
                    or not sl["metadata"].get("ownerReferences")]
        pods = self.selected_pods(svc)
        desired = desired_endpoints(svc, pods, self.node_map(pods))
        creates, updates, deletes = plan_slices(svc, existing, desired, self.max_endpoints)
        # Creates and updates before deletes: an endpoint moving between slices is never absent.
        await asyncio.gather(*(self._create(sl) for sl in creates), *(self._update(sl) for sl in updates))
        await asyncio.gather(*(self._delete(sl) for sl in deletes))

    def _remember(self, meta: dict, rv: int) -> None:
        if len(self._written) > 50000:  # echoes that overtook our answers are never popped
            self._written.clear()
        self._written[(meta.get("namespace", ""), meta["name"])] = rv

    async def _create(self, sl: dict) -> None:
        out = await self.client.create("discovery.k8s.io/v1", "endpointslices", sl["metadata"]["namespace"], sl)
        self.writes += 1
        self._remember(out["metadata"], rv_of(out))
        self.slices.observe(out)

    async def _update(self, sl: dict) -> None:
        try:
            out = await self.client.update("discovery.k8s.io/v1", "endpointslices", sl["metadata"]["namespace"], sl)
        except ApiStatusError as err:
            if err.code == 404:
                self.slices.observe_deleted(sl)
            raise  # retried with a fresh view
        self.writes += 1
        self._remember(out["metadata"], rv_of(out))
        self.slices.observe(out)

    async def _delete(self, sl: dict) -> None:
        m = sl["metadata"]
        try:
            await self.client.delete("discovery.k8s.io/v1", "endpointslices", m["namespace"], m["name"],
                                     preconditions={"uid": m["uid"]})
        except ApiStatusError as err:
            if err.code not in (404, 409):
                raise
        else:
            self._remember(m, -2)
        self.writes += 1
        self.slices.observe_deleted(sl)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False
