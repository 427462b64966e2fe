"""Health endpoints with kube-proxy's semantics, and a tiny HTTP server for them.

* The proxy's own health (`/healthz`, `/livez` on 10256): unhealthy (503) when a change has been
  queued and not synced within `timeout` (kube-proxy uses twice the sync period). A proxy that has
  not finished its first sync is "queued" from its start, so it turns unhealthy if the first sync
  takes too long. The body is kube-proxy's: lastUpdated, currentTime, nodeEligible.
* Service health check node ports (policy Local services): JSON with the service and its number
  of local endpoints, 200 when there is at least one, else 503 (what cloud load balancers probe to
  send traffic only to nodes that have endpoints).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone

log = logging.getLogger("nodeagent.proxy.health")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %z UTC")


class ProxyHealth:
    def __init__(self, timeout: float, clock=time.monotonic, wall=time.time):
        self.timeout = timeout
        self.clock, self.wall = clock, wall
        self.oldest_queued: float | None = clock()   # not synced yet
        self.last_updated: float = 0.0

    def queued(self) -> None:
        if self.oldest_queued is None:
            self.oldest_queued = self.clock()

    def updated(self) -> None:
        self.oldest_queued = None
        self.last_updated = self.wall()

    def healthy(self) -> bool:
        return self.oldest_queued is None or self.clock() - self.oldest_queued < self.timeout

    def response(self) -> tuple[int, dict]:
        body = {"lastUpdated": _iso(self.last_updated) if self.last_updated else "",
                "currentTime": _iso(self.wall()), "nodeEligible": True}
        return (200 if self.healthy() else 503), body


def service_health_response(namespace: str, name: str, local: int, proxy_healthy: bool = True) -> tuple[int, dict, dict]:
    body = {"service": {"namespace": namespace, "name": name}, "localEndpoints": local,
            "serviceProxyHealthy": proxy_healthy}
    headers = {"X-Content-Type-Options": "nosniff", "X-Load-Balancing-Endpoint-Weight": str(local)}
    return (200 if local > 0 and proxy_healthy else 503), body, headers


REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable", 400: "Bad Request"}


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route) -> None:
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
        parts = line.decode("latin-1").split()
        while True:   # drain headers
            h = await asyncio.wait_for(reader.readline(), 5)
            if h in (b"\r\n", b"\n", b""):
                break
        if len(parts) < 2:
            status, ctype, body, headers = 400, "text/plain", b"bad request\n", {}
        else:
            status, ctype, body, headers = route(parts[1].split("?", 1)[0])
        head = [f"HTTP/1.1 {status} {REASONS.get(status, '')}", f"Content-Type: {ctype}",
                f"Content-Length: {len(body)}", "Connection: close"] + [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
    except (asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(sock, route) -> asyncio.AbstractServer:
    """Serve `route(path) -> (status, content type, body bytes, headers)` on a bound socket."""
    sock.listen(128)
    sock.setblocking(False)
    return await asyncio.start_server(lambda r, w: _handle(r, w, route), sock=sock)


def json_route(fn):
    def route(path):
        status, body, *rest = fn(path)
        return status, "application/json", (json.dumps(body) + "\n").encode(), (rest[0] if rest else {})
    return route
