"""SQLite against etcd, side by side in one run: writes per second, the list of 10,000 pods, and
watch fan-out latency (p50/p99), first on the store itself, then through a real API server.

    .venv/bin/python -m bench.store_bench [--pods 10000] [--watchers 100] [--writes 200]
                                          [--skip-api] [--concurrency 1,16,64]

Both stores get a fresh temp directory on the same file system (etcd: one throwaway member of
Debian's etcd-server on a free loopback port; SQLite: WAL, synchronous=NORMAL), removed at the end.

1. Store level (in this process, no HTTP): creates/s with one writer and with N concurrent
   writers (etcd batches concurrent proposals into one raft entry and one fsync; SQLite commits
   one at a time on the event loop's thread); list of all pods (median of --lists); and watch
   fan-out: W store watchers, M single-pod writes `--spacing-ms` apart, latency = from just before
   the write until the LAST watcher has the event.
2. API level (a real `nodeagent apiserver --insecure-http` process per backend): creates/s over
   16 raw keep-alive HTTP connections, GET of all pods, and watch fan-out to W HTTP watchers.

The last table is etcd/SQLite per figure (for latencies, SQLite/etcd: > 1 means etcd is better).
Client, server and etcd share this machine's CPUs, so absolute figures drift between runs; the
ratios from one run are the result. It measures only; it never fails.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import orjson

from bench import rawhttp

try:  # see bench/api_bench.py: httpcore's per-request `import sniffio` is slow when absent
    import sniffio  # noqa: F401
except ImportError:
    sys.modules["sniffio"] = None  # type: ignore[assignment]
import httpx

from control.store import Create, SQLiteStore
from control.store.etcd import EtcdStore
from tests.api.etcd import EtcdCluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pod_obj(name: str, ns: str = "bench") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": "0" * 36, "labels": {"app": "bench"},
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "app", "image": "netexec", "ports": [{"containerPort": 8080}]}],
                     "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"},
            "status": {"phase": "Pending", "qosClass": "BestEffort"}}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# -- 1. store level -----------------------------------------------------------------------------
async def store_creates(store, n: int, concurrency: int, tag: str) -> float:
    names = iter(range(n))

    async def worker():
        for i in names:
            await store.commit([Create(f"/registry/pods/{tag}/p{i:06d}", pod_obj(f"p{i:06d}", tag))])
    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t)


async def store_list(store, tag: str, n: int, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        recs, _, _ = await store.list(f"/registry/pods/{tag}/")
        out.append(time.perf_counter() - t)
        assert len(recs) == n, (len(recs), n)
    return out


async def store_fan_out(store, watchers: int, writes: int, spacing: float) -> list[float]:
    prefix = "/registry/pods/fan/"
    rev = store.revision()
    got: dict[str, list[float]] = {}
    ws = [store.watch(prefix, rev) for _ in range(watchers)]

    async def consume(w):
        for _ in range(writes):
            ev = await w.next()
            got.setdefault(ev.record.key, []).append(time.perf_counter())
    tasks = [asyncio.create_task(consume(w)) for w in ws]
    sent = {}
    for i in range(writes):
        key = f"{prefix}f{i:05d}"
        sent[key] = time.perf_counter()
        await store.commit([Create(key, pod_obj(f"f{i:05d}", "fan"))])
        await asyncio.sleep(spacing)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    for w in ws:
        w.close()
    return [max(got[k]) - sent[k] for k in sent]


async def bench_store(kind: str, store, args) -> dict:
    out = {}
    if kind == "etcd":
        await store.start()
    conc = [int(c) for c in args.concurrency.split(",")]
    for c in conc:
        out[f"store creates/s, {c} writer{'s' if c > 1 else ''}"] = await store_creates(
            store, min(args.pods, 2000 if c == 1 else args.pods), c, f"c{c}")
    # the list is of the namespace that the most concurrent run filled with args.pods pods
    lists = await store_list(store, f"c{conc[-1]}", args.pods, args.lists)
    out[f"store list {args.pods} pods, median ms"] = statistics.median(lists) * 1000
    # etcd's watch reaches this process after the commits: let it catch up with the burst of
    # creates, so that the fan-out below measures the steady state
    _, rev, _ = await store.list("/registry/pods/", limit=1)
    t = time.perf_counter()
    while store.revision() < rev:
        await asyncio.sleep(0.001)
    if kind == "etcd":
        print(f"  etcd: the watch was {(time.perf_counter() - t) * 1000:.0f} ms behind after the creates and lists")
    lat = await store_fan_out(store, args.watchers, args.writes, args.spacing_ms / 1000)
    out[f"store fan-out to {args.watchers}, p50 ms"] = pct(lat, 50) * 1000
    out[f"store fan-out to {args.watchers}, p99 ms"] = pct(lat, 99) * 1000
    return out


# -- 2. API level -------------------------------------------------------------------------------
class ApiServer:
    def __init__(self, data_dir: str, extra: list[str]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(data_dir, "apiserver.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nodeagent.cli", "apiserver", "--insecure-http", "--data-dir", data_dir,
             "--listen", f"127.0.0.1:{self.port}", "--log-level", "warning", *extra],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"API server on {extra or 'sqlite'} did not start")

    def stop(self) -> None:
        rawhttp.stop(self.proc)
        self.log.close()


async def api_creates(port: int, ns: str, n: int, concurrency: int) -> float:
    todo = iter(range(n))
    head = f"POST /api/v1/namespaces/{ns}/pods HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n" \
           "Content-Length: %d\r\n\r\n"

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in todo:
                body = orjson.dumps({"metadata": {"name": f"p{i:06d}", "labels": {"app": "bench"}},
                                     "spec": {"containers": [{"name": "app", "image": "netexec"}]}})
                resp, _ = await rawhttp.exchange(reader, writer, (head % len(body)).encode() + body)
                if not resp.startswith(b"HTTP/1.1 201"):
                    raise RuntimeError(f"create failed: {resp[:40]!r}")
        finally:
            writer.close()
    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t)


async def api_fan_out(url: str, watchers: int, writes: int, spacing: float) -> list[float]:
    ns = "fan"
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=None),
                                 limits=httpx.Limits(max_connections=watchers + 4)) as c:
        await c.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
        rv = (await c.get(f"/api/v1/namespaces/{ns}/pods")).json()["metadata"]["resourceVersion"]
        got: dict[str, list[float]] = {}
        ready = asyncio.Event()
        connected = 0

        async def watch():
            nonlocal connected
            async with c.stream("GET", f"/api/v1/namespaces/{ns}/pods",
                                params={"watch": "true", "resourceVersion": rv}) as r:
                connected += 1
                if connected == watchers:
                    ready.set()
                n = 0
                async for line in r.aiter_lines():
                    if not line:
                        continue
                    name = orjson.loads(line)["object"]["metadata"]["name"]
                    got.setdefault(name, []).append(time.perf_counter())
                    n += 1
                    if n == writes:
                        return
        tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.sleep(0.3)
        sent = {}
        for i in range(writes):
            name = f"f{i:05d}"
            sent[name] = time.perf_counter()
            r = await c.post(f"/api/v1/namespaces/{ns}/pods", json={
                "metadata": {"name": name}, "spec": {"containers": [{"name": "a", "image": "x"}]}})
            assert r.status_code == 201, r.text
            await asyncio.sleep(spacing)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        return [max(got[k]) - sent[k] for k in sent]


async def bench_api(server: ApiServer, args) -> dict:
    out = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
        await c.post("/api/v1/namespaces", json={"metadata": {"name": "bench"}})
    out["API creates/s, 16 connections"] = await api_creates(server.port, "bench", args.pods, 16)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
        times = []
        for _ in range(args.lists):
            t = time.perf_counter()
            r = await c.get("/api/v1/namespaces/bench/pods")
            times.append(time.perf_counter() - t)
            assert len(r.json()["items"]) == args.pods
    out[f"API list {args.pods} pods, median ms"] = statistics.median(times) * 1000
    lat = await api_fan_out(server.url, args.watchers, args.writes, args.spacing_ms / 1000)
    out[f"API fan-out to {args.watchers}, p50 ms"] = pct(lat, 50) * 1000
    out[f"API fan-out to {args.watchers}, p99 ms"] = pct(lat, 99) * 1000
    return out


# -- the run ------------------------------------------------------------------------------------
def table(results: dict[str, dict]) -> None:
    rows = list(results["sqlite"])
    w = max(len(r) for r in rows)
    print(f"\n{'':{w}}  {'SQLite':>10}  {'etcd':>10}  {'etcd vs SQLite':>15}")
    for r in rows:
        s, e = results["sqlite"][r], results["etcd"].get(r)
        if e is None:
            continue
        ratio = e / s if "/s" in r else s / e  # > 1: etcd better
        print(f"{r:{w}}  {s:10.1f}  {e:10.1f}  {ratio:14.2f}x")
    print("(ratios: creates etcd/SQLite, latencies SQLite/etcd; > 1 means etcd is better)")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.store_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--lists", type=int, default=5)
    ap.add_argument("--spacing-ms", type=float, default=15)
    ap.add_argument("--concurrency", default="1,16,64", help="store-level writer counts (comma list)")
    ap.add_argument("--skip-api", action="store_true", help="only the store-level figures")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="nodeagent-store-bench-")
    clusters: list[EtcdCluster] = []
    results: dict[str, dict] = {"sqlite": {}, "etcd": {}}
    try:
        print(f"{os.cpu_count()} CPUs shared by the clients, the stores and etcd; temp dir {tmp}")
        # store level
        etcd = EtcdCluster().start()
        clusters.append(etcd)
        for kind in ("sqlite", "etcd"):
            async def one():
                store = SQLiteStore(os.path.join(tmp, "store.db")) if kind == "sqlite" else \
                    EtcdStore(etcd.endpoints, compaction_interval=0)
                try:
                    return await bench_store(kind, store, args)
                finally:
                    await store.close()
            t = time.perf_counter()
            results[kind].update(asyncio.run(one()))
            print(f"store level, {kind}: {time.perf_counter() - t:.1f}s")
        etcd.stop()
        # API level: a fresh etcd and a fresh SQLite database
        if not args.skip_api:
            for kind in ("sqlite", "etcd"):
                d = os.path.join(tmp, f"api-{kind}")
                os.makedirs(d)
                extra = []
                if kind == "etcd":
                    c = EtcdCluster().start()
                    clusters.append(c)
                    extra = ["--storage", "etcd", "--etcd-endpoints", c.endpoints]
                server = ApiServer(d, extra)
                try:
                    t = time.perf_counter()
                    results[kind].update(asyncio.run(bench_api(server, args)))
                    print(f"API level, {kind}: {time.perf_counter() - t:.1f}s")
                finally:
                    server.stop()
        table(results)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        for c in clusters:
            c.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
