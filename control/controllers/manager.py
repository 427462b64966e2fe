"""Shared informers, write-through caches, and the controller base class.

One informer per resource, whatever the number of controllers that read it; each event first
updates that resource's ``ObjectCache`` and then goes to every subscribed handler, which only
enqueues keys (no I/O in handlers).

Read-your-writes: a controller that creates, updates or deletes an object records the API's
answer in the cache at once (``observe`` / ``observe_deleted``), so its next sync sees its own
write even when the watch has not delivered it yet. This replaces client-go's "expectations"
(a ReplicaSet will not create a second batch of pods because the first is still on the wire).
A watch event older than what the cache holds (a lower resourceVersion: this API server's
versions are one rising integer, like etcd revisions) updates nothing, and events about objects
we deleted are ignored, so the cache never steps back.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

import httpx

from control.client import ApiClient, ApiStatusError, Informer

from .workqueue import WorkQueue

log = logging.getLogger("nodeagent.controllers")

Key = tuple[str, str]
Handler = Callable[[str, dict, dict | None], None]


# -- small helpers shared by the controllers ------------------------------------------------------
def key_of(obj: dict) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def rv_of(obj: dict | None) -> int:
    rv = ((obj or {}).get("metadata") or {}).get("resourceVersion") or ""
    return int(rv) if rv.isdigit() else -1


def controller_ref(obj: dict) -> dict | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_ref(owner: dict, kind: str, api_version: str) -> dict:
    m = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": m["name"], "uid": m["uid"],
            "controller": True, "blockOwnerDeletion": True}


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 timestamp (with or without fractional seconds) as epoch seconds."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def condition(obj: dict, ctype: str) -> dict | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def pod_ready(pod: dict) -> bool:
    c = condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def pod_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_active(pod: dict) -> bool:
    """Counts towards a ReplicaSet: not finished and not being deleted (FilterActivePods)."""
    return not pod_terminal(pod) and not pod["metadata"].get("deletionTimestamp")


def pod_available(pod: dict, min_ready_seconds: int, now: float | None = None) -> bool:
    if not pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= (now or time.time())


def node_ready_status(node: dict) -> str:
    """The node's Ready condition status: "True", "False", "Unknown" or "" when missing."""
    c = condition(node, "Ready")
    return (c or {}).get("status") or ""


