"""The scheduler's view of the cluster: nodes with the pods on them, including *assumed* pods.

A pod is assumed on its node the moment the scheduler picks the node, before the binding
request even leaves: the next pod is filtered against a node that already counts it, so two
pods cannot both take the last room on a node while the watch catches up. The watch later
shows the pod bound (it then replaces the assumed copy); a failed binding forgets it; an
assumed pod the watch never confirms expires after ``assume_ttl`` seconds.

Spreading groups: each placed pod carries the keys of the groups it spreads with, "o:<uid of
its controller>" and "s:<ns>/<service>" for each Service selecting it, and every NodeInfo
counts them (``NodeInfo.groups``), so spreading costs one dict lookup per node.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterator

from control.api.selectors import SelectorError, selector_from_map

from .nodeinfo import NodeInfo, PodInfo

log = logging.getLogger("nodeagent.scheduler")


class Cache:
    def __init__(self, assume_ttl: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.nodes: dict[str, NodeInfo] = {}
        self.node_list: list[NodeInfo] = []      # nodes that exist as objects, in a stable order
        self.pods: dict[str, PodInfo] = {}       # uid -> placed pod (bound or assumed)
        self.assumed: dict[str, float | None] = {}  # uid -> expiry (None while binding)
        self.static_gen = 0                      # bumped when a node's static properties change
        self.with_anti: set[str] = set()         # placed pods with required anti-affinity
        self.with_affinity: set[str] = set()     # placed pods with preferred (anti-)affinity
        self.services: dict[tuple[str, str], dict] = {}
        self._svc_index: dict[tuple[str, str, str], set[str]] = {}
        self.assume_ttl = assume_ttl
        self.clock = clock

    # -- nodes ------------------------------------------------------------------------------
    def _rebuild_list(self) -> None:
        self.node_list = [n for n in self.nodes.values() if n.node is not None]
        self.static_gen += 1

    def set_node(self, obj: dict) -> bool:
        """Add or update a node; True when something filters look at changed."""
        name = obj["metadata"]["name"]
        ni = self.nodes.get(name)
        if ni is None:
            self.nodes[name] = NodeInfo(name, obj)
            self._rebuild_list()
            return True
        before = (ni.static_fingerprint, ni.alloc_cpu, ni.alloc_mem, ni.alloc_pods, ni.alloc_scalars)
        existed = ni.node is not None
        ni.set_node(obj)
        if not existed:
            self._rebuild_list()
            return True
        if ni.static_fingerprint != before[0]:
            self.static_gen += 1
            return True
        return before[1:] != (ni.alloc_cpu, ni.alloc_mem, ni.alloc_pods, ni.alloc_scalars)

    def remove_node(self, name: str) -> None:
        ni = self.nodes.get(name)
        if ni is None:
            return
        if ni.pods:
            ni.set_node(None)  # keep the pods' accounting until they go (kube does the same)
            ni.node = None
        else:
            del self.nodes[name]
        self._rebuild_list()

    # -- pods -------------------------------------------------------------------------------
    def _place(self, p: PodInfo, node_name: str) -> None:
        ni = self.nodes.get(node_name)
        if ni is None:
            ni = self.nodes[node_name] = NodeInfo(node_name, None)
        p.node_name = node_name
        p.groups = self.groups_for(p)
        ni.add_pod(p)
        self.pods[p.uid] = p
        if p.anti_required:
            self.with_anti.add(p.uid)
        if p.affinity_preferred or p.anti_preferred:
            self.with_affinity.add(p.uid)

    def _unplace(self, uid: str) -> PodInfo | None:
        p = self.pods.pop(uid, None)
        if p is None:
            return None
        ni = self.nodes.get(p.node_name)
        if ni is not None:
            ni.remove_pod(p)
            if ni.node is None and not ni.pods:
                del self.nodes[p.node_name]
        self.with_anti.discard(uid)
        self.with_affinity.discard(uid)
        return p

    def add_pod(self, obj: dict) -> PodInfo:
        """A pod the API reports bound (ADDED or MODIFIED): replaces an assumed copy."""
        p = PodInfo(obj)
        self.assumed.pop(p.uid, None)
        self._unplace(p.uid)
        self._place(p, p.node_name)
        return p

    def remove_pod(self, uid: str) -> PodInfo | None:
        self.assumed.pop(uid, None)
        return self._unplace(uid)

    def is_assumed(self, uid: str) -> bool:
        return uid in self.assumed

    def assume(self, p: PodInfo, node_name: str) -> None:
        self._unplace(p.uid)
        self._place(p, node_name)
        self.assumed[p.uid] = None

    def finish_binding(self, uid: str) -> None:
        if uid in self.assumed:
            self.assumed[uid] = self.clock() + self.assume_ttl

    def forget(self, uid: str) -> None:
        if uid in self.assumed:
            del self.assumed[uid]
            self._unplace(uid)

    def cleanup_expired(self) -> list[str]:
        now = self.clock()
        gone = [uid for uid, exp in self.assumed.items() if exp is not None and exp < now]
        for uid in gone:
            p = self.pods.get(uid)
            log.warning("assumed pod %s expired: the watch never showed it bound", p.key if p else uid)
            self.forget(uid)
        return gone

    def placed(self) -> Iterator[tuple[PodInfo, NodeInfo]]:
        for ni in self.nodes.values():
            for p in ni.pods.values():
                yield p, ni

    def placed_subset(self, uids: set[str]) -> Iterator[tuple[PodInfo, NodeInfo]]:
        for uid in list(uids):
            p = self.pods.get(uid)
            if p is not None and p.node_name in self.nodes:
                yield p, self.nodes[p.node_name]

    # -- services (spreading groups) --------------------------------------------------------
    def groups_for(self, p: PodInfo) -> tuple[str, ...]:
        out = [f"o:{p.owner_uid}"] if p.owner_uid else []
        if self.services and p.labels:
            seen: set[str] = set()
            ns = p.namespace
            for k, v in p.labels.items():
                for name in self._svc_index.get((ns, k, v), ()):
                    if name in seen:
                        continue
                    seen.add(name)
                    sel = self.services[(ns, name)]
                    if all(p.labels.get(sk) == sv for sk, sv in sel.items()):
                        out.append(f"s:{ns}/{name}")
        return tuple(out)

    def set_service(self, obj: dict) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        sel = (obj.get("spec") or {}).get("selector") or {}
        if self.services.get(key) == sel and (sel or key not in self.services):
            return
        self._drop_service(key)
        if sel:
            try:
                selector_from_map(sel)
            except SelectorError:
                return
            self.services[key] = dict(sel)
            k0 = min(sel)
            self._svc_index.setdefault((key[0], k0, sel[k0]), set()).add(key[1])
        self._regroup(key[0])

    def remove_service(self, obj: dict) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if key in self.services:
            self._drop_service(key)
            self._regroup(key[0])

    def _drop_service(self, key: tuple[str, str]) -> None:
        sel = self.services.pop(key, None)
        if sel:
            k0 = min(sel)
            names = self._svc_index.get((key[0], k0, sel[k0]))
            if names:
                names.discard(key[1])
                if not names:
                    del self._svc_index[(key[0], k0, sel[k0])]

    def _regroup(self, namespace: str) -> None:
        for p in [p for p in self.pods.values() if p.namespace == namespace]:
            groups = self.groups_for(p)
            if groups != p.groups:
                ni = self.nodes[p.node_name]
                ni.remove_pod(p)
                p.groups = groups
                ni.add_pod(p)
