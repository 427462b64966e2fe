"""SQLite storage: the embedded default for one control node (as k3s does with kine).

Two tables: `kv` holds each key's current value and revisions; `log` holds every change by
revision, which is the watch history. Compaction trims `log` to the newest `history` revisions.

All calls run on the event loop's thread: SQLite in WAL mode answers a point write in tens of
microseconds, far less than a hop to a worker thread would cost, and a single thread makes
"read the history, then subscribe" atomic with respect to writes, so a watch that resumes from a
revision can neither miss nor repeat an event.

`synchronous=NORMAL` in WAL mode keeps every committed transaction across a crash of the process
(kill -9); only a power loss can drop the newest commits, never corrupt the database.
"""
from __future__ import annotations

import os
import sqlite3

import orjson

from .base import (ADDED, DELETED, MODIFIED, Create, Event, Expired, KeyExists,
                   KeyNotFound, Op, Record, RevisionMismatch, Update, stamp)
from .watchhub import QueueWatch, WatchHub

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    value BLOB NOT NULL,
    prev BLOB,
    PRIMARY KEY (rev, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class SQLiteStore:
    def __init__(self, path: str = ":memory:", *, history: int = 100_000, watch_queue: int = 10_000):
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.history = history
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._rev = self._meta("rev")
        self._compacted = self._meta("compacted")
        self.hub = WatchHub(watch_queue)

    def _meta(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row[0] if row else 0

    # -- reads ---------------------------------------------------------------------------
    def revision(self) -> int:
        return self._rev

    @property
    def compacted(self) -> int:
        return self._compacted

    async def get(self, key: str) -> Record | None:
        row = self._db.execute(
            "SELECT value, mod_rev, create_rev FROM kv WHERE key=?", (key,)).fetchone()
        return Record(key, row[0], row[1], row[2]) if row else None

    async def list(self, prefix: str, *, start_after: str = "", limit: int = 0
                   ) -> tuple[list[Record], int, bool]:
        lo = max(start_after + "\0", prefix) if start_after else prefix
        sql = "SELECT key, value, mod_rev, create_rev FROM kv WHERE key >= ? AND key < ? ORDER BY key"
        args: tuple = (lo, prefix_end(prefix))
        if limit:
            sql += " LIMIT ?"
            args += (limit + 1,)
        rows = self._db.execute(sql, args).fetchall()
        more = bool(limit) and len(rows) > limit
        if more:
            rows = rows[:limit]
        return [Record(k, v, m, c) for k, v, m, c in rows], self._rev, more

    async def count(self, prefix: str, *, start_after: str = "") -> int:
        lo = max(start_after + "\0", prefix) if start_after else prefix
        return self._db.execute("SELECT count(*) FROM kv WHERE key >= ? AND key < ?",
                                (lo, prefix_end(prefix))).fetchone()[0]

    # -- writes --------------------------------------------------------------------------
    async def commit(self, ops: list[Op]) -> list[Record]:
        db = self._db
        out: list[Record] = []
        events: list[Event] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            # Read the revision inside the write lock: another process (`nodeagent init` adding a
            # token next to a running server) may have committed since our last write.
            rev = db.execute("SELECT value FROM meta WHERE name='rev'").fetchone()
            rev = (rev[0] if rev else 0) + 1
            for i, op in enumerate(ops):
                prev = None
                row = db.execute("SELECT value, mod_rev, create_rev FROM kv WHERE key=?",
                                 (op.key,)).fetchone()
                if isinstance(op, Create):
                    if row:
                        raise KeyExists(op.key, i)
                    value = stamp(op.obj, rev)
                    db.execute("INSERT INTO kv VALUES (?,?,?,?)", (op.key, value, rev, rev))
                    rec, etype = Record(op.key, value, rev, rev), ADDED
                else:
                    if not row:
                        raise KeyNotFound(op.key, i)
                    if op.expected_rev is not None and row[1] != op.expected_rev:
                        raise RevisionMismatch(op.key, i)
                    if isinstance(op, Update):
                        value = stamp(op.obj, rev)
                        db.execute("UPDATE kv SET value=?, mod_rev=? WHERE key=?", (value, rev, op.key))
                        rec, etype = Record(op.key, value, rev, row[2]), MODIFIED
                        prev = Record(op.key, row[0], row[1], row[2])
                    else:
                        db.execute("DELETE FROM kv WHERE key=?", (op.key,))
                        value = stamp(orjson.loads(row[0]), rev)
                        rec, etype = Record(op.key, value, rev, row[2]), DELETED
                db.execute("INSERT INTO log VALUES (?,?,?,?,?,?)",
                           (rev, i, op.key, etype, value, prev.value if prev else None))
                out.append(rec)
                events.append(Event(etype, rec, prev))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('rev', ?)", (rev,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._rev = rev
        if rev - self._compacted > self.history + max(self.history // 10, 1):
            self.compact(rev - self.history)
        self.hub.publish(events)
        return out

    def compact(self, upto: int) -> None:
        """Forget the history at and below revision `upto`."""
        if upto <= self._compacted:
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("DELETE FROM log WHERE rev <= ?", (upto,))
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('compacted', ?)", (upto,))
        self._db.execute("COMMIT")
        self._compacted = upto

    # -- watch ---------------------------------------------------------------------------
    def watch(self, prefix: str, from_rev: int) -> QueueWatch:
        if from_rev and from_rev < self._compacted:
            raise Expired(from_rev, self._compacted + 1)
        w = self.hub.subscribe(prefix)
        if from_rev and from_rev < self._rev:
            rows = self._db.execute(
                "SELECT rev, key, type, value, prev FROM log WHERE rev > ? AND key >= ? AND key < ?"
                " ORDER BY rev, seq", (from_rev, prefix, prefix_end(prefix))).fetchall()
            w.prime(Event(t, Record(k, v, r), Record(k, p, 0) if p else None) for r, k, t, v, p in rows)
        return w

    async def ready(self) -> bool:
        try:
            self._db.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    async def close(self) -> None:
        self.hub.close_all()
        self._db.close()
