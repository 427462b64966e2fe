"""End to end on a lab cluster, in both proxy modes: pod to pod and to ClusterIPs across
nodes, NodePort from outside, hairpin, readiness, scaling under load, session affinity,
externalTrafficPolicy Local, fast rejects, and faults (agent kill -9, API server restart, a
node stopping)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from control import kubeconfig
from tests.api.server import ROOT
from tests.conftest import unique
from tests.waiting import wait

pytestmark = pytest.mark.slow
LOOP = os.path.join(ROOT, "tests", "cluster", "loop_client.py")
CLIENT_IP = "192.168.220.250"


class LabApi:
    def __init__(self, name: str, state: str):
        self.name, self.state = name, state
        creds = kubeconfig.load(os.path.join(state, name, "kubeconfig"))
        self.http = httpx.Client(base_url=creds.server, verify=creds.ssl_context(), timeout=15)

    def req(self, method, path, body=None, ctype="application/json"):
        r = self.http.request(method, path, content=json.dumps(body) if body is not None else None,
                              headers={"content-type": ctype})
        assert r.status_code < 400, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def get(self, path):
        return self.req("GET", path)

    def apply(self, path, body):
        return self.req("POST", path, body)

    def lab(self, *args):
        p = subprocess.run([sys.executable, "-m", "nodeagent.cli", "lab", *args, "--name", self.name,
                            "--state-root", self.state], cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def lab(request, tmp_path_factory):
    _client_pod.clear()
    state = str(tmp_path_factory.mktemp("e2e"))
    name = unique("e")[:8]
    p = subprocess.run([sys.executable, "-m", "nodeagent.cli", "lab", "up", "--name", name, "--nodes", "3",
                        "--state-root", state, "--node-grace", "8", "--eviction-timeout", "6",
                        "--proxy-mode", request.param],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    api = None
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        api = LabApi(name, state)
        api.apply("/api/v1/namespaces", {"metadata": {"name": "e2e"}})
        yield api
    finally:
        if api:
            api.http.close()
        subprocess.run([sys.executable, "-m", "nodeagent.cli", "lab", "down", "--name", name, "--state-root", state],
                       cwd=ROOT, capture_output=True, timeout=120)


def deployment(name, replicas=3, labels=None, probe=True, **pod_extra):
    labels = labels or {"app": name}
    c = {"name": "app", "image": "nodeagent/netexec", "args": ["--http-port=8080", "--delay-shutdown=3"],
         "ports": [{"name": "http", "containerPort": 8080}]}
    if probe:
        c["readinessProbe"] = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 5, "containers": [c], **pod_extra}}}}


def service(name, selector=None, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector if selector is not None else {"app": name},
                     "ports": [{"port": 80, "targetPort": "http"}], **spec}}


def rollout(api, name, replicas, svc=None):
    def done():
        d = api.get(f"/apis/apps/v1/namespaces/e2e/deployments/{name}")
        st = d.get("status") or {}
        return st.get("readyReplicas", 0) == replicas and st.get("replicas", 0) == replicas
    wait(done, 90, f"deployment {name} at {replicas} ready replicas")
    return endpoints(api, svc or name, replicas)


def endpoints(api, svc, count):
    def ready_eps():
        items = api.get(f"/apis/discovery.k8s.io/v1/namespaces/e2e/endpointslices?labelSelector=kubernetes.io/service-name={svc}")["items"]
        eps = [e for s in items for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")]
        return eps if len(eps) == count else None
    return wait(ready_eps, 60, f"{count} ready endpoints of {svc}")


_client_pod: dict = {}


def client_pod_ns(api) -> str:
    """A pod to send requests from, inside the cluster."""
    if not _client_pod:
        api.apply("/api/v1/namespaces/e2e/pods", {"metadata": {"name": "client", "labels": {"app": "client"}},
                  "spec": {"containers": [{"name": "c", "image": "nodeagent/netexec", "args": ["--http-port=8080"],
                                           "ports": [{"name": "http", "containerPort": 8080}]}]}})
        pod = wait(lambda: (lambda p: p if (p.get("status") or {}).get("phase") == "Running" else None)(
            api.get("/api/v1/namespaces/e2e/pods/client")), 60, "the client pod")
        _client_pod.update(pod)
    return f"nal-{api.name}-{_client_pod['spec']['nodeName']}-{_client_pod['metadata']['uid']}"


def http_from(ns: str, url: str, timeout=3.0):
    code = ("import json,sys,urllib.request\ntry: print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode())\n"
            "except Exception as e: print(json.dumps({'error': repr(e)}))\n")
    p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, url, str(timeout)],
                       capture_output=True, text=True, timeout=30)
    try:
        return json.loads(p.stdout.strip())
    except ValueError:
        return {"raw": p.stdout.strip(), "stderr": p.stderr.strip()[-300:]}


def answered(ns: str, url: str, timeout: float = 20.0) -> dict:
    """The first answer from url: the API shows endpoints a moment before every proxy has
    programmed them, so a new service is polled until it answers."""
    return wait(lambda: (lambda a: a if "pod" in a else None)(http_from(ns, url, timeout=2)), timeout,
                f"an answer from {url}", every=0.3)


def loop(ns: str, url: str, seconds: float, interval: float = 0.05) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, LOOP, url, str(seconds), str(interval)],
                            stdout=subprocess.PIPE, text=True)


def result(p: subprocess.Popen) -> dict:
    out, _ = p.communicate(timeout=120)
    return json.loads(out)


def cluster_ip(api, name):
    return api.get(f"/api/v1/namespaces/e2e/services/{name}")["spec"]["clusterIP"]


def node_ip(i: int) -> str:
    return f"192.168.220.{10 + i}"


def test_clusterip_from_a_pod_reaches_endpoints_on_other_nodes(lab):
    lab.apply("/apis/apps/v1/namespaces/e2e/deployments", deployment("web", 3))
    lab.apply("/api/v1/namespaces/e2e/services", service("web"))
    eps = rollout(lab, "web", 3)
    ns = client_pod_ns(lab)
    ip = cluster_ip(lab, "web")
    answered(ns, f"http://{ip}/")
    answers = [http_from(ns, f"http://{ip}/") for _ in range(15)]
    assert all("pod" in a for a in answers), answers
    assert len({a["node"] for a in answers}) >= 2
    assert {e["nodeName"] for e in eps} == {"n1", "n2", "n3"}
    mine = _client_pod["status"]["podIP"]
    assert all(a["client"].split(":")[0] == mine for a in answers)  # pod to service: no masquerade


def test_nodeport_from_a_client_outside_the_cluster(lab):
    lab.apply("/api/v1/namespaces/e2e/services", service("web-np", {"app": "web"}, type="NodePort"))
    svc = lab.get("/api/v1/namespaces/e2e/services/web-np")
    port = svc["spec"]["ports"][0]["nodePort"]
    endpoints(lab, "web-np", 3)
    for i in (1, 2, 3):
        answered(f"nal-{lab.name}-client", f"http://{node_ip(i)}:{port}/")


def test_a_pod_reaches_itself_through_its_own_service(lab):
    ns = client_pod_ns(lab)
    lab.apply("/api/v1/namespaces/e2e/services", service("self", {"app": "client"}))
    endpoints(lab, "self", 1)
    a = answered(ns, f"http://{cluster_ip(lab, 'self')}/")
    assert a.get("pod") == "client", a


def test_an_unready_pod_gets_no_traffic(lab):
    lab.apply("/apis/apps/v1/namespaces/e2e/deployments", deployment("ok", 1, labels={"app": "mixed", "v": "ok"}))
    bad = deployment("bad", 1, labels={"app": "mixed", "v": "bad"})
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 9999}, "periodSeconds": 1}
    lab.apply("/apis/apps/v1/namespaces/e2e/deployments", bad)
    lab.apply("/api/v1/namespaces/e2e/services", service("mixed", {"app": "mixed"}))
    rollout(lab, "ok", 1, svc="mixed")
    ns = client_pod_ns(lab)
    ip = cluster_ip(lab, "mixed")
    answered(ns, f"http://{ip}/")
    answers = {http_from(ns, f"http://{ip}/").get("pod", "?") for _ in range(8)}
    assert len(answers) == 1 and answers.pop().startswith("ok-")


def test_scaling_up_and_down_under_load_loses_no_request(lab):
    ns = client_pod_ns(lab)
    p = loop(ns, f"http://{cluster_ip(lab, 'web')}/", 14)
    time.sleep(1)
    merge = "application/merge-patch+json"
    marks = [time.strftime("%H:%M:%S") + " up"]
    lab.req("PATCH", "/apis/apps/v1/namespaces/e2e/deployments/web/scale", {"spec": {"replicas": 5}}, merge)
    rollout(lab, "web", 5)
    marks.append(time.strftime("%H:%M:%S") + " down")
    lab.req("PATCH", "/apis/apps/v1/namespaces/e2e/deployments/web/scale", {"spec": {"replicas": 2}}, merge)
    rollout(lab, "web", 2)
    marks.append(time.strftime("%H:%M:%S") + " done")
    r = result(p)
    assert r["failed"] == 0 and r["requests"] > 50, (r, marks)
    assert len(r["pods"]) >= 3, r


def test_session_affinity_keeps_a_client_on_one_pod(lab):
    lab.apply("/api/v1/namespaces/e2e/services", service("sticky", {"app": "web"}, sessionAffinity="ClientIP"))
    endpoints(lab, "sticky", 2)
    ns = client_pod_ns(lab)
    ip = cluster_ip(lab, "sticky")
    answered(ns, f"http://{ip}/")
    assert len({http_from(ns, f"http://{ip}/")["pod"] for _ in range(10)}) == 1


def test_external_traffic_policy_local_keeps_the_client_address(lab):
    lab.apply("/api/v1/namespaces/e2e/services", service("local", {"app": "web"}, type="NodePort",
                                                          externalTrafficPolicy="Local"))
    eps = endpoints(lab, "local", 2)
    port = lab.get("/api/v1/namespaces/e2e/services/local")["spec"]["ports"][0]["nodePort"]
    node = eps[0]["nodeName"]
    a = answered(f"nal-{lab.name}-client", f"http://{node_ip(int(node[1:]))}:{port}/")
    assert a["client"].split(":")[0] == CLIENT_IP and a["node"] == node


def test_a_service_without_endpoints_rejects_at_once(lab):
    lab.apply("/api/v1/namespaces/e2e/services", service("empty", {"app": "nobody"}))
    ns = client_pod_ns(lab)
    ip = cluster_ip(lab, "empty")
    time.sleep(1)  # the proxies' sync
    t0 = time.monotonic()
    a = http_from(ns, f"http://{ip}/", timeout=5)
    assert "error" in a and "refused" in a["error"].lower(), a
    assert time.monotonic() - t0 < 2.5  # includes starting the client: a drop would take 5 s


def test_flow_trace_shows_vip_endpoint_node_and_verdict_and_leaves_nothing(lab):
    ns = client_pod_ns(lab)
    ip = cluster_ip(lab, "web")
    if lab.http.get("/api/v1/namespaces/e2e/services/empty").status_code == 404:
        lab.apply("/api/v1/namespaces/e2e/services", service("empty", {"app": "nobody"}))
    empty = cluster_ip(lab, "empty")
    p = subprocess.Popen([sys.executable, "-m", "nodeagent.cli", "lab", "trace", "--name", lab.name, "--state-root", lab.state,
                          "--seconds", "12"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    started = [p.stdout.readline() for _ in range(3)]
    assert all("tracing" in line for line in started), started
    for _ in range(3):
        answered(ns, f"http://{ip}/")
    http_from(ns, f"http://{empty}/", timeout=2)
    out = p.communicate(timeout=60)[0].splitlines()
    dnat = [l for l in out if f"-> {ip}:80 (e2e/web)" in l and "[DNAT]" in l]
    assert len(dnat) >= 3, out
    assert all("(pod e2e/web-" in l and " on n" in l for l in dnat)
    assert any(f"-> {empty}:80 (e2e/empty)" in l and "REJECT" in l for l in out), out
    for i in (1, 2, 3):   # the tracer's rules are gone: tracing costs nothing when it is not running
        save = subprocess.run(["ip", "netns", "exec", f"nal-{lab.name}-n{i}", "iptables-legacy-save"],
                              capture_output=True, text=True).stdout
        assert "TRACE" not in save


def test_kill_9_of_an_agent_during_a_request_loop_loses_nothing(lab):
    ns = client_pod_ns(lab)
    p = loop(ns, f"http://{cluster_ip(lab, 'web')}/", 10)
    time.sleep(2)
    lab.lab("restart", "n1")
    lab.lab("restart", "n2")
    r = result(p)
    assert r["failed"] == 0 and r["requests"] > 40, r


def test_api_server_restart_agents_resume(lab):
    lab.lab("restart", "apiserver")
    lab.apply("/apis/apps/v1/namespaces/e2e/deployments", deployment("after", 2))
    lab.apply("/api/v1/namespaces/e2e/services", service("after"))
    rollout(lab, "after", 2)
    answered(client_pod_ns(lab), f"http://{cluster_ip(lab, 'after')}/")


def test_a_stopped_node_loses_its_endpoints_and_its_pods_come_back_elsewhere(lab):
    # the node running the client pod keeps running: stop another one that has a web endpoint
    merge = "application/merge-patch+json"
    lab.req("PATCH", "/apis/apps/v1/namespaces/e2e/deployments/web/scale", {"spec": {"replicas": 4}}, merge)
    eps = rollout(lab, "web", 4)
    victim = next(e["nodeName"] for e in eps if e["nodeName"] != _client_pod["spec"]["nodeName"])
    ns = f"nal-{lab.name}-{victim}"
    info = json.load(open(os.path.join(lab.state, lab.name, "lab.json")))
    os.kill(info["pids"][victim], signal.SIGKILL)
    subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "down"], check=True)   # the node is gone
    t0 = time.monotonic()
    wait(lambda: all(e.get("nodeName") != victim for e in endpoints_any(lab, "web")), 40, "the dead node's endpoints gone")
    gone_after = time.monotonic() - t0
    assert gone_after < 30, gone_after
    rollout(lab, "web", 4)   # replaced on the other nodes after the eviction timeout
    assert all(e["nodeName"] != victim for e in endpoints(lab, "web", 4))
    ip = cluster_ip(lab, "web")
    answers = [http_from(client_pod_ns(lab), f"http://{ip}/") for _ in range(6)]
    assert all("pod" in a for a in answers), answers


def endpoints_any(api, svc):
    items = api.get(f"/apis/discovery.k8s.io/v1/namespaces/e2e/endpointslices?labelSelector=kubernetes.io/service-name={svc}")["items"]
    return [e for s in items for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")]
