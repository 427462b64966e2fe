"""The HA control plane: a three-member etcd cluster on loopback with two `nodeagent apiserver`
processes over it. Losing an etcd member does not stop writes; losing an API server in the
middle of a watch moves the components to the other one without a relist and without a missed
event; leader election holds across API servers; and stopping everything loses nothing."""
from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from control.client import ApiClient, Informer

from . import etcd as etcd_mod
from .conftest import pod, service
from .server import ProcessServer
from .watchclient import Watcher

pytestmark = pytest.mark.skipif(not etcd_mod.available(), reason="needs etcd (apt-get install etcd-server)")


@pytest.fixture(scope="module")
def backend():
    """Not parametrised over backends: these tests are about etcd."""
    return "etcd"


@pytest.fixture
def cluster3():
    c = etcd_mod.EtcdCluster(3).start()
    yield c
    c.stop()


def api_servers(tmp_path, cluster, n: int = 2, extra: list[str] | None = None) -> list[ProcessServer]:
    out = []
    for i in range(n):
        d = tmp_path / f"apiserver-{i}"
        d.mkdir()
        out.append(ProcessServer(str(d), backend="etcd", etcd=cluster, extra_args=extra))
    return out


def names(items) -> list[str]:
    return sorted(o["metadata"]["name"] for o in items)


def test_writes_go_on_when_an_etcd_member_dies_and_allocation_stays_unique_across_api_servers(tmp_path, cluster3):
    a, b = api_servers(tmp_path, cluster3, extra=["--service-cidr", "10.100.0.0/26", "--node-port-range", "30000-30029"])
    try:
        a.start(), b.start()
        with a.client() as ca, b.client() as cb:
            assert ca.post("/api/v1/namespaces", json={"metadata": {"name": "ha"}}).status_code == 201
            assert cb.get("/api/v1/namespaces/ha").json() == ca.get("/api/v1/namespaces/ha").json()

            # both API servers allocate at once from one small range: nothing is handed out twice
            def create(i: int) -> httpx.Response:
                with httpx.Client(base_url=(a if i % 2 else b).url, timeout=30) as c:
                    return c.post("/api/v1/namespaces/ha/services", json=service(f"s{i}", type="NodePort"))
            with ThreadPoolExecutor(12) as pool:
                results = list(pool.map(create, range(40)))
            ok = [r.json() for r in results if r.status_code == 201]
            assert len(ok) == 30  # the node-port range (30) is the tighter one
            assert all(r.status_code == 422 and "range is full" in r.json()["message"]
                       for r in results if r.status_code != 201)
            assert len({o["spec"]["clusterIP"] for o in ok}) == 30
            assert len({o["spec"]["ports"][0]["nodePort"] for o in ok}) == 30

            start = cb.get("/api/v1/namespaces/ha/pods").json()["metadata"]["resourceVersion"]
            w = Watcher(b.url, "/api/v1/namespaces/ha/pods", {"resourceVersion": start})
            try:
                # both API servers talk to member 0 first: kill it (SIGKILL)
                cluster3.kill_member(0)
                for i in range(20):
                    r = (ca if i % 2 else cb).post("/api/v1/namespaces/ha/pods", json=pod(f"p{i}"))
                    assert r.status_code == 201, r.text
                evs = w.take(20, timeout=10)
                assert [e["object"]["metadata"]["name"] for e in evs] == [f"p{i}" for i in range(20)]
            finally:
                w.close()
            assert names(ca.get("/api/v1/namespaces/ha/pods").json()["items"]) == names(
                cb.get("/api/v1/namespaces/ha/pods").json()["items"]) == sorted(f"p{i}" for i in range(20))
            assert ca.get("/readyz").status_code == 200 and cb.get("/readyz").status_code == 200

            # the member comes back and catches up
            cluster3.restart_member(0)
            cluster3.wait_healthy()
            assert cb.post("/api/v1/namespaces/ha/pods", json=pod("after")).status_code == 201
    finally:
        a.kill(), b.kill()


