"""Move a cluster's state between stores: SQLite -> etcd when one control node is outgrown (and
back, or through a file: an export).

    python -m control.store.migrate --from sqlite:/var/lib/nodeagent/state.db \\
        --to etcd:https://10.0.0.1:2379,https://10.0.0.2:2379 --etcd-cafile ca.crt ...
    python -m control.store.migrate --from sqlite:state.db --to file:backup.jsonl     # export
    python -m control.store.migrate --from file:backup.jsonl --to etcd:http://127.0.0.1:2379  # import

Run it with the API servers stopped. Every key is copied (objects, allocation markers, join
tokens); the target must be empty (for etcd: no key under --etcd-prefix), so nothing is mixed.

resourceVersions must keep rising across the move, or clients holding a version from before
would be confused (a watch from it would silently miss changes). etcd's revision cannot be set,
and raising it by writing a scratch key once per revision would take hours for a store that has
seen millions of writes, and bloat etcd's history. So the migration stores a revision offset
(the SQLite revision minus etcd's) in etcd, in the same transaction that checks the target is
empty, and every API server on that etcd adds it to etcd's revisions (see etcd.py): every
resourceVersion after the move is higher than every one before. Watches from before the move get
410 Expired (their clients relist), since the history does not move along. Into SQLite, the
revision counter is set to the source's revision before the copy, with the same effect.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sqlite3
import sys
from typing import AsyncIterator

import orjson

from .base import Create
from .sqlite import SQLiteStore

META_PREFIX = "/nodeagent/meta/"
BATCH_OPS = 100            # etcd allows 128 operations per transaction by default
BATCH_BYTES = 1_000_000    # and requests up to 1.5 MiB


class MigrationError(Exception):
    pass


# -- sources: (revision, iterator of (key, value bytes)) ---------------------------------------------
def _sqlite_source(path: str) -> tuple[int, list[tuple[str, bytes]]]:
    if not os.path.exists(path):
        raise MigrationError(f"{path}: no such SQLite database")
    db = sqlite3.connect(path)
    try:
        db.execute("BEGIN")  # one snapshot for the revision and the rows
        row = db.execute("SELECT value FROM meta WHERE name='rev'").fetchone()
        rows = db.execute("SELECT key, value FROM kv ORDER BY key").fetchall()
        db.execute("COMMIT")
    except sqlite3.Error as err:
        raise MigrationError(f"{path}: not a nodeagent state database ({err})")
    finally:
        db.close()
    return (row[0] if row else 0), [(k, bytes(v)) for k, v in rows]


def _file_source(path: str) -> tuple[int, list[tuple[str, bytes]]]:
    with open(path, "rb") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    if not lines:
        raise MigrationError(f"{path}: empty")
    head = orjson.loads(lines[0])
    if head.get("kind") != "NodeagentStoreExport":
        raise MigrationError(f"{path}: not an export of `python -m control.store.migrate`")
    items = []
    for line in lines[1:]:
        d = orjson.loads(line)
        items.append((d["key"], orjson.dumps(d["value"])))
    return int(head["revision"]), items


async def _etcd_source(store) -> tuple[int, list[tuple[str, bytes]]]:
    recs, rev, _ = await store.list("/")
    return rev, [(r.key, r.value) for r in recs if not r.key.startswith(META_PREFIX)]


# -- targets ---------------------------------------------------------------------------------------
def _batches(items: list[tuple[str, bytes]]):
    batch, size = [], 0
    for key, value in items:
        if batch and (len(batch) >= BATCH_OPS or size + len(value) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((key, value))
        size += len(value) + len(key)
    if batch:
        yield batch


async def _to_etcd(store, revision: int, items: list[tuple[str, bytes]], source: str) -> dict:
    """Reserve the empty target and the revision offset in one transaction, then copy."""
    from aetcd import rpc

    from .etcd import OFFSET_KEY, range_end

    pfx = store._pfx
    lo, hi = (pfx, range_end(pfx)) if pfx else (b"\0", b"\0")
    r = await store._range(rpc.RangeRequest(key=lo, range_end=hi, count_only=True))
    if r.count:
        raise MigrationError(f"etcd already holds {r.count} keys under {store.prefix or 'its root'!r}: "
                             "migrate into an empty etcd, or choose another --etcd-prefix")
    now = r.header.revision
    # The offset key lands at now+1 and the copy after it, so the first copied object gets
    # revision >= now+2, i.e. resourceVersion >= now+2+offset > revision.
    offset = max(0, revision - now)
    meta = {"offset": offset, "sourceRevision": revision, "source": source,
            "migratedAt": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    txn = rpc.TxnRequest(
        compare=[rpc.Compare(key=lo, range_end=hi, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL,
                             create_revision=0)],
        success=[rpc.RequestOp(request_put=rpc.PutRequest(key=pfx + OFFSET_KEY.encode(),
                                                          value=orjson.dumps(meta)))])
    resp, _ = await store._call("KV", "Txn", txn, txn=True)
    if not resp.succeeded:
        raise MigrationError("etcd stopped being empty while the migration started (is an API server running on it?)")
    await store.start()  # reads the offset
    copied = 0
    for batch in _batches(items):
        await store.commit([Create(k, orjson.loads(v)) for k, v in batch])
        copied += len(batch)
    return {"copied": copied, "offset": offset, "etcd_revision_before": now}


async def _to_sqlite(path: str, revision: int, items: list[tuple[str, bytes]]) -> dict:
    store = SQLiteStore(path)
    try:
        if store._db.execute("SELECT count(*) FROM kv").fetchone()[0] or store.revision():
            raise MigrationError(f"{path} is not empty: migrate into a new database")
        # Continue the revisions (and make older ones Expired) as an etcd target does.
        store._db.execute("INSERT OR REPLACE INTO meta VALUES ('rev', ?)", (revision,))
        store._db.execute("INSERT OR REPLACE INTO meta VALUES ('compacted', ?)", (revision,))
        store._rev = store._compacted = revision
        copied = 0
        for batch in _batches(items):
            await store.commit([Create(k, orjson.loads(v)) for k, v in batch])
            copied += len(batch)
        return {"copied": copied, "offset": 0}
    finally:
        await store.close()


def _to_file(path: str, revision: int, items: list[tuple[str, bytes]]) -> dict:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps({"kind": "NodeagentStoreExport", "version": 1, "revision": revision}) + b"\n")
        for k, v in items:
            f.write(b'{"key":' + orjson.dumps(k) + b',"value":' + v + b"}\n")
    os.replace(tmp, path)
    return {"copied": len(items), "offset": 0}


# -- the command -----------------------------------------------------------------------------------
def _etcd(spec: str, opts: dict):
    from .etcd import EtcdStore
    return EtcdStore(spec, history=1, compaction_interval=0, **opts)


async def migrate(src: str, dst: str, *, etcd_options: dict | None = None) -> dict:
    """Copy every key from src to dst (`sqlite:PATH`, `etcd:URL[,URL]`, `file:PATH`)."""
    opts = etcd_options or {}
    skind, _, spath = src.partition(":")
    dkind, _, dpath = dst.partition(":")
    if skind not in ("sqlite", "etcd", "file") or dkind not in ("sqlite", "etcd", "file") or not spath or not dpath:
        raise MigrationError("use --from/--to sqlite:PATH, etcd:URL[,URL...] or file:PATH")
    if skind == dkind == "etcd" or src == dst:
        raise MigrationError("source and target must be different stores")
    stores = []
    try:
        if skind == "sqlite":
            revision, items = _sqlite_source(spath)
        elif skind == "file":
            revision, items = _file_source(spath)
        else:
            s = _etcd(spath, opts)
            stores.append(s)
            revision, items = await _etcd_source(s)
        if dkind == "etcd":
            d = _etcd(dpath, opts)
            stores.append(d)
            out = await _to_etcd(d, revision, items, src)
            # check: the target holds exactly what was read
            recs, _, _ = await d.list("/")
            got = {r.key: orjson.loads(r.value) for r in recs if not r.key.startswith(META_PREFIX)}
        elif dkind == "sqlite":
            out = await _to_sqlite(dpath, revision, items)
            check = SQLiteStore(dpath)
            recs, _, _ = await check.list("/")
            got = {r.key: orjson.loads(r.value) for r in recs}
            await check.close()
        else:
            out = _to_file(dpath, revision, items)
            got = {k: orjson.loads(v) for k, v in _file_source(dpath)[1]}
        want = {k: orjson.loads(v) for k, v in items}
        if set(got) != set(want) or any(_strip_rv(got[k]) != _strip_rv(want[k]) for k in want):
            raise MigrationError("the target does not hold what was copied: check it before using it")
        out["source_revision"] = revision
        return out
    finally:
        for s in stores:
            await s.close()


def _strip_rv(obj):
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        obj = dict(obj, metadata={k: v for k, v in obj["metadata"].items() if k != "resourceVersion"})
    return obj


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="src", required=True, metavar="STORE",
                   help="sqlite:PATH, etcd:URL[,URL...] or file:PATH (an export)")
    p.add_argument("--to", dest="dst", required=True, metavar="STORE",
                   help="etcd:URL[,URL...], sqlite:PATH (a new database) or file:PATH (an export)")
    p.add_argument("--etcd-cafile", default="")
    p.add_argument("--etcd-certfile", default="")
    p.add_argument("--etcd-keyfile", default="")
    p.add_argument("--etcd-prefix", default="")


def run(args: argparse.Namespace) -> int:
    opts = {"prefix": args.etcd_prefix, "ca_file": args.etcd_cafile or None,
            "cert_file": args.etcd_certfile or None, "key_file": args.etcd_keyfile or None}
    try:
        out = asyncio.run(migrate(args.src, args.dst, etcd_options=opts))
    except (MigrationError, OSError, ValueError) as err:
        print(f"migration failed: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # etcd unreachable and the like
        print(f"migration failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"copied {out['copied']} keys from {args.src} to {args.dst}; resourceVersions continue above "
          f"{out['source_revision']}" + (f" (etcd revision offset {out['offset']})" if out.get("offset") else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nodeagent migrate",
                                description="copy a cluster's state between SQLite, etcd and export files")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
