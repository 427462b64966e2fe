"""The etcd store against a real etcd (Debian's etcd-server on loopback): the same contract as
the SQLite store (tests/unit/test_store.py), plus what only etcd has: several stores (API
servers) on one etcd, a watch window filled from etcd's history, endpoint fail-over, a watch that
lost history to compaction, and TLS with client certificates."""
from __future__ import annotations

import asyncio
import os
import signal
import uuid

import grpc
import pytest

from control.auth import pki
from control.store import (ADDED, DELETED, MODIFIED, Create, Delete, Expired, KeyExists, KeyNotFound,
                           RevisionMismatch, Update)

from . import etcd as etcd_mod

pytestmark = pytest.mark.skipif(not etcd_mod.available(), reason="needs etcd (apt-get install etcd-server)")

from control.store.etcd import EtcdStore, StoreUnavailable  # noqa: E402


@pytest.fixture(scope="module")
def backend():
    """Not parametrised over backends: these tests are about etcd."""
    return "etcd"


@pytest.fixture(scope="module")
def etcd1():
    c = etcd_mod.EtcdCluster().start()
    yield c
    c.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def obj(name: str, **extra) -> dict:
    return {"metadata": {"name": name}, **extra}


def fresh(cluster, **kw) -> EtcdStore:
    """A store with a key prefix of its own, so the tests sharing the module's etcd do not meet."""
    return EtcdStore(cluster.endpoints, prefix=f"/t-{uuid.uuid4().hex[:8]}", **kw)


def test_each_commit_is_one_revision_and_the_resource_version_is_the_mod_revision(etcd1):
    async def go():
        s = fresh(etcd1)
        try:
            a, b = await s.commit([Create("/r/a", obj("a")), Create("/r/b", None)])
            assert a.mod_rev == b.mod_rev == a.create_rev
            # revision() is what the etcd watch has delivered: it catches up at once
            for _ in range(50):
                if s.revision() >= a.mod_rev:
                    break
                await asyncio.sleep(0.01)
            assert s.revision() == a.mod_rev
            assert a.obj["metadata"]["resourceVersion"] == str(a.mod_rev) and b.value == b"null"
            (c,) = await s.commit([Update("/r/a", obj("a", x=1), expected_rev=a.mod_rev)])
            assert c.mod_rev == a.mod_rev + 1 and c.create_rev == a.mod_rev
            got = await s.get("/r/a")
            assert got.value == c.value and got.mod_rev == c.mod_rev and got.obj["x"] == 1
            (d,) = await s.commit([Delete("/r/a", c.mod_rev)])
            # a delete answers the last value, stamped with the deletion's revision
            assert d.mod_rev == c.mod_rev + 1 and d.obj["x"] == 1
            assert d.obj["metadata"]["resourceVersion"] == str(d.mod_rev)
            assert await s.get("/r/a") is None
        finally:
            await s.close()
    run(go())


def test_a_failing_operation_rolls_back_the_whole_transaction_and_is_named(etcd1):
    async def go():
        s = fresh(etcd1)
        try:
            (a,) = await s.commit([Create("/r/a", obj("a"))])
            with pytest.raises(KeyExists) as err:
                await s.commit([Create("/r/new", obj("new")), Create("/r/a", obj("a"))])
            assert err.value.index == 1 and err.value.key == "/r/a"
            assert await s.get("/r/new") is None
            with pytest.raises(RevisionMismatch) as err:
                await s.commit([Create("/r/x", None), Update("/r/a", obj("a"), expected_rev=a.mod_rev - 1)])
            assert err.value.index == 1
            with pytest.raises(KeyNotFound) as err:
                await s.commit([Update("/r/a", obj("a")), Delete("/r/zzz")])
            assert err.value.index == 1
            assert (await s.get("/r/a")).mod_rev == a.mod_rev and await s.get("/r/x") is None
        finally:
            await s.close()
    run(go())


