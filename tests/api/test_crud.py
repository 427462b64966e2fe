"""Every verb on every resource, and every error the API answers, against a real server."""
from __future__ import annotations

import pytest

from .conftest import deployment, pod, service, status_of

NAMESPACED = [
    ("/api/v1", "pods", pod("p1")),
    ("/api/v1", "services", service("s1")),
    ("/api/v1", "endpoints", {"metadata": {"name": "e1"}, "subsets": [
        {"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 8080}]}]}),
    ("/apis/discovery.k8s.io/v1", "endpointslices", {"metadata": {"name": "es1"}, "addressType": "IPv4",
                                                     "endpoints": [{"addresses": ["10.244.1.5"]}],
                                                     "ports": [{"port": 8080}]}),
    ("/apis/apps/v1", "deployments", deployment("d1")),
    ("/apis/apps/v1", "replicasets", {"metadata": {"name": "rs1"}, "spec": {
        "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                                                            "spec": {"containers": [{"name": "c"}]}}}}),
    ("/apis/coordination.k8s.io/v1", "leases", {"metadata": {"name": "l1"},
                                                "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}),
]


@pytest.mark.parametrize("base,plural,body", NAMESPACED, ids=[p for _, p, _ in NAMESPACED])
def test_namespaced_lifecycle(api, ns, base, plural, body):
    coll = f"{base}/namespaces/{ns}/{plural}"
    r = api.post(coll, json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    name = created["metadata"]["name"]
    meta = created["metadata"]
    assert meta["namespace"] == ns and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    # get returns the stored object, byte for byte the same document
    got = api.get(f"{coll}/{name}").json()
    assert got == created
    # list in the namespace and across namespaces
    items = api.get(coll).json()["items"]
    assert [i["metadata"]["name"] for i in items] == [name]
    everywhere = api.get(f"{base}/{plural}").json()
    assert name in [i["metadata"]["name"] for i in everywhere["items"] if i["metadata"]["namespace"] == ns]
    assert everywhere["kind"].endswith("List")
    # update with the current resourceVersion
    got["metadata"].setdefault("labels", {})["touched"] = "yes"
    r = api.put(f"{coll}/{name}", json=got)
    assert r.status_code == 200, r.text
    assert int(r.json()["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert r.json()["metadata"]["labels"]["touched"] == "yes"
    # delete, then it is gone
    r = api.request("DELETE", f"{coll}/{name}", json={"propagationPolicy": "Background"})
    assert r.status_code == 200, r.text
    assert api.get(f"{coll}/{name}").status_code == 404


def test_cluster_scoped_node_lifecycle(api):
    name = "node-crud-1"
    node = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": {"cpu": 2, "pods": "110"},
                       "addresses": [{"type": "InternalIP", "address": "192.168.50.2"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    r = api.post("/api/v1/nodes", json=node)
    assert r.status_code == 201, r.text
    assert r.json()["status"]["capacity"] == {"cpu": "2", "pods": "110"}  # quantities are strings
    assert "namespace" not in r.json()["metadata"]
    r = api.get(f"/api/v1/nodes/{name}")
    assert r.status_code == 200
    # /status changes only status; the main resource changes only spec
    obj = r.json()
    obj["status"]["conditions"][0]["status"] = "False"
    obj["spec"]["unschedulable"] = True
    r = api.put(f"/api/v1/nodes/{name}/status", json=obj)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["conditions"][0]["status"] == "False"
    assert "unschedulable" not in r.json()["spec"]
    obj = r.json()
    obj["spec"]["unschedulable"] = True
    obj["status"]["conditions"][0]["status"] = "True"
    r = api.put(f"/api/v1/nodes/{name}", json=obj)
    assert r.json()["spec"]["unschedulable"] is True
    assert r.json()["status"]["conditions"][0]["status"] == "False"
    assert api.delete(f"/api/v1/nodes/{name}").status_code == 200
    assert api.get(f"/api/v1/nodes/{name}").status_code == 404


def test_server_sets_metadata_and_defaults(api, ns):
    body = pod("defaults")
    body["metadata"].update(uid="mine", resourceVersion="999", generation=7, creationTimestamp="2000-01-01T00:00:00Z")
    body["status"] = {"phase": "Running"}
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json=body)
    p = r.json()
    assert p["metadata"]["uid"] != "mine" and p["metadata"]["generation"] == 1
    assert p["metadata"]["creationTimestamp"] != "2000-01-01T00:00:00Z"
    assert p["status"]["phase"] == "Pending"  # a client cannot create a pod as Running
    assert p["spec"]["restartPolicy"] == "Always" and p["spec"]["schedulerName"] == "default-scheduler"
    assert p["spec"]["containers"][0]["ports"][0]["protocol"] == "TCP"
    d = api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=deployment("dd")).json()
    assert d["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}


def test_generate_name(api, ns):
    body = pod("")
    body["metadata"] = {"generateName": "web-"}
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json=body)
    assert r.status_code == 201
    name = r.json()["metadata"]["name"]
    assert name.startswith("web-") and len(name) == len("web-") + 5


def test_generation_counts_spec_changes_only(api, ns):
    coll = f"/apis/apps/v1/namespaces/{ns}/deployments"
    d = api.post(coll, json=deployment("gen")).json()
    assert d["metadata"]["generation"] == 1
    d["metadata"]["labels"] = {"x": "y"}
    d = api.put(f"{coll}/gen", json=d).json()
    assert d["metadata"]["generation"] == 1
    d["spec"]["replicas"] = 5
    d = api.put(f"{coll}/gen", json=d).json()
    assert d["metadata"]["generation"] == 2


def test_noop_update_keeps_resource_version(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    s = api.post(coll, json=service("same")).json()
    again = api.put(f"{coll}/same", json=s).json()
    assert again["metadata"]["resourceVersion"] == s["metadata"]["resourceVersion"]


# -- errors ------------------------------------------------------------------------------
def revision(api) -> int:
    return int(api.get("/api/v1/namespaces").json()["metadata"]["resourceVersion"])


def test_404_for_missing_object_namespace_and_path(api, ns):
    st = status_of(api.get(f"/api/v1/namespaces/{ns}/pods/nope"))
    assert st["reason"] == "NotFound" and st["message"] == 'pods "nope" not found'
    assert st["details"] == {"name": "nope", "kind": "pods"}
    st = status_of(api.get("/apis/apps/v1/namespaces/x/deployments/nope"))
    assert st["message"] == 'deployments.apps "nope" not found'
    st = status_of(api.post("/api/v1/namespaces/no-such-ns/pods", json=pod("p")))
    assert st["reason"] == "NotFound" and 'namespaces "no-such-ns" not found' in st["message"]
    assert status_of(api.get("/api/v1/widgets"))["code"] == 404
    assert status_of(api.get("/apis/nope/v1/things"))["code"] == 404


def test_400_bad_json_wrong_kind_wrong_namespace(api, ns):
    before = revision(api)
    st = status_of(api.post(f"/api/v1/namespaces/{ns}/pods", content=b"{not json",
                            headers={"content-type": "application/json"}))
    assert st["reason"] == "BadRequest"
    body = service("wrongkind")
    st = status_of(api.post(f"/api/v1/namespaces/{ns}/pods", json=body))
    assert st["code"] == 400 and "does not match the expected kind" in st["message"]
    body = pod("wrongns")
    body["metadata"]["namespace"] = "other"
    st = status_of(api.post(f"/api/v1/namespaces/{ns}/pods", json=body))
    assert st["code"] == 400 and "namespace" in st["message"]
    st = status_of(api.get(f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": "a in (b"}))
    assert st["code"] == 400
    st = status_of(api.get(f"/api/v1/namespaces/{ns}/pods", params={"fieldSelector": "spec.bogus=1"}))
    assert st["code"] == 400 and "field label not supported: spec.bogus" in st["message"]
    assert revision(api) == before  # bad input stores nothing


def test_405_method_not_allowed(api, ns):
    st = status_of(api.put(f"/api/v1/namespaces/{ns}/pods", json=pod("x")))
    assert st["reason"] == "MethodNotAllowed"
    st = status_of(api.get(f"/api/v1/namespaces/{ns}/pods/x/binding"))
    assert st["code"] == 405


def test_409_already_exists_and_conflict(api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    first = api.post(coll, json=pod("dup")).json()
    st = status_of(api.post(coll, json=pod("dup")))
    assert st["reason"] == "AlreadyExists" and st["message"] == 'pods "dup" already exists'
    first["metadata"]["labels"] = {"v": "1"}
    assert api.put(f"{coll}/dup", json=first).status_code == 200
    first["metadata"]["labels"] = {"v": "2"}  # still carries the old resourceVersion
    st = status_of(api.put(f"{coll}/dup", json=first))
    assert st["reason"] == "Conflict" and "the object has been modified" in st["message"]
    assert api.get(f"{coll}/dup").json()["metadata"]["labels"] == {"v": "1"}


def test_413_body_too_large(api, ns):
    big = pod("big")
    big["metadata"]["annotations"] = {"a": "x" * (4 * 1024 * 1024)}
    st = status_of(api.post(f"/api/v1/namespaces/{ns}/pods", json=big))
    assert st["reason"] == "RequestEntityTooLarge"


def test_415_unsupported_media_types(api, ns):
    api.post(f"/api/v1/namespaces/{ns}/pods", json=pod("m"))
    st = status_of(api.post(f"/api/v1/namespaces/{ns}/pods", content=b"\x00",
                            headers={"content-type": "application/vnd.kubernetes.protobuf"}))
    assert st["reason"] == "UnsupportedMediaType"
    st = status_of(api.patch(f"/api/v1/namespaces/{ns}/pods/m", content=b"{}",
                             headers={"content-type": "text/plain"}))
    assert st["code"] == 415
    st = status_of(api.patch(f"/api/v1/namespaces/{ns}/pods/m", content=b"{}",
                             headers={"content-type": "application/apply-patch+yaml"}))
    assert st["code"] == 415 and "server-side apply" in st["message"]


def test_yaml_body_is_accepted(api, ns):
    doc = b"apiVersion: v1\nkind: Service\nmetadata:\n  name: fromyaml\nspec:\n  ports:\n  - port: 53\n    protocol: UDP\n"
    r = api.post(f"/api/v1/namespaces/{ns}/services", content=doc, headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["ports"][0] == {"port": 53, "protocol": "UDP", "targetPort": 53}


INVALID = [
    ("pods", pod("Bad_Name"), ["metadata.name"]),
    ("pods", pod("noc", containers=[]), ["spec.containers"]),
    ("pods", pod("port", containers=[{"name": "c", "ports": [{"containerPort": 70000, "protocol": "ICMP"}]}]),
     ["spec.containers[0].ports[0].containerPort", "spec.containers[0].ports[0].protocol"]),
    ("pods", pod("typ", containers=[{"name": "c", "ports": [{"containerPort": "80"}]}]),
     ["spec.containers[0].ports[0].containerPort"]),
    ("pods", pod("rp", restartPolicy="Sometimes"), ["spec.restartPolicy"]),
    ("services", service("svc.dots"), ["metadata.name"]),
    ("services", service("sp", ports=[{"port": 0}, {"port": 80, "protocol": "HTTP"}]),
     ["spec.ports[0].name", "spec.ports[0].port", "spec.ports[0].targetPort", "spec.ports[1].name",
      "spec.ports[1].protocol"]),
    ("services", service("ip", clusterIP="10.96.0.300", externalIPs=["nope"]),
     ["spec.clusterIP", "spec.externalIPs[0]"]),
    ("services", service("tp", ports=[{"port": 80, "targetPort": "Not_A_Name"}]), ["spec.ports[0].targetPort"]),
    ("services", service("sel", selector={"bad key!": "v"}), ["spec.selector"]),
    ("services", service("aff", sessionAffinity="Sticky"), ["spec.sessionAffinity"]),
]


@pytest.mark.parametrize("plural,body,fields", INVALID, ids=[b["metadata"]["name"] or "x" for _, b, _ in INVALID])
def test_422_one_cause_per_bad_field(api, ns, plural, body, fields):
    before = revision(api)
    st = status_of(api.post(f"/api/v1/namespaces/{ns}/{plural}", json=body))
    assert st["reason"] == "Invalid"
    assert sorted(c["field"] for c in st["details"]["causes"]) == sorted(fields)
    assert st["message"].startswith(f'{body["kind"]} "{body["metadata"]["name"]}" is invalid: ')
    assert revision(api) == before


def test_422_deployment_selector_must_match_template(api, ns):
    d = deployment("mismatch")
    d["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    st = status_of(api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=d))
    assert [c["field"] for c in st["details"]["causes"]] == ["spec.template.metadata.labels"]


def test_immutable_fields(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    s = api.post(coll, json=service("imm")).json()
    s["spec"]["clusterIP"] = "10.96.77.77"
    s["spec"]["clusterIPs"] = ["10.96.77.77"]
    st = status_of(api.put(f"{coll}/imm", json=s))
    assert st["code"] == 422 and st["details"]["causes"][0]["field"] == "spec.clusterIP"
    p = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod("bound", nodeName="node-a")).json()
    p["spec"]["nodeName"] = "node-b"
    st = status_of(api.put(f"/api/v1/namespaces/{ns}/pods/bound", json=p))
    assert st["code"] == 422 and "spec.nodeName" in [c["field"] for c in st["details"]["causes"]]
    p = api.get(f"/api/v1/namespaces/{ns}/pods/bound").json()
    p["spec"]["containers"][0]["image"] = "netexec:2"  # the one thing a pod update may change
    assert api.put(f"/api/v1/namespaces/{ns}/pods/bound", json=p).status_code == 200
    d = api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=deployment("sel")).json()
    d["spec"]["selector"] = {"matchLabels": {"app": "sel", "x": "y"}}
    d["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    st = status_of(api.put(f"/apis/apps/v1/namespaces/{ns}/deployments/sel", json=d))
    assert st["details"]["causes"][0]["field"] == "spec.selector"


def test_namespace_deletion_empties_it_and_refuses_new_content(api):
    name = "doomed-ns"
    api.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    api.post(f"/api/v1/namespaces/{name}/pods", json=pod("p"))
    api.post(f"/api/v1/namespaces/{name}/services", json=service("s"))
    r = api.delete(f"/api/v1/namespaces/{name}")
    assert r.status_code == 200 and r.json()["status"]["phase"] == "Terminating"
    import time
    deadline = time.monotonic() + 5
    while api.get(f"/api/v1/namespaces/{name}").status_code != 404:
        assert time.monotonic() < deadline, "namespace was not emptied and removed"
        time.sleep(0.05)
    assert api.get(f"/api/v1/namespaces/{name}/pods").json()["items"] == []
    assert status_of(api.delete("/api/v1/namespaces/kube-system"))["code"] == 403


def test_finalizers_hold_deletion_until_removed(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    body = service("fin")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    api.post(coll, json=body)
    r = api.delete(f"{coll}/fin")
    assert r.status_code == 200 and r.json()["metadata"]["deletionTimestamp"]
    obj = api.get(f"{coll}/fin").json()
    assert obj["metadata"]["deletionTimestamp"]
    obj["metadata"]["finalizers"] = []
    assert api.put(f"{coll}/fin", json=obj).status_code == 200
    assert api.get(f"{coll}/fin").status_code == 404


def test_graceful_pod_deletion(api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    api.post(coll, json=pod("unbound"))
    assert api.delete(f"{coll}/unbound").status_code == 200
    assert api.get(f"{coll}/unbound").status_code == 404  # nobody runs it: gone at once
    api.post(coll, json=pod("running", nodeName="node-a"))
    r = api.delete(f"{coll}/running")
    meta = r.json()["metadata"]
    assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 30
    assert api.get(f"{coll}/running").status_code == 200  # waits for its node agent
    assert api.delete(f"{coll}/running", params={"gracePeriodSeconds": 0}).status_code == 200
    assert api.get(f"{coll}/running").status_code == 404


def test_delete_preconditions(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    s = api.post(coll, json=service("pre")).json()
    st = status_of(api.request("DELETE", f"{coll}/pre", json={"preconditions": {"uid": "other"}}))
    assert st["reason"] == "Conflict" and "Precondition failed" in st["message"]
    r = api.request("DELETE", f"{coll}/pre", json={"preconditions": {"uid": s["metadata"]["uid"],
                                                                   "resourceVersion": s["metadata"]["resourceVersion"]}})
    assert r.status_code == 200


def test_delete_collection_with_selector(api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    for i in range(3):
        api.post(coll, json=pod(f"p{i}", labels={"tier": "web" if i < 2 else "db"}))
    r = api.delete(coll, params={"labelSelector": "tier=web"})
    assert r.status_code == 200 and len(r.json()["items"]) == 2
    assert [p["metadata"]["name"] for p in api.get(coll).json()["items"]] == ["p2"]


def test_dry_run_stores_nothing(api, ns):
    before = revision(api)
    r = api.post(f"/api/v1/namespaces/{ns}/services", params={"dryRun": "All"}, json=service("dry"))
    assert r.status_code == 201 and r.json()["spec"]["clusterIP"]
    assert api.get(f"/api/v1/namespaces/{ns}/services/dry").status_code == 404
    assert revision(api) == before
