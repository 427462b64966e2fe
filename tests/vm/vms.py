"""The Vagrant cluster from the host, for the VM tests and the VM benchmark: bring it up and
down with vagrant/cluster.sh, run commands on the VMs over ssh (argv quoted for the remote shell:
nothing is interpolated), and the admin API client."""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess

import httpx

from control import kubeconfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "vagrant", "cluster.sh")
STATE = os.environ.get("NODEAGENT_VAGRANT_STATE", os.path.join(ROOT, "vagrant", ".state"))
LOOP = os.path.join(ROOT, "tests", "cluster", "loop_client.py")
NET = os.environ.get("NODEAGENT_VM_NET", "192.168.56")
WORKER_COUNT = int(os.environ.get("NODEAGENT_WORKERS", "2"))
# every VM is a node (the control VM too, as a kubeadm control-plane node runs a kubelet)
NODES = {"control": f"{NET}.10", **{f"worker{i}": f"{NET}.{10 + i}" for i in range(1, WORKER_COUNT + 1)}}
# the two nodes the tests and the benchmark use: a worker, and another VM
PAIR = ("worker1", "worker2" if WORKER_COUNT >= 2 else "control")


class Cluster:
    def __init__(self):
        raw = self.ssh("control", "cat", "/var/lib/nodeagent/admin.kubeconfig").stdout
        path = os.path.join(STATE, "admin.kubeconfig")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(raw)
        creds = kubeconfig.load(path)
        self.http = httpx.Client(base_url=creds.server, verify=creds.ssl_context(), timeout=20)

    @staticmethod
    def ssh_argv(vm: str, argv) -> list[str]:
        """ssh running argv as root on a VM, quoted for the remote shell (nothing is interpolated).
        One master connection per VM is shared: a key exchange costs seconds under emulation."""
        return ["ssh", "-F", os.path.join(STATE, "ssh_config"), "-o", "LogLevel=ERROR", "-o", "ControlMaster=auto",
                # (in /tmp: a socket path has a 108-byte limit that a deep checkout would exceed)
                "-o", "ControlPath=/tmp/na-vm-%C", "-o", "ControlPersist=30", vm, "--", "sudo", shlex.join(argv)]

    @classmethod
    def ssh(cls, vm: str, *argv: str, timeout: float = 120, check: bool = True):
        p = subprocess.run(cls.ssh_argv(vm, argv), capture_output=True, text=True, timeout=timeout)
        if check:
            assert p.returncode == 0, f"{vm}: {argv}: {p.stdout} {p.stderr}"
        return p

    def req(self, method: str, path: str, body=None):
        r = self.http.request(method, path, json=body)
        assert r.status_code < 400, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def get(self, path: str):
        return self.req("GET", path)

    def pod_ns(self, namespace: str, name: str) -> tuple[str, str]:
        p = self.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        return p["spec"]["nodeName"], f"nap-{p['metadata']['uid']}"

    def fetch_from_pod(self, namespace: str, pod: str, url: str) -> dict:
        node, ns = self.pod_ns(namespace, pod)
        out = self.ssh(node, "ip", "netns", "exec", ns, "curl", "-sS", "-m", "10", url).stdout
        return json.loads(out)

    def loop_in_pod(self, namespace: str, pod: str, url: str, seconds: float) -> subprocess.Popen:
        node, ns = self.pod_ns(namespace, pod)
        argv = ["ip", "netns", "exec", ns, "python3", "-", url, str(seconds), "0.1"]
        with open(LOOP) as script:
            return subprocess.Popen(self.ssh_argv(node, argv), stdin=script, stdout=subprocess.PIPE, text=True)


@contextlib.contextmanager
def cluster():
    """The cluster, brought up here and destroyed at the end (also on failure), unless
    NODEAGENT_VAGRANT_UP=1 says one is already up and must stay."""
    keep = os.environ.get("NODEAGENT_VAGRANT_UP") == "1"
    try:
        if not keep:
            p = subprocess.run(["bash", CLUSTER, "up"], capture_output=True, text=True, timeout=1500)
            if p.returncode != 0:
                raise RuntimeError("vagrant/cluster.sh up failed:\n" + p.stdout[-3000:] + p.stderr[-3000:])
        c = Cluster()
        try:
            yield c
        finally:
            c.http.close()
    finally:
        if not keep:
            subprocess.run(["bash", CLUSTER, "down"], capture_output=True, timeout=300)
