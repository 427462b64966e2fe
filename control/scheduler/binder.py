"""Binding requests on a few keep-alive HTTP/1.1 connections of our own.

Binding is the scheduler's hot path: one POST per pod. Measured on these machines, httpx's
connection pool costs milliseconds of CPU per request once a dozen connections are open (its
pool polls every connection's socket on every request), which alone capped the scheduler near
150 pods/s. Here each connection is a worker that writes one request and reads one response at a
time; ``connections`` workers give that many bindings in flight. It speaks only what it needs:
Content-Length or chunked bodies, keep-alive, reconnect with fail-over to the next server.
Everything else the scheduler does goes through control.client.ApiClient.
"""
from __future__ import annotations

import asyncio
import logging
import ssl as ssl_mod
from urllib.parse import urlsplit

import orjson

from control.client import ApiStatusError

log = logging.getLogger("nodeagent.scheduler")


class BindError(OSError):
    """The API server could not be reached (after fail-over and one retry)."""


class Binder:
    def __init__(self, servers: list[str], connections: int = 8, timeout: float = 10.0,
                 token: str | None = None, ssl_context: ssl_mod.SSLContext | None = None):
        self.servers = list(servers)
        self.current = 0
        self.timeout = timeout
        self.token = token
        self.ssl_context = ssl_context
        self.queue: asyncio.Queue = asyncio.Queue()
        self.workers = [asyncio.get_running_loop().create_task(self._worker(i)) for i in range(connections)]

    async def close(self) -> None:
        for w in self.workers:
            w.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)

    async def bind(self, namespace: str, pod: str, node: str, uid: str | None = None) -> dict:
        body = orjson.dumps({"apiVersion": "v1", "kind": "Binding",
                             "metadata": {"name": pod, "namespace": namespace, **({"uid": uid} if uid else {})},
                             "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/binding"
        fut = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((path, body, fut))
        code, payload = await fut
        out = orjson.loads(payload) if payload else {}
        if code >= 400:
            raise ApiStatusError(code, out if isinstance(out, dict) else {})
        return out

    # -- connections ------------------------------------------------------------------------
    async def _connect(self):
        url = urlsplit(self.servers[self.current])
        secure = url.scheme == "https"
        port = url.port or (443 if secure else 80)
        ctx = (self.ssl_context or ssl_mod.create_default_context()) if secure else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(url.hostname, port, ssl=ctx, limit=1 << 20), self.timeout)
        host = url.netloc.encode()
        return reader, writer, host

    def _fail_over(self) -> None:
        if len(self.servers) > 1:
            self.current = (self.current + 1) % len(self.servers)
            log.warning("binder: switching to API server %s", self.servers[self.current])

    async def _worker(self, i: int) -> None:
        conn = None
        while True:
            path, body, fut = await self.queue.get()
            if fut.done():
                continue
            for attempt in range(max(2, len(self.servers) + 1)):
                try:
                    if conn is None:
                        conn = await self._connect()
                    code, payload, keep = await asyncio.wait_for(self._request(conn, path, body), self.timeout)
                    if not keep:
                        conn[1].close()
                        conn = None
                    if not fut.done():
                        fut.set_result((code, payload))
                    break
                except asyncio.CancelledError:
                    if conn is not None:
                        conn[1].close()
                    if not fut.done():
                        fut.set_exception(BindError("binder stopped"))
                    raise
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
                    if conn is not None:
                        conn[1].close()
                        conn = None
                    if attempt >= 1:
                        self._fail_over()
                    last = err
            else:
                if not fut.done():
                    fut.set_exception(BindError(f"binding request failed: {last!r}"))

    async def _request(self, conn, path: str, body: bytes) -> tuple[int, bytes, bool]:
        reader, writer, host = conn
        head = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + host
                + b"\r\nContent-Type: application/json\r\nAccept: application/json\r\nUser-Agent: nodeagent-scheduler"
                + (b"\r\nAuthorization: Bearer " + self.token.encode() if self.token else b"")
                + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        writer.write(head + body)
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        code = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if b":" in line:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip().lower()
        if b"content-length" in headers:
            payload = await reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            payload = b"".join(parts)
        else:
            payload = await reader.read()
            return code, payload, False
        return code, payload, headers.get(b"connection") != b"close"
