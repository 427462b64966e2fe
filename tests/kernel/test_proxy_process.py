"""Tier 3: `nodeagent proxy` as a real process against a real API server, programming a lab node
namespace: end to end from API objects to packets, health and metrics endpoints, the service health
check node port, kill -9 and restart without losing a request, and `proxy cleanup`."""
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from nodeagent.proxy.testing import Lab, endpoint, endpoint_slice, service
from tests.api.server import ROOT, ThreadServer, free_port
from tests.conftest import unique

VIP = "10.96.0.10"


@pytest.fixture(scope="module")
def api():
    s = ThreadServer().start()
    yield s
    s.stop()


@pytest.fixture
def lab():
    with Lab(pods=2) as lab:
        yield lab


class ProxyProcess:
    def __init__(self, api_url: str, lab: Lab, table: str):
        self.hz, self.mp = free_port(), free_port()
        self.args = [sys.executable, "-m", "nodeagent.proxy.command", "--server", api_url, "--netns", lab.node,
                     "--table", table, "--node-name", "node1", "--healthz-bind-address", f"127.0.0.1:{self.hz}",
                     "--metrics-bind-address", f"127.0.0.1:{self.mp}", "--log-level", "warning",
                     "--min-sync-period", "0.05"]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.hz}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            time.sleep(0.05)
        raise RuntimeError("proxy did not become healthy")

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)


def post(c, path, obj):
    r = c.post(path, json=obj)
    assert r.status_code == 201, r.text
    return r.json()


def wait_for(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
            if v:
                return v
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_end_to_end_kill_9_restart_loses_no_request(api, lab):
    ns = "default"
    name = unique("web")
    table = unique("na")
    for pod in lab.pods:
        lab.serve(pod, 8080)
    proc = ProxyProcess(api.url, lab, table)
    errors, done, count = [], threading.Event(), [0]
    try:
        with api.client() as c:
            svc = service(name, VIP, [("http", 80, "TCP")])
            post(c, f"/api/v1/namespaces/{ns}/services", svc)
            post(c, f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                 endpoint_slice(f"{name}-1", name, [lab.pod_ip(1)], [("http", 8080)]))
            proc.start()
            assert wait_for(lambda: lab.tcp(lab.client, VIP, 80).split()[0] == lab.pods[0])

            def loop():
                while not done.is_set():
                    try:
                        lab.tcp(lab.client, VIP, 80, timeout=3)
                    except OSError as err:
                        errors.append(repr(err))
                    count[0] += 1
                    time.sleep(0.01)
            t = threading.Thread(target=loop)
            t.start()
            time.sleep(0.3)
            proc.kill()                      # rules stay in the kernel: requests keep working
            time.sleep(0.5)
            # a change made while the proxy is down is picked up by the new process
            c.put(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}-1", json={
                **endpoint_slice(f"{name}-1", name, [lab.pod_ip(1), lab.pod_ip(2)], [("http", 8080)]),
                "metadata": {**c.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}-1").json()["metadata"]}})
            proc.start()
            wait_for(lambda: {lab.tcp(lab.client, VIP, 80).split()[0] for _ in range(20)} == set(lab.pods))
            time.sleep(0.3)
            done.set()
            t.join(10)
            assert count[0] > 20 and errors == []

            # metrics and health are served with kube-proxy's names and semantics
            m = httpx.get(f"http://127.0.0.1:{proc.mp}/metrics").text
            assert "kubeproxy_sync_proxy_rules_duration_seconds_count" in m
            assert "kubeproxy_network_programming_duration_seconds_bucket" in m
            assert 'nodeagent_proxy_rules_total{kind="elements"}' in m
            h = httpx.get(f"http://127.0.0.1:{proc.hz}/healthz").json()
            assert h["lastUpdated"] and h["nodeEligible"] is True
    finally:
        done.set()
        proc.kill()
        out = subprocess.run([sys.executable, "-m", "nodeagent.proxy.command", "cleanup", "--netns", lab.node,
                              "--table", table], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    assert subprocess.run(["ip", "netns", "exec", lab.node, "nft", "list", "table", "ip", table],
                          capture_output=True).returncode != 0


def test_health_check_node_port_and_no_endpoint_service_via_api(api, lab):
    ns, name, table = "default", unique("lb"), unique("na")
    proc = ProxyProcess(api.url, lab, table)
    try:
        with api.client() as c:
            created = post(c, f"/api/v1/namespaces/{ns}/services",
                           service(name, "10.96.0.11", [("http", 80, "TCP")], type="LoadBalancer", etp="Local"))
            hc = created["spec"]["healthCheckNodePort"]   # allocated by the API server
            proc.start()
            # no endpoint yet: a connection is refused at once, the health check says 503
            def refused():
                try:
                    lab.tcp(lab.client, "10.96.0.11", 80)
                except ConnectionRefusedError:
                    return True
                except OSError:   # not programmed yet (no route to the VIP)
                    return False
            wait_for(refused)

            def hc_status():
                import json
                import socket as s_
                from nodeagent.proxy.netns import socket_in
                sk = socket_in(lab.client, s_.AF_INET, s_.SOCK_STREAM)
                sk.settimeout(2)
                try:
                    sk.connect((Lab.NODE_IP, hc))
                    sk.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    data = b""
                    while chunk := sk.recv(4096):
                        data += chunk
                finally:
                    sk.close()
                head, _, body = data.decode().partition("\r\n\r\n")
                return int(head.split()[1]), json.loads(body)
            status, body = wait_for(hc_status)
            assert status == 503 and body["localEndpoints"] == 0 and body["service"]["name"] == name
            post(c, f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                 endpoint_slice(f"{name}-1", name, [endpoint(lab.pod_ip(1), node="node1")], [("http", 8080)]))
            status, body = wait_for(lambda: (r := hc_status())[0] == 200 and r)
            assert body["localEndpoints"] == 1 and body["serviceProxyHealthy"] is True
    finally:
        proc.kill()
        subprocess.run([sys.executable, "-m", "nodeagent.proxy.command", "cleanup", "--netns", lab.node,
                        "--table", table], cwd=ROOT, capture_output=True)
