"""Endpoint propagation: with S services (P pods each, bound to node objects, not ready), time
from a pod's status turning Ready (the PATCH leaving this process) to a watch of EndpointSlices
showing that pod's endpoint ready. `nodeagent controller-manager` runs as its own process.

    .venv/bin/python -m bench.endpoints_bench [--services 1000] [--pods-per-service 2] [--samples 300] [--rate 20]

Target: p99 under 200 ms at 1,000 services. The samples are sent at --rate per second (Poisson
arrivals), then a burst phase sends --burst flips at once to show queueing. The CPU use of the
API server and the controller-manager is printed so a reader can tell what was the limit. Prints,
never fails on a missed target.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time

import orjson

from bench import rawhttp
from bench.api_bench import Server
from bench.sched_bench import post_raw, proc_cpu

try:
    import sniffio  # noqa: F401
except ImportError:
    sys.modules["sniffio"] = None  # type: ignore[assignment]
import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = "default"


def node_body(i: int) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Node",
                         "metadata": {"name": f"node-{i}", "labels": {"topology.kubernetes.io/zone": f"z{i % 3}"}},
                         "status": {"allocatable": {"cpu": "32", "memory": "64Gi", "pods": "250"},
                                    "conditions": [{"type": "Ready", "status": "True"}]}})


def service_body(i: int) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}"},
                         "spec": {"selector": {"app": f"svc-{i}"}, "ports": [{"port": 80, "targetPort": 8080}]}})


def pod_body(svc: int, j: int, nodes: int) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": f"svc-{svc}-{j}", "labels": {"app": f"svc-{svc}"}},
                         "spec": {"nodeName": f"node-{(svc * 7 + j) % nodes}",
                                  "containers": [{"name": "app", "image": "netexec", "ports": [{"containerPort": 8080}]}]}})


def ip_of(svc: int, j: int) -> str:
    n = svc * 8 + j + 1
    return f"10.{200 + n // 65536}.{(n // 256) % 256}.{n % 256}"


def status_patch(svc: int, j: int, ready: bool) -> bytes:
    ip = ip_of(svc, j)
    return orjson.dumps({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})


async def patch_raw(port: int, items: list[tuple[str, bytes]], concurrency: int = 8) -> None:
    todo = iter(items)
    head = "PATCH %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/merge-patch+json\r\nContent-Length: %d\r\n\r\n"

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for path, body in todo:
                resp, _ = await rawhttp.exchange(reader, writer, (head % (path, len(body))).encode() + body)
                if not resp.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"patch {path}: {resp[:20]!r}")
        finally:
            writer.close()
    await asyncio.gather(*(worker() for _ in range(concurrency)))


class SliceWatch:
    """Follows every EndpointSlice; records when each pod's endpoint is first seen ready."""

    def __init__(self):
        self.ready_at: dict[str, float] = {}
        self.endpoints: dict[str, dict[str, bool]] = {}  # slice -> pod -> ready
        self.waiters: dict[str, asyncio.Future] = {}
        self.events = 0

    async def run(self, client: httpx.AsyncClient, rv: str) -> None:
        params = {"watch": "true", "resourceVersion": rv}
        async with client.stream("GET", "/apis/discovery.k8s.io/v1/endpointslices", params=params) as r:
            async for line in r.aiter_lines():
                now = time.perf_counter()
                ev = orjson.loads(line)
                self.events += 1
                sl = ev["object"]
                name = sl["metadata"]["name"]
                if ev["type"] == "DELETED":
                    self.endpoints.pop(name, None)
                    continue
                eps = {}
                for ep in sl.get("endpoints") or []:
                    pod = (ep.get("targetRef") or {}).get("name", "")
                    ready = bool((ep.get("conditions") or {}).get("ready"))
                    eps[pod] = ready
                    if ready:
                        fut = self.waiters.pop(pod, None)
                        if fut is not None and not fut.done():
                            fut.set_result(now)
                self.endpoints[name] = eps

    def count(self) -> tuple[int, int]:
        total = sum(len(e) for e in self.endpoints.values())
        ready = sum(1 for e in self.endpoints.values() for r in e.values() if r)
        return total, ready


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


