"""Two `nodeagent scheduler` processes against one API server: only the lease holder binds;
kill it (SIGKILL, no release) and the other takes over after the lease runs out."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .server import ROOT
from .test_ctrl_support import Cluster, wait_until

LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler"


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.close()


def start_scheduler(url: str, identity: str, log_path: str) -> subprocess.Popen:
    log = open(log_path, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "control.scheduler.command", "--server", url, "--identity", identity,
         "--leader-elect-lease-duration", "2", "--leader-elect-renew-deadline", "1.5",
         "--leader-elect-retry-period", "0.25", "--pod-initial-backoff", "0.1", "--pod-max-backoff", "0.5",
         "--log-level", "debug"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def binds(path: str) -> set[str]:
    with open(path, "rb") as f:
        return {line.split(b"bound pod ")[1].split()[0].decode() for line in f if b"bound pod " in line}


def holder(c: Cluster) -> str:
    r = c.api.get(LEASE)
    return r.json()["spec"].get("holderIdentity", "") if r.status_code == 200 else ""


def create_pods(c: Cluster, names: list[str]) -> None:
    for n in names:
        c.ok(c.api.post("/api/v1/namespaces/default/pods", json={
            "metadata": {"name": n}, "spec": {"containers": [{"name": "c", "image": "x"}]}}))


def all_bound(c: Cluster, names: list[str]) -> bool:
    return all(c.api.get(f"/api/v1/namespaces/default/pods/{n}").json()["spec"].get("nodeName") for n in names)


def test_only_the_leader_binds_and_the_standby_takes_over(cluster, tmp_path):
    c = cluster
    c.add_node("n1")
    c.add_node("n2")
    logs = {name: str(tmp_path / f"{name}.log") for name in ("sched-a", "sched-b")}
    procs = {name: start_scheduler(c.url, name, logs[name]) for name in logs}
    try:
        leader = wait_until(lambda: holder(c), 15, what="a leader")
        other = "sched-b" if leader == "sched-a" else "sched-a"
        first = [f"first-{i}" for i in range(6)]
        create_pods(c, first)
        wait_until(lambda: all_bound(c, first), 15, what="pods bound by the leader")
        assert binds(logs[leader]) == {f"default/{n}" for n in first}
        assert binds(logs[other]) == set()

        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(5)
        killed = time.monotonic()
        wait_until(lambda: holder(c) == other, 15, what="the standby to take the lease")
        took = time.monotonic() - killed
        assert took >= 1.0, f"lease taken {took:.2f}s after the kill, before it expired"
        second = [f"second-{i}" for i in range(6)]
        create_pods(c, second)
        wait_until(lambda: all_bound(c, second), 15, what="pods bound by the new leader")
        assert binds(logs[other]) == {f"default/{n}" for n in second}
        lease = c.api.get(LEASE).json()["spec"]
        assert lease["leaseTransitions"] >= 1 and lease["leaseDurationSeconds"] == 2

        # a clean stop releases the lease at once
        procs[other].send_signal(signal.SIGTERM)
        assert procs[other].wait(10) == 0
        assert holder(c) == ""
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(5)
