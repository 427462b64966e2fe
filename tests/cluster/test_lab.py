"""`nodeagent lab`: up builds a cluster whose nodes become Ready and run pods across nodes; up
twice is safe; two labs coexist; down leaves the machine as it found it, also after a crash."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.api.server import ROOT
from tests.conftest import unique

pytestmark = pytest.mark.slow


def lab(*args, state, check=True, timeout=240):
    p = subprocess.run([sys.executable, "-m", "nodeagent.cli", "lab", *args, "--state-root", state],
                       cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


def kubectl(cfg: str, *args) -> str:
    p = subprocess.run([os.path.join(ROOT, ".tools", "kubectl-1.20"), *args], capture_output=True, text=True,
                       env=dict(os.environ, KUBECONFIG=cfg, HOME=os.path.dirname(cfg)), timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def snapshot() -> dict:
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    return {"netns": sorted(l.split()[0] for l in ns.splitlines() if l.startswith("nal-")),
            "links": sorted(l.split(":")[1].strip() for l in links.splitlines()), "nft": rules}


@pytest.fixture
def labs(tmp_path):
    made = []
    state = str(tmp_path / "labs")
    yield state, made
    for name in made:
        lab("down", "--name", name, state=state, check=False)


def test_two_labs_up_status_down_leave_nothing(labs):
    state, made = labs
    before = snapshot()
    a, b = unique("a")[:8], unique("b")[:8]
    made += [a, b]
    out = lab("up", "--name", a, "--nodes", "2", state=state).stdout
    assert "nodes Ready: 2/2" in out and "export KUBECONFIG=" in out
    lab("up", "--name", b, "--nodes", "1", state=state)
    cfg_a = os.path.join(state, a, "kubeconfig")
    nodes = kubectl(cfg_a, "get", "nodes", "-o", "wide")
    assert nodes.count(" Ready ") == 2
    # a pod per node, talking across the overlay by pod IP
    for n in ("n1", "n2"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{n}"},
               "spec": {"nodeName": n, "containers": [{"name": "c", "image": "nodeagent/netexec"}]}}
        p = subprocess.run([os.path.join(ROOT, ".tools", "kubectl-1.20"), "create", "-f", "-"], input=json.dumps(pod),
                           capture_output=True, text=True, env=dict(os.environ, KUBECONFIG=cfg_a, HOME=state))
        assert p.returncode == 0, p.stderr
    deadline = time.monotonic() + 60
    while True:
        pods = json.loads(kubectl(cfg_a, "get", "pods", "-o", "json"))["items"]
        ips = {p["metadata"]["name"]: p["status"].get("podIP") for p in pods if p["status"].get("phase") == "Running"}
        if len(ips) == 2:
            break
        assert time.monotonic() < deadline, pods
        time.sleep(0.5)
    # Running means started; the server inside may need a moment before it listens
    code = f"import urllib.request;print(urllib.request.urlopen('http://{ips['p-n2']}:8080/node',timeout=3).read().decode())"
    deadline = time.monotonic() + 20
    while True:
        p = subprocess.run(["ip", "netns", "exec", f"nal-{a}-n1", sys.executable, "-c", code], capture_output=True, text=True)
        if p.stdout.strip() == "n2" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert p.stdout.strip() == "n2", p.stderr
    status = lab("status", "--name", a, state=state).stdout
    assert "n1" in status and "p-n2" in status
    assert "components:" in lab("logs", "--name", a, state=state).stdout
    # up again: nothing changes
    again = lab("up", "--name", a, state=state).stdout
    assert "is up already" in again
    # lab b is untouched by anything done to a
    lab("down", "--name", a, state=state)
    assert not any(n.startswith(f"nal-{a}-") for n in snapshot()["netns"])
    assert kubectl(os.path.join(state, b, "kubeconfig"), "get", "nodes").count(" Ready ") == 1
    lab("down", "--name", b, state=state)
    after = snapshot()
    assert after == before
    assert not os.path.exists(os.path.join(state, a)) and not os.path.exists(os.path.join(state, b))


def test_down_after_a_crash_of_the_lab_processes(labs):
    state, made = labs
    before = snapshot()
    name = unique("c")[:8]
    made.append(name)
    lab("up", "--name", name, "--nodes", "1", state=state)
    info = json.load(open(os.path.join(state, name, "lab.json")))
    os.kill(info["pids"]["apiserver"], signal.SIGKILL)
    os.unlink(os.path.join(state, name, "lab.json"))  # the bookkeeping is lost too
    out = lab("up", "--name", name, "--nodes", "1", state=state).stdout  # repairs by starting over
    assert "half-made" in out and "nodes Ready: 1/1" in out
    lab("down", "--name", name, state=state)
    assert snapshot() == before
    leftovers = subprocess.run(["pgrep", "-f", os.path.join(state, name)], capture_output=True, text=True).stdout
    assert leftovers.strip() == ""
