"""Real, unmodified kubectl against a running server on loopback: Debian's kubectl 1.20 (unpacked
into .tools by scripts/setup.sh) and, where the machine has it, /usr/bin/kubectl (a dispatcher
that runs the kubectl matching the server's minor version)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

from control.apiserver import write_kubeconfig

from .server import ROOT, ThreadServer

KUBECTLS = {"kubectl-1.20": os.path.join(ROOT, ".tools", "kubectl-1.20")}
if shutil.which("kubectl") and os.path.realpath(shutil.which("kubectl")) != os.path.realpath(KUBECTLS["kubectl-1.20"]):
    KUBECTLS["kubectl-newer"] = shutil.which("kubectl")

APP = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: netexec
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {app: solo}
spec:
  containers:
  - name: c
    image: netexec
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    s = ThreadServer().start()
    d = tmp_path_factory.mktemp("kubectl")
    cfg = str(d / "admin.kubeconfig")
    write_kubeconfig(cfg, s.url)
    yield s, cfg, d
    s.stop()


@pytest.fixture(params=sorted(KUBECTLS))
def kubectl(request, cluster):
    path = KUBECTLS[request.param]
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: scripts/setup.sh installs it")
    s, cfg, d = cluster
    ns = request.param.replace(".", "-")
    with s.client() as api:
        api.post("/api/v1/namespaces", json={"metadata": {"name": ns}})

    def run(*args, check=True, timeout=60) -> str:
        env = dict(os.environ, KUBECONFIG=cfg, HOME=str(d))
        p = subprocess.run([path, "-n", ns, *args], capture_output=True, text=True, env=env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p.stdout

    run.ns, run.dir, run.path, run.cfg = ns, d, path, cfg
    yield run
    with s.client() as api:
        api.delete(f"/api/v1/namespaces/{ns}")


def manifest(kubectl, text: str, name: str = "app.yaml") -> str:
    path = os.path.join(kubectl.dir, f"{kubectl.ns}-{name}")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_create_get_and_output_formats(kubectl):
    out = kubectl("create", "-f", manifest(kubectl, APP))
    assert "deployment.apps/web created" in out and "service/web created" in out and "pod/solo created" in out
    table = kubectl("get", "pods").splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == ["solo", "0/1", "Pending", "0"]
    wide = kubectl("get", "pods", "-o", "wide").splitlines()
    assert wide[0].split()[5:7] == ["IP", "NODE"]
    svc = kubectl("get", "svc").splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    cells = svc[1].split()
    assert cells[:2] == ["web", "NodePort"] and cells[4].startswith("80:") and cells[4].endswith("/TCP")
    as_yaml = yaml.safe_load(kubectl("get", "svc", "web", "-o", "yaml"))
    as_json = json.loads(kubectl("get", "svc", "web", "-o", "json"))
    assert as_yaml == as_json and as_json["spec"]["clusterIP"] == cells[2]
    deploy = kubectl("get", "deployments").splitlines()
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    names = kubectl("get", "pods", "-o", "name").split()
    assert names == ["pod/solo"]


def test_nodes_table(kubectl, cluster):
    s, _, _ = cluster
    with s.client() as api:
        api.post("/api/v1/nodes", json={"metadata": {"name": f"{kubectl.ns}-n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
                                        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                                   "nodeInfo": {"kubeletVersion": "v1.30.0-nodeagent"}}})
    lines = kubectl("get", "nodes").splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    row = [l.split() for l in lines if l.startswith(f"{kubectl.ns}-n1")][0]
    assert row[1:3] == ["Ready", "control-plane"] and row[4] == "v1.30.0-nodeagent"


def test_apply_twice_then_label_scale_and_delete(kubectl, cluster):
    s, _, _ = cluster
    path = manifest(kubectl, APP, "apply.yaml")
    out = kubectl("apply", "-f", path)
    assert "deployment.apps/web created" in out
    changed = manifest(kubectl, APP.replace("replicas: 2", "replicas: 3"), "apply2.yaml")
    out = kubectl("apply", "-f", changed)
    assert "deployment.apps/web configured" in out and "service/web unchanged" in out
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "3"
    last = json.loads(kubectl("get", "deploy", "web", "-o", "json"))["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"]
    assert json.loads(last)["spec"]["replicas"] == 3

    assert "labeled" in kubectl("label", "pod", "solo", "tier=front")
    assert kubectl("get", "pod", "solo", "-o", "jsonpath={.metadata.labels.tier}") == "front"
    assert kubectl("get", "pods", "-l", "tier=front", "-o", "name").split() == ["pod/solo"]
    assert "scaled" in kubectl("scale", "deployment", "web", "--replicas=5")
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "5"

    out = kubectl("delete", "-f", path)
    assert 'deployment.apps "web" deleted' in out and 'pod "solo" deleted' in out
    with s.client() as api:
        assert api.get(f"/api/v1/namespaces/{kubectl.ns}/pods").json()["items"] == []
        assert api.get(f"/api/v1/namespaces/{kubectl.ns}/services").json()["items"] == []


def test_get_watch_sees_a_change(kubectl, cluster):
    s, _, _ = cluster
    kubectl("create", "-f", manifest(kubectl, APP, "watch.yaml"))
    env = dict(os.environ, KUBECONFIG=kubectl.cfg, HOME=str(kubectl.dir))
    proc = subprocess.Popen([kubectl.path, "-n", kubectl.ns, "get", "pods", "-w"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].split()[0] == "NAME" and lines[1].split()[0] == "solo"
        time.sleep(0.3)
        with s.client() as api:
            api.patch(f"/api/v1/namespaces/{kubectl.ns}/pods/solo/status",
                      json={"status": {"phase": "Running", "podIP": "10.244.1.7",
                                       "containerStatuses": [{"name": "c", "ready": True, "restartCount": 2,
                                                              "image": "netexec", "state": {"running": {}}}]}},
                      headers={"content-type": "application/merge-patch+json"})
        changed = proc.stdout.readline().split()
        assert changed[:4] == ["solo", "1/1", "Running", "2"]
    finally:
        proc.kill()
        proc.wait()


def test_errors_are_shown_as_kubernetes_prints_them(kubectl):
    bad = manifest(kubectl, "apiVersion: v1\nkind: Service\nmetadata:\n  name: Bad_Name\nspec:\n  ports:\n  - port: 80\n", "bad.yaml")
    p = subprocess.run([kubectl.path, "-n", kubectl.ns, "create", "-f", bad], capture_output=True, text=True,
                       env=dict(os.environ, KUBECONFIG=kubectl.cfg, HOME=str(kubectl.dir)))
    assert p.returncode != 0
    assert 'Service "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"' in p.stderr
    p = subprocess.run([kubectl.path, "-n", kubectl.ns, "get", "pod", "nothere"], capture_output=True, text=True,
                       env=dict(os.environ, KUBECONFIG=kubectl.cfg, HOME=str(kubectl.dir)))
    assert p.returncode != 0 and 'pods "nothere" not found' in p.stderr
