"""etcd storage: several API servers over one etcd cluster (the HA control plane).

The store interface (base.py) is etcd's own, so this is mostly a translation:

- `commit` is one etcd transaction. Each operation becomes a compare (Create: the key's
  create_revision is 0; Update/Delete: its mod_revision is the one read, or the key exists) and a
  put or delete. The failure branch reads every key, so a failed transaction tells in the same
  round trip which operation failed and why (KeyExists / KeyNotFound / RevisionMismatch with its
  index), exactly as SQLite does. Allocation marker keys therefore work across API servers.
- resourceVersion = the key's mod_revision (plus a fixed offset after a migration from SQLite,
  see below). The revision of a transaction is known only once it commits, so values are stored
  with the placeholder `"resourceVersion":"0"` in their metadata and the real revision is spliced
  into the bytes when they are read: no JSON decode on the get / list / watch hot paths. When the
  placeholder is not found exactly once (a nested object with a resourceVersion "0"), the value is
  decoded and re-encoded instead, which is always right.
- Watches: ONE etcd watch per API server, on the whole key space, with prev_kv. Its events feed
  an in-memory window of recent events (the newest `history` revisions) and the WatchHub fan-out,
  as kube-apiserver's watch cache does. A watch from a revision inside the window is served from
  memory (history, then live, with no gap or repeat: both happen on the event loop's thread); one
  from before the window is `Expired` (410). At start the window is filled from etcd's own
  history, so a client that fails over from another API server resumes where it was without a
  relist, as long as etcd still holds that revision. Watching the whole key space (and not only
  our prefix) means every etcd revision arrives here, so `revision()` is exact: it is the newest
  revision whose events have all been delivered, which is what watch bookmarks need.
- Compaction: each API server periodically compacts etcd to `history` revisions behind
  (kube-apiserver compacts every 5 minutes). If the etcd watch cannot resume because etcd has
  compacted past it (the API server was cut off for long), the window restarts and every open
  watch is closed; their clients re-watch, get 410 and relist.
- Several endpoints: requests go to one endpoint and move to the next on a transport error or a
  timeout. Reads are simply retried. A transaction that may have been applied before the error
  (a timeout, a dropped connection) is retried once elsewhere; if the retry's compares fail
  because the first attempt did commit (every written key holds our bytes at one revision), that
  is recognised and answered as the success it was.
- Migration from SQLite (migrate.py) keeps resourceVersions rising without writing millions of
  dummy revisions: it stores a revision offset in etcd (`<prefix>/nodeagent/meta/revision-offset`)
  that every API server adds to etcd's revisions; watches from before the migration are Expired.

The client is gRPC (grpcio) with the etcd v3 protobuf stubs that the `aetcd` package ships. aetcd's
own high-level Client is not used: it has no TLS, no list of endpoints, no range limit or
count_only, and no way to tell which compare of a transaction failed; its generated stubs are the
etcd v3 API as-is.
"""
from __future__ import annotations

import asyncio
import bisect
import logging
import random
import time
from urllib.parse import urlsplit

import grpc
import orjson
from aetcd import rpc

from .base import (ADDED, DELETED, MODIFIED, Create, Delete, Event, Expired, KeyExists,
                   KeyNotFound, Op, Record, RevisionMismatch, Update, stamp)
from .watchhub import QueueWatch, WatchHub

log = logging.getLogger("nodeagent.store.etcd")

MARK = b'"resourceVersion":"0"'
_MARK_LEN = len(MARK)
_RV = b'"resourceVersion":"'
OFFSET_KEY = "/nodeagent/meta/revision-offset"
PUT, DEL = 0, 1  # mvccpb.Event.EventType
_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),  # etcd refuses pings on idle connections
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
# gRPC codes after which a request may or may not have reached etcd's log
_MAYBE_SENT = {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE,
               grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
_RETRY = _MAYBE_SENT


class StoreUnavailable(Exception):
    """No etcd endpoint answered in time."""


# -- values -------------------------------------------------------------------------------------
def encode(obj: dict | None) -> bytes:
    """The bytes stored in etcd: the object with the resourceVersion placeholder."""
    return stamp(obj, 0)


def with_rv(raw: bytes, rev: int) -> bytes:
    """Stored bytes -> the bytes the API returns, with metadata.resourceVersion = rev."""
    i = raw.find(MARK)
    if i >= 0 and raw.find(MARK, i + _MARK_LEN) < 0:
        return b"".join((raw[:i], _RV, str(rev).encode(), b'"', raw[i + _MARK_LEN:]))
    if raw == b"null":
        return raw
    obj = orjson.loads(raw)
    if not isinstance(obj, dict):
        return raw
    return stamp(obj, rev)


def range_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with prefix (etcd's `--prefix`)."""
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[:i + 1])
    return b"\0"


def _target(url: str) -> tuple[str, bool]:
    if "://" not in url:
        url = "http://" + url
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"etcd endpoint must be http(s)://host:port, got {url!r}")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{host}:{u.port or 2379}", u.scheme == "https"


