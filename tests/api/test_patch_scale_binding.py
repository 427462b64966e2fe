"""PATCH in its three flavours, the scale and binding subresources, and status writes."""
from __future__ import annotations

from .conftest import deployment, pod, service, status_of

SMP = {"content-type": "application/strategic-merge-patch+json"}
MERGE = {"content-type": "application/merge-patch+json"}
JSONP = {"content-type": "application/json-patch+json"}


def test_merge_patch_labels_and_null_deletes(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    api.post(coll, json=service("mp"))
    r = api.patch(f"{coll}/mp", json={"metadata": {"labels": {"a": "1", "b": "2"}}}, headers=MERGE)
    assert r.status_code == 200 and r.json()["metadata"]["labels"] == {"a": "1", "b": "2"}
    r = api.patch(f"{coll}/mp", json={"metadata": {"labels": {"a": None}}}, headers=MERGE)
    assert r.json()["metadata"]["labels"] == {"b": "2"}


def test_json_patch_and_its_errors(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    api.post(coll, json=service("jp"))
    r = api.patch(f"{coll}/jp", json=[{"op": "add", "path": "/spec/ports/-", "value": {"name": "b", "port": 81}},
                                      {"op": "add", "path": "/spec/ports/0/name", "value": "a"}], headers=JSONP)
    assert r.status_code == 200, r.text
    assert [p["port"] for p in r.json()["spec"]["ports"]] == [80, 81]
    st = status_of(api.patch(f"{coll}/jp", json=[{"op": "test", "path": "/spec/type", "value": "NodePort"}], headers=JSONP))
    assert st["code"] == 422
    st = status_of(api.patch(f"{coll}/jp", json={"not": "a list"}, headers=JSONP))
    assert st["code"] == 400


def test_strategic_merge_patch_merges_containers_by_name(api, ns):
    coll = f"/apis/apps/v1/namespaces/{ns}/deployments"
    d = deployment("smp")
    d["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox"})
    api.post(coll, json=d)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "netexec:2",
                                                            "env": [{"name": "A", "value": "1"}]}]}}}}
    r = api.patch(f"{coll}/smp", json=patch, headers=SMP)
    assert r.status_code == 200, r.text
    cs = r.json()["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in cs] == [("app", "netexec:2"), ("side", "busybox")]
    assert cs[0]["env"] == [{"name": "A", "value": "1"}]
    assert r.json()["metadata"]["generation"] == 2


def test_patch_with_stale_resource_version_conflicts(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    s = api.post(coll, json=service("stale")).json()
    api.patch(f"{coll}/stale", json={"metadata": {"labels": {"x": "1"}}}, headers=MERGE)
    st = status_of(api.patch(f"{coll}/stale", json={"metadata": {"resourceVersion": s["metadata"]["resourceVersion"],
                                                                  "labels": {"x": "2"}}}, headers=MERGE))
    assert st["reason"] == "Conflict"


def test_patch_that_makes_object_invalid_is_refused(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    api.post(coll, json=service("inv"))
    st = status_of(api.patch(f"{coll}/inv", json={"spec": {"ports": [{"port": 99999}]}}, headers=MERGE))
    assert st["code"] == 422
    assert api.get(f"{coll}/inv").json()["spec"]["ports"][0]["port"] == 80


def test_scale_subresource(api, ns):
    coll = f"/apis/apps/v1/namespaces/{ns}/deployments"
    api.post(coll, json=deployment("sc", replicas=2))
    sc = api.get(f"{coll}/sc/scale").json()
    assert sc["kind"] == "Scale" and sc["apiVersion"] == "autoscaling/v1"
    assert sc["spec"]["replicas"] == 2 and sc["status"]["selector"] == "app=sc"
    r = api.patch(f"{coll}/sc/scale", json={"spec": {"replicas": 5}}, headers=MERGE)
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 5
    sc = r.json()
    sc["spec"]["replicas"] = 3
    assert api.put(f"{coll}/sc/scale", json=sc).json()["spec"]["replicas"] == 3
    assert api.get(f"{coll}/sc").json()["spec"]["replicas"] == 3
    st = status_of(api.put(f"{coll}/sc/scale", json=sc))  # sc's resourceVersion is stale now
    assert st["reason"] == "Conflict"
    st = status_of(api.patch(f"{coll}/sc/scale", json={"spec": {"replicas": -1}}, headers=MERGE))
    assert st["code"] == 422


def test_binding_sets_node_once(api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    api.post(coll, json=pod("b"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}
    r = api.post(f"{coll}/b/binding", json=binding)
    assert r.status_code == 201, r.text
    p = api.get(f"{coll}/b").json()
    assert p["spec"]["nodeName"] == "node-1"
    assert {"type": "PodScheduled", "status": "True"}.items() <= p["status"]["conditions"][0].items()
    binding["target"]["name"] = "node-2"
    st = status_of(api.post(f"{coll}/b/binding", json=binding))
    assert st["reason"] == "Conflict" and "already assigned" in st["message"]


def test_binding_for_a_recreated_pod_is_refused(api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    old = api.post(coll, json=pod("again")).json()
    api.delete(f"{coll}/again")
    api.post(coll, json=pod("again"))
    st = status_of(api.post(f"{coll}/again/binding", json={"metadata": {"name": "again", "uid": old["metadata"]["uid"]},
                                                          "target": {"kind": "Node", "name": "n1"}}))
    assert st["reason"] == "Conflict" and "Precondition failed" in st["message"]
    assert "nodeName" not in api.get(f"{coll}/again").json()["spec"]


def test_status_subresource_only_changes_status(api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    p = api.post(coll, json=pod("st", nodeName="n1")).json()
    p["status"] = {"phase": "Running", "podIP": "10.244.1.9", "podIPs": [{"ip": "10.244.1.9"}]}
    p["spec"]["containers"][0]["image"] = "ignored"
    r = api.put(f"{coll}/st/status", json=p)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["podIP"] == "10.244.1.9"
    assert r.json()["spec"]["containers"][0]["image"] == "netexec"
    r = api.patch(f"{coll}/st/status", json={"status": {"phase": "Succeeded"}}, headers=MERGE)
    assert r.json()["status"]["phase"] == "Succeeded" and r.json()["status"]["podIP"] == "10.244.1.9"
    # and the main resource does not change status
    p = r.json()
    p["status"]["phase"] = "Failed"
    assert api.put(f"{coll}/st", json=p).json()["status"]["phase"] == "Succeeded"


def test_service_status_load_balancer_ingress(api, ns):
    coll = f"/api/v1/namespaces/{ns}/services"
    api.post(coll, json=service("lb", type="LoadBalancer"))
    r = api.patch(f"{coll}/lb/status", json={"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}, headers=MERGE)
    assert r.json()["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.10"}]
    st = status_of(api.patch(f"{coll}/lb/status", json={"status": {"loadBalancer": {"ingress": [{"ip": "bad"}]}}}, headers=MERGE))
    assert st["code"] == 422