def test_an_informer_moves_to_the_other_api_server_without_relist_or_missed_event(tmp_path, cluster3):
    a, b = api_servers(tmp_path, cluster3)
    a.start(), b.start()

    async def go():
        client = ApiClient([a.url, b.url])
        writer = ApiClient(b.url)
        seen: list[tuple[str, str]] = []
        inf = Informer(client, "v1", "pods", namespace="default", backoff_max=0.3,
                       handler=lambda t, o, old: seen.append((t, o["metadata"]["name"])))
        task = asyncio.create_task(inf.run())
        try:
            await asyncio.wait_for(inf.synced.wait(), 10)
            for i in range(40):
                await writer.create("v1", "pods", "default", pod(f"p{i}"))
                if i == 15:
                    a.kill()  # the informer's API server dies in the middle of its watch
                await asyncio.sleep(0.01)
            deadline = asyncio.get_running_loop().time() + 20
            while len(inf.cache) < 40:
                assert asyncio.get_running_loop().time() < deadline, f"informer has {len(inf.cache)} of 40"
                await asyncio.sleep(0.05)
            assert client.server == b.url
            assert inf.relists == 1  # resumed from its resourceVersion on the other server
            assert seen == [("ADDED", f"p{i}") for i in range(40)]  # each once, in order
        finally:
            task.cancel()
            await client.close()
            await writer.close()
    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        a.kill(), b.kill()


def test_leader_election_holds_across_api_servers(tmp_path, cluster3):
    le = pytest.importorskip("control.leaderelection")
    a, b = api_servers(tmp_path, cluster3)
    a.start(), b.start()

    async def go():
        ca, cb = ApiClient(a.url), ApiClient(b.url)  # each candidate knows only its own API server
        one = le.LeaderElector(ca, "ha-test", identity="one", lease_duration=3, renew_deadline=2, retry_period=0.3)
        two = le.LeaderElector(cb, "ha-test", identity="two", lease_duration=3, renew_deadline=2, retry_period=0.3)
        both_led = []

        async def lead():
            while True:
                both_led.append(one.leading and two.leading)
                await asyncio.sleep(0.05)
        t1 = asyncio.create_task(one.run(lead))
        await asyncio.sleep(1.0)
        t2 = asyncio.create_task(two.run(lead))
        try:
            await asyncio.sleep(1.5)
            assert one.leading and not two.leading  # the lease (written via a) is seen via b
            a.kill()  # one's API server dies: it cannot renew, steps down; two takes over
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while not two.leading:
                assert loop.time() < deadline, "the other candidate never took over"
                await asyncio.sleep(0.05)
            assert not one.leading
            assert not any(both_led)
            lease = await cb.get("coordination.k8s.io/v1", "leases", "kube-system", "ha-test")
            assert lease["spec"]["holderIdentity"] == "two"
        finally:
            for t in (t1, t2):
                t.cancel()
            await asyncio.gather(t1, t2, return_exceptions=True)
            await ca.close()
            await cb.close()
    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        a.kill(), b.kill()


def test_restarting_everything_loses_nothing(tmp_path, cluster3):
    a, b = api_servers(tmp_path, cluster3)
    a.start(), b.start()
    try:
        with a.client() as ca:
            ca.post("/api/v1/namespaces", json={"metadata": {"name": "durable"}})
            mark = ca.get("/api/v1/namespaces/durable/pods").json()["metadata"]["resourceVersion"]
            for i in range(10):
                ca.post("/api/v1/namespaces/durable/pods", json=pod(f"p{i}"))
            svc = ca.post("/api/v1/namespaces/durable/services", json=service("s", type="NodePort")).json()
            ca.delete("/api/v1/namespaces/durable/pods/p3")
            before = ca.get("/api/v1/namespaces/durable/pods").json()
        last = int(before["metadata"]["resourceVersion"])
        a.kill(), b.kill()
        for i in range(3):
            cluster3.kill_member(i, signal.SIGKILL)
        for i in range(3):
            cluster3.restart_member(i)
        cluster3.wait_healthy()
        a.start(), b.start()
        for srv in (a, b):
            with srv.client() as c:
                after = c.get("/api/v1/namespaces/durable/pods").json()
                assert after["items"] == before["items"]  # the same objects, resourceVersions included
                assert c.get("/api/v1/namespaces/durable/services/s").json() == svc
                # the node port is still taken
                r = c.post("/api/v1/namespaces/durable/services",
                           json=service("t", type="NodePort", ports=[{"port": 80, "nodePort": svc["spec"]["ports"][0]["nodePort"]}]))
                assert r.status_code == 422
        with b.client() as cb:
            new = cb.post("/api/v1/namespaces/durable/pods", json=pod("new")).json()
            assert int(new["metadata"]["resourceVersion"]) > last
            # a watch from before the restart replays what followed, from etcd's history
            w = Watcher(b.url, "/api/v1/namespaces/durable/pods", {"resourceVersion": mark})
            try:
                evs = w.take(12, timeout=10)
                assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == (
                    [("ADDED", f"p{i}") for i in range(10)] + [("DELETED", "p3"), ("ADDED", "new")])
            finally:
                w.close()
    finally:
        a.kill(), b.kill()
    assert os.path.isdir(cluster3.dir)
