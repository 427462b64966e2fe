"""Network programming latency on a 3-node lab (root): how long until every node forwards to a
new endpoint, over 50 changes, in one run. Each change scales a deployment from 1 to 2 replicas;
two intervals are measured per change:

  scale -> all nodes : from the scale request until every node's rules DNAT to the new pod
                       (includes scheduling, the pod's start and its first readiness probe)
  Ready -> all nodes : from the moment the API shows the new pod Ready until every node's rules
                       have it (the network programming latency proper: endpoint slice
                       controller, watches, proxy syncs)

The kernel side is read from each node's ruleset (nft list, or iptables-save) every 10 ms.
Target: Ready -> all nodes p99 under 1 s.

    .venv/bin/python -m bench.lab_bench [--changes 50] [--proxy-mode nftables|iptables]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

from control import kubeconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def rules(ns: str, mode: str) -> str:
    cmd = ["nft", "list", "table", "ip", "nodeagent"] if mode == "nftables" else ["iptables-legacy-save", "-t", "nat"]
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True).stdout


def programmed(ip: str, rules_text: str, mode: str) -> bool:
    return (f"{ip} . 8080" in rules_text) if mode == "nftables" else (f"--to-destination {ip}:8080" in rules_text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--proxy-mode", choices=["nftables", "iptables"], default="nftables")
    args = ap.parse_args()
    state = tempfile.mkdtemp(prefix="na-labbench-")
    name = f"b{os.getpid() % 10000}"
    lab = [sys.executable, "-m", "nodeagent.cli", "lab"]
    try:
        up = subprocess.run(lab + ["up", "--name", name, "--nodes", "3", "--state-root", state, "--proxy-mode", args.proxy_mode],
                            cwd=ROOT, capture_output=True, text=True)
        if up.returncode != 0:
            raise SystemExit(up.stdout + up.stderr)
        creds = kubeconfig.load(os.path.join(state, name, "kubeconfig"))
        api = httpx.Client(base_url=creds.server, verify=creds.ssl_context(), timeout=15)
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                            "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "app", "image": "nodeagent/netexec", "args": ["--http-port=8080"],
                                            "ports": [{"containerPort": 8080}],
                                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}}
        api.post("/apis/apps/v1/namespaces/default/deployments", json=dep).raise_for_status()
        api.post("/api/v1/namespaces/default/services", json={"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}).raise_for_status()
        nodes = [f"nal-{name}-n{i}" for i in (1, 2, 3)]
        merge = {"content-type": "application/merge-patch+json"}

        def pods() -> list[dict]:
            return api.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=web"}).json()["items"]

        def ready(p) -> bool:
            return any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions", []))

        def settle(count: int) -> set[str]:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                ps = [p for p in pods() if not p["metadata"].get("deletionTimestamp")]
                if len(ps) == count and all(ready(p) for p in ps) and len(pods()) == count:
                    return {p["metadata"]["uid"] for p in ps}
                time.sleep(0.1)
            raise SystemExit(f"the deployment did not settle at {count} ready pods")

        settle(1)
        to_kernel, scale_to_all = [], []
        for i in range(args.changes):
            before = settle(1)
            t0 = time.monotonic()
            api.patch("/apis/apps/v1/namespaces/default/deployments/web/scale", json={"spec": {"replicas": 2}}, headers=merge)
            new_ip = t_ready = None
            pending = set(nodes)
            t_all = None
            deadline = t0 + 60
            while time.monotonic() < deadline and (t_ready is None or pending):
                if t_ready is None:
                    for p in pods():
                        if p["metadata"]["uid"] not in before and ready(p) and (p.get("status") or {}).get("podIP"):
                            t_ready, new_ip = time.monotonic(), p["status"]["podIP"]
                if new_ip:
                    for ns in list(pending):
                        if programmed(new_ip, rules(ns, args.proxy_mode), args.proxy_mode):
                            pending.discard(ns)
                    if not pending:
                        t_all = time.monotonic()
                time.sleep(0.01)
            if t_all is None:
                raise SystemExit(f"change {i}: the new endpoint never reached every node")
            scale_to_all.append((t_all - t0) * 1000)
            to_kernel.append(max(0.0, (t_all - t_ready) * 1000))
            api.patch("/apis/apps/v1/namespaces/default/deployments/web/scale", json={"spec": {"replicas": 1}}, headers=merge)
        print(f"network programming on a 3-node lab ({args.proxy_mode} mode), {args.changes} changes (scale 1 -> 2):")
        print(f"  scale -> all nodes   p50 {statistics.median(scale_to_all):7.0f} ms   p99 {pct(scale_to_all, .99):7.0f} ms")
        print(f"  Ready -> all nodes   p50 {statistics.median(to_kernel):7.0f} ms   p99 {pct(to_kernel, .99):7.0f} ms"
              f"   target p99 < 1000 ms: {'met' if pct(to_kernel, .99) < 1000 else 'NOT met'}")
        print("  (Ready is seen by polling the API every ~10 ms and the rules every ~10 ms per node: both add a little)")
    finally:
        subprocess.run(lab + ["down", "--name", name, "--state-root", state], cwd=ROOT, capture_output=True)
        import shutil
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
