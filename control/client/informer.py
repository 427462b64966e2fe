"""An informer: list once, then watch from the list's resourceVersion, keeping a local cache and
telling a handler about every change. When the stream ends or the API server goes away it
re-watches from the last resourceVersion it saw (no relist while the history still holds it,
so a restart of the API server costs nothing); a 410 Expired means relist, and the relist is
diffed against the cache so the handler still sees exactly the changes.

Handlers must be quick and must not block: like kube-proxy's event handlers, they should only
record what changed and let a sync loop do the work.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Callable

import httpx

from .client import ApiClient, ApiStatusError, api_path

log = logging.getLogger("nodeagent.informer")

Handler = Callable[[str, dict, dict | None], None]  # (event type, object, old object or None)


def key_of(obj: dict) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


class Informer:
    def __init__(self, client: ApiClient, api_version: str, plural: str, *, namespace: str = "",
                 label_selector: str = "", field_selector: str = "", handler: Handler | None = None,
                 watch_timeout: int = 300, backoff_max: float = 5.0):
        self.client = client
        self.api_version, self.plural, self.namespace = api_version, plural, namespace
        self.params = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        self.handler = handler
        self.cache: dict[tuple[str, str], dict] = {}
        self.resource_version = ""
        self.synced = asyncio.Event()
        self.watch_timeout = watch_timeout
        self.backoff_max = backoff_max
        self.relists = 0

    @property
    def path(self) -> str:
        return api_path(self.api_version, self.plural, self.namespace)

    def get(self, namespace: str, name: str) -> dict | None:
        return self.cache.get((namespace, name))

    def items(self) -> list[dict]:
        return list(self.cache.values())

    def _emit(self, etype: str, obj: dict, old: dict | None) -> None:
        if self.handler:
            try:
                self.handler(etype, obj, old)
            except Exception:
                log.exception("%s handler failed on %s %s", self.plural, etype, key_of(obj))

    async def relist(self) -> None:
        body = await self.client.request("GET", self.path, params=self.params or None)
        self.relists += 1
        fresh = {key_of(o): o for o in body.get("items", [])}
        for k, old in list(self.cache.items()):
            if k not in fresh:
                del self.cache[k]
                self._emit("DELETED", old, old)
        for k, obj in fresh.items():
            old = self.cache.get(k)
            self.cache[k] = obj
            if old is None:
                self._emit("ADDED", obj, None)
            elif old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._emit("MODIFIED", obj, old)
        self.resource_version = body["metadata"]["resourceVersion"]
        self.synced.set()

    def _apply(self, ev: dict) -> bool:
        """Apply one watch event; False when the watch must start over with a relist."""
        etype, obj = ev["type"], ev["object"]
        if etype == "ERROR":
            if obj.get("code") == 410:
                return False
            raise ApiStatusError(obj.get("code", 500), obj)
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if etype == "BOOKMARK":
            return True
        k = key_of(obj)
        old = self.cache.get(k)
        if etype == "DELETED":
            self.cache.pop(k, None)
            self._emit("DELETED", obj, old)
        else:
            self.cache[k] = obj
            self._emit("ADDED" if old is None else "MODIFIED", obj, old)
        return True

    async def run(self) -> None:
        """Forever: list (unless already synced), then watch and re-watch."""
        backoff = 0.1
        need_list = not self.synced.is_set()
        while True:
            try:
                if need_list:
                    await self.relist()
                    need_list = False
                params = {**self.params, "resourceVersion": self.resource_version,
                          "allowWatchBookmarks": "true", "timeoutSeconds": str(self.watch_timeout)}
                async for ev in self.client.watch_lines(self.path, params):
                    backoff = 0.1
                    if not self._apply(ev):
                        need_list = True
                        break
            except asyncio.CancelledError:
                raise
            except ApiStatusError as err:
                log.warning("%s watch: %s", self.plural, err)
                need_list = need_list or err.code == 410
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
            except (httpx.HTTPError, OSError) as err:
                log.info("%s watch interrupted (%s); resuming from %s", self.plural,
                         type(err).__name__, self.resource_version or "a fresh list")
                self.client.fail_over()
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.backoff_max)
