"""The component client: requests, Status errors, and the informer (list + watch, resume after
an API server restart without a relist, relist with a correct diff after 410)."""
from __future__ import annotations

import asyncio

import pytest

from control.client import ApiClient, ApiStatusError, Informer

from .conftest import pod, service
from .server import ProcessServer, ThreadServer


async def until(cond, timeout: float = 5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def test_requests_and_status_errors(server, ns):
    async def go():
        c = ApiClient(server.url)
        try:
            s = await c.create("v1", "services", ns, service("c1"))
            assert s["spec"]["clusterIP"]
            got = await c.get("v1", "services", ns, "c1")
            assert got == s
            p = await c.patch("v1", "services", ns, "c1", {"metadata": {"labels": {"a": "b"}}})
            assert p["metadata"]["labels"] == {"a": "b"}
            with pytest.raises(ApiStatusError) as err:
                await c.create("v1", "services", ns, service("c1"))
            assert err.value.code == 409 and err.value.reason == "AlreadyExists"
            await c.create("v1", "pods", ns, pod("bindme"))
            await c.bind(ns, "bindme", "node-9")
            assert (await c.get("v1", "pods", ns, "bindme"))["spec"]["nodeName"] == "node-9"
            await c.delete("v1", "services", ns, "c1")
            with pytest.raises(ApiStatusError) as err:
                await c.get("v1", "services", ns, "c1")
            assert err.value.code == 404
        finally:
            await c.close()
    asyncio.run(go())


def test_informer_follows_changes(server, ns):
    async def go():
        c = ApiClient(server.url)
        seen = []
        inf = Informer(c, "v1", "pods", namespace=ns, handler=lambda t, o, old: seen.append((t, o["metadata"]["name"])))
        task = asyncio.create_task(inf.run())
        try:
            await c.create("v1", "pods", ns, pod("before"))
            await asyncio.wait_for(inf.synced.wait(), 5)
            await c.create("v1", "pods", ns, pod("after"))
            await c.patch("v1", "pods", ns, "after", {"metadata": {"labels": {"x": "y"}}})
            await c.delete("v1", "pods", ns, "before")
            await until(lambda: len(seen) >= 4)
            assert seen[-3:] == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "before")]
            assert set(inf.cache) == {(ns, "after")}
            assert inf.get(ns, "after")["metadata"]["labels"] == {"x": "y"}
        finally:
            task.cancel()
            await c.close()
    asyncio.run(go())


def test_informer_resumes_across_api_server_restart_without_relisting(tmp_path):
    srv = ProcessServer(str(tmp_path)).start()

    async def go():
        c = ApiClient(srv.url)
        inf = Informer(c, "v1", "services", namespace="default", backoff_max=0.3)
        task = asyncio.create_task(inf.run())
        try:
            await asyncio.wait_for(inf.synced.wait(), 5)
            await c.create("v1", "services", "default", service("one"))
            await until(lambda: ("default", "one") in inf.cache)
            srv.kill()
            srv.start()  # same port, same data
            await c.create("v1", "services", "default", service("two"))
            await until(lambda: ("default", "two") in inf.cache, timeout=15)
            assert inf.relists == 1  # resumed from its resourceVersion
        finally:
            task.cancel()
            await c.close()
    try:
        asyncio.run(go())
    finally:
        srv.kill()


def test_informer_relists_after_410_and_reports_the_difference():
    s = ThreadServer(history=5).start()

    async def go():
        c = ApiClient(s.url)
        events = []
        inf = Informer(c, "v1", "services", namespace="default",
                       handler=lambda t, o, old: events.append((t, o["metadata"]["name"])))
        await inf.relist()
        await c.create("v1", "services", "default", service("gone"))
        await inf.relist()
        stale = inf.resource_version
        await c.delete("v1", "services", "default", "gone")
        for i in range(12):
            await c.create("v1", "services", "default", service(f"n{i}"))
        events.clear()
        inf.resource_version = stale  # as if the watch had been away for a long time
        task = asyncio.create_task(inf.run())  # synced already: it watches from the stale version
        await until(lambda: inf.relists >= 3, timeout=10)
        task.cancel()
        assert ("DELETED", "gone") in events
        assert {n for t, n in events if t == "ADDED"} == {f"n{i}" for i in range(12)}
        await c.close()

    try:
        asyncio.run(go())
    finally:
        s.stop()
