"""kill -9 of the API server process: nothing committed is lost, resourceVersions keep rising,
and a watch resumed from a version before the crash continues where it left off."""
from __future__ import annotations

from .conftest import pod, service
from .server import ProcessServer
from .watchclient import Watcher


def test_kill_9_and_restart_keeps_everything(tmp_path):
    srv = ProcessServer(str(tmp_path)).start()
    try:
        with srv.client() as api:
            api.post("/api/v1/namespaces", json={"metadata": {"name": "durable"}})
            mark = int(api.get("/api/v1/namespaces/durable/pods").json()["metadata"]["resourceVersion"])
            created = [api.post("/api/v1/namespaces/durable/pods", json=pod(f"p{i}")).json() for i in range(20)]
            svc = api.post("/api/v1/namespaces/durable/services", json=service("s", type="NodePort")).json()
            api.delete("/api/v1/namespaces/durable/pods/p3")
            last = int(api.get("/api/v1/namespaces/durable/pods").json()["metadata"]["resourceVersion"])
        srv.kill()  # SIGKILL: no shutdown hook runs

        srv.start()
        with srv.client() as api:
            pods = api.get("/api/v1/namespaces/durable/pods").json()
            assert sorted(p["metadata"]["name"] for p in pods["items"]) == sorted(
                f"p{i}" for i in range(20) if i != 3)
            assert {p["metadata"]["uid"] for p in pods["items"]} == {
                c["metadata"]["uid"] for c in created if c["metadata"]["name"] != "p3"}
            again = api.get("/api/v1/namespaces/durable/services/s").json()
            assert again == svc  # identical, allocations included
            # allocations survived too: the same node port cannot be taken twice
            port = svc["spec"]["ports"][0]["nodePort"]
            r = api.post("/api/v1/namespaces/durable/services",
                         json=service("t", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
            assert r.status_code == 422
            new = api.post("/api/v1/namespaces/durable/pods", json=pod("after")).json()
            assert int(new["metadata"]["resourceVersion"]) > last

            # a watch from before the crash replays what followed, then carries on live
            w = Watcher(srv.url, "/api/v1/namespaces/durable/pods", {"resourceVersion": str(mark)})
            try:
                evs = w.take(22)
                names = [(e["type"], e["object"]["metadata"]["name"]) for e in evs]
                assert names[:20] == [("ADDED", f"p{i}") for i in range(20)]
                assert names[20:] == [("DELETED", "p3"), ("ADDED", "after")]
                api.post("/api/v1/namespaces/durable/pods", json=pod("live"))
                assert w.next()["object"]["metadata"]["name"] == "live"
            finally:
                w.close()
    finally:
        srv.kill()