def test_list_pages_in_key_order_within_the_prefix_and_counts(etcd1):
    async def go():
        s, other = fresh(etcd1), fresh(etcd1)
        try:
            await other.commit([Create("/r/ns/zz", obj("elsewhere"))])
            await s.commit([Create(f"/r/ns/{n}", obj(n)) for n in "dcba"]
                           + [Create("/r/nt/x", obj("x")), Create("/r/n", obj("n"))])
            recs, rev, more = await s.list("/r/ns/", limit=3)
            assert [r.key for r in recs] == ["/r/ns/a", "/r/ns/b", "/r/ns/c"] and more
            assert rev >= recs[0].mod_rev
            recs, _, more = await s.list("/r/ns/", start_after="/r/ns/c", limit=3)
            assert [r.key for r in recs] == ["/r/ns/d"] and not more
            assert await s.count("/r/ns/", start_after="/r/ns/a") == 3
            assert await s.count("/r/") == 6
            recs, _, _ = await s.list("/r/ns/")
            assert len(recs) == 4  # the other store's key under the same name is not ours
        finally:
            await s.close()
            await other.close()
    run(go())


def test_watch_replays_history_then_goes_live_without_gap_or_repeat(etcd1):
    async def go():
        s = fresh(etcd1)
        try:
            (a,) = await s.commit([Create("/r/a", obj("a"))])
            (b,) = await s.commit([Update("/r/a", obj("a", v=2))])
            await s.commit([Create("/other/z", obj("z"))])
            w = s.watch("/r/", a.mod_rev)
            (d,) = await s.commit([Delete("/r/a")])
            got = [await w.next(2) for _ in range(2)]
            assert [(e.type, e.record.mod_rev) for e in got] == [(MODIFIED, b.mod_rev), (DELETED, d.mod_rev)]
            assert got[0].prev is not None and got[0].prev.obj.get("v") is None
            assert got[0].prev.obj["metadata"]["resourceVersion"] == str(a.mod_rev)
            assert got[1].record.obj["v"] == 2 and got[1].record.obj["metadata"]["resourceVersion"] == str(d.mod_rev)
            assert await w.next(0.2) is None
            w.close()
            # a client that already holds a revision the etcd watch has not delivered yet (from a
            # write or a list) gets nothing at or below it
            (e,) = await s.commit([Create("/r/e", obj("e"))])
            w = s.watch("/r/", e.mod_rev)
            (f,) = await s.commit([Create("/r/f", obj("f"))])
            ev = await w.next(2)
            assert (ev.type, ev.record.key, ev.record.mod_rev) == (ADDED, "/r/f", f.mod_rev)
            assert await w.next(0.2) is None
            w.close()
        finally:
            await s.close()
    run(go())


def test_two_stores_on_one_etcd_see_each_others_writes_and_race_safely(etcd1):
    """Two API servers: one's writes reach the other's watchers, and concurrent creates of one
    marker key (an allocation) from both: exactly one wins."""
    async def go():
        prefix = f"/t-{uuid.uuid4().hex[:8]}"
        a = EtcdStore(etcd1.endpoints, prefix=prefix)
        b = EtcdStore(etcd1.endpoints, prefix=prefix)
        try:
            await b.start()
            w = b.watch("/registry/", b.revision())
            (rec,) = await a.commit([Create("/registry/pods/x", obj("x"))])
            ev = await w.next(2)
            assert ev.type == ADDED and ev.record.value == rec.value
            for i in range(20):
                key = f"/registry/allocations/clusterips/10.96.0.{i}"
                results = await asyncio.gather(a.commit([Create(key, None)]), b.commit([Create(key, None)]),
                                               return_exceptions=True)
                assert sorted(type(r).__name__ for r in results) == ["KeyExists", "list"], results
            assert await a.count("/registry/allocations/") == 20
        finally:
            await a.close()
            await b.close()
    run(go())


