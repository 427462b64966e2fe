"""Garbage collector: objects whose owners are all gone are deleted (background propagation);
the ``orphan`` and ``foregroundDeletion`` finalizers the API server puts on an owner deleted with
propagationPolicy Orphan / Foreground are carried out and then removed; and pods bound to a node
that no longer exists are deleted (kube's pod GC).

Ownership is read from ownerReferences of the resources the manager watches (pods, replica
sets, deployments, services, endpoint slices, nodes). Before deleting anything the collector
confirms with a live GET that the owner is really gone (absent, or present with another uid):
a cache that is merely behind never causes a deletion.
"""
from __future__ import annotations

import logging

from control.client import ApiStatusError
from control.client.client import MERGE_PATCH

from .manager import Controller, Manager, owner_uids

log = logging.getLogger("nodeagent.controllers.gc")

# kind -> (api version, plural, namespaced)
KINDS = {
    "Pod": ("v1", "pods", True), "Service": ("v1", "services", True), "Node": ("v1", "nodes", False),
    "Endpoints": ("v1", "endpoints", True), "Namespace": ("v1", "namespaces", False),
    "ReplicaSet": ("apps/v1", "replicasets", True), "Deployment": ("apps/v1", "deployments", True),
    "EndpointSlice": ("discovery.k8s.io/v1", "endpointslices", True),
    "Lease": ("coordination.k8s.io/v1", "leases", True),
}
WATCHED = ("pods", "replicasets", "deployments", "services", "endpointslices", "nodes")
PLURAL_KIND = {v[1]: k for k, v in KINDS.items()}
ORPHAN, FOREGROUND = "orphan", "foregroundDeletion"


def dangling(refs: list[dict], present: dict[str, bool]) -> tuple[bool, list[dict]]:
    """(delete the dependent?, owner references to keep): delete when every owner is gone;
    otherwise keep only the references to owners that exist. Pure."""
    alive = [r for r in refs if present.get(r.get("uid", ""), True)]
    return (bool(refs) and not alive), alive


