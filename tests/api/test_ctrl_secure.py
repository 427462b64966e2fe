"""Both components as real processes against a secure API server (HTTPS, client certificates),
each with the kubeconfig `nodeagent init` wrote for it: TLS, authentication and the fixed roles
(the scheduler may bind and write pod status; the controller manager may write what it owns)."""
from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from control import kubeconfig

from .server import ROOT, ProcessServer
from .test_ctrl_support import wait_until


@pytest.fixture
def secure(tmp_path):
    srv = ProcessServer(str(tmp_path), secure=True).start()
    creds = kubeconfig.load(os.path.join(str(tmp_path), "admin.kubeconfig"))
    api = httpx.Client(base_url=srv.url, verify=creds.ssl_context(), timeout=10,
                       headers={"Authorization": f"Bearer {creds.token}"} if creds.token else {})
    procs = []
    yield srv, api, procs
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    api.close()
    srv.stop()


def component(module: str, kubeconfig_path: str, log: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, "--kubeconfig", kubeconfig_path,
                             "--leader-elect-lease-duration", "2", "--leader-elect-renew-deadline", "1.5",
                             "--leader-elect-retry-period", "0.25", *extra],
                            cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def test_scheduler_and_controller_manager_with_their_own_credentials(secure, tmp_path):
    srv, api, procs = secure
    d = srv.data_dir
    procs.append(component("control.controllers.command", os.path.join(d, "controller-manager.kubeconfig"),
                           str(tmp_path / "cm.log")))
    procs.append(component("control.scheduler.command", os.path.join(d, "scheduler.kubeconfig"),
                           str(tmp_path / "sched.log"), "--pod-initial-backoff", "0.1"))
    node = {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"},
                                                   "conditions": [{"type": "Ready", "status": "True"}]}}
    assert api.post("/api/v1/nodes", json=node).status_code == 201
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    assert api.post("/apis/apps/v1/namespaces/default/deployments", json=dep).status_code == 201

    def bound():
        pods = api.get("/api/v1/namespaces/default/pods").json()["items"]
        return len(pods) == 2 and all(p["spec"].get("nodeName") == "n1" for p in pods)
    try:
        wait_until(bound, 20, what="pods created by the controllers and bound by the scheduler")
        wait_until(lambda: api.get("/api/v1/nodes/n1").json()["spec"].get("podCIDR") == "10.244.0.0/24", 10,
                   what="a pod CIDR for the node")
        leases = {l["metadata"]["name"]: l["spec"]["holderIdentity"]
                  for l in api.get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases").json()["items"]}
        assert leases.get("kube-scheduler") and leases.get("kube-controller-manager")
    except AssertionError:
        for name in ("cm.log", "sched.log"):
            print(name, (tmp_path / name).read_text()[-3000:])
        raise
    for p in procs:
        assert p.poll() is None, "a component exited"
