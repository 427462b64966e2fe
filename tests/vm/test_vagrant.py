"""Tier 5: the VIP traffic tests on a Vagrant cluster of VMs (vagrant/Vagrantfile): separate
kernels, systemd units, a real underlay between VMs. One control-plane VM (a node too) and
NODEAGENT_WORKERS workers (default 2; CI runs 1, two VMs). The module brings them up with
`vagrant/cluster.sh up` and destroys them at the end (also when a test fails), unless
NODEAGENT_VAGRANT_UP=1 says a cluster is already up and must stay.

Pod to pod across VMs over VXLAN, a pod to a ClusterIP served from the other VM, a NodePort from
the host, and kill -9 of an agent (systemd restarts it) during request loops without a failure."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.waiting import wait

from .vms import LOOP, NODES, PAIR, cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vms():
    with cluster() as c:
        yield c


def netexec(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 5, "containers": [{
                "name": "app", "image": "nodeagent/netexec", "args": ["--http-port=8080"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 2}}]}}


@pytest.fixture(scope="module")
def web(vms):
    """web-1 on worker1, web-2 on another VM, behind a ClusterIP and a NodePort service, in a
    namespace of this run's own (deleted at the end: a kept cluster can run the tests again)."""
    ns = f"vm{os.getpid()}"
    vms.req("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    base = f"/api/v1/namespaces/{ns}"
    try:
        for i, node in enumerate(PAIR, 1):
            vms.req("POST", f"{base}/pods", netexec(f"web-{i}", node))
        vms.req("POST", f"{base}/services", {
            "metadata": {"name": "web"}, "spec": {"type": "NodePort", "selector": {"app": "web"},
                                                  "ports": [{"port": 80, "targetPort": "http"}]}})

        def ready():
            items = vms.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
                            "?labelSelector=kubernetes.io/service-name=web")["items"]
            eps = [e for s in items for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")]
            return len(eps) == 2
        wait(ready, 240, "both web pods ready behind the service")
        svc = vms.get(f"{base}/services/web")["spec"]
        pods = {f"web-{i}": vms.get(f"{base}/pods/web-{i}")["status"]["podIP"] for i in (1, 2)}
        yield {"ns": ns, "cluster_ip": svc["clusterIP"], "node_port": svc["ports"][0]["nodePort"], "pods": pods}
    finally:
        for path in (f"{base}/services/web", f"{base}/pods/web-1", f"{base}/pods/web-2", f"/api/v1/namespaces/{ns}"):
            vms.http.delete(path)


def test_every_vm_is_a_ready_node_on_the_private_network(vms):
    nodes = wait(lambda: (lambda items: items if len(items) == len(NODES) and all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) for n in items) else None)(
        vms.get("/api/v1/nodes")["items"]), 180, f"{len(NODES)} Ready nodes")
    addrs = {n["metadata"]["name"]: [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
             for n in nodes}
    assert addrs == {name: [ip] for name, ip in NODES.items()}
    # the agent really runs as a systemd unit on each VM, the control plane on the control VM
    for unit in ("nodeagent-apiserver", "nodeagent-scheduler", "nodeagent-controller-manager"):
        assert vms.ssh("control", "systemctl", "is-active", unit).stdout.strip() == "active"
    for vm in NODES:
        assert vms.ssh(vm, "systemctl", "is-active", "nodeagent-agent").stdout.strip() == "active"


def test_pod_to_pod_across_vms_over_vxlan(vms, web):
    a = vms.fetch_from_pod(web["ns"], "web-1", f"http://{web['pods']['web-2']}:8080/")
    assert a["pod"] == "web-2" and a["node"] == PAIR[1]
    assert a["client"].split(":")[0] == web["pods"]["web-1"]   # no NAT between pods
    # and it went through the VXLAN device, not some other path
    route = vms.ssh(PAIR[0], "ip", "route", "get", web["pods"]["web-2"]).stdout
    assert "dev nodeagent.1" in route, route


def test_a_pod_reaches_a_clusterip_served_from_the_other_vm(vms, web):
    seen = set()
    for _ in range(12):
        seen.add(vms.fetch_from_pod(web["ns"], "web-1", f"http://{web['cluster_ip']}/")["pod"])
        if seen == {"web-1", "web-2"}:
            break
    assert seen == {"web-1", "web-2"}


def test_nodeport_from_the_host(vms, web):
    seen = set()
    for _ in range(12):
        r = httpx.get(f"http://{NODES[PAIR[0]]}:{web['node_port']}/", timeout=10)
        seen.add(r.json()["pod"])
        if seen == {"web-1", "web-2"}:
            break
    assert seen == {"web-1", "web-2"}


def test_kill_9_of_an_agent_during_request_loops_loses_nothing(vms, web):
    before = vms.ssh(PAIR[0], "systemctl", "show", "-p", "MainPID", "--value", "nodeagent-agent").stdout.strip()
    from_pod = vms.loop_in_pod(web["ns"], "web-2", f"http://{web['cluster_ip']}/", 25)
    from_host = subprocess.Popen([sys.executable, LOOP, f"http://{NODES[PAIR[0]]}:{web['node_port']}/", "25", "0.1"],
                                 stdout=subprocess.PIPE, text=True)
    time.sleep(4)
    vms.ssh(PAIR[0], "kill", "-9", before)
    after = wait(lambda: (lambda pid: pid if pid not in ("0", before) else None)(
        vms.ssh(PAIR[0], "systemctl", "show", "-p", "MainPID", "--value", "nodeagent-agent").stdout.strip()),
        30, "systemd restarting the agent")
    assert after != before
    for p in (from_pod, from_host):
        out, _ = p.communicate(timeout=120)
        r = json.loads(out)
        assert r["failed"] == 0 and r["requests"] > 20 and set(r["pods"]) == {"web-1", "web-2"}, r
    # the pods were adopted, not restarted
    for i in (1, 2):
        cs = vms.get(f"/api/v1/namespaces/{web['ns']}/pods/web-{i}")["status"]["containerStatuses"][0]
        assert cs["restartCount"] == 0 and cs["ready"]
