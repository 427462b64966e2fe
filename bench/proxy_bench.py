"""Service proxy benchmarks (issue 7), printed as ratios measured side by side in one run.

    .venv/bin/python -m bench.proxy_bench [--services 10000] [--changes 200] [--seconds 3]

Needs root; everything happens in throwaway network namespaces (nodeagent.proxy.testing.Lab),
never in the machine's own ruleset.

1. Full sync of N services x 3 endpoints (nftables mode) against `nft -f` of the very same script:
   our overhead as a ratio (targets: under 2 s, ratio at most 1.5). Alternated, median of runs.
2. One endpoint change with N services present: from the event reaching the proxy to the rules
   live in the kernel, p50 / p99, and the elements sent per change; the same with 100 services,
   to show that the work grows with the change, not with the number of services.
3. New TCP connections per second through a VIP with N services present against with 10 present
   (target: at least 0.9), in alternating order over 4 rounds. Client and server are Python in
   this machine's two cores, so the absolute rate is theirs; the ratio is what the ruleset costs
   per packet. Each connection ends with a reset, so that TIME_WAIT does not pile up.
4. The same full sync, endpoint change and connection rate in iptables mode, beside them.
This script measures and prints; it never fails on a missed target.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time

from nodeagent.proxy.engine import SyncEngine
from nodeagent.proxy.model import NodeConfig
from nodeagent.proxy.nft.backend import NftBackend
from nodeagent.proxy.nft.proxier import NftProxier
from nodeagent.proxy.testing import Lab, endpoint, endpoint_slice, service

CFG = NodeConfig("node1", "10.244.0.0/16")


def ip(base: int, i: int) -> str:
    return f"10.{base + i // 65536}.{(i // 256) % 256}.{i % 256}"


def objects(n: int, start: int = 0):
    for i in range(start, start + n):
        yield service(f"s{i}", ip(96, i + 256), [("http", 80)])
        yield endpoint_slice(f"s{i}-1", f"s{i}", [endpoint(ip(128, 3 * i + k), node="other") for k in range(3)],
                             [("http", 8080)])


def feed(eng: SyncEngine, objs, etype: str = "ADDED") -> SyncEngine:
    """Record Service and EndpointSlice events, as the informers' handlers do."""
    for o in objs:
        eng.event("service" if o["kind"] == "Service" else "slice", etype, o)
    return eng


def engine_with(backend, table: str, n: int) -> SyncEngine:
    return feed(SyncEngine(NftProxier(backend, CFG, table), CFG.node_name), objects(n))


def bench_full_sync(lab: Lab, n: int, runs: int) -> dict:
    backend = NftBackend(netns=lab.node)
    ours, alone = [], []
    captured: list[str] = []
    stream = backend.stream

    def capture():
        # the create path streams its script; keep what it writes, to load it with `nft -f` alone
        captured.clear()
        s = stream()
        write = s.write
        s.write = lambda text: (captured.append(text), write(text))[1]
        return s
    backend.stream = capture
    for r in range(runs):
        table = f"bench{r}"
        eng = engine_with(backend, table, n)
        gc.collect()
        t = time.perf_counter()
        res = eng.sync().result
        ours.append(time.perf_counter() - t)
        backend.apply(f"delete table ip {table}\n")
        with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as f:
            f.write("".join(captured))
        try:
            t = time.perf_counter()
            subprocess.run(["nsenter", f"--net=/run/netns/{lab.node}", "nft", "-f", f.name], check=True,
                           stdout=subprocess.DEVNULL)
            alone.append(time.perf_counter() - t)
        finally:
            os.unlink(f.name)
        backend.apply(f"delete table ip {table}\n")
        del eng
    return {"ours": statistics.median(ours), "alone": statistics.median(alone),
            "ratio": statistics.median(o / a for o, a in zip(ours, alone)), "elements": res.elements,
            "script_bytes": sum(map(len, captured))}


