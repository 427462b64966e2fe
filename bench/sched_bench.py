"""Scheduling throughput, end to end through the API: N nodes (objects only, no agents) and M
pending pods; start `nodeagent scheduler` as its own process and count bindings on a watch.

    .venv/bin/python -m bench.sched_bench [--nodes 1000] [--pods 10000] [--owners 0] [--runs 1]

Anchor: kube-scheduler's CI floor is 680 pods/s at 5,000 nodes (Go, many cores). Target here:
300 pods/s. Everything (API server, scheduler, this watcher) shares the machine's cores; the
CPU use of the server and the scheduler per phase is printed so a reader can tell which one
was the limit. Prints, never fails on a missed target.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import orjson

from bench import rawhttp
from bench.api_bench import Server

try:
    import sniffio  # noqa: F401
except ImportError:
    sys.modules["sniffio"] = None  # type: ignore[assignment]
import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def node_body(i: int, zones: int) -> bytes:
    name = f"node-{i:05d}"
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                              "topology.kubernetes.io/zone": f"zone-{i % zones}"}},
        "status": {"capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})


def pod_body(i: int, owners: int) -> bytes:
    meta: dict = {"name": f"pod-{i:06d}", "labels": {"app": f"app-{i % max(owners, 1)}"}}
    if owners:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"rs-{i % owners}",
                                    "uid": f"00000000-0000-0000-0000-{i % owners:012d}", "controller": True}]
    return orjson.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                         "spec": {"containers": [{"name": "app", "image": "pause:3.9",
                                                  "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}})


async def post_raw(port: int, path: str, bodies: list[bytes], concurrency: int = 8) -> None:
    """HTTP/1.1 on keep-alive sockets, so that setting up the cluster is quick."""
    todo = iter(bodies)
    head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for body in todo:
                resp, payload = await rawhttp.exchange(reader, writer, (head % len(body)).encode() + body)
                if not resp.startswith(b"HTTP/1.1 201"):
                    raise RuntimeError(f"create: {resp[:15]!r} {payload[:300]!r}")
        finally:
            writer.close()
    await asyncio.gather(*(worker() for _ in range(concurrency)))


def proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


async def run_once(args) -> dict:
    server = Server()
    sched = None
    try:
        server.wait_ready()
        t = time.perf_counter()
        await post_raw(server.port, "/api/v1/nodes", [node_body(i, args.zones) for i in range(args.nodes)])
        await post_raw(server.port, "/api/v1/namespaces/default/pods",
                       [pod_body(i, args.owners) for i in range(args.pods)])
        setup = time.perf_counter() - t
        async with httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(30, read=None)) as client:
            rv = (await client.get("/api/v1/namespaces/default/pods", params={"limit": "1"})).json()["metadata"]["resourceVersion"]
            bound_times: list[float] = []
            done = asyncio.Event()

            async def watch():
                params = {"watch": "true", "resourceVersion": rv}
                async with client.stream("GET", "/api/v1/namespaces/default/pods", params=params) as r:
                    async for line in r.aiter_lines():
                        if b'"nodeName":"' in line.encode():
                            bound_times.append(time.perf_counter())
                            if len(bound_times) >= args.pods:
                                done.set()
                                return
            watcher = asyncio.create_task(watch())
            await asyncio.sleep(0.2)
            log = open(os.path.join(server.dir, "scheduler.log"), "wb")
            s_cpu0 = server.cpu_seconds()
            t0 = time.perf_counter()
            sched = subprocess.Popen(
                [sys.executable, "-m", "control.scheduler.command", "--server", server.url,
                 "--no-leader-elect", "--log-level", "warning", *args.scheduler_args],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                await asyncio.wait_for(done.wait(), args.timeout)
            except asyncio.TimeoutError:
                pass
            t_end = time.perf_counter()
            sched_cpu = proc_cpu(sched.pid)
            server_cpu = server.cpu_seconds() - s_cpu0
            watcher.cancel()
        n = len(bound_times)
        first = bound_times[0] if bound_times else t_end
        last = bound_times[-1] if bound_times else t_end
        # steady state: the middle 80% of the bindings
        lo, hi = int(n * 0.1), int(n * 0.9) - 1
        steady = (hi - lo) / (bound_times[hi] - bound_times[lo]) if n > 20 and bound_times[hi] > bound_times[lo] else 0.0
        return {"setup_s": setup, "bound": n, "start_to_first_s": first - t0, "first_to_last_s": last - first,
                "rate_first_to_last": n / (last - first) if last > first else 0.0,
                "rate_from_start": n / (last - t0) if last > t0 else 0.0, "rate_steady": steady,
                "sched_cpu": sched_cpu / max(t_end - t0, 1e-9), "server_cpu": server_cpu / max(t_end - t0, 1e-9)}
    finally:
        if sched is not None and sched.poll() is None:
            sched.terminate()
            try:
                sched.wait(5)
            except subprocess.TimeoutExpired:
                sched.kill()
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10000)
    p.add_argument("--zones", type=int, default=10)
    p.add_argument("--owners", type=int, default=0, help="spread pods over this many fake ReplicaSets (0: plain pods)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("scheduler_args", nargs="*", help="extra scheduler flags (after --)")
    args = p.parse_args()
    print(f"{args.nodes} nodes, {args.pods} pending pods, owners={args.owners}, cores={os.cpu_count()}")
    for i in range(args.runs):
        r = asyncio.run(run_once(args))
        print(f"run {i + 1}: bound {r['bound']}/{args.pods}; first binding {r['start_to_first_s']:.2f}s after start "
              f"(process start + list + watch); {r['rate_first_to_last']:.0f} pods/s first-to-last, "
              f"{r['rate_steady']:.0f} pods/s steady (middle 80%), {r['rate_from_start']:.0f} pods/s "
              f"from process start; CPU: scheduler {r['sched_cpu']:.0%}, API server {r['server_cpu']:.0%} of a core "
              f"(setup {r['setup_s']:.1f}s)")


if __name__ == "__main__":
    main()
