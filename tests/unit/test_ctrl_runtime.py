"""The controllers' runtime: the work queue and the write-through object cache."""
from __future__ import annotations

import asyncio

from control.controllers.manager import ObjectCache, label_pairs, pods_for_selector, selects
from control.controllers.workqueue import WorkQueue


def test_workqueue_dedups_and_reprocesses_keys_added_while_processing():
    async def go():
        q = WorkQueue()
        q.add("a"), q.add("a"), q.add("b")
        assert len(q) == 2
        k = await q.get()
        assert k == "a"
        q.add("a")                      # while "a" is processed: not handed out twice...
        assert await q.get() == "b"
        assert len(q) == 0
        q.done("a")                     # ...but again once done
        assert await q.get() == "a"
        q.done("a"), q.done("b")
    asyncio.run(go())


def test_workqueue_rate_limit_and_add_after():
    async def go():
        q = WorkQueue(base_delay=0.01, max_delay=0.04)
        for _ in range(5):
            q.add_rate_limited("k")
        assert q.failures("k") == 5
        t = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(q.get(), 1) == "k"
        assert asyncio.get_running_loop().time() - t < 0.1   # the earliest pending add wins
        q.done("k")
        q.forget("k")
        assert q.failures("k") == 0
        q.add_after("later", 0.05)
        q.add_after("later", 1.0)                           # a later add does not push it back
        assert await asyncio.wait_for(q.get(), 0.5) == "later"
        q.close()
    asyncio.run(go())


def obj(name, rv, uid="u1", labels=None, ns="default"):
    return {"metadata": {"name": name, "namespace": ns, "uid": uid, "resourceVersion": str(rv), "labels": labels or {}}}


def test_cache_never_steps_back_and_ignores_what_we_deleted():
    c = ObjectCache("pods")
    c.add_index("labels", label_pairs)
    c.observe(obj("p", 10, labels={"app": "a"}))           # our own write's answer
    c.apply_event("MODIFIED", obj("p", 9, labels={"app": "old"}))   # its older event, late
    assert c.get("default", "p")["metadata"]["resourceVersion"] == "10"
    assert [o["metadata"]["name"] for o in c.by_index("labels", "default/app=a")] == ["p"]
    assert c.by_index("labels", "default/app=old") == []
    c.apply_event("MODIFIED", obj("p", 11, labels={"app": "b"}))
    assert c.by_index("labels", "default/app=a") == [] and c.get_uid("u1")["metadata"]["resourceVersion"] == "11"
    c.observe_deleted(obj("p", 11))
    c.apply_event("MODIFIED", obj("p", 12))                 # a late event of the deleted object
    assert c.get("default", "p") is None
    c.apply_event("ADDED", obj("p", 13, uid="u2"))         # a new object of the same name
    assert c.get("default", "p")["metadata"]["uid"] == "u2"
    c.apply_event("DELETED", obj("p", 14, uid="u2"))
    c.observe(obj("p", 13, uid="u2"))                       # a late answer must not revive it
    assert c.get("default", "p") is None


def test_selector_helpers():
    c = ObjectCache("pods")
    c.add_index("labels", label_pairs)
    c.observe(obj("a", 1, "ua", {"app": "web", "tier": "1"}))
    c.observe(obj("b", 2, "ub", {"app": "web"}))
    c.observe(obj("c", 3, "uc", {"app": "web", "tier": "1"}, ns="other"))
    assert sorted(p["metadata"]["name"] for p in pods_for_selector(c, "default", {"app": "web", "tier": "1"})) == ["a"]
    assert pods_for_selector(c, "default", {}) == []
    assert selects({"a": "1"}, {"a": "1", "b": "2"}) and not selects({"a": "1"}, None)