def bench_changes(lab: Lab, n: int, changes: int, mode: str = "nftables") -> dict:
    px, cleanup = proxier_for(mode, lab)
    eng = feed(SyncEngine(px, CFG.node_name), objects(n))
    lat, sent = [], []
    counts: dict[int, int] = {}
    try:
        eng.sync()
        for j in range(changes):
            i = (j * 7919) % n
            # every change is a real one (3 -> 4 or 2 endpoints, and back to 3 when the service
            # comes round again): a slice sent back unchanged would cancel out in the tracker
            # and time an empty sync
            count = counts[i] = (4 if j % 2 else 2) if counts.get(i, 3) == 3 else 3
            eps = [endpoint(ip(128, 3 * i + k), node="other") for k in range(min(count, 3))]
            if count == 4:
                eps.append(endpoint(ip(160, j), node="other"))
            obj = endpoint_slice(f"s{i}-1", f"s{i}", eps, [("http", 8080)])
            t = time.perf_counter()
            eng.event("slice", "MODIFIED", obj)      # what the informer's handler does
            r = eng.sync().result                    # returns once the transaction is committed
            lat.append(time.perf_counter() - t)
            sent.append(r.elements)
            if r.sent_nothing:
                raise RuntimeError(f"change {j} sent nothing: the benchmark would time an empty sync")
    finally:
        cleanup()
    lat.sort()
    return {"p50": lat[len(lat) // 2], "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "elements_per_change": statistics.mean(sent)}


SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1024)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(b"ok\n")
    c.close()
"""

# The client ends each connection with a reset (SO_LINGER 0) once it has the reply: an orderly
# close leaves a TIME_WAIT socket per connection (120 s in conntrack, 60 s in the sockets), and at
# thousands a second the ephemeral ports and the conntrack table fill within a round, so that the
# rate fell 4,000 -> 200/s over 18 s of one run and measured the pile, not the ruleset.
CLIENT = r"""
import socket, struct, sys, time
ip, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
n = err = 0
end = time.monotonic() + secs
while time.monotonic() < end:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.settimeout(2)
    try:
        s.connect((ip, port)); s.recv(64); n += 1
    except OSError:
        err += 1
    finally:
        s.close()
print(n / secs, err)
"""


def proxier_for(mode: str, lab: Lab):
    """(proxier, cleanup) of either mode, in the lab's node namespace."""
    if mode == "iptables":
        from nodeagent.proxy.iptables.backend import IptablesBackend
        from nodeagent.proxy.iptables.proxier import IptablesProxier
        px = IptablesProxier(IptablesBackend("legacy", netns=lab.node), CFG, check_backend_mismatch=False)
        return px, px.cleanup
    backend = NftBackend(netns=lab.node)
    return NftProxier(backend, CFG, "benchcps"), lambda: backend.apply("delete table ip benchcps\n")


def bench_iptables_full_sync(lab: Lab, n: int) -> float:
    px, cleanup = proxier_for("iptables", lab)
    eng = SyncEngine(px, CFG.node_name)
    try:
        feed(eng, objects(n))
        t0 = time.perf_counter()
        eng.sync()
        return time.perf_counter() - t0
    finally:
        cleanup()


def bench_conn_rate(lab: Lab, n: int, seconds: float, rounds: int = 4, mode: str = "nftables") -> dict:
    px, cleanup = proxier_for(mode, lab)
    eng = SyncEngine(px, CFG.node_name)
    vip = "10.96.0.10"
    # the server is its own process in the pod namespace: a thread of this process would share
    # its heap (and garbage collector pauses) with 10,000 services' worth of proxy state
    server = subprocess.Popen(["ip", "netns", "exec", lab.pods[0], sys.executable, "-c", SERVER, "8080"],
                              stdout=subprocess.PIPE, text=True)
    server.stdout.readline()
    feed(eng, (service("target", vip, [("http", 80)]), endpoint_slice("target-1", "target", [lab.pod_ip(1)], [("http", 8080)])))
    filler = list(objects(n - 1))

    def rate():
        # the client runs inside the client namespace as its own process (a second core)
        out = subprocess.run(["ip", "netns", "exec", lab.client, sys.executable, "-c", CLIENT, vip, "80", str(seconds)],
                             capture_output=True, text=True, check=True).stdout.split()
        return float(out[0]), int(out[1])
    def resize(big_now: bool):
        feed(eng, filler[18:], "ADDED" if big_now else "DELETED").sync()

    small, big, errors = [], [], 0
    try:
        feed(eng, filler[:18]).sync()
        size = False
        # alternating order (small, big, big, small, ...): whatever drifts during the run (the
        # conntrack table filling, the machine's load) weighs on both
        for r in range(rounds):
            for big_now in ((False, True) if r % 2 == 0 else (True, False)):
                if big_now != size:
                    resize(big_now)
                    size = big_now
                rate_, e = rate()
                (big if big_now else small).append(rate_)
                errors += e
    finally:
        server.kill()
        server.wait()
        cleanup()
    return {"small": statistics.median(small), "big": statistics.median(big),
            "ratio": statistics.median(b / s for b, s in zip(big, small)), "errors": errors,
            "rounds": " ".join(f"{s:.0f}/{b:.0f}" for s, b in zip(small, big))}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)")
        return 1
    n = args.services
    print(f"nodeagent proxy benchmark, nftables mode, {n} services x 3 endpoints, load {os.getloadavg()[0]:.1f}")
    with Lab(pods=1, prefix="pb") as lab:
        f = bench_full_sync(lab, n, args.runs)
        print(f"1. full sync: ours {f['ours']:.2f} s, `nft -f` of the same script alone {f['alone']:.2f} s, "
              f"ratio {f['ratio']:.2f}  ({f['elements']} elements, {f['script_bytes'] / 1e6:.1f} MB script; "
              f"target < 2 s, ratio <= 1.5)")
        big = bench_changes(lab, n, args.changes)
        small = bench_changes(lab, 100, args.changes)
        print(f"2. one endpoint change, event to kernel: {n} services p50 {big['p50'] * 1e3:.1f} ms, "
              f"p99 {big['p99'] * 1e3:.1f} ms, {big['elements_per_change']:.1f} elements sent per change; "
              f"100 services p50 {small['p50'] * 1e3:.1f} ms, p99 {small['p99'] * 1e3:.1f} ms; "
              f"ratio of p50s {big['p50'] / small['p50']:.2f} (target p99 < 50 ms)")
        c = bench_conn_rate(lab, n, args.seconds)
        print(f"3. new TCP connections/s through a VIP: {n} services {c['big']:.0f}/s, 10 services {c['small']:.0f}/s, "
              f"ratio {c['ratio']:.2f} (target >= 0.9; {c['errors']} failed connections; "
              f"10/{n} per round: {c['rounds']})")
        t = bench_iptables_full_sync(lab, n)
        ch = bench_changes(lab, n, max(5, args.changes // 10), mode="iptables")
        ci = bench_conn_rate(lab, n, args.seconds, mode="iptables")
        print(f"4. iptables mode, beside it: full sync of {n} services {t:.2f} s; one endpoint change p50 "
              f"{ch['p50'] * 1e3:.0f} ms, p99 {ch['p99'] * 1e3:.0f} ms ({ch['elements_per_change']:.0f} rules "
              f"written per change); new TCP connections/s {n} services "
              f"{ci['big']:.0f}/s, 10 services {ci['small']:.0f}/s, ratio {ci['ratio']:.2f} ({ci['errors']} failed connections; "
              f"per round: {ci['rounds']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
