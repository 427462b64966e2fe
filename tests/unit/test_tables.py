"""Tests for control.api.tables (server-side meta.k8s.io/v1 Table rendering)."""

from datetime import datetime, timedelta, timezone

import pytest

from control.api.tables import (
    PRINTERS,
    column_definitions,
    human_duration,
    render_table,
    render_watch_table,
    table_row,
)

NOW = datetime(2024, 1, 1, 1, 0, 0, tzinfo=timezone.utc)
CREATED = "2024-01-01T00:00:00Z"  # 1h before NOW -> "60m"


def meta(name, **extra):
    return {"name": name, "namespace": "default", "uid": f"uid-{name}",
            "resourceVersion": "42", "creationTimestamp": CREATED, **extra}


def cells(plural, obj):
    return table_row(plural, obj, now=NOW)["cells"]


def cols(plural):
    return [c["name"] for c in column_definitions(plural)]


def running(ready=True, restarts=0, finished=None):
    status = {"name": "c", "ready": ready, "restartCount": restarts,
              "state": {"running": {"startedAt": CREATED}}}
    if finished:
        status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                              "finishedAt": finished}}
    return status


# --------------------------------------------------------------------------- HumanDuration

@pytest.mark.parametrize("seconds,expected", [
    (-5, "<invalid>"),
    (-2, "<invalid>"),
    (-1.5, "0s"),       # int(-1.5s) == -1: within tolerated clock skew
    (-1, "0s"),
    (0, "0s"),
    (1.9, "1s"),
    (5, "5s"),
    (119, "119s"),
    (120, "2m"),
    (123, "2m3s"),
    (599, "9m59s"),
    (600, "10m"),
    (659, "10m"),
    (3600, "60m"),
    (3 * 3600 - 1, "179m"),
    (3 * 3600, "3h"),
    (3 * 3600 + 5 * 60 + 59, "3h5m"),
    (8 * 3600 - 1, "7h59m"),
    (8 * 3600, "8h"),
    (47 * 3600 + 3599, "47h"),
    (48 * 3600, "2d"),
    (50 * 3600, "2d2h"),
    (8 * 86400 - 1, "7d23h"),
    (8 * 86400, "8d"),
    (729 * 86400, "729d"),
    (730 * 86400, "2y"),
    (731 * 86400, "2y1d"),
    (8 * 365 * 86400 - 86400, "7y364d"),
    (8 * 365 * 86400, "8y"),
    (20 * 365 * 86400 + 100 * 86400, "20y"),
])
def test_human_duration(seconds, expected):
    assert human_duration(timedelta(seconds=seconds)) == expected


def test_age_unknown_invalid_and_default_now():
    obj = {"metadata": {"name": "x"}}
    assert cells("configmaps", obj) == ["x", "<unknown>"]
    obj["metadata"]["creationTimestamp"] = "not-a-time"
    assert cells("configmaps", obj) == ["x", "<invalid>"]
    recent = (datetime.now(timezone.utc) - timedelta(seconds=30)).isoformat()
    age = table_row("configmaps", {"metadata": {"name": "y", "creationTimestamp": recent}})["cells"][1]
    assert age in {"30s", "31s", "32s"}


def test_age_accepts_naive_now_and_fractional_timestamps():
    obj = {"metadata": {"name": "x", "creationTimestamp": "2024-01-01T00:58:00.123456Z"}}
    assert table_row("leases", obj, now=datetime(2024, 1, 1, 1, 0, 0))["cells"][-1] == "119s"


# --------------------------------------------------------------------------- pods

def test_pod_columns():
    defs = column_definitions("pods")
    assert [(c["name"], c["priority"]) for c in defs] == [
        ("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0),
        ("IP", 1), ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1)]
    assert defs[0]["format"] == "name" and all(c["format"] == "" for c in defs[1:])
    assert all(c["type"] == "string" for c in defs)


