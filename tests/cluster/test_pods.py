"""The pod runtime on a namespace cluster: pods bound to nodes run, get an IP from the CNI
plugins (called per spec through the conflist), reach each other across nodes, report status,
restart with back-off, turn unready and ready with their probes, are adopted (not restarted)
after kill -9 of the agent, and are deleted gracefully with nothing left behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.api.server import ThreadServer
from tests.netlab import NetLab, listening_socket_in, sh

from .test_agent_overlay import Agent, wait

pytestmark = pytest.mark.slow
CIDRS = {"a": "10.244.1.0/24", "b": "10.244.2.0/24"}
REFERENCE = "/usr/lib/cni"


@pytest.fixture
def cluster(tmp_path):
    if not os.path.exists(os.path.join(REFERENCE, "bridge")):
        pytest.fail("the reference CNI plugins are missing: scripts/setup.sh installs containernetworking-plugins")
    lab = NetLab()
    agents, server = {}, None
    try:
        for n in CIDRS:
            lab.add_node(n)
        inside = listening_socket_in(lab.underlay, lab.control_ip)
        server = ThreadServer(extra_sockets=[inside]).start()
        url = f"http://{lab.control_ip}:{inside.getsockname()[1]}"
        for n, cidr in CIDRS.items():
            d = tmp_path / n
            # the agent installs our plugin into bin/ and writes the conflist once it has a podCIDR
            a = Agent(lab, n, url, str(d / "run"))
            a.args += ["--restart-backoff", "0.5"]
            agents[n] = a.start()
        api = httpx.Client(base_url=server.url, timeout=10)
        wait(lambda: len(api.get("/api/v1/nodes").json()["items"]) == 2, what="nodes registered")
        for n, cidr in CIDRS.items():
            api.patch(f"/api/v1/nodes/{n}", json={"spec": {"podCIDR": cidr}}, headers={"content-type": "application/merge-patch+json"})
        yield lab, api, agents
        api.close()
    finally:
        for a in agents.values():
            a.kill()
        if server:
            server.stop()
        lab.close()  # also the pods' namespaces (named with the lab's tag) and their processes


def netexec_pod(name: str, node: str, **extra) -> dict:
    c = {"name": "app", "image": "nodeagent/netexec", "args": ["--http-port=8080", f"--health-status={name} is healthy"],
         "ports": [{"name": "http", "containerPort": 8080}],
         "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1}}
    c.update(extra)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 5, "containers": [c]}}


def pod_of(api, name):
    return api.get(f"/api/v1/namespaces/default/pods/{name}").json()


def restarts(pod) -> int:
    cs = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return cs[0].get("restartCount", 0)


def ready(pod) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))


def curl(from_ns: str, url: str) -> str:
    code = f"import urllib.request;print(urllib.request.urlopen({url!r},timeout=3).read().decode())"
    p = subprocess.run(["ip", "netns", "exec", from_ns, sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    return p.stdout.strip() if p.returncode == 0 else f"ERROR {p.stderr.strip()[-200:]}"


def test_pods_run_reach_each_other_and_are_deleted_cleanly(cluster):
    lab, api, agents = cluster
    for name, node in (("web-a", "a"), ("web-b", "b")):
        assert api.post("/api/v1/namespaces/default/pods", json=netexec_pod(name, node)).status_code == 201
    pods = {n: wait(lambda n=n: (lambda p: p if ready(p) else None)(pod_of(api, n)), timeout=40, what=f"{n} Ready")
            for n in ("web-a", "web-b")}
    st = pods["web-b"]["status"]
    assert st["phase"] == "Running" and st["podIP"].startswith("10.244.2.") and st["hostIP"] == lab.nodes["b"][1]
    cs = st["containerStatuses"][0]
    assert cs["ready"] and cs["restartCount"] == 0 and "running" in cs["state"]
    assert [c["type"] for c in st["conditions"]] == ["PodScheduled", "Initialized", "ContainersReady", "Ready"]

    # pod to pod across nodes, from inside pod a's own namespace
    uid_a = pods["web-a"]["metadata"]["uid"]
    ns_a = f"{lab.tag}-a-{uid_a}"
    assert curl(ns_a, f"http://{st['podIP']}:8080/hostname") == "web-b"
    assert curl(ns_a, f"http://{st['podIP']}:8080/node") == "b"

    # delete: SIGTERM, grace, CNI DEL, namespace removed, then the agent's final delete
    assert api.delete("/api/v1/namespaces/default/pods/web-b").status_code == 200
    wait(lambda: api.get("/api/v1/namespaces/default/pods/web-b").status_code == 404, timeout=30, what="web-b gone")
    uid_b = pods["web-b"]["metadata"]["uid"]
    assert not os.path.exists(f"/run/netns/{lab.tag}-b-{uid_b}")
    assert sh("ip", "-n", lab.nodes["b"][0], "-o", "link", "show", "master", "nacnib").strip() == ""  # veth gone


def test_crash_restart_with_backoff_and_probes(cluster):
    lab, api, agents = cluster
    crash = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crasher"},
             "spec": {"nodeName": "a", "restartPolicy": "Always",
                      "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 0.2; exit 3"]}]}}
    api.post("/api/v1/namespaces/default/pods", json=crash)
    p = wait(lambda: (lambda p: p if restarts(p) >= 2 else None)(pod_of(api, "crasher")), timeout=40, what="two restarts")
    cs = p["status"]["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    # back-off doubles: 0.5, 1, 2 s ... so three restarts take well over a second
    t0 = time.monotonic()
    wait(lambda: restarts(pod_of(api, "crasher")) >= 4, timeout=40, what="four restarts")
    assert time.monotonic() - t0 >= 1.0

    once = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "once"},
            "spec": {"nodeName": "b", "restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 0"]}]}}
    api.post("/api/v1/namespaces/default/pods", json=once)
    p = wait(lambda: (lambda p: p if p["status"].get("phase") == "Succeeded" else None)(pod_of(api, "once")), timeout=30, what="Succeeded")
    assert p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0

    # readiness follows the probe: a probe on a port nobody listens on keeps the pod unready
    bad = netexec_pod("unready", "b", readinessProbe={"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 1})
    api.post("/api/v1/namespaces/default/pods", json=bad)
    p = wait(lambda: (lambda p: p if p["status"].get("phase") == "Running" else None)(pod_of(api, "unready")), timeout=30, what="Running")
    time.sleep(2)
    assert not ready(pod_of(api, "unready"))


def test_readiness_turns_unready_and_ready_again_and_liveness_restarts(cluster, tmp_path):
    lab, api, agents = cluster
    flag = tmp_path / "ready-flag"
    flag.write_text("yes")
    probe = {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1, "failureThreshold": 1}
    api.post("/api/v1/namespaces/default/pods", json=netexec_pod("flappy", "a", readinessProbe=probe))
    wait(lambda: ready(pod_of(api, "flappy")), timeout=30, what="flappy Ready")
    flag.unlink()
    wait(lambda: not ready(pod_of(api, "flappy")), timeout=15, what="flappy unready")
    flag.write_text("yes")
    wait(lambda: ready(pod_of(api, "flappy")), timeout=15, what="flappy Ready again")
    assert restarts(pod_of(api, "flappy")) == 0  # readiness never restarts a container

    live = {"httpGet": {"path": "/nope", "port": "http"}, "periodSeconds": 1, "failureThreshold": 2}
    api.post("/api/v1/namespaces/default/pods", json=netexec_pod("dying", "b", livenessProbe=live))
    p = wait(lambda: (lambda p: p if restarts(p) >= 1 else None)(pod_of(api, "dying")), timeout=40,
             what="a restart after liveness failures")
    assert p["status"]["containerStatuses"][0]["lastState"]["terminated"]


def test_agent_kill_9_adopts_running_pods(cluster):
    lab, api, agents = cluster
    api.post("/api/v1/namespaces/default/pods", json=netexec_pod("steady", "a"))
    p = wait(lambda: (lambda p: p if ready(p) else None)(pod_of(api, "steady")), timeout=40, what="steady Ready")
    pid = p["status"]["containerStatuses"][0]["containerID"]
    agents["a"].kill()
    agents["a"].start()
    time.sleep(4)
    p2 = pod_of(api, "steady")
    cs = p2["status"]["containerStatuses"][0]
    assert cs["containerID"] == pid and cs["restartCount"] == 0 and ready(p2)
    # and it stayed Ready all along: an adopted container keeps its readiness until its probe
    # says otherwise (else each agent restart would pull the node's endpoints from every service)
    rv = p["metadata"]["resourceVersion"]
    lines = api.get(f"/api/v1/namespaces/default/pods?watch=1&fieldSelector=metadata.name=steady"
                    f"&resourceVersion={rv}&timeoutSeconds=1").text.splitlines()
    seen = [ready(json.loads(line)["object"]) for line in lines if line.strip()]
    assert seen and all(seen), seen
    uid = p2["metadata"]["uid"]
    assert curl(f"{lab.tag}-a-{uid}", "http://127.0.0.1:8080/hostname") == "steady"
