"""Cross-VM throughput on the Vagrant cluster (root): pod to pod over our VXLAN overlay against
VM to VM on the private network (the underlay), measured alternately in one run with iperf3.
Under QEMU's software emulation the absolute figures mean little; the ratio is the figure.

    .venv/bin/python -m bench.vm_bench [--seconds 8] [--rounds 2]

Brings the cluster up and destroys it at the end, unless NODEAGENT_VAGRANT_UP=1 (then it uses the
cluster that is up: `vagrant/cluster.sh up`)."""
from __future__ import annotations

import argparse
import json
import statistics
import time

from tests.vm.vms import NODES, PAIR, Cluster, cluster
from tests.waiting import wait


def pod(name: str, node: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [{
        "name": "app", "image": "nodeagent/netexec", "args": ["--http-port=8080"]}]}}


def running(c: Cluster, name: str) -> dict | None:
    p = c.get(f"/api/v1/namespaces/default/pods/{name}")
    st = p.get("status") or {}
    return p if st.get("phase") == "Running" and st.get("podIP") else None


def iperf(c: Cluster, server: tuple[str, str | None], client: tuple[str, str | None], target: str, seconds: int) -> float:
    """Gbit/s received, iperf3 from client (vm, netns or None) to server (vm, netns or None)."""
    def argv(ns, *cmd):
        return (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    c.ssh(server[0], *argv(server[1], "iperf3", "-s", "-1", "-D"))
    time.sleep(0.5)
    out = c.ssh(client[0], *argv(client[1], "iperf3", "-c", target, "-t", str(seconds), "-J"),
                timeout=seconds + 60).stdout
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    (w1, _), (w2, ip2) = ((n, NODES[n]) for n in PAIR)
    with cluster() as c:
        for name, node in (("bench-a", w1), ("bench-b", w2)):
            c.req("POST", "/api/v1/namespaces/default/pods", pod(name, node))
        try:
            pods = {n: wait(lambda n=n: running(c, n), 180, f"{n} running") for n in ("bench-a", "bench-b")}
            ns = {n: f"nap-{p['metadata']['uid']}" for n, p in pods.items()}
            underlay, overlay = [], []
            for _ in range(args.rounds):
                underlay.append(iperf(c, (w2, None), (w1, None), ip2, args.seconds))
                overlay.append(iperf(c, (w2, ns["bench-b"]), (w1, ns["bench-a"]), pods["bench-b"]["status"]["podIP"], args.seconds))
        finally:
            for n in ("bench-a", "bench-b"):
                c.http.delete(f"/api/v1/namespaces/default/pods/{n}")
    u, o = statistics.median(underlay), statistics.median(overlay)
    print(f"VM to VM (underlay, {w1} -> {w2}):   " + "  ".join(f"{x:.3f}" for x in underlay) + f"  median {u:.3f} Gbit/s")
    print(f"pod to pod (VXLAN, {w1} -> {w2}):    " + "  ".join(f"{x:.3f}" for x in overlay) + f"  median {o:.3f} Gbit/s")
    print(f"ratio pod-to-pod / VM-to-VM: {o / u:.2f}   ({args.rounds} alternating rounds of {args.seconds} s, one run)")


if __name__ == "__main__":
    main()