class _Watch(QueueWatch):
    """A hub watcher that skips events at or below the revision it starts after (the client may
    hold a revision, from a list or a write, that the etcd watch has not delivered yet)."""

    def __init__(self, hub: WatchHub, prefix: str, maxlen: int, after: int):
        super().__init__(hub, prefix, maxlen)
        self.after = after

    def push(self, ev: Event) -> None:
        if ev.record.mod_rev > self.after:
            super().push(ev)


class _Hub(WatchHub):
    def subscribe_after(self, prefix: str, after: int) -> _Watch:
        w = _Watch(self, prefix, self.queue_len, after)
        self._watchers.add(w)
        return w


class EtcdStore:
    def __init__(self, endpoints: str | list[str], *, prefix: str = "", history: int = 100_000,
                 watch_queue: int = 10_000, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, timeout: float = 10.0, compaction_interval: float = 300.0):
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e.strip()]
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = [e.strip() for e in endpoints]
        self._targets = [_target(e) for e in self.endpoints]
        self.prefix = prefix.rstrip("/")
        self._pfx = self.prefix.encode()
        self.history = history
        self.timeout = timeout
        self.compaction_interval = compaction_interval
        self._tls = (ca_file, cert_file, key_file)
        self.hub = _Hub(watch_queue)
        self._channels: list[grpc.aio.Channel | None] = [None] * len(self.endpoints)
        self._stubs: dict[tuple, object] = {}
        self._cur = 0
        self._metadata: tuple = ()
        self._off = 0           # API revision = etcd revision + _off (non-zero after a migration)
        self._rev = 0           # newest API revision whose events have all been published
        self._floor = 0         # the window holds every event with revision > _floor
        self._log: list[Event] = []
        self._log_revs: list[int] = []
        self._log_start = 0     # index of the oldest live entry in _log
        self._compacted = 0     # newest etcd revision we compacted (or learnt was compacted)
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._tasks: list[asyncio.Task] = []
        self._watch_up = False
        self._closed = False
        self.resets = 0         # times the window restarted because etcd compacted past it

    # -- connections ---------------------------------------------------------------------------
    def _channel(self, i: int) -> grpc.aio.Channel:
        ch = self._channels[i]
        if ch is None:
            target, secure = self._targets[i]
            if secure:
                ca, cert, key = (open(p, "rb").read() if p else None for p in self._tls)
                creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                                     certificate_chain=cert)
                ch = grpc.aio.secure_channel(target, creds, options=_GRPC_OPTIONS)
            else:
                ch = grpc.aio.insecure_channel(target, options=_GRPC_OPTIONS)
            self._channels[i] = ch
        return ch

    def _next_endpoint(self, failed: int) -> None:
        if self._cur == failed and len(self.endpoints) > 1:
            self._cur = (failed + 1) % len(self.endpoints)
            log.warning("etcd endpoint %s failed; using %s", self.endpoints[failed], self.endpoints[self._cur])

    async def _call(self, stub: str, method: str, request, *, txn: bool = False, timeout: float | None = None):
        """One unary call, moving to the next endpoint on transport errors, until `timeout`.
        Returns (response, maybe_applied): maybe_applied says an earlier attempt of a
        transaction failed in a way that may have committed it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        maybe_applied = False
        delay = 0.02
        attempt = 0
        while True:
            attempt += 1
            i = self._cur
            left = deadline - time.monotonic()
            if len(self.endpoints) > 1:  # a frozen or cut-off member must not use up the whole time
                left = min(left, max(self.timeout / len(self.endpoints), 1.0))
            try:
                fn = self._stubs.get((i, stub, method))
                if fn is None:
                    fn = self._stubs[(i, stub, method)] = getattr(getattr(rpc, stub + "Stub")(self._channel(i)), method)
                return await fn(request, timeout=max(left, 0.05), metadata=self._metadata), maybe_applied
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if code not in _RETRY:
                    raise
                if txn and code in _MAYBE_SENT and "failed to connect" not in (err.details() or ""):
                    maybe_applied = True
                self._next_endpoint(i)
                if time.monotonic() + delay >= deadline:
                    raise StoreUnavailable(f"etcd ({', '.join(self.endpoints)}) did not answer: "
                                           f"{code.name}: {err.details()}") from None
                if attempt % len(self.endpoints) == 0:  # every endpoint failed once more
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)

    async def _range(self, req: rpc.RangeRequest, timeout: float | None = None) -> rpc.RangeResponse:
        return (await self._call("KV", "Range", req, timeout=timeout))[0]

    # -- start ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, read the revision offset and fill the watch window from etcd's history.
        Called by the first request; idempotent."""
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise StoreUnavailable("the store is closed")
            r = await self._range(rpc.RangeRequest(key=self._pfx + OFFSET_KEY.encode()))
            now = r.header.revision
            floor = 0
            if r.kvs:
                meta = orjson.loads(r.kvs[0].value)
                self._off = int(meta["offset"])
                floor = r.kvs[0].mod_revision  # watches from before the migration must relist
            start = max(now - self.history + 1, floor + 1, 1)
            self._floor = self._rev = start - 1 + self._off
            synced = asyncio.get_running_loop().create_future()
            self._tasks.append(asyncio.create_task(self._watch_loop(start, now, synced)))
            try:
                await asyncio.wait_for(asyncio.shield(synced), self.timeout + 5)
            except TimeoutError:
                # Safe fallback: the window starts now (older replayed events are never served:
                # watch() primes and pushes only events above the floor).
                log.warning("the etcd watch did not replay etcd's history up to %d in time; "
                            "watches from before it will get 410", now)
                self._floor = max(self._floor, now + self._off)
                self._rev = max(self._rev, now + self._off)
            except BaseException:
                for t in self._tasks:
                    t.cancel()
                self._tasks.clear()
                raise
            if self.compaction_interval > 0:
                self._tasks.append(asyncio.create_task(self._compactor()))
            self._started = True

    def _need_started(self) -> None:
        if not self._started:
            raise RuntimeError("EtcdStore.start() has not run (any awaited store call runs it)")

    # -- reads ---------------------------------------------------------------------------------
    def revision(self) -> int:
        return self._rev

    @property
    def compacted(self) -> int:
        return self._floor

    def _key(self, key: str) -> bytes:
        return self._pfx + key.encode()

    def _record(self, kv) -> Record:
        rev = kv.mod_revision + self._off
        return Record(kv.key[len(self._pfx):].decode(), with_rv(kv.value, rev), rev,
                      kv.create_revision + self._off)

    async def get(self, key: str) -> Record | None:
        await self.start()
        r = await self._range(rpc.RangeRequest(key=self._key(key)))
        return self._record(r.kvs[0]) if r.kvs else None

    async def list(self, prefix: str, *, start_after: str = "", limit: int = 0
                   ) -> tuple[list[Record], int, bool]:
        await self.start()
        lo = max(start_after + "\0", prefix) if start_after else prefix
        r = await self._range(rpc.RangeRequest(key=self._key(lo), range_end=range_end(self._key(prefix)),
                                               limit=limit + 1 if limit else 0))
        kvs = r.kvs
        more = bool(limit) and len(kvs) > limit
        if more:
            kvs = kvs[:limit]
        off, n = self._off, len(self._pfx)
        out = []
        for kv in kvs:
            rev = kv.mod_revision + off
            out.append(Record(kv.key[n:].decode(), with_rv(kv.value, rev), rev, kv.create_revision + off))
        return out, r.header.revision + off, more

    async def count(self, prefix: str, *, start_after: str = "") -> int:
        await self.start()
        lo = max(start_after + "\0", prefix) if start_after else prefix
        r = await self._range(rpc.RangeRequest(key=self._key(lo), range_end=range_end(self._key(prefix)),
                                               count_only=True))
        return r.count

    # -- writes --------------------------------------------------------------------------------
    async def commit(self, ops: list[Op]) -> list[Record]:
        await self.start()
        off = self._off
        compare, success, failure, values = [], [], [], []
        for op in ops:
            k = self._key(op.key)
            if isinstance(op, Create):
                v = encode(op.obj)
                compare.append(rpc.Compare(key=k, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL,
                                           create_revision=0))
                success.append(rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v)))
            else:
                if op.expected_rev is not None:
                    compare.append(rpc.Compare(key=k, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                                               mod_revision=op.expected_rev - off))
                else:
                    compare.append(rpc.Compare(key=k, target=rpc.Compare.VERSION,
                                               result=rpc.Compare.GREATER, version=0))
                if isinstance(op, Update):
                    v = encode(op.obj)
                    success.append(rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v, prev_kv=True)))
                else:
                    v = None
                    success.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k, prev_kv=True)))
            values.append(v)
            failure.append(rpc.RequestOp(request_range=rpc.RangeRequest(key=k)))
        req = rpc.TxnRequest(compare=compare, success=success, failure=failure)
        resp, maybe_applied = await self._call("KV", "Txn", req, txn=True)
        if resp.succeeded:
            rev = resp.header.revision + off
            out = []
            for op, v, r in zip(ops, values, resp.responses):
                if isinstance(op, Create):
                    rec = Record(op.key, with_rv(v, rev), rev, rev)
                elif isinstance(op, Update):
                    prev = r.response_put.prev_kv
                    rec = Record(op.key, with_rv(v, rev), rev, prev.create_revision + off)
                else:
                    prev = r.response_delete_range.prev_kvs[0]
                    rec = Record(op.key, with_rv(prev.value, rev), rev, prev.create_revision + off)
                if v is not None and op.obj is not None:
                    op.obj["metadata"]["resourceVersion"] = str(rev)  # as SQLite's stamp() leaves it
                out.append(rec)
            return out
        current = [r.response_range.kvs[0] if r.response_range.kvs else None for r in resp.responses]
        if maybe_applied:
            done = self._applied(ops, values, current)
            if done is not None:
                return done
        for i, (op, kv) in enumerate(zip(ops, current)):
            if isinstance(op, Create):
                if kv is not None:
                    raise KeyExists(op.key, i)
            elif kv is None:
                raise KeyNotFound(op.key, i)
            elif op.expected_rev is not None and kv.mod_revision + off != op.expected_rev:
                raise RevisionMismatch(op.key, i)
        raise RevisionMismatch(ops[0].key if ops else "", 0)  # not reached: some compare failed

    def _applied(self, ops: list[Op], values: list, current: list) -> list[Record] | None:
        """After a retried transaction failed its compares: did the first attempt commit? Yes if
        every written key holds our bytes, all at one revision, and every deleted key is gone."""
        revs = {kv.mod_revision for op, kv in zip(ops, current) if not isinstance(op, Delete) and kv}
        for op, v, kv in zip(ops, values, current):
            if isinstance(op, Delete):
                if kv is not None:
                    return None
            elif kv is None or kv.value != v:
                return None
        if len(revs) != 1:
            return None  # only deletes (their old values are gone), or not one transaction
        rev = revs.pop() + self._off
        log.info("a retried etcd transaction had already committed at %d", rev)
        out = []
        for op, v, kv in zip(ops, values, current):
            if isinstance(op, Delete):
                out.append(Record(op.key, b"null", rev, 0))
            else:
                out.append(Record(op.key, with_rv(v, rev), rev, kv.create_revision + self._off))
        return out

    async def compact(self, upto: int) -> None:
        """Forget the history at and below revision `upto` (in etcd and in the window)."""
        await self.start()
        target = upto - self._off
        if target > self._compacted and target > 0:
            try:
                await self._call("KV", "Compact", rpc.CompactionRequest(revision=target))
            except grpc.aio.AioRpcError as err:
                if "compacted" not in (err.details() or ""):
                    raise
            self._compacted = target
        self._trim(min(upto, self._rev))

    async def _compactor(self) -> None:
        while True:
            await asyncio.sleep(self.compaction_interval * (0.9 + 0.2 * random.random()))
            try:
                target = self._rev - self.history
                if target - self._off > self._compacted:
                    await self.compact(target)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # etcd down: try again next time
                log.warning("etcd compaction failed: %s", err)

    # -- the watch window ------------------------------------------------------------------------
    def _trim(self, floor: int) -> None:
        if floor <= self._floor:
            return
        self._floor = floor
        i = bisect.bisect_right(self._log_revs, floor, lo=self._log_start)
        self._log_start = i
        if i > 4096 and i > len(self._log) // 2:
            del self._log[:i], self._log_revs[:i]
            self._log_start = 0

    def _publish(self, events: list[Event], rev: int) -> None:
        if events:
            self._log.extend(events)
            self._log_revs.extend(ev.record.mod_rev for ev in events)
            self.hub.publish(events)
        self._rev = max(self._rev, rev)
        if self._rev - self._floor > self.history + max(self.history // 10, 1):
            self._trim(self._rev - self.history)

    def _reset(self, first: int) -> None:
        """The etcd watch lost events (compacted while we were away): start the window over and
        end every watch; their clients re-watch from their revision, get 410 and relist."""
        self.resets += 1
        log.warning("etcd history needed by the watch was compacted; restarting the watch window at %d", first)
        self._log, self._log_revs, self._log_start = [], [], 0
        self._floor = self._rev = first - 1 + self._off
        self.hub.close_all()

    def _convert(self, resp) -> list[Event]:
        out = []
        n, pfx, off = len(self._pfx), self._pfx, self._off
        for ev in resp.events:
            kv = ev.kv
            if pfx and not kv.key.startswith(pfx):
                continue
            key = kv.key[n:].decode()
            rev = kv.mod_revision + off
            prev = ev.prev_kv if ev.HasField("prev_kv") else None
            if ev.type == PUT:
                rec = Record(key, with_rv(kv.value, rev), rev, kv.create_revision + off)
                if kv.version == 1 or prev is None:
                    out.append(Event(ADDED, rec))
                else:
                    prev_rev = prev.mod_revision + off
                    out.append(Event(MODIFIED, rec, Record(key, with_rv(prev.value, prev_rev), prev_rev,
                                                           prev.create_revision + off)))
            else:
                if prev is None:
                    log.warning("etcd DELETE event of %s without its previous value; skipped", key)
                    continue
                out.append(Event(DELETED, Record(key, with_rv(prev.value, rev), rev, prev.create_revision + off)))
        return out

    async def _watch_loop(self, start: int, sync_to: int, synced: asyncio.Future) -> None:
        """The one etcd watch: the whole key space from `start`, forever, across endpoints."""
        nxt = start
        delay = 0.05
        if sync_to < start or sync_to <= 1:  # nothing to replay (etcd's revision 1 has no event)
            synced.set_result(None)
        while not self._closed:
            i = self._cur
            call = None
            try:
                call = rpc.WatchStub(self._channel(i)).Watch(
                    metadata=self._metadata + (("hasleader", "true"),))
                await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                    key=b"\0", range_end=b"\0", start_revision=nxt, prev_kv=True)))
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        raise ConnectionError("etcd ended the watch stream")
                    if resp.compact_revision:
                        # etcd no longer has revision nxt: events were lost to us
                        if synced.done():
                            self._reset(resp.compact_revision)
                        else:  # still filling the window at start: it just starts later
                            self._floor = self._rev = resp.compact_revision - 1 + self._off
                        nxt = resp.compact_revision
                        raise ConnectionError("compacted")
                    if resp.canceled:
                        raise ConnectionError(f"etcd cancelled the watch: {resp.cancel_reason}")
                    if resp.created:
                        self._watch_up = True
                        delay = 0.05
                    if not resp.events:
                        continue
                    last = resp.events[-1].kv.mod_revision
                    self._publish(self._convert(resp), last + self._off)
                    nxt = last + 1
                    if not synced.done() and last >= sync_to:
                        synced.set_result(None)
            except asyncio.CancelledError:
                if call is not None:
                    call.cancel()
                raise
            except (grpc.aio.AioRpcError, ConnectionError, OSError) as err:
                self._watch_up = False
                if call is not None:
                    call.cancel()
                if isinstance(err, ConnectionError) and str(err) == "compacted":
                    continue
                detail = err.details() if isinstance(err, grpc.aio.AioRpcError) else str(err)
                log.warning("etcd watch on %s broke (%s); resuming from revision %d",
                            self.endpoints[i], detail, nxt)
                self._next_endpoint(i)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
            except Exception:
                self._watch_up = False
                log.exception("etcd watch failed; resuming from revision %d", nxt)
                if call is not None:
                    call.cancel()
                await asyncio.sleep(1.0)

    def watch(self, prefix: str, from_rev: int) -> QueueWatch:
        self._need_started()
        if from_rev and from_rev < self._floor:
            raise Expired(from_rev, self._floor + 1)
        after = from_rev or self._rev
        w = self.hub.subscribe_after(prefix, after)
        if after < self._rev:
            i = bisect.bisect_right(self._log_revs, after, lo=self._log_start)
            w.prime(ev for ev in self._log[i:] if ev.record.key.startswith(prefix))
        return w

    async def ready(self) -> bool:
        try:
            await asyncio.wait_for(self.start(), 5)
            await self._range(rpc.RangeRequest(key=self._key("/healthz"), count_only=True), timeout=2)
            return self._watch_up
        except Exception:
            return False

    async def close(self) -> None:
        self._closed = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except BaseException:
                pass
        self._tasks.clear()
        self.hub.close_all()
        self._stubs.clear()
        for i, ch in enumerate(self._channels):
            if ch is not None:
                await ch.close()
                self._channels[i] = None