# -- the cache ------------------------------------------------------------------------------------
class ObjectCache:
    """Objects of one resource by (namespace, name), with secondary indexes."""

    def __init__(self, plural: str):
        self.plural = plural
        self.objs: dict[Key, dict] = {}
        self._indexers: dict[str, Callable[[dict], Iterable[str]]] = {}
        self._index: dict[str, dict[str, set[Key]]] = {}
        self._deleted: dict[str, float] = {}  # uid -> when we deleted it
        self.by_uid: dict[str, Key] = {}

    def add_index(self, name: str, fn: Callable[[dict], Iterable[str]]) -> None:
        if name in self._indexers:
            return
        self._indexers[name] = fn
        idx: dict[str, set[Key]] = {}
        for k, obj in self.objs.items():
            for v in fn(obj):
                idx.setdefault(v, set()).add(k)
        self._index[name] = idx

    def get(self, namespace: str, name: str) -> dict | None:
        return self.objs.get((namespace, name))

    def get_uid(self, uid: str) -> dict | None:
        k = self.by_uid.get(uid)
        return self.objs.get(k) if k else None

    def list(self) -> list[dict]:
        return list(self.objs.values())

    def by_index(self, name: str, value: str) -> list[dict]:
        return [self.objs[k] for k in self._index[name].get(value, ()) if k in self.objs]

    def index_keys(self, name: str, value: str) -> set[Key]:
        return set(self._index[name].get(value, ()))

    def _unindex(self, k: Key, obj: dict) -> None:
        for name, fn in self._indexers.items():
            idx = self._index[name]
            for v in fn(obj):
                s = idx.get(v)
                if s is not None:
                    s.discard(k)
                    if not s:
                        del idx[v]
        uid = obj["metadata"].get("uid")
        if uid and self.by_uid.get(uid) == k:
            del self.by_uid[uid]

    def _put(self, obj: dict) -> None:
        k = key_of(obj)
        old = self.objs.get(k)
        if old is not None:
            self._unindex(k, old)
        self.objs[k] = obj
        for name, fn in self._indexers.items():
            idx = self._index[name]
            for v in fn(obj):
                idx.setdefault(v, set()).add(k)
        uid = obj["metadata"].get("uid")
        if uid:
            self.by_uid[uid] = k

    def _drop(self, k: Key) -> dict | None:
        old = self.objs.pop(k, None)
        if old is not None:
            self._unindex(k, old)
        return old

    def apply_event(self, etype: str, obj: dict) -> None:
        k = key_of(obj)
        uid = obj["metadata"].get("uid", "")
        if etype == "DELETED":
            if uid:
                self._tombstone(uid)  # a late answer to one of our writes must not revive it
            cur = self.objs.get(k)
            if cur is None or cur["metadata"].get("uid") == uid or not uid:
                self._drop(k)
            return
        if uid and uid in self._deleted:
            return
        cur = self.objs.get(k)
        if cur is not None and cur["metadata"].get("uid") == uid and rv_of(obj) < rv_of(cur):
            return  # older than what we already have (our own write, seen before its event)
        self._put(obj)

    def observe(self, obj: dict) -> None:
        """The API's answer to our own create/update/patch."""
        self.apply_event("MODIFIED", obj)

    def observe_deleted(self, obj: dict) -> None:
        uid = obj["metadata"].get("uid", "")
        if uid:
            self._tombstone(uid)
        cur = self.objs.get(key_of(obj))
        if cur is not None and (not uid or cur["metadata"].get("uid") == uid):
            self._drop(key_of(obj))

    def _tombstone(self, uid: str) -> None:
        self._deleted[uid] = time.monotonic()
        if len(self._deleted) > 20000:
            cutoff = time.monotonic() - 300
            self._deleted = {u: t for u, t in self._deleted.items() if t > cutoff}

    def reset(self) -> None:
        for k in list(self.objs):
            self._drop(k)


# -- the manager ----------------------------------------------------------------------------------
RESOURCES = {  # plural -> api version
    "pods": "v1", "services": "v1", "endpoints": "v1", "nodes": "v1", "leases": "coordination.k8s.io/v1",
    "endpointslices": "discovery.k8s.io/v1", "replicasets": "apps/v1", "deployments": "apps/v1",
}


@dataclass
class Source:
    informer: Informer
    cache: ObjectCache
    handlers: list[Handler]


class Manager:
    """``client`` does the controllers' reads and writes; ``watch_client`` (default: the same)
    carries the informers' lists and long watches. Two clients keep the writes' connection pool
    small: httpcore scans every pooled connection on each request, and each open watch holds one."""

    def __init__(self, client: ApiClient, *, node_lease_namespace: str = "kube-node-lease",
                 watch_client: ApiClient | None = None):
        self.client = client
        self.watch_client = watch_client or client
        self.node_lease_namespace = node_lease_namespace
        self.sources: dict[str, Source] = {}

    def cache(self, plural: str) -> ObjectCache:
        return self._source(plural).cache

    def _source(self, plural: str) -> Source:
        src = self.sources.get(plural)
        if src is None:
            cache = ObjectCache(plural)
            handlers: list[Handler] = []

            def fan_out(etype: str, obj: dict, old: dict | None, cache=cache, handlers=handlers) -> None:
                cache.apply_event(etype, obj)
                for h in handlers:
                    try:
                        h(etype, obj, old)
                    except Exception:
                        log.exception("%s handler failed", plural)
            ns = self.node_lease_namespace if plural == "leases" else ""
            inf = Informer(self.watch_client, RESOURCES[plural], plural, namespace=ns, handler=fan_out)
            src = self.sources[plural] = Source(inf, cache, handlers)
        return src

    def subscribe(self, plural: str, handler: Handler) -> None:
        self._source(plural).handlers.append(handler)

    def synced(self, plural: str) -> bool:
        return self._source(plural).informer.synced.is_set()

    async def run(self, controllers: list["Controller"]) -> None:
        for c in controllers:
            c.register()
        tasks = [asyncio.create_task(s.informer.run(), name=f"informer-{p}") for p, s in self.sources.items()]
        try:
            await asyncio.gather(*(s.informer.synced.wait() for s in self.sources.values()))
            log.info("caches synced: %s", ", ".join(f"{p} {len(s.cache.objs)}" for p, s in self.sources.items()))
            for c in controllers:
                tasks.extend(c.start())
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for c in controllers:
                c.queue.close()


