"""The cost of security: requests per second for a `get` over HTTPS with bearer-token
authentication and authorization, against the same `get` over plain HTTP with neither, from two
API server processes side by side, in alternating rounds (so drift on a noisy machine hits both).

    .venv/bin/python -m bench.security_bench [--seconds 3] [--rounds 3] [--concurrency 8]

Target: ratio (secure / plain) at least 0.7.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import ssl
import statistics
import tempfile
import time

import httpx

from tests.api.server import ProcessServer

TOKEN = "bench-token-0123456789abcdef0123456789"


async def measure(url: str, seconds: float, concurrency: int, verify, headers: dict) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, verify=verify, headers=headers, limits=limits, timeout=10) as c:
        await c.get("/api/v1/namespaces/default")  # connections and TLS sessions warm
        done = 0
        stop = time.perf_counter() + seconds

        async def worker():
            nonlocal done
            while time.perf_counter() < stop:
                r = await c.get("/api/v1/namespaces/default")
                assert r.status_code == 200, r.text
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    plain_dir, secure_dir = tempfile.mkdtemp(prefix="na-bench-"), tempfile.mkdtemp(prefix="na-bench-")
    with open(os.path.join(secure_dir, "tokens.csv"), "w") as f:
        f.write(f'{TOKEN},bench,1,"system:masters"\n')
    plain = secure = None
    try:
        plain = ProcessServer(plain_dir).start()
        secure = ProcessServer(secure_dir, secure=True,
                               extra_args=["--token-auth-file", os.path.join(secure_dir, "tokens.csv")]).start()
        ctx = ssl.create_default_context(cafile=os.path.join(secure_dir, "pki", "ca.crt"))
        rates: dict[str, list[float]] = {"plain": [], "secure": []}
        for _ in range(args.rounds):
            rates["plain"].append(asyncio.run(measure(plain.url, args.seconds, args.concurrency, True, {})))
            rates["secure"].append(asyncio.run(measure(secure.url, args.seconds, args.concurrency, ctx,
                                                       {"Authorization": f"Bearer {TOKEN}"})))
        p, s = statistics.median(rates["plain"]), statistics.median(rates["secure"])
        print(f"GET /api/v1/namespaces/default, {args.concurrency} concurrent keep-alive clients, "
              f"{args.rounds} alternating rounds of {args.seconds:g} s (medians):")
        print(f"  plain HTTP, no authentication      {p:8.0f} req/s   rounds: {', '.join(f'{r:.0f}' for r in rates['plain'])}")
        print(f"  HTTPS + token authn + authz        {s:8.0f} req/s   rounds: {', '.join(f'{r:.0f}' for r in rates['secure'])}")
        print(f"  ratio secure/plain                 {s / p:8.2f}        target >= 0.70: {'met' if s / p >= 0.7 else 'NOT met'}")
    finally:
        for srv in (plain, secure):
            if srv:
                srv.kill()
        shutil.rmtree(plain_dir, ignore_errors=True)
        shutil.rmtree(secure_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
