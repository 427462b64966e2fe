"""Discovery, OpenAPI, health, and Table responses: what kubectl reads before anything else."""
from __future__ import annotations

from .conftest import pod, service

TABLE = {"accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"}


def test_version_and_health(api):
    v = api.get("/version").json()
    assert v["major"] == "1" and v["gitVersion"].startswith("v1.")
    for path in ("/healthz", "/livez", "/readyz"):
        r = api.get(path)
        assert r.status_code == 200 and r.text == "ok"
    assert api.get("/health").json() == {"status": "Control plane is healthy"}


def test_api_and_groups(api):
    assert api.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"]: g for g in api.get("/apis").json()["groups"]}
    assert set(groups) == {"apps", "discovery.k8s.io", "coordination.k8s.io"}
    assert groups["apps"]["preferredVersion"]["groupVersion"] == "apps/v1"
    assert api.get("/apis/apps").json()["name"] == "apps"


def test_resource_lists_name_kind_scope_verbs_and_short_names(api):
    core = {r["name"]: r for r in api.get("/api/v1").json()["resources"]}
    assert core["pods"]["namespaced"] and core["pods"]["kind"] == "Pod" and "po" in core["pods"]["shortNames"]
    assert not core["nodes"]["namespaced"] and "watch" in core["nodes"]["verbs"]
    assert core["pods/binding"]["verbs"] == ["create"]
    assert {"pods/status", "services/status", "nodes/status", "namespaces/status"} <= set(core)
    apps = {r["name"]: r for r in api.get("/apis/apps/v1").json()["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale" and apps["deployments"]["shortNames"] == ["deploy"]
    assert api.get("/apis/apps/v2").status_code == 404


def test_openapi_v2_is_the_minimal_protobuf_document(api):
    r = api.get("/openapi/v2")
    assert r.headers["content-type"] == "application/octet-stream"
    body = r.content
    assert body.startswith(b"\x0a\x032.0\x12")  # field 1 "2.0", then field 2 (info)
    assert body.endswith(b"\x42\x00\x4a\x00")      # empty paths (8) and definitions (9)


def test_table_for_pods_list_and_get(api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    api.post(coll, json=pod("t1", nodeName="node-a"))
    t = api.get(coll, headers=TABLE).json()
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    cols = [c["name"] for c in t["columnDefinitions"]]
    assert cols[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert {"IP", "Node"} <= {c["name"] for c in t["columnDefinitions"] if c["priority"] == 1}
    row = t["rows"][0]
    assert row["cells"][:4] == ["t1", "0/1", "Pending", 0] or row["cells"][:3] == ["t1", "0/1", "Pending"]
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["name"] == "t1"
    assert t["metadata"]["resourceVersion"]
    one = api.get(f"{coll}/t1", headers=TABLE).json()
    assert one["kind"] == "Table" and len(one["rows"]) == 1


def test_table_for_services_shows_ports(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    s = api.post(coll, json=service("np", type="NodePort")).json()
    row = api.get(coll, headers=TABLE).json()["rows"][0]["cells"]
    assert row[:4] == ["np", "NodePort", s["spec"]["clusterIP"], "<none>"]
    assert row[4] == f"80:{s['spec']['ports'][0]['nodePort']}/TCP"