class Controller:
    """A controller: handlers that enqueue keys, and workers that run ``sync(key)``. A sync that
    raises is retried after a per-key backoff; one that returns is forgotten."""

    name = "controller"
    workers = 1
    periodic = 0.0  # seconds between calls of ``tick`` (0: none)

    def __init__(self, manager: Manager):
        self.mgr = manager
        self.client = manager.client
        self.queue = WorkQueue()
        self.syncs = 0

    def register(self) -> None:  # subscribe to the resources it reads
        raise NotImplementedError

    async def sync(self, key) -> None:
        raise NotImplementedError

    async def tick(self) -> None:
        pass

    def start(self) -> list[asyncio.Task]:
        tasks = [asyncio.create_task(self._worker(), name=f"{self.name}-{i}") for i in range(self.workers)]
        if self.periodic:
            tasks.append(asyncio.create_task(self._ticker(), name=f"{self.name}-tick"))
        tasks.append(asyncio.create_task(self.started(), name=f"{self.name}-start"))
        return tasks

    async def started(self) -> None:
        """Called once the caches are synced; by default enqueues nothing."""

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.sync(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except (ApiStatusError, httpx.HTTPError, OSError) as err:
                n = self.queue.failures(key)
                (log.warning if n >= 3 else log.info)("%s: sync of %s failed (%s); retrying", self.name, key, err)
                self.queue.add_rate_limited(key)
            except Exception:
                log.exception("%s: sync of %s failed", self.name, key)
                self.queue.add_rate_limited(key)
            finally:
                self.syncs += 1
                self.queue.done(key)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.periodic)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: periodic check failed", self.name)


def label_pairs(obj: dict) -> list[str]:
    """Index values "<ns>/<key>=<value>" for each label of the object."""
    meta = obj["metadata"]
    ns = meta.get("namespace", "")
    return [f"{ns}/{k}={v}" for k, v in (meta.get("labels") or {}).items()]


def namespace_of(obj: dict) -> list[str]:
    return [obj["metadata"].get("namespace", "")]


def node_of(obj: dict) -> list[str]:
    n = (obj.get("spec") or {}).get("nodeName")
    return [n] if n else []


def owner_uids(obj: dict) -> list[str]:
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid")]


def service_selector_pair(svc: dict) -> list[str]:
    """A Service is indexed under one of its selector's pairs (the smallest key): any pod it
    selects carries that pair, so looking up a pod's own pairs finds every candidate Service."""
    sel = (svc.get("spec") or {}).get("selector") or {}
    if not sel:
        return []
    k = min(sel)
    return [f"{svc['metadata'].get('namespace', '')}/{k}={sel[k]}"]


def selects(selector: dict, labels: dict | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def services_for_pod(services: ObjectCache, pod: dict) -> list[dict]:
    """Services whose selector matches the pod's labels (uses the selector-pair index)."""
    out, seen = [], set()
    for pair in label_pairs(pod):
        for svc in services.by_index("selector", pair):
            k = key_of(svc)
            if k in seen:
                continue
            seen.add(k)
            if selects(svc["spec"]["selector"], pod["metadata"].get("labels")):
                out.append(svc)
    return out


def pods_for_selector(pods: ObjectCache, namespace: str, selector: dict) -> list[dict]:
    """Pods in the namespace matching a map selector (a Service's), via the label-pair index."""
    if not selector:
        return []
    k = min(selector)
    return [p for p in pods.by_index("labels", f"{namespace}/{k}={selector[k]}")
            if selects(selector, p["metadata"].get("labels"))]
