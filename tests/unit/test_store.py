"""The SQLite store on its own (in memory): transactions, revisions, compaction, watch history."""
from __future__ import annotations

import asyncio

import pytest

from control.store import (ADDED, DELETED, MODIFIED, Create, Delete, Expired, KeyExists,
                           KeyNotFound, RevisionMismatch, SQLiteStore, Update)


def run(coro):
    return asyncio.run(coro)


def obj(name: str, **extra) -> dict:
    return {"metadata": {"name": name}, **extra}


def test_each_commit_is_one_revision_and_stamps_resource_version():
    async def go():
        s = SQLiteStore()
        a, b = await s.commit([Create("/r/a", obj("a")), Create("/r/b", obj("b"))])
        assert a.mod_rev == b.mod_rev == 1 == s.revision()
        assert a.obj["metadata"]["resourceVersion"] == "1"
        (c,) = await s.commit([Update("/r/a", obj("a", x=1), expected_rev=1)])
        assert c.mod_rev == 2 and c.create_rev == 1
    run(go())


def test_a_failing_operation_rolls_back_the_whole_transaction():
    async def go():
        s = SQLiteStore()
        await s.commit([Create("/r/a", obj("a"))])
        with pytest.raises(KeyExists) as err:
            await s.commit([Create("/r/new", obj("new")), Create("/r/a", obj("a"))])
        assert err.value.index == 1
        assert await s.get("/r/new") is None and s.revision() == 1
        with pytest.raises(RevisionMismatch):
            await s.commit([Update("/r/a", obj("a"), expected_rev=99)])
        with pytest.raises(KeyNotFound):
            await s.commit([Delete("/r/zzz")])
        assert s.revision() == 1
    run(go())


def test_list_pages_in_key_order_within_the_prefix():
    async def go():
        s = SQLiteStore()
        await s.commit([Create(f"/r/ns/{n}", obj(n)) for n in "dcba"] + [Create("/r/nt/x", obj("x")), Create("/r/n", obj("n"))])
        recs, rev, more = await s.list("/r/ns/", limit=3)
        assert [r.key for r in recs] == ["/r/ns/a", "/r/ns/b", "/r/ns/c"] and more and rev == 1
        recs, _, more = await s.list("/r/ns/", start_after="/r/ns/c", limit=3)
        assert [r.key for r in recs] == ["/r/ns/d"] and not more
        assert await s.count("/r/ns/", start_after="/r/ns/a") == 3
    run(go())


def test_watch_replays_history_then_goes_live_without_gap_or_repeat():
    async def go():
        s = SQLiteStore()
        await s.commit([Create("/r/a", obj("a"))])
        await s.commit([Update("/r/a", obj("a", v=2))])
        await s.commit([Create("/other/z", obj("z"))])
        w = s.watch("/r/", 1)
        await s.commit([Delete("/r/a")])
        got = [await w.next(1) for _ in range(2)]
        assert [(e.type, e.record.mod_rev) for e in got] == [(MODIFIED, 2), (DELETED, 4)]
        assert got[0].prev is not None and got[0].prev.obj.get("v") is None
        assert await w.next(0.05) is None
        w.close()
    run(go())


def test_compaction_expires_old_revisions():
    async def go():
        s = SQLiteStore(history=5)
        for i in range(20):
            await s.commit([Create(f"/r/{i}", obj(str(i)))])
        assert s.compacted >= 20 - 5 - 1
        with pytest.raises(Expired):
            s.watch("/r/", 2)
        w = s.watch("/r/", s.compacted)
        assert (await w.next(1)).type == ADDED
    run(go())


def test_data_survives_reopening(tmp_path):
    async def go():
        path = str(tmp_path / "db")
        s = SQLiteStore(path)
        await s.commit([Create("/r/a", obj("a"))])
        await s.commit([Create("/r/b", obj("b"))])
        await s.close()
        s2 = SQLiteStore(path)
        assert s2.revision() == 2 and (await s2.get("/r/b")).obj["metadata"]["resourceVersion"] == "2"
        (c,) = await s2.commit([Create("/r/c", obj("c"))])
        assert c.mod_rev == 3
    run(go())
