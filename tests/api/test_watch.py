"""Watch: event types, resume from a resourceVersion, 410 after compaction, bookmarks, selector
semantics, Table events, and that a slow watcher does not hold the others back."""
from __future__ import annotations

import socket
import time


from .conftest import pod, service
from .server import ThreadServer
from .watchclient import Watcher

MERGE = {"content-type": "application/merge-patch+json"}


def rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


def test_added_modified_deleted_in_order(server, api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    start = api.get(coll).json()["metadata"]["resourceVersion"]
    w = Watcher(server.url, coll, {"resourceVersion": start})
    try:
        created = api.post(coll, json=service("w")).json()
        patched = api.patch(f"{coll}/w", json={"metadata": {"labels": {"x": "1"}}}, headers=MERGE).json()
        api.delete(f"{coll}/w")
        evs = w.take(3)
        assert [e["type"] for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
        assert evs[0]["object"] == created and evs[1]["object"] == patched
        assert rv(evs[2]["object"]) > rv(patched)  # DELETED carries the deletion's revision
        assert w.quiet()
    finally:
        w.close()


def test_watch_without_resource_version_starts_with_current_state(server, api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    api.post(coll, json=pod("one"))
    api.post(coll, json=pod("two"))
    w = Watcher(server.url, coll)
    try:
        evs = w.take(2)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("ADDED", "one"), ("ADDED", "two")]
        api.post(coll, json=pod("three"))
        assert w.next()["object"]["metadata"]["name"] == "three"
    finally:
        w.close()


def test_resume_from_a_resource_version_replays_exactly_what_followed(server, api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    a = api.post(coll, json=pod("a")).json()
    api.post(coll, json=pod("b"))
    api.delete(f"{coll}/a")
    api.post(coll, json=pod("c"))
    w = Watcher(server.url, coll, {"resourceVersion": a["metadata"]["resourceVersion"]})
    try:
        evs = w.take(3)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
            ("ADDED", "b"), ("DELETED", "a"), ("ADDED", "c")]
        assert w.quiet()
    finally:
        w.close()


def test_too_old_resource_version_is_410_expired():
    s = ThreadServer(history=10).start()
    try:
        with s.client() as api:
            api.post("/api/v1/namespaces", json={"metadata": {"name": "old"}})
            first = api.post("/api/v1/namespaces/old/services", json=service("s0")).json()
            for i in range(1, 30):
                api.post("/api/v1/namespaces/old/services", json=service(f"s{i}"))
            w = Watcher(s.url, "/api/v1/namespaces/old/services", {"resourceVersion": first["metadata"]["resourceVersion"]})
            try:
                ev = w.next()
                assert ev["type"] == "ERROR"
                assert ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"
                assert "too old resource version" in ev["object"]["message"]
                assert w.ended.wait(5)
            finally:
                w.close()
            # a recent version still resumes
            recent = api.get("/api/v1/namespaces/old/services").json()["metadata"]["resourceVersion"]
            w = Watcher(s.url, "/api/v1/namespaces/old/services", {"resourceVersion": recent})
            try:
                api.post("/api/v1/namespaces/old/services", json=service("fresh"))
                assert w.next()["object"]["metadata"]["name"] == "fresh"
            finally:
                w.close()
    finally:
        s.stop()


def test_label_selector_watch_sees_objects_enter_and_leave(server, api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    start = api.get(coll).json()["metadata"]["resourceVersion"]
    w = Watcher(server.url, coll, {"resourceVersion": start, "labelSelector": "app=web"})
    try:
        api.post(coll, json=pod("p", labels={"app": "other"}))                       # not selected
        api.patch(f"{coll}/p", json={"metadata": {"labels": {"app": "web"}}}, headers=MERGE)   # enters
        api.patch(f"{coll}/p", json={"metadata": {"annotations": {"a": "b"}}}, headers=MERGE)  # stays
        api.patch(f"{coll}/p", json={"metadata": {"labels": {"app": "db"}}}, headers=MERGE)    # leaves
        assert [e["type"] for e in w.take(3)] == ["ADDED", "MODIFIED", "DELETED"]
        assert w.quiet()
    finally:
        w.close()


def test_field_selector_watch_for_one_node(server, api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    start = api.get(coll).json()["metadata"]["resourceVersion"]
    w = Watcher(server.url, "/api/v1/pods", {"resourceVersion": start, "fieldSelector": "spec.nodeName=node-x"})
    try:
        api.post(coll, json=pod("elsewhere", nodeName="node-y"))
        api.post(coll, json=pod("unbound"))
        api.post(f"{coll}/unbound/binding", json={"metadata": {"name": "unbound"}, "target": {"kind": "Node", "name": "node-x"}})
        ev = w.next()
        assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "unbound"
        assert w.quiet()
    finally:
        w.close()


def test_bookmarks():
    s = ThreadServer(bookmark_interval=0.2).start()
    try:
        with s.client() as api:
            start = api.get("/api/v1/namespaces").json()["metadata"]["resourceVersion"]
            w = Watcher(s.url, "/api/v1/namespaces", {"resourceVersion": start, "allowWatchBookmarks": "true"})
            try:
                ev = w.next()
                assert ev["type"] == "BOOKMARK"
                assert ev["object"]["kind"] == "Namespace" and int(ev["object"]["metadata"]["resourceVersion"]) >= int(start)
            finally:
                w.close()
    finally:
        s.stop()


def test_send_initial_events_ends_with_marked_bookmark(server, api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    api.post(coll, json=pod("x"))
    w = Watcher(server.url, coll, {"sendInitialEvents": "true", "allowWatchBookmarks": "true",
                                   "resourceVersionMatch": "NotOlderThan"})
    try:
        first, second = w.take(2)
        assert first["type"] == "ADDED"
        assert second["type"] == "BOOKMARK"
        assert second["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    finally:
        w.close()


def test_timeout_seconds_ends_the_stream(server, api, ns):
    w = Watcher(server.url, f"/api/v1/namespaces/{ns}/pods", {"timeoutSeconds": "1", "resourceVersion": "1"})
    try:
        assert w.ended.wait(5)
    finally:
        w.close()


def test_table_watch_events(server, api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    start = api.get(coll).json()["metadata"]["resourceVersion"]
    w = Watcher(server.url, coll, {"resourceVersion": start},
                headers={"accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    try:
        api.post(coll, json=service("tbl"))
        ev = w.next()
        table = ev["object"]
        assert ev["type"] == "ADDED" and table["kind"] == "Table"
        assert [c["name"] for c in table["columnDefinitions"]][:3] == ["Name", "Type", "Cluster-IP"]
        assert table["rows"][0]["cells"][0] == "tbl"
    finally:
        w.close()


def test_a_stalled_watcher_does_not_delay_the_others():
    """One client stops reading; the server must neither block writes nor the other watchers.
    Its queue fills and the server closes it (the client would re-watch from its last RV)."""
    s = ThreadServer(watch_queue=50).start()
    stalled = socket.create_connection(("127.0.0.1", s.port))
    try:
        with s.client() as api:
            api.post("/api/v1/namespaces", json={"metadata": {"name": "slow"}})
            coll = "/api/v1/namespaces/slow/services"
            start = api.get(coll).json()["metadata"]["resourceVersion"]
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.sendall(f"GET {coll}?watch=true&resourceVersion={start} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            fast = Watcher(s.url, coll, {"resourceVersion": start})
            try:
                time.sleep(0.2)
                big = {"a": "x" * 20000}
                t0 = time.monotonic()
                for i in range(300):
                    body = service(f"s{i}")
                    body["metadata"]["annotations"] = big
                    assert api.post(coll, json=body).status_code == 201
                    assert fast.next(timeout=2)["object"]["metadata"]["name"] == f"s{i}"
                assert time.monotonic() - t0 < 30
                # the server gave up on the stalled watcher rather than buffering without end
                assert len(s.store.hub) == 1
            finally:
                fast.close()
    finally:
        stalled.close()
        s.stop()