class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 2

    def __init__(self, manager: Manager, pod_gc_period: float = 20.0):
        super().__init__(manager)
        self.periodic = pod_gc_period
        self.deleted = 0

    def register(self) -> None:
        self.caches = {}
        for plural in WATCHED:
            c = self.caches[plural] = self.mgr.cache(plural)
            c.add_index("owner", owner_uids)
            self.mgr.subscribe(plural, lambda t, o, old, plural=plural: self.on_event(plural, t, o, old))

    async def started(self) -> None:
        for plural, c in self.caches.items():
            for obj in c.list():
                m = obj["metadata"]
                if m.get("ownerReferences"):
                    self.queue.add(("dep", plural, m.get("namespace", ""), m["name"]))
                if m.get("deletionTimestamp") and set(m.get("finalizers") or []) & {ORPHAN, FOREGROUND}:
                    self.queue.add(("owner", plural, m.get("namespace", ""), m["name"]))

    def on_event(self, plural: str, etype: str, obj: dict, old: dict | None) -> None:
        m = obj["metadata"]
        ns = m.get("namespace", "")
        uid = m.get("uid", "")
        if etype == "DELETED":
            for dplural, c in self.caches.items():
                for dep in c.by_index("owner", uid):
                    self.queue.add(("dep", dplural, dep["metadata"].get("namespace", ""), dep["metadata"]["name"]))
            # a dependent gone may let a foreground deletion finish
            for ref in m.get("ownerReferences") or []:
                kind = KINDS.get(ref.get("kind", ""))
                if kind and kind[1] in self.caches:
                    self.queue.add(("owner", kind[1], ns if kind[2] else "", ref.get("name", "")))
            return
        if m.get("ownerReferences") and (old is None or old["metadata"].get("ownerReferences") != m.get("ownerReferences")):
            self.queue.add(("dep", plural, ns, m["name"]))
        if m.get("deletionTimestamp") and set(m.get("finalizers") or []) & {ORPHAN, FOREGROUND}:
            self.queue.add(("owner", plural, ns, m["name"]))

    # -- owners -------------------------------------------------------------------------------
    async def owner_present(self, ref: dict, namespace: str) -> bool:
        kind = KINDS.get(ref.get("kind", ""))
        if kind is None:
            return True  # a kind we do not serve: never collect on its account
        api_version, plural, namespaced = kind
        uid = ref.get("uid", "")
        c = self.caches.get(plural)
        if c is not None and c.get_uid(uid) is not None:
            return True
        try:
            got = await self.client.get(api_version, plural, namespace if namespaced else "", ref.get("name", ""))
        except ApiStatusError as err:
            if err.code == 404:
                return False
            raise
        return got["metadata"].get("uid") == uid

    async def sync(self, key) -> None:
        if key[0] == "dep":
            await self.sync_dependent(*key[1:])
        else:
            await self.sync_owner(*key[1:])

    async def sync_dependent(self, plural: str, ns: str, name: str) -> None:
        obj = self.caches[plural].get(ns, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs:
            return
        present = {}
        foreground_owner = False
        for ref in refs:
            present[ref.get("uid", "")] = await self.owner_present(ref, ns)
            kind = KINDS.get(ref.get("kind", ""))
            if present[ref.get("uid", "")] and kind and kind[1] in self.caches:
                owner = self.caches[kind[1]].get_uid(ref.get("uid", ""))
                if owner is not None and owner["metadata"].get("deletionTimestamp") and \
                        FOREGROUND in (owner["metadata"].get("finalizers") or []):
                    foreground_owner = True
        delete, keep = dangling(refs, present)
        api_version, _, _ = KINDS[PLURAL_KIND[plural]]
        m = obj["metadata"]
        if delete or foreground_owner:
            policy = "Foreground" if foreground_owner else "Background"
            log.info("deleting %s %s/%s: %s", plural, ns, name,
                     "its owner is being deleted in the foreground" if foreground_owner else "all its owners are gone")
            try:
                await self.client.delete(api_version, plural, ns, name, propagation=policy,
                                         preconditions={"uid": m["uid"]})
                self.deleted += 1
            except ApiStatusError as err:
                if err.code not in (404, 409):
                    raise
            return
        if len(keep) != len(refs):
            patch = {"metadata": {"ownerReferences": keep, "resourceVersion": m["resourceVersion"]}}
            try:
                out = await self.client.patch(api_version, plural, ns, name, patch, content_type=MERGE_PATCH)
                self.caches[plural].observe(out)
            except ApiStatusError as err:
                if err.code not in (404,):
                    raise

    async def sync_owner(self, plural: str, ns: str, name: str) -> None:
        c = self.caches.get(plural)
        obj = c.get(ns, name) if c is not None else None
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        m = obj["metadata"]
        finalizers = list(m.get("finalizers") or [])
        uid = m["uid"]
        deps = [(dp, d) for dp, dc in self.caches.items() for d in dc.by_index("owner", uid)]
        if ORPHAN in finalizers:
            for dp, d in deps:
                dm = d["metadata"]
                keep = [r for r in dm.get("ownerReferences") or [] if r.get("uid") != uid]
                patch = {"metadata": {"ownerReferences": keep or None, "resourceVersion": dm["resourceVersion"]}}
                api_version = KINDS[PLURAL_KIND[dp]][0]
                try:
                    out = await self.client.patch(api_version, dp, dm.get("namespace", ""), dm["name"], patch,
                                                  content_type=MERGE_PATCH)
                    self.caches[dp].observe(out)
                except ApiStatusError as err:
                    if err.code != 404:
                        raise
            finalizers.remove(ORPHAN)
            log.info("orphaned the dependents of %s %s/%s", plural, ns, name)
        elif FOREGROUND in finalizers:
            blocking = [(dp, d) for dp, d in deps if any(r.get("uid") == uid and r.get("blockOwnerDeletion")
                                                         for r in d["metadata"].get("ownerReferences") or [])]
            for dp, d in blocking:
                if not d["metadata"].get("deletionTimestamp"):
                    self.queue.add(("dep", dp, d["metadata"].get("namespace", ""), d["metadata"]["name"]))
            if blocking:
                return  # called again as they go
            finalizers.remove(FOREGROUND)
        else:
            return
        await self._set_finalizers(plural, obj, finalizers)

    async def _set_finalizers(self, plural: str, obj: dict, finalizers: list[str]) -> None:
        m = obj["metadata"]
        api_version = KINDS[PLURAL_KIND[plural]][0]
        patch = {"metadata": {"finalizers": finalizers or None, "resourceVersion": m["resourceVersion"]}}
        try:
            out = await self.client.patch(api_version, plural, m.get("namespace", ""), m["name"], patch,
                                          content_type=MERGE_PATCH)
        except ApiStatusError as err:
            if err.code == 404:
                return
            raise
        if out.get("metadata", {}).get("deletionTimestamp") and out["metadata"].get("finalizers"):
            self.caches[plural].observe(out)
        else:
            self.caches[plural].observe_deleted(obj)

    # -- pod GC -------------------------------------------------------------------------------
    async def tick(self) -> None:
        """Pods bound to a node that does not exist (checked live) are deleted at once."""
        nodes = self.caches["nodes"]
        for pod in self.caches["pods"].list():
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or nodes.get("", node) is not None:
                continue
            try:
                await self.client.get("v1", "nodes", "", node)
                continue
            except ApiStatusError as err:
                if err.code != 404:
                    continue
            m = pod["metadata"]
            log.info("deleting pod %s/%s: its node %s is gone", m["namespace"], m["name"], node)
            try:
                await self.client.delete("v1", "pods", m["namespace"], m["name"], grace_period=0,
                                         preconditions={"uid": m["uid"]})
                self.caches["pods"].observe_deleted(pod)
            except ApiStatusError as err:
                if err.code not in (404, 409):
                    raise