async def run(args) -> None:
    server = Server()
    cm = None
    try:
        server.wait_ready()
        t = time.perf_counter()
        await post_raw(server.port, "/api/v1/nodes", [node_body(i) for i in range(args.nodes)])
        await post_raw(server.port, f"/api/v1/namespaces/{NS}/services", [service_body(i) for i in range(args.services)])
        pods = [(s, j) for s in range(args.services) for j in range(args.pods_per_service)]
        await post_raw(server.port, f"/api/v1/namespaces/{NS}/pods", [pod_body(s, j, args.nodes) for s, j in pods])
        await patch_raw(server.port, [(f"/api/v1/namespaces/{NS}/pods/svc-{s}-{j}/status", status_patch(s, j, False))
                                      for s, j in pods])
        print(f"setup: {args.services} services, {len(pods)} pods (IP, not ready) in {time.perf_counter() - t:.1f}s")
        async with httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(30, read=None),
                                     limits=httpx.Limits(max_connections=4)) as client:
            rv = (await client.get(f"/api/v1/namespaces/{NS}/pods", params={"limit": "1"})).json()["metadata"]["resourceVersion"]
            watch = SliceWatch()
            watcher = asyncio.create_task(watch.run(client, rv))
            log = open(os.path.join(server.dir, "controller-manager.log"), "wb")
            t0 = time.perf_counter()
            s_cpu0 = server.cpu_seconds()
            cm = subprocess.Popen(
                [sys.executable, "-m", "control.controllers.command", "--server", server.url, "--no-leader-elect",
                 "--controllers", args.controllers, "--log-level", "warning"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            while watch.count()[0] < len(pods):
                await asyncio.sleep(0.05)
                if time.perf_counter() - t0 > 300:
                    raise RuntimeError(f"initial sync incomplete: {watch.count()}")
            if "endpoints" in args.controllers.split(","):
                while True:  # the Endpoints objects too, so that the measurement starts idle
                    items = (await client.get(f"/api/v1/namespaces/{NS}/endpoints")).json()["items"]
                    if sum(1 for e in items if e.get("subsets")) >= args.services:
                        break
                    await asyncio.sleep(0.5)
            init = time.perf_counter() - t0
            print(f"initial sync: every service's slices (and Endpoints) written {init:.1f}s after the controller-manager started "
                  f"(process start, list, {watch.events} slice events); server CPU "
                  f"{(server.cpu_seconds() - s_cpu0) / init:.0%}, controller-manager CPU {proc_cpu(cm.pid) / init:.0%}")
            await asyncio.sleep(1.0)

            rnd = random.Random(1)
            order = rnd.sample(pods, len(pods))
            port = server.port

            async def flip(s: int, j: int) -> float:
                name = f"svc-{s}-{j}"
                fut = asyncio.get_running_loop().create_future()
                watch.waiters[name] = fut
                start = time.perf_counter()
                await patch_raw(port, [(f"/api/v1/namespaces/{NS}/pods/{name}/status", status_patch(s, j, True))], 1)
                seen = await asyncio.wait_for(fut, 10)
                return (seen - start) * 1000

            # phase 1: steady arrivals
            cpu_s, cpu_c, tp = server.cpu_seconds(), proc_cpu(cm.pid), time.perf_counter()
            lat: list[float] = []
            tasks = []
            for s, j in order[:args.samples]:
                tasks.append(asyncio.create_task(flip(s, j)))
                await asyncio.sleep(rnd.expovariate(args.rate))
            lat = list(await asyncio.gather(*tasks))
            wall = time.perf_counter() - tp
            print(f"steady, {args.samples} pods turning Ready at ~{args.rate}/s: "
                  f"p50 {statistics.median(lat):.1f} ms, p90 {pct(lat, 90):.1f} ms, p99 {pct(lat, 99):.1f} ms, "
                  f"max {max(lat):.1f} ms; server CPU {(server.cpu_seconds() - cpu_s) / wall:.0%}, "
                  f"controller-manager CPU {(proc_cpu(cm.pid) - cpu_c) / wall:.0%}")
            # phase 2: a burst
            burst = order[args.samples:args.samples + args.burst]
            if burst:
                tp = time.perf_counter()
                lat2 = list(await asyncio.gather(*(flip(s, j) for s, j in burst)))
                print(f"burst of {len(burst)} at once: p50 {statistics.median(lat2):.1f} ms, p99 {pct(lat2, 99):.1f} ms, "
                      f"max {max(lat2):.1f} ms (all done in {(time.perf_counter() - tp) * 1000:.0f} ms)")
            watcher.cancel()
    finally:
        if cm is not None and cm.poll() is None:
            cm.terminate()
            try:
                cm.wait(5)
            except subprocess.TimeoutExpired:
                cm.kill()
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--pods-per-service", type=int, default=2)
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--rate", type=float, default=20.0, help="pods turning Ready per second in the steady phase")
    p.add_argument("--burst", type=int, default=100)
    p.add_argument("--controllers", default="endpointslice,endpoints",
                   help="controllers the controller-manager runs (default: %(default)s)")
    args = p.parse_args()
    print(f"cores={os.cpu_count()}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