def test_running_pod_two_containers_one_ready_three_restarts():
    pod = {
        "metadata": meta("web-1"),
        "spec": {"nodeName": "node-1", "containers": [{"name": "app"}, {"name": "sidecar"}]},
        "status": {"phase": "Running", "podIP": "10.244.0.5",
                   "conditions": [{"type": "Ready", "status": "False"}],
                   "containerStatuses": [running(True, 0),
                                         running(False, 3, finished="2024-01-01T00:55:00Z")]},
    }
    assert cells("pods", pod) == ["web-1", "1/2", "Running", "3 (5m ago)", "60m",
                                  "10.244.0.5", "node-1", "<none>", "<none>"]
    # Without a last termination time the count stays plain.
    del pod["status"]["containerStatuses"][1]["lastState"]
    assert cells("pods", pod)[3] == "3"


def test_pod_restarts_sum_and_latest_termination():
    pod = {"metadata": meta("p"), "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "containerStatuses": [
               running(True, 2, finished="2024-01-01T00:30:00Z"),
               running(True, 4, finished="2024-01-01T00:58:01Z")]}}
    assert cells("pods", pod)[1:4] == ["2/2", "Running", "6 (119s ago)"]


def test_crashloop_pod_reports_waiting_reason():
    pod = {"metadata": meta("bad"), "spec": {"containers": [{"name": "a"}]},
           "status": {"phase": "Running", "containerStatuses": [{
               "name": "a", "ready": False, "restartCount": 7,
               "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert cells("pods", pod)[1:4] == ["0/1", "CrashLoopBackOff", "7"]


def test_terminated_container_without_reason_uses_exit_code_or_signal():
    cs = {"name": "a", "ready": False, "restartCount": 0,
          "state": {"terminated": {"exitCode": 137}}}
    pod = {"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
           "status": {"phase": "Running", "containerStatuses": [cs]}}
    assert cells("pods", pod)[2] == "ExitCode:137"
    cs["state"]["terminated"]["signal"] = 9
    assert cells("pods", pod)[2] == "Signal:9"


def test_terminating_pod():
    pod = {"metadata": meta("old", deletionTimestamp="2024-01-01T00:59:00Z"),
           "spec": {"nodeName": "node-1", "containers": [{"name": "a"}]},
           "status": {"phase": "Running", "podIP": "10.0.0.9",
                      "containerStatuses": [running(True)]}}
    assert cells("pods", pod)[:3] == ["old", "1/1", "Terminating"]


def test_deleted_pod_on_lost_node_is_unknown():
    pod = {"metadata": meta("lost", deletionTimestamp=CREATED),
           "spec": {"containers": [{"name": "a"}]},
           "status": {"phase": "Running", "reason": "NodeLost"}}
    assert cells("pods", pod)[2] == "Unknown"


def test_pending_pod_without_node():
    pod = {"metadata": meta("pending"), "spec": {"containers": [{"name": "a"}]},
           "status": {"phase": "Pending"}}
    assert cells("pods", pod) == ["pending", "0/1", "Pending", "0", "60m",
                                  "<none>", "<none>", "<none>", "<none>"]
    assert "conditions" not in table_row("pods", pod, now=NOW)


def test_pod_without_status_at_all():
    pod = {"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "a"}]}}
    assert cells("pods", pod) == ["bare", "0/1", "", "0", "<unknown>",
                                  "<none>", "<none>", "<none>", "<none>"]


def test_status_reason_overrides_phase_and_scheduling_gated():
    pod = {"metadata": meta("evicted"), "spec": {"containers": [{"name": "a"}]},
           "status": {"phase": "Failed", "reason": "Evicted"}}
    assert cells("pods", pod)[2] == "Evicted"
    gated = {"metadata": meta("gated"), "spec": {"containers": [{"name": "a"}]},
             "status": {"phase": "Pending", "conditions": [
                 {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}
    assert cells("pods", gated)[2] == "SchedulingGated"


def test_completed_pod_has_row_condition_and_is_not_terminating():
    pod = {"metadata": meta("job-x", deletionTimestamp=CREATED),
           "spec": {"containers": [{"name": "a"}]},
           "status": {"phase": "Succeeded", "containerStatuses": [{
               "name": "a", "ready": False, "restartCount": 0,
               "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}
    row = table_row("pods", pod, now=NOW)
    assert row["cells"][1:3] == ["0/1", "Completed"]
    assert row["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                  "message": "The pod has completed successfully."}]
    pod["status"]["phase"] = "Failed"
    assert table_row("pods", pod, now=NOW)["conditions"][0]["reason"] == "Failed"


def test_completed_container_with_another_running_shows_running_or_notready():
    pod = {"metadata": meta("p"), "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                      "containerStatuses": [
                          {"name": "a", "restartCount": 0,
                           "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                          running(True)]}}
    assert cells("pods", pod)[1:3] == ["1/2", "Running"]
    pod["status"]["conditions"] = []
    assert cells("pods", pod)[2] == "NotReady"


def test_init_containers():
    spec = {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]}
    done = {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}
    pod = {"metadata": meta("init"), "spec": spec, "status": {
        "phase": "Pending",
        "initContainerStatuses": [done, {"name": "i2", "restartCount": 2,
                                         "state": {"running": {}}}],
        "containerStatuses": [{"name": "a", "restartCount": 5,
                               "state": {"waiting": {"reason": "PodInitializing"}}}]}}
    # Only init container restarts count while initializing.
    assert cells("pods", pod)[1:4] == ["0/1", "Init:1/2", "2"]
    pod["status"]["initContainerStatuses"][1]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert cells("pods", pod)[2] == "Init:CrashLoopBackOff"
    pod["status"]["initContainerStatuses"][1]["state"] = {"terminated": {"exitCode": 3}}
    assert cells("pods", pod)[2] == "Init:ExitCode:3"


def test_sidecar_init_container_counts_as_container():
    pod = {"metadata": meta("side"),
           "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                    "containers": [{"name": "a"}]},
           "status": {"phase": "Running",
                      "conditions": [{"type": "Initialized", "status": "True"}],
                      "initContainerStatuses": [{"name": "proxy", "ready": True, "started": True,
                                                 "restartCount": 1,
                                                 "state": {"running": {}}}],
                      "containerStatuses": [running(True, 2)]}}
    assert cells("pods", pod)[1:4] == ["2/2", "Running", "3"]


def test_pod_wide_cells_ips_nominated_node_and_readiness_gates():
    pod = {"metadata": meta("g"),
           "spec": {"containers": [{"name": "a"}],
                    "readinessGates": [{"conditionType": "example.com/lb"},
                                       {"conditionType": "example.com/dns"}]},
           "status": {"phase": "Pending", "podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}],
                      "nominatedNodeName": "node-9",
                      "conditions": [{"type": "example.com/lb", "status": "True"},
                                     {"type": "example.com/dns", "status": "False"}]}}
    assert cells("pods", pod)[5:] == ["fd00::5", "<none>", "node-9", "1/2"]


# --------------------------------------------------------------------------- services

def test_service_columns():
    assert cols("services") == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                                "Selector"]
    assert column_definitions("services")[-1]["priority"] == 1


def test_nodeport_service_two_ports():
    svc = {"metadata": meta("web"),
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                    "selector": {"tier": "front", "app": "web"},
                    "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                              {"port": 443, "nodePort": 30443, "protocol": "TCP"}]}}
    assert cells("services", svc) == ["web", "NodePort", "10.96.0.10", "<none>",
                                      "80:30080/TCP,443:30443/TCP", "60m", "app=web,tier=front"]


def test_clusterip_service_defaults_and_external_ips():
    svc = {"metadata": meta("dns"),
           "spec": {"clusterIPs": ["10.96.0.10"], "externalIPs": ["1.2.3.4", "5.6.7.8"],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}}
    assert cells("services", svc)[1:5] == ["ClusterIP", "10.96.0.10", "1.2.3.4,5.6.7.8",
                                           "53/UDP,53/TCP"]


def test_loadbalancer_pending_and_assigned():
    svc = {"metadata": meta("lb"),
           "spec": {"type": "LoadBalancer", "clusterIP": "10.96.1.1",
                    "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]},
           "status": {"loadBalancer": {}}}
    assert cells("services", svc)[1:5] == ["LoadBalancer", "10.96.1.1", "<pending>",
                                           "80:31000/TCP"]
    svc["status"]["loadBalancer"]["ingress"] = [{"ip": "203.0.113.9"},
                                                {"hostname": "a.example.com"},
                                                {"ip": "203.0.113.9"}]
    assert cells("services", svc)[3] == "203.0.113.9,a.example.com"
    svc["spec"]["externalIPs"] = ["198.51.100.1"]
    assert cells("services", svc)[3] == "203.0.113.9,a.example.com,198.51.100.1"


def test_headless_service():
    svc = {"metadata": meta("db"), "spec": {"type": "ClusterIP", "clusterIP": "None",
                                            "clusterIPs": ["None"]}}
    assert cells("services", svc) == ["db", "ClusterIP", "None", "<none>", "<none>", "60m",
                                      "<none>"]


def test_externalname_service():
    svc = {"metadata": meta("ext"), "spec": {"type": "ExternalName",
                                             "externalName": "db.example.com"}}
    assert cells("services", svc)[1:5] == ["ExternalName", "<none>", "db.example.com", "<none>"]


# --------------------------------------------------------------------------- nodes

def test_node_columns():
    assert cols("nodes") == ["Name", "Status", "Roles", "Age", "Version", "Internal-IP",
                             "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]
    assert [c["priority"] for c in column_definitions("nodes")] == [0] * 5 + [1] * 5


def test_cordoned_notready_node_with_roles():
    node = {"metadata": meta("cp-1", labels={
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/master": "",
                "node-role.kubernetes.io/": "",  # empty role name is ignored
                "kubernetes.io/hostname": "cp-1"}),
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "False"}],
                       "addresses": [{"type": "Hostname", "address": "cp-1"},
                                     {"type": "InternalIP", "address": "192.168.1.10"}],
                       "nodeInfo": {"kubeletVersion": "v1.30.0", "osImage": "Ubuntu 22.04.4 LTS",
                                    "kernelVersion": "6.5.0-1", "containerRuntimeVersion":
                                    "containerd://1.7.13"}}}
    assert cells("nodes", node) == [
        "cp-1", "NotReady,SchedulingDisabled", "control-plane,master", "60m", "v1.30.0",
        "192.168.1.10", "<none>", "Ubuntu 22.04.4 LTS", "6.5.0-1", "containerd://1.7.13"]


def test_ready_node_legacy_role_label_and_unknown():
    node = {"metadata": meta("w-1", labels={"kubernetes.io/role": "worker"}),
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "ExternalIP", "address": "203.0.113.7"}]}}
    assert cells("nodes", node) == ["w-1", "Ready", "worker", "60m", "", "<none>",
                                    "203.0.113.7", "<unknown>", "<unknown>", "<unknown>"]
    node["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    assert cells("nodes", node)[1] == "NotReady"
    node["status"]["conditions"] = []
    node["metadata"]["labels"] = {}
    assert cells("nodes", node)[1:3] == ["Unknown", "<none>"]


# --------------------------------------------------------------------------- namespaces / leases

def test_namespace_and_lease():
    assert cols("namespaces") == ["Name", "Status", "Age"]
    ns = {"metadata": meta("kube-system"), "status": {"phase": "Active"}}
    assert cells("namespaces", ns) == ["kube-system", "Active", "60m"]
    assert cols("leases") == ["Name", "Holder", "Age"]
    lease = {"metadata": meta("kube-scheduler"),
             "spec": {"holderIdentity": "cp-1_0f3a", "leaseDurationSeconds": 15}}
    assert cells("leases", lease) == ["kube-scheduler", "cp-1_0f3a", "60m"]
    assert cells("leases", {"metadata": meta("free"), "spec": {}}) == ["free", "", "60m"]


# --------------------------------------------------------------------------- endpoints

def test_endpoints_truncation_after_three():
    ep = {"metadata": meta("web"), "subsets": [{
        "addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]}
    assert cols("endpoints") == ["Name", "Endpoints", "Age"]
    assert cells("endpoints", ep) == [
        "web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...", "60m"]


def test_endpoints_small_multi_port_headless_ipv6_and_empty():
    two = {"metadata": meta("a"), "subsets": [{
        "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
        "ports": [{"port": 80}, {"port": 443}]}]}
    assert cells("endpoints", two)[1] == "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
    one = {"metadata": meta("b"), "subsets": [{"addresses": [{"ip": "10.0.0.1"},
                                                             {"ip": "10.0.0.2"}],
                                                "ports": [{"port": 8080}]}]}
    assert cells("endpoints", one)[1] == "10.0.0.1:8080,10.0.0.2:8080"
    headless = {"metadata": meta("c"), "subsets": [{"addresses": [{"ip": "10.0.0.7"}]}]}
    assert cells("endpoints", headless)[1] == "10.0.0.7"
    v6 = {"metadata": meta("d"), "subsets": [{"addresses": [{"ip": "fd00::1"}],
                                              "ports": [{"port": 80}]}]}
    assert cells("endpoints", v6)[1] == "[fd00::1]:80"
    assert cells("endpoints", {"metadata": meta("e")})[1] == "<none>"
    assert cells("endpoints", {"metadata": meta("f"), "subsets": []})[1] == "<none>"


def test_endpointslices():
    assert cols("endpointslices") == ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    eps = {"metadata": meta("web-abc12"), "addressType": "IPv4",
           "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {"port": None},
                     {"port": 9090}],
           "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                         {"addresses": ["10.0.0.4"]}]}
    assert cells("endpointslices", eps) == [
        "web-abc12", "IPv4", "80,metrics,* + 1 more...", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
        "60m"]
    empty = {"metadata": meta("empty"), "addressType": "IPv6"}
    assert cells("endpointslices", empty) == ["empty", "IPv6", "<unset>", "<unset>", "60m"]


# --------------------------------------------------------------------------- workloads

def test_deployment():
    defs = column_definitions("deployments")
    assert [c["name"] for c in defs] == ["Name", "Ready", "Up-to-date", "Available", "Age",
                                         "Containers", "Images", "Selector"]
    assert [c["priority"] for c in defs] == [0, 0, 0, 0, 0, 1, 1, 1]
    dep = {"metadata": meta("web"),
           "spec": {"replicas": 3,
                    "selector": {"matchLabels": {"app": "web"},
                                 "matchExpressions": [{"key": "env", "operator": "In",
                                                       "values": ["staging", "prod"]},
                                                      {"key": "canary",
                                                       "operator": "DoesNotExist"}]},
                    "template": {"spec": {"containers": [
                        {"name": "nginx", "image": "nginx:1.25"},
                        {"name": "sidecar", "image": "busybox:1.36"}]}}},
           "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                      "availableReplicas": 2}}
    assert cells("deployments", dep) == [
        "web", "2/3", 3, 2, "60m", "nginx,sidecar", "nginx:1.25,busybox:1.36",
        "app=web,!canary,env in (prod,staging)"]


def test_deployment_new_without_status_or_replicas():
    dep = {"metadata": meta("fresh"),
           "spec": {"selector": {"matchLabels": {"app": "x"}},
                    "template": {"spec": {"containers": [{"name": "x", "image": "x:1"}]}}}}
    assert cells("deployments", dep)[:4] == ["fresh", "0/1", 0, 0]
    dep["spec"]["replicas"] = 0
    assert cells("deployments", dep)[1] == "0/0"


def test_replicaset():
    assert cols("replicasets") == ["Name", "Desired", "Current", "Ready", "Age", "Containers",
                                   "Images", "Selector"]
    assert [c["type"] for c in column_definitions("replicasets")][1:4] == ["integer"] * 3
    rs = {"metadata": meta("web-7d4b9"),
          "spec": {"replicas": 3,
                   "selector": {"matchLabels": {"pod-template-hash": "7d4b9", "app": "web"}},
                   "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
          "status": {"replicas": 3, "readyReplicas": 1}}
    assert cells("replicasets", rs) == ["web-7d4b9", 3, 3, 1, "60m", "nginx", "nginx",
                                        "app=web,pod-template-hash=7d4b9"]
    rs["spec"]["selector"] = {}
    assert cells("replicasets", rs)[-1] == "<none>"
    rs["spec"]["selector"] = {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}
    assert cells("replicasets", rs)[-1] == "<error>"


# --------------------------------------------------------------------------- generic

def test_unknown_plural_falls_back_to_name_and_age():
    defs = column_definitions("widgets")
    assert [(c["name"], c["type"], c["format"]) for c in defs] == [
        ("Name", "string", "name"), ("Age", "date", "")]
    assert cells("widgets", {"metadata": meta("w")}) == ["w", "60m"]


@pytest.mark.parametrize("plural", sorted(PRINTERS) + ["configmaps"])
def test_every_printer_has_one_cell_per_column_even_for_empty_objects(plural):
    defs = column_definitions(plural)
    assert len(cells(plural, {"metadata": meta("x")})) == len(defs)
    assert len(cells(plural, {})) == len(defs)
    for d in defs:
        assert set(d) == {"name", "type", "format", "description", "priority"}
        assert d["type"] in {"string", "integer", "date"}
        assert d["description"]


def test_column_definitions_are_copies():
    column_definitions("pods")[0]["name"] = "mutated"
    assert column_definitions("pods")[0]["name"] == "Name"


def test_input_object_is_not_modified():
    pod = {"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
           "status": {"phase": "Running", "containerStatuses": [running(True)]}}
    import copy
    before = copy.deepcopy(pod)
    render_table("pods", [pod], include_object="Object", now=NOW)
    assert pod == before


# --------------------------------------------------------------------------- includeObject

POD = {"kind": "Pod", "apiVersion": "v1", "metadata": meta("p", labels={"app": "x"}),
       "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}}


@pytest.mark.parametrize("mode", ["Metadata", "", None])
def test_include_object_metadata_is_partial_object_metadata(mode):
    row = table_row("pods", POD, mode, NOW)
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": POD["metadata"]}


def test_include_object_object_and_none():
    assert table_row("pods", POD, "Object", NOW)["object"] == POD
    row = table_row("pods", POD, "None", NOW)
    assert "object" not in row and len(row["cells"]) == 9


def test_include_object_default_and_invalid():
    assert render_table("pods", [POD], now=NOW)["rows"][0]["object"]["kind"] == \
        "PartialObjectMetadata"
    with pytest.raises(ValueError, match="unrecognized includeObject"):
        table_row("pods", POD, "Everything", NOW)
    with pytest.raises(ValueError):
        render_table("pods", [POD], include_object="metadata")  # case-sensitive like the server


# --------------------------------------------------------------------------- table shape

def test_render_table_shape_and_list_metadata():
    table = render_table("namespaces", [
        {"metadata": meta("default"), "status": {"phase": "Active"}},
        {"metadata": meta("doomed"), "status": {"phase": "Terminating"}}],
        resource_version="1234", continue_token="tok", now=NOW)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "1234", "continue": "tok"}
    assert table["columnDefinitions"] == column_definitions("namespaces")
    assert [r["cells"] for r in table["rows"]] == [["default", "Active", "60m"],
                                                  ["doomed", "Terminating", "60m"]]


def test_render_empty_table_without_metadata_and_headers():
    table = render_table("pods", [])
    assert table["metadata"] == {} and table["rows"] == []
    assert [c["name"] for c in table["columnDefinitions"]][:2] == ["Name", "Ready"]
    assert render_table("pods", [], include_headers=False)["columnDefinitions"] == []


def test_render_table_is_json_serialisable():
    import json
    table = render_table("pods", [POD], include_object="Object", now=NOW)
    assert json.loads(json.dumps(table)) == table


def test_watch_table_has_headers_one_row_and_object_resource_version():
    table = render_watch_table("deployments", {
        "metadata": meta("web", resourceVersion="77"),
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"spec": {"containers": [{"name": "n", "image": "nginx"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}},
        "Metadata", NOW)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "77"}
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name", "Ready", "Up-to-date", "Available", "Age"]
    assert len(table["rows"]) == 1
    row = table["rows"][0]
    assert row["cells"][:5] == ["web", "2/2", 2, 2, "60m"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["resourceVersion"] == "77"


def test_watch_table_later_events_and_include_modes():
    obj = {"metadata": {"name": "n1"}, "status": {"phase": "Active"}}
    later = render_watch_table("namespaces", obj, "None", NOW, include_headers=False)
    assert later["columnDefinitions"] == [] and later["metadata"] == {}
    assert later["rows"] == [{"cells": ["n1", "Active", "<unknown>"]}]
    assert render_watch_table("namespaces", obj, "Object", NOW)["rows"][0]["object"] is obj
