"""Watch streams: chunked JSON lines of {"type", "object"}, as kube-apiserver writes them.

Plain JSON events are spliced from the stored bytes without decoding them; a selector decodes
each object once (the decoded object is shared by every watcher of that event)."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import orjson

from ..store import DELETED, MODIFIED, Expired, Record, Store
from ..store.watchhub import Closed
from . import tables
from .errors import ApiError
from .resources import Resource
from .selectors import FieldSelector, LabelSelector


class WatchRequest:
    def __init__(self, res: Resource, ns: str, *, rv: int | None, labels: LabelSelector | None,
                 fields: FieldSelector | None, table: bool, include_object: str, timeout: float,
                 bookmarks: bool, bookmark_interval: float, initial: list[Record] | None,
                 initial_end_bookmark: bool):
        self.res, self.ns = res, ns
        self.rv = rv
        self.labels, self.fields = labels, fields
        self.table, self.include_object = table, include_object
        self.timeout = timeout
        self.bookmarks, self.bookmark_interval = bookmarks, bookmark_interval
        self.initial = initial
        self.initial_end_bookmark = initial_end_bookmark
        self._headers_sent = False

    def _selects(self, rec: Record) -> bool:
        if self.labels is not None and not self.labels.empty:
            if not self.labels.matches((rec.obj.get("metadata") or {}).get("labels")):
                return False
        return self.fields is None or self.fields.matches(rec.obj)

    @property
    def filtering(self) -> bool:
        return bool((self.labels and not self.labels.empty) or (self.fields and self.fields.requirements))

    def line(self, etype: str, rec: Record) -> bytes:
        if self.table:
            t = tables.render_watch_table(self.res.plural, rec.obj, self.include_object,
                                          include_headers=not self._headers_sent)
            self._headers_sent = True
            return orjson.dumps({"type": etype, "object": t}) + b"\n"
        return b'{"type":"' + etype.encode() + b'","object":' + rec.value + b"}\n"

    def bookmark(self, rev: int, initial_end: bool = False) -> bytes:
        meta: dict = {"resourceVersion": str(rev)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return orjson.dumps({"type": "BOOKMARK", "object": {
            "kind": self.res.kind, "apiVersion": self.res.api_version, "metadata": meta}}) + b"\n"

    def translate(self, etype: str, rec: Record, prev: Record | None) -> str | None:
        """Which event this watcher sees: an object that enters a selector's set is ADDED to
        it, one that leaves is DELETED from it (as kube-apiserver's watch cache does)."""
        if not self.filtering:
            return etype
        now = self._selects(rec)
        if etype != MODIFIED or prev is None:
            return etype if now else None
        before = self._selects(prev)
        if now and before:
            return MODIFIED
        if now:
            return "ADDED"
        return DELETED if before else None

    async def stream(self, store: Store) -> AsyncIterator[bytes]:
        start = time.monotonic()
        deadline = start + self.timeout
        if self.initial is not None:
            for rec in self.initial:
                yield self.line("ADDED", rec)
            if self.initial_end_bookmark:
                yield self.bookmark(self.rv or store.revision(), initial_end=True)
        try:
            w = store.watch(self.res.prefix(self.ns), self.rv or store.revision())
        except Expired as err:
            status = ApiError(410, "Expired", str(err)).status()
            yield orjson.dumps({"type": "ERROR", "object": status}) + b"\n"
            return
        loop = asyncio.get_running_loop()
        # Timers, not per-event timeouts: the stream's end closes the watch, and each bookmark
        # interval ticks it once (a tick makes next() return None).
        end = loop.call_at(loop.time() + max(deadline - time.monotonic(), 0), w.close)
        ticker: list[asyncio.TimerHandle] = []

        def arm() -> None:
            ticker[:] = [loop.call_later(self.bookmark_interval, w.tick)]

        if self.bookmarks:
            arm()
        try:
            while True:
                try:
                    ev = await w.next()
                except Closed:
                    return
                if ev is None:
                    if self.bookmarks:
                        # Our queue is drained, so every event up to the store's revision for
                        # this prefix has been sent: that revision is safe to resume from.
                        yield self.bookmark(store.revision())
                        arm()
                    continue
                etype = self.translate(ev.type, ev.record, ev.prev)
                if etype:
                    yield self.line(etype, ev.record)
        finally:
            end.cancel()
            for t in ticker:
                t.cancel()
            w.close()
