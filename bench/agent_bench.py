"""Node agent benchmarks, in one run, on a namespace cluster made for the purpose (root):

1. Pod-to-pod TCP throughput across two nodes over our VXLAN overlay against node-to-node
   throughput on the underlay (iperf3), in alternating rounds: the ratio. Target >= 0.9.
2. Pod start latency, from the pod's creation (bound to a node) until the API shows it Ready,
   p50 and p99 over 50 pods started one after another. Target p50 < 300 ms.

    .venv/bin/python -m bench.agent_bench [--rounds 3] [--seconds 4] [--pods 50]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time

import httpx

from nodeagent.overlay.apply import OverlayApplier
from nodeagent.overlay.model import OverlayConfig, OverlayNode
from nodeagent.overlay.netlink import NetlinkBackend
from nodeagent.overlay.plan import plan
from tests.api.server import ThreadServer
from tests.cluster.test_agent_overlay import Agent, wait
from tests.netlab import NetLab, listening_socket_in

CIDRS = {"a": "10.244.1.0/24", "b": "10.244.2.0/24"}


def build_overlay(lab: NetLab) -> None:
    cfg = OverlayConfig(device="navx0")
    backends = {n: NetlinkBackend(netns=lab.nodes[n][0]) for n in CIDRS}
    macs = {}
    for n in CIDRS:
        me = OverlayNode(n, lab.nodes[n][1], "00:00:00:00:00:00", CIDRS[n])
        macs[n], _ = OverlayApplier(backends[n]).ensure_device(plan(me, [], cfg, underlay_device="eth0", underlay_mtu=1500).device)
    nodes = [OverlayNode(n, lab.nodes[n][1], macs[n], CIDRS[n]) for n in CIDRS]
    for me in nodes:
        assert OverlayApplier(backends[me.name]).reconcile(plan(me, nodes, cfg, underlay_device="eth0", underlay_mtu=1500)).ok
    for b in backends.values():
        b.close()


def iperf(client_ns: str, server_ip: str, seconds: float) -> float:
    out = subprocess.run(["ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-t", str(seconds), "-J"],
                         capture_output=True, text=True, timeout=seconds + 30)
    import json
    return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def throughput(rounds: int, seconds: float) -> None:
    lab = NetLab("192.168.202.0/24")
    servers = []
    try:
        for n in CIDRS:
            lab.add_node(n)
        build_overlay(lab)
        # pods get the overlay's MTU, as the CNI plugin gives them from subnet.env
        pod_a, _ = lab.add_pod("a", "p", CIDRS["a"], mtu=1450)
        pod_b, ip_b = lab.add_pod("b", "p", CIDRS["b"], mtu=1450)
        for ns in (lab.nodes["b"][0], pod_b):
            servers.append(subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-s"], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        under, over = [], []
        for _ in range(rounds):
            under.append(iperf(lab.nodes["a"][0], lab.nodes["b"][1], seconds))
            over.append(iperf(pod_a, ip_b, seconds))
        u, o = statistics.median(under), statistics.median(over)
        print(f"TCP throughput, {rounds} alternating rounds of {seconds:g} s (iperf3, medians):")
        print(f"  node to node on the underlay (veth + bridge)   {u:6.2f} Gbit/s   rounds: {', '.join(f'{x:.2f}' for x in under)}")
        print(f"  pod to pod across nodes over VXLAN             {o:6.2f} Gbit/s   rounds: {', '.join(f'{x:.2f}' for x in over)}")
        print(f"  ratio overlay/underlay                         {o / u:6.2f}          target >= 0.90: {'met' if o / u >= 0.9 else 'NOT met'}")
    finally:
        for s in servers:
            s.kill()
        lab.close()


def pod_start(count: int) -> None:
    lab = NetLab("192.168.203.0/24")
    tmp = tempfile.mkdtemp(prefix="na-bench-")
    agent = server = None
    try:
        lab.add_node("a")
        inside = listening_socket_in(lab.underlay, lab.control_ip)
        server = ThreadServer(extra_sockets=[inside]).start()
        agent = Agent(lab, "a", f"http://{lab.control_ip}:{inside.getsockname()[1]}", f"{tmp}/run")
        agent.args += ["--data-dir", f"{tmp}/data", "--cni-conf-dir", f"{tmp}/net.d", "--cni-bin-dir", f"{tmp}/bin",
                       "--cni-ipam-dir", f"{tmp}/ipam", "--cni-bridge", "nabench0", "--netns-prefix", f"{lab.tag}-"]
        agent.start()
        api = httpx.Client(base_url=server.url, timeout=10)
        wait(lambda: api.get("/api/v1/nodes/a").status_code == 200, what="node registered")
        api.patch("/api/v1/nodes/a", json={"spec": {"podCIDR": CIDRS["a"]}}, headers={"content-type": "application/merge-patch+json"})
        ready = lambda name: any(c["type"] == "Ready" and c["status"] == "True" for c in
                                 (api.get(f"/api/v1/namespaces/default/pods/{name}").json().get("status") or {}).get("conditions", []))

        def body(name):
            return {"metadata": {"name": name}, "spec": {"nodeName": "a", "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": "nodeagent/netexec", "args": ["--http-port=8080"]}]}}

        api.post("/api/v1/namespaces/default/pods", json=body("warmup"))
        wait(lambda: ready("warmup"), timeout=60, what="the first pod")   # node Ready, plugin installed
        lat = []
        for i in range(count):
            name = f"p{i}"
            t0 = time.perf_counter()
            api.post("/api/v1/namespaces/default/pods", json=body(name))
            while not ready(name):
                time.sleep(0.005)
            lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        p50, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"pod start latency, {count} pods one after another (create -> Ready in the API, polled every 5 ms):")
        print(f"  p50 {p50:6.0f} ms   p99 {p99:6.0f} ms   max {lat[-1]:6.0f} ms   target p50 < 300 ms: {'met' if p50 < 300 else 'NOT met'}")
        for i in range(count):
            api.delete(f"/api/v1/namespaces/default/pods/p{i}")
        api.delete("/api/v1/namespaces/default/pods/warmup")
        wait(lambda: api.get("/api/v1/namespaces/default/pods").json()["items"] == [], timeout=60, what="pods deleted")
        api.close()
    finally:
        if agent:
            agent.kill()
        if server:
            server.stop()
        lab.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--pods", type=int, default=50)
    args = ap.parse_args()
    throughput(args.rounds, args.seconds)
    pod_start(args.pods)


if __name__ == "__main__":
    main()
