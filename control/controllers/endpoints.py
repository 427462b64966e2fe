"""Endpoints controller: the older core/v1 Endpoints object (one per Service with a selector),
for tools that still read it (kubectl describe svc, older proxies). Same pod rules as the
EndpointSlice controller, in Endpoints' shape: subsets grouped by identical port sets, ready
addresses in ``addresses`` and the others in ``notReadyAddresses``; terminating pods are left
out unless ``publishNotReadyAddresses``. Written only when the content changed; deleted with
its Service. Endpoints of services without a selector belong to their users and are never
touched."""
from __future__ import annotations

import logging

from control.client import ApiStatusError

from .endpointslice import (ServiceEndpointsController, endpoint_ports, include_pod, make_endpoint,
                            pod_ips)
from .manager import rv_of

log = logging.getLogger("nodeagent.controllers.endpoints")

SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"


def desired_subsets(svc: dict, pods: list[dict], nodes: dict[str, dict]) -> list[dict]:
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    by_ports: dict[tuple, dict[str, list]] = {}
    for pod in pods:
        if not include_pod(pod, include_terminating=publish):
            continue
        ports = endpoint_ports(svc, pod)
        node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        ip = pod_ips(pod)[0]
        ep = make_endpoint(svc, pod, ip, node)
        addr = {"ip": ip}
        for k in ("hostname", "nodeName"):
            if ep.get(k):
                addr[k] = ep[k]
        addr["targetRef"] = ep["targetRef"]
        group = by_ports.setdefault(ports, {"addresses": [], "notReadyAddresses": []})
        group["addresses" if ep["conditions"]["ready"] else "notReadyAddresses"].append(addr)
    out = []
    for ports in sorted(by_ports, key=repr):
        g = by_ports[ports]
        subset: dict = {}
        for k in ("addresses", "notReadyAddresses"):
            if g[k]:
                subset[k] = sorted(g[k], key=lambda a: (a["ip"], a["targetRef"]["name"]))
        if ports:
            subset["ports"] = [{"name": n, "port": p, "protocol": proto, **({"appProtocol": a} if a else {})}
                               if n else {"port": p, "protocol": proto, **({"appProtocol": a} if a else {})}
                               for n, p, proto, a in ports]
        out.append(subset)
    return out


class EndpointsController(ServiceEndpointsController):
    name = "endpoints"

    def register(self) -> None:
        super().register()
        self._written: dict = {}
        self.endpoints = self.mgr.cache("endpoints")
        self.mgr.subscribe("endpoints", self.on_endpoints)

    def on_endpoints(self, etype: str, obj: dict, old: dict | None) -> None:
        m = obj["metadata"]
        mine = self._written.pop((m.get("namespace", ""), m["name"]), None)
        if mine is not None and mine == rv_of(obj) and etype != "DELETED":
            return  # the echo of our own write
        if self.services.get(m.get("namespace", ""), m["name"]) is not None:
            self.queue.add((m.get("namespace", ""), m["name"]))

    async def sync(self, key) -> None:
        ns, name = key
        svc = self.services.get(ns, name)
        cur = self.endpoints.get(ns, name)
        if svc is None:
            if cur is not None and (cur["metadata"].get("labels") or {}).get(SKIP_MIRROR) == "true":
                try:
                    await self.client.delete("v1", "endpoints", ns, name,
                                             preconditions={"uid": cur["metadata"]["uid"]})
                except ApiStatusError as err:
                    if err.code not in (404, 409):
                        raise
                self.endpoints.observe_deleted(cur)
            return
        if not (svc.get("spec") or {}).get("selector"):
            return
        pods = self.selected_pods(svc)
        subsets = desired_subsets(svc, pods, self.node_map(pods))
        labels = dict(svc["metadata"].get("labels") or {})
        labels[SKIP_MIRROR] = "true"
        if cur is None:
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns, "labels": labels}, "subsets": subsets}
            try:
                out = await self.client.create("v1", "endpoints", ns, body)
            except ApiStatusError as err:
                if err.code == 409:  # created meanwhile (by us, earlier, or a user): look again
                    self.endpoints.observe(await self.client.get("v1", "endpoints", ns, name))
                raise
            self.endpoints.observe(out)
            self._remember(key, rv_of(out))
            return
        if (cur.get("subsets") or []) == subsets and (cur["metadata"].get("labels") or {}) == labels:
            return
        new = {**cur, "metadata": {**cur["metadata"], "labels": labels}, "subsets": subsets}
        try:
            out = await self.client.update("v1", "endpoints", ns, new)
        except ApiStatusError as err:
            if err.code == 404:
                self.endpoints.observe_deleted(cur)
            raise
        self.endpoints.observe(out)
        self._remember(key, rv_of(out))

    def _remember(self, key, rv: int) -> None:
        if len(self._written) > 50000:
            self._written.clear()
        self._written[key] = rv
