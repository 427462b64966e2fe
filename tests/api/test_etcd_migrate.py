"""Moving a cluster from SQLite to etcd (and back through an export file): every object is kept,
allocations stay taken, and every resourceVersion after the move is higher than any before."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import orjson
import pytest

from control.store import Create, SQLiteStore

from . import etcd as etcd_mod
from .conftest import pod, service
from .server import ROOT, ProcessServer
from .watchclient import Watcher

pytestmark = pytest.mark.skipif(not etcd_mod.available(), reason="needs etcd (apt-get install etcd-server)")

COLLECTIONS = ["/api/v1/namespaces", "/api/v1/pods", "/api/v1/services", "/apis/apps/v1/deployments"]


@pytest.fixture(scope="module")
def backend():
    """Not parametrised over backends: these tests are about moving between them."""
    return "etcd"


def migrate(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "control.store.migrate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def snapshot(api) -> tuple[dict, int]:
    """Every object by (collection, namespace, name), and the highest resourceVersion seen."""
    out, top = {}, 0
    for coll in COLLECTIONS:
        body = api.get(coll).json()
        top = max(top, int(body["metadata"]["resourceVersion"]))
        for o in body["items"]:
            out[(coll, o["metadata"].get("namespace", ""), o["metadata"]["name"])] = o
    return out, top


def without_rv(o: dict) -> dict:
    return dict(o, metadata={k: v for k, v in o["metadata"].items() if k != "resourceVersion"})


def test_sqlite_to_etcd_keeps_every_object_and_resource_versions_keep_rising(tmp_path):
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "etcd").mkdir()
    old = ProcessServer(str(tmp_path / "sqlite"), backend="sqlite").start()
    try:
        with old.client() as api:
            api.post("/api/v1/namespaces", json={"metadata": {"name": "app"}})
            for i in range(30):
                api.post("/api/v1/namespaces/app/pods", json=pod(f"p{i}", labels={"i": str(i)}))
            for i in range(0, 30, 3):
                api.delete(f"/api/v1/namespaces/app/pods/p{i}")
            for i in range(10):  # many revisions: SQLite's revision is well above a new etcd's
                api.patch("/api/v1/namespaces/app/pods/p1", json={"metadata": {"labels": {"n": str(i)}}},
                          headers={"content-type": "application/merge-patch+json"})
            svc = api.post("/api/v1/namespaces/app/services", json=service("web", type="NodePort")).json()
            api.post("/apis/apps/v1/namespaces/app/deployments", json={
                "metadata": {"name": "d"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "d"}},
                                                    "template": {"metadata": {"labels": {"a": "d"}},
                                                                 "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
            before, top = snapshot(api)
    finally:
        old.kill()

    cluster = etcd_mod.EtcdCluster().start()
    try:
        r = migrate("--from", f"sqlite:{tmp_path / 'sqlite' / 'state.db'}", "--to", f"etcd:{cluster.endpoints}")
        assert r.returncode == 0, r.stderr
        assert "copied" in r.stdout and f"above {top}" in r.stdout

        new = ProcessServer(str(tmp_path / "etcd"), backend="etcd", etcd=cluster).start()
        try:
            with new.client() as api:
                after, _ = snapshot(api)
                assert set(after) == set(before)
                for k in before:
                    assert without_rv(after[k]) == without_rv(before[k])  # uid, timestamps, spec, status
                    assert int(after[k]["metadata"]["resourceVersion"]) > top
                # allocations came along: the service's node port and IP are still taken
                port = svc["spec"]["ports"][0]["nodePort"]
                r = api.post("/api/v1/namespaces/app/services",
                             json=service("dup", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
                assert r.status_code == 422
                r = api.post("/api/v1/namespaces/app/services", json=service("dup2", clusterIP=svc["spec"]["clusterIP"]))
                assert r.status_code == 422
                # updates with the new versions work, and keep rising
                p = after[("/api/v1/pods", "app", "p1")]
                p["metadata"]["labels"]["moved"] = "yes"
                upd = api.put("/api/v1/namespaces/app/pods/p1", json=p)
                assert upd.status_code == 200
                assert int(upd.json()["metadata"]["resourceVersion"]) > int(p["metadata"]["resourceVersion"])
                # a client watching from before the move must relist
                w = Watcher(new.url, "/api/v1/namespaces/app/pods", {"resourceVersion": str(top)})
                try:
                    ev = w.next()
                    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410
                finally:
                    w.close()
                # the same after an API server restart (the offset lives in etcd)
            new.kill()
            new.start()
            with new.client() as api:
                created = api.post("/api/v1/namespaces/app/pods", json=pod("later")).json()
                assert int(created["metadata"]["resourceVersion"]) > top
                assert snapshot(api)[0].keys() == before.keys() | {("/api/v1/pods", "app", "later")}
        finally:
            new.kill()

        # a second migration into the now used etcd is refused, and changes nothing
        r = migrate("--from", f"sqlite:{tmp_path / 'sqlite' / 'state.db'}", "--to", f"etcd:{cluster.endpoints}")
        assert r.returncode == 1 and "already holds" in r.stderr

        # and back: etcd -> export file -> a new SQLite database
        dump = tmp_path / "export.jsonl"
        r = migrate("--from", f"etcd:{cluster.endpoints}", "--to", f"file:{dump}")
        assert r.returncode == 0, r.stderr
        head = orjson.loads(dump.read_bytes().splitlines()[0])
        (tmp_path / "back").mkdir()
        r = migrate("--from", f"file:{dump}", "--to", f"sqlite:{tmp_path / 'back' / 'state.db'}")
        assert r.returncode == 0, r.stderr
        back = ProcessServer(str(tmp_path / "back"), backend="sqlite").start()
        try:
            with back.client() as api:
                objs, _ = snapshot(api)
                assert ("/api/v1/pods", "app", "later") in objs and len(objs) == len(before) + 1
                assert all(int(o["metadata"]["resourceVersion"]) > head["revision"] for o in objs.values())
        finally:
            back.kill()
    finally:
        cluster.stop()


def test_into_an_etcd_whose_revision_is_already_higher_and_under_a_prefix(tmp_path):
    """No offset is needed when etcd's own revision is already past SQLite's; a prefix keeps a
    second cluster's keys apart in one etcd."""
    from control.store.etcd import EtcdStore
    from control.store.migrate import migrate as run_migration

    cluster = etcd_mod.EtcdCluster().start()
    db = str(tmp_path / "state.db")

    async def go():
        src = SQLiteStore(db)
        recs = [(await src.commit([Create(f"/registry/pods/default/p{i}", {"metadata": {"name": f"p{i}"}})]))[0]
                for i in range(3)]
        await src.close()
        busy = EtcdStore(cluster.endpoints, prefix="/other")
        for i in range(20):
            await busy.commit([Create(f"/registry/x/{i}", None)])
        await busy.close()
        out = await run_migration(f"sqlite:{db}", f"etcd:{cluster.endpoints}", etcd_options={"prefix": "/c2"})
        assert out["offset"] == 0 and out["copied"] == 3
        s = EtcdStore(cluster.endpoints, prefix="/c2")
        try:
            got, _, _ = await s.list("/registry/")
            assert [r.obj["metadata"]["name"] for r in got] == ["p0", "p1", "p2"]
            assert min(r.mod_rev for r in got) > recs[-1].mod_rev
            assert len((await s.list("/"))[0]) == 4  # the 3 objects and the migration's record
        finally:
            await s.close()
        with pytest.raises(Exception, match="already holds"):
            await run_migration(f"sqlite:{db}", f"etcd:{cluster.endpoints}", etcd_options={"prefix": "/c2"})
        # a different, empty prefix is fine
        out = await run_migration(f"sqlite:{db}", f"etcd:{cluster.endpoints}",
                                  etcd_options={"prefix": f"/c{uuid.uuid4().hex[:6]}"})
        assert out["copied"] == 3
    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        cluster.stop()


def test_bad_sources_are_refused_clearly(tmp_path):
    r = migrate("--from", f"sqlite:{tmp_path / 'missing.db'}", "--to", "etcd:http://127.0.0.1:1")
    assert r.returncode == 1 and "no such SQLite database" in r.stderr
    r = migrate("--from", "mysql:x", "--to", "etcd:http://127.0.0.1:1")
    assert r.returncode == 1 and "use --from/--to" in r.stderr
    (tmp_path / "x.jsonl").write_text('{"kind":"Other"}\n')
    r = migrate("--from", f"file:{tmp_path / 'x.jsonl'}", "--to", f"sqlite:{tmp_path / 'y.db'}")
    assert r.returncode == 1 and "not an export" in r.stderr