def test_a_new_store_fills_its_window_from_etcds_history(etcd1):
    """What lets a client fail over to another API server and resume without a relist."""
    async def go():
        prefix = f"/t-{uuid.uuid4().hex[:8]}"
        a = EtcdStore(etcd1.endpoints, prefix=prefix)
        try:
            (first,) = await a.commit([Create("/r/a", obj("a"))])
            for i in range(10):
                await a.commit([Create(f"/r/n{i}", obj(f"n{i}"))])
            await a.commit([Delete("/r/a")])
        finally:
            await a.close()
        b = EtcdStore(etcd1.endpoints, prefix=prefix)
        try:
            await b.start()
            w = b.watch("/r/", first.mod_rev)
            got = [await w.next(2) for _ in range(11)]
            assert [e.type for e in got] == [ADDED] * 10 + [DELETED]
            assert await w.next(0.2) is None
        finally:
            await b.close()
    run(go())


def test_the_window_and_compaction_expire_old_revisions():
    c = etcd_mod.EtcdCluster().start()

    async def go():
        s = EtcdStore(c.endpoints, history=5)
        try:
            recs = [(await s.commit([Create(f"/r/{i}", obj(str(i)))]))[0] for i in range(20)]
            await asyncio.sleep(0.2)
            assert s.compacted >= recs[-1].mod_rev - 5 - 1
            with pytest.raises(Expired) as err:
                s.watch("/r/", recs[1].mod_rev)
            assert "too old resource version" in str(err.value)
            w = s.watch("/r/", s.compacted)
            assert (await w.next(2)).type == ADDED
            # compaction reaches etcd: its history is gone too
            await s.compact(recs[-2].mod_rev)
            from aetcd import rpc
            with pytest.raises(grpc.aio.AioRpcError) as rpc_err:
                await s._range(rpc.RangeRequest(key=b"/r/1", revision=recs[1].mod_rev))
            assert "compacted" in rpc_err.value.details()
            with pytest.raises(Expired):
                s.watch("/r/", recs[-3].mod_rev)
        finally:
            await s.close()
    try:
        run(go())
    finally:
        c.stop()


def test_a_periodic_compactor_keeps_etcds_history_bounded():
    c = etcd_mod.EtcdCluster().start()

    async def go():
        s = EtcdStore(c.endpoints, history=10, compaction_interval=0.2)
        try:
            for i in range(30):
                await s.commit([Create(f"/r/{i}", obj(str(i)))])
            await asyncio.sleep(0.6)
            assert s._compacted >= 30 - 10 - 1
        finally:
            await s.close()
    try:
        run(go())
    finally:
        c.stop()


