"""ReplicaSet controller: keeps spec.replicas pods, owns them (ownerReferences with
controller=true), adopts orphans its selector matches, releases pods that stop matching, and
writes status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
observedGeneration) through /status.

Which pods go first when scaling down is kube's ranking (``deletion_rank``): unscheduled before
scheduled, pending before running, not ready before ready, recently ready before long ready,
more restarts before fewer, newer before older.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time

from control.api.selectors import SelectorError, selector_from_dict
from control.client import ApiStatusError
from control.client.client import JSON_PATCH

from .manager import (Controller, Manager, condition, controller_ref, key_of, namespace_of,
                      owner_ref, owner_uids, parse_time, pod_active, pod_available, pod_ready)

log = logging.getLogger("nodeagent.controllers.replicaset")

BURST = 64  # creates/deletes in flight per sync at most (kube's burstReplicas is 500)


def deletion_rank(pod: dict) -> tuple:
    """Sort key: the pods to delete first sort first."""
    spec, st = pod.get("spec") or {}, pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(st.get("phase") or "Pending", 0)
    ready = pod_ready(pod)
    ready_since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime")) or 0.0
    restarts = sum(c.get("restartCount", 0) for c in st.get("containerStatuses") or [])
    created = parse_time(pod["metadata"].get("creationTimestamp")) or 0.0
    return (1 if spec.get("nodeName") else 0, phase_rank, 1 if ready else 0,
            -ready_since if ready else 0.0, -restarts, -created)


def replicaset_status(rs: dict, pods: list[dict], now: float | None = None) -> dict:
    """The status for the RS's active pods."""
    tmpl_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(rs["spec"].get("minReadySeconds") or 0)
    st = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(1 for p in pods if all((p["metadata"].get("labels") or {}).get(k) == v
                                                           for k, v in tmpl_labels.items())),
        "readyReplicas": sum(1 for p in pods if pod_ready(p)),
        "availableReplicas": sum(1 for p in pods if pod_available(p, min_ready, now)),
        "observedGeneration": rs["metadata"].get("generation", 0),
    }
    conds = [c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if conds:
        st["conditions"] = conds
    return st


def pod_from_template(rs: dict) -> dict:
    tmpl = copy.deepcopy(rs["spec"].get("template") or {})
    tmeta = tmpl.get("metadata") or {}
    meta = {"generateName": rs["metadata"]["name"] + "-", "namespace": rs["metadata"].get("namespace", ""),
            "labels": tmeta.get("labels") or {}, "ownerReferences": [owner_ref(rs, "ReplicaSet", "apps/v1")]}
    if tmeta.get("annotations"):
        meta["annotations"] = tmeta["annotations"]
    if tmeta.get("finalizers"):
        meta["finalizers"] = tmeta["finalizers"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tmpl.get("spec") or {}}


class ReplicaSetController(Controller):
    name = "replicaset"
    workers = 4

    def __init__(self, manager: Manager):
        super().__init__(manager)
        self.created = 0
        self.deleted = 0

    def register(self) -> None:
        self.rs = self.mgr.cache("replicasets")
        self.pods = self.mgr.cache("pods")
        self.rs.add_index("namespace", namespace_of)
        self.pods.add_index("namespace", namespace_of)
        self.pods.add_index("owner", owner_uids)
        self.mgr.subscribe("replicasets", self.on_rs)
        self.mgr.subscribe("pods", self.on_pod)

    async def started(self) -> None:
        for rs in self.rs.list():
            self.queue.add(key_of(rs))

    def on_rs(self, etype: str, obj: dict, old: dict | None) -> None:
        self.queue.add(key_of(obj))

    def _enqueue_owner_or_matching(self, pod: dict) -> None:
        ref = controller_ref(pod)
        ns = pod["metadata"].get("namespace", "")
        if ref is not None:
            if ref.get("kind") == "ReplicaSet":
                rs = self.rs.get(ns, ref.get("name", ""))
                if rs is not None and rs["metadata"].get("uid") == ref.get("uid"):
                    self.queue.add(key_of(rs))
            return
        labels = pod["metadata"].get("labels") or {}
        for rs in self.rs.by_index("namespace", ns):
            sel = _selector(rs)
            if sel is not None and not sel.empty and sel.matches(labels):
                self.queue.add(key_of(rs))

    def on_pod(self, etype: str, obj: dict, old: dict | None) -> None:
        self._enqueue_owner_or_matching(obj)
        if old is not None and (controller_ref(old) != controller_ref(obj)
                                or old["metadata"].get("labels") != obj["metadata"].get("labels")):
            self._enqueue_owner_or_matching(old)

    # -- sync ---------------------------------------------------------------------------------
    async def sync(self, key) -> None:
        ns, name = key
        rs = self.rs.get(ns, name)
        if rs is None:
            return
        sel = _selector(rs)
        if sel is None or sel.empty:
            log.warning("replicaset %s/%s has an invalid or empty selector; not managing pods", ns, name)
            return
        uid = rs["metadata"]["uid"]
        deleting = bool(rs["metadata"].get("deletionTimestamp"))
        owned: list[dict] = []
        adopt, release = [], []
        for pod in self.pods.by_index("namespace", ns):
            ref = controller_ref(pod)
            matches = sel.matches(pod["metadata"].get("labels") or {})
            if ref is not None and ref.get("uid") == uid:
                if matches:
                    owned.append(pod)
                elif not pod["metadata"].get("deletionTimestamp"):
                    release.append(pod)
            elif ref is None and matches and not deleting and pod_active(pod):
                adopt.append(pod)
        await asyncio.gather(*(self._release(rs, p) for p in release))
        adopted = await asyncio.gather(*(self._adopt(rs, p) for p in adopt))
        owned.extend(p for p in adopted if p is not None)
        active = [p for p in owned if pod_active(p)]
        if not deleting:
            await self.manage(rs, active)
            active = [p for p in self.pods.by_index("owner", uid)
                      if pod_active(p) and sel.matches(p["metadata"].get("labels") or {})]
        await self.write_status(rs, active)
        # Pods that are ready but not yet available: look again when they will be.
        min_ready = int(rs["spec"].get("minReadySeconds") or 0)
        if min_ready > 0:
            now = time.time()
            waits = [parse_time((condition(p, "Ready") or {}).get("lastTransitionTime") or "") for p in active
                     if pod_ready(p) and not pod_available(p, min_ready, now)]
            waits = [w + min_ready - now for w in waits if w is not None]
            if waits:
                self.queue.add_after(key, max(min(waits), 0.05) + 0.05)

    async def manage(self, rs: dict, active: list[dict]) -> None:
        want = int(rs["spec"].get("replicas", 1))
        diff = len(active) - want
        if diff < 0:
            await self._create_pods(rs, -diff)
        elif diff > 0:
            victims = sorted(active, key=deletion_rank)[:diff]
            await self._bounded(self._delete_pod(p) for p in victims)

    async def _bounded(self, coros) -> list:
        sem = asyncio.Semaphore(BURST)

        async def one(c):
            async with sem:
                return await c
        return await asyncio.gather(*(one(c) for c in coros))

    async def _create_pods(self, rs: dict, n: int) -> None:
        """Slow start as kube does: batches of 1, 2, 4... stop at the first failure (a quota or a
        terminating namespace fails every create; no need to send all of them)."""
        ns = rs["metadata"].get("namespace", "")
        body = pod_from_template(rs)
        done, batch = 0, 1
        while done < n:
            size = min(batch, n - done, BURST)
            results = await asyncio.gather(*(self.client.create("v1", "pods", ns, copy.deepcopy(body))
                                             for _ in range(size)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            for r in results:
                if not isinstance(r, BaseException):
                    self.pods.observe(r)
                    self.created += 1
            done += size
            if errors:
                raise errors[0]
            batch *= 2

    async def _delete_pod(self, pod: dict) -> None:
        m = pod["metadata"]
        try:
            out = await self.client.delete("v1", "pods", m["namespace"], m["name"], preconditions={"uid": m["uid"]})
        except ApiStatusError as err:
            if err.code == 404:
                self.pods.observe_deleted(pod)
                return
            raise
        self.deleted += 1
        if out.get("metadata", {}).get("deletionTimestamp") and out.get("kind") == "Pod":
            self.pods.observe(out)  # graceful: the node agent finishes it
        else:
            self.pods.observe_deleted(pod)

    async def _adopt(self, rs: dict, pod: dict) -> dict | None:
        m = pod["metadata"]
        refs = list(m.get("ownerReferences") or []) + [owner_ref(rs, "ReplicaSet", "apps/v1")]
        patch = [{"op": "test", "path": "/metadata/uid", "value": m["uid"]},
                 {"op": "test", "path": "/metadata/resourceVersion", "value": m["resourceVersion"]},
                 {"op": "add", "path": "/metadata/ownerReferences", "value": refs}]
        try:
            out = await self.client.patch("v1", "pods", m["namespace"], m["name"], patch, content_type=JSON_PATCH)
        except ApiStatusError as err:
            if err.code in (404, 409, 422):
                return None  # changed meanwhile: the next sync decides again
            raise
        self.pods.observe(out)
        return out

    async def _release(self, rs: dict, pod: dict) -> None:
        m = pod["metadata"]
        refs = [r for r in m.get("ownerReferences") or [] if r.get("uid") != rs["metadata"]["uid"]]
        patch = [{"op": "test", "path": "/metadata/uid", "value": m["uid"]},
                 {"op": "test", "path": "/metadata/resourceVersion", "value": m["resourceVersion"]},
                 {"op": "replace" if "ownerReferences" in m else "add", "path": "/metadata/ownerReferences",
                  "value": refs}]
        try:
            out = await self.client.patch("v1", "pods", m["namespace"], m["name"], patch, content_type=JSON_PATCH)
        except ApiStatusError as err:
            if err.code in (404, 409, 422):
                return
            raise
        self.pods.observe(out)

    async def write_status(self, rs: dict, active: list[dict]) -> None:
        status = replicaset_status(rs, active)
        cur = rs.get("status") or {}
        if all(cur.get(k, 0 if k != "conditions" else None) == v for k, v in status.items()) and \
                ("conditions" in status) == ("conditions" in cur):
            return
        new = {**rs, "status": status}
        try:
            out = await self.client.update("apps/v1", "replicasets", rs["metadata"]["namespace"], new, sub="status")
        except ApiStatusError as err:
            if err.code == 404:
                return
            if err.code == 409:
                self.rs.observe(await self.client.get("apps/v1", "replicasets", rs["metadata"]["namespace"],
                                                      rs["metadata"]["name"]))
            raise
        self.rs.observe(out)


def _selector(obj: dict):
    try:
        return selector_from_dict((obj.get("spec") or {}).get("selector"), null_matches_nothing=True)
    except SelectorError:
        return None