class CuttableProxy:
    """A TCP proxy to etcd that a test can cut (and later mend), like a network partition."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.conns: set[asyncio.StreamWriter] = set()
        self.open = True

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, reader, writer):
        if not self.open:
            writer.close()
            return
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.conns |= {writer, uw}

        async def pipe(r, w):
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                w.close()
        await asyncio.gather(pipe(reader, uw), pipe(ur, writer), return_exceptions=True)

    def cut(self) -> None:
        self.open = False
        for w in self.conns:
            w.transport.abort()
        self.conns.clear()

    def mend(self) -> None:
        self.open = True

    async def close(self) -> None:
        self.cut()
        self.server.close()


def test_a_watch_that_lost_history_to_compaction_restarts_and_clients_get_410():
    c = etcd_mod.EtcdCluster().start()

    async def go():
        proxy = CuttableProxy(c.members[0].client_port)
        port = await proxy.start()
        cut_off = EtcdStore(f"http://127.0.0.1:{port}", timeout=3)
        direct = EtcdStore(c.endpoints)
        try:
            (first,) = await cut_off.commit([Create("/r/a", obj("a"))])
            w = cut_off.watch("/r/", first.mod_rev)
            proxy.cut()  # the API server is cut off from etcd ...
            for i in range(10):
                await direct.commit([Create(f"/r/{i}", obj(str(i)))])
            await direct.compact(direct.revision())  # ... while etcd compacts its history away
            assert not await cut_off.ready()
            proxy.mend()
            for _ in range(100):
                if cut_off.resets:
                    break
                await asyncio.sleep(0.1)
            assert cut_off.resets == 1
            assert w._closed  # its watchers were ended: their clients re-watch ...
            with pytest.raises(Expired):
                cut_off.watch("/r/", first.mod_rev)  # ... get 410, and relist
            recs, rev, _ = await cut_off.list("/r/")
            assert len(recs) == 11
            # and it carries on live
            w = cut_off.watch("/r/", rev)
            await direct.commit([Create("/r/live", obj("live"))])
            assert (await w.next(3)).record.key == "/r/live"
            assert await cut_off.ready()
        finally:
            await cut_off.close()
            await direct.close()
            await proxy.close()
    try:
        run(go())
    finally:
        c.stop()


def test_the_next_endpoint_is_used_when_one_is_down(etcd1):
    async def go():
        dead = f"http://127.0.0.1:{etcd_mod.free_port()}"
        s = EtcdStore(f"{dead},{etcd1.endpoints}", prefix=f"/t-{uuid.uuid4().hex[:8]}", timeout=5)
        try:
            (a,) = await s.commit([Create("/r/a", obj("a"))])
            w = s.watch("/r/", a.mod_rev - 1)
            assert (await w.next(3)).record.key == "/r/a"
            assert (await s.get("/r/a")).mod_rev == a.mod_rev
            assert s.endpoints[s._cur] == etcd1.endpoints
        finally:
            await s.close()
        # none answers: a clear error, in bounded time
        s = EtcdStore(dead, timeout=1)
        try:
            with pytest.raises(StoreUnavailable):
                await s.get("/r/a")
            assert not await s.ready()
        finally:
            await s.close()
    run(go())


def test_tls_with_client_certificates(tmp_path):
    ca_key, ca_cert = pki.make_ca("etcd-test-ca")
    files = {}
    for name, client in (("server", False), ("client", True)):
        key = pki.new_key()
        cert = pki.sign(ca_key, ca_cert, key.public_key(), f"etcd-{name}", client=client,
                        server_names=["127.0.0.1", "localhost"] if not client else None)
        files[name] = (str(tmp_path / f"{name}.crt"), str(tmp_path / f"{name}.key"))
        (tmp_path / f"{name}.crt").write_bytes(pki.cert_pem(cert))
        (tmp_path / f"{name}.key").write_bytes(pki.key_pem(key))
    ca = str(tmp_path / "ca.crt")
    (tmp_path / "ca.crt").write_bytes(pki.cert_pem(ca_cert))
    c = etcd_mod.EtcdCluster(tls={"ca": ca, "cert": files["server"][0], "key": files["server"][1]}).start()

    async def go():
        assert c.endpoints.startswith("https://")
        s = EtcdStore(c.endpoints, ca_file=ca, cert_file=files["client"][0], key_file=files["client"][1])
        try:
            (a,) = await s.commit([Create("/r/a", obj("a"))])
            assert (await s.get("/r/a")).value == a.value
            assert await s.ready()
        finally:
            await s.close()
        anonymous = EtcdStore(c.endpoints, ca_file=ca, timeout=1)  # no client certificate
        try:
            with pytest.raises((StoreUnavailable, grpc.aio.AioRpcError)):
                await anonymous.get("/r/a")
        finally:
            await anonymous.close()
    try:
        run(go())
    finally:
        c.stop()
    assert not os.path.exists(c.dir)


def test_a_frozen_member_is_left_behind():
    """A member that stops answering (SIGSTOP: like a network partition) costs one attempt's
    share of the timeout, not the request."""
    c = etcd_mod.EtcdCluster(3).start()

    async def go():
        s = EtcdStore(c.endpoints, timeout=3)
        try:
            await s.commit([Create("/r/a", obj("a"))])
            os.kill(c.members[0].proc.pid, signal.SIGSTOP)
            loop = asyncio.get_running_loop()
            t = loop.time()
            (b,) = await s.commit([Create("/r/b", obj("b"))])
            assert loop.time() - t < 2.5
            assert (await s.get("/r/b")).mod_rev == b.mod_rev
            assert s.endpoints[s._cur] != c.members[0].url
        finally:
            os.kill(c.members[0].proc.pid, signal.SIGCONT)
            await s.close()
    try:
        run(go())
    finally:
        c.stop()
