"""The proxy at run time: informers feed the change tracker, a bounded-frequency loop runs syncs
on a worker thread, health (10256), metrics (10249) and the service health check node ports are
served from the event loop.

Sync policy (kube-proxy's BoundedFrequencyRunner, simplified):
* nothing runs until both informers have listed (a first sync from half the state would delete
  rules of services whose slices have not arrived yet);
* a change wakes the loop; syncs are at least `min_sync_period` apart, so a burst of changes is
  folded into one transaction, and never more than one runs at a time;
* every `sync_period` a sync runs anyway (a no-op when nothing changed), and every
  `full_sync_period` a full one reads our table back and repairs any drift;
* a failed sync is retried after `min_sync_period`, as a full sync (the kernel state is unknown).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time

from .engine import SyncEngine
from .health import ProxyHealth, json_route, serve, service_health_response
from .metrics import ProxyMetrics
from .netns import socket_in

log = logging.getLogger("nodeagent.proxy")


def bind(netns: str | None, host: str, port: int) -> socket.socket:
    s = socket_in(netns, socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    return s


class ProxyRunner:
    def __init__(self, engine: SyncEngine, *, metrics: ProxyMetrics | None = None,
                 min_sync_period: float = 0.1, sync_period: float = 30.0, full_sync_period: float = 300.0,
                 healthz: tuple[str, int] | None = None, metrics_addr: tuple[str, int] | None = None,
                 health_check_host: str = "0.0.0.0", netns: str | None = None):
        self.engine = engine
        self.metrics = metrics or ProxyMetrics(getattr(engine.proxier, "mode", "nftables"))
        self.health = ProxyHealth(2 * sync_period)
        self.min_sync_period, self.sync_period, self.full_sync_period = min_sync_period, sync_period, full_sync_period
        self.healthz, self.metrics_addr = healthz, metrics_addr
        self.health_check_host, self.netns = health_check_host, netns
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list = []
        self._hc_servers: dict[int, object] = {}
        self._hc_counts: dict[int, tuple] = {}
        self.syncs = 0
        engine.tracker.on_change = self._changed

    # handlers call this (event loop thread): record and wake, nothing else
    def _changed(self) -> None:
        self.health.queued()
        if self._wake is not None:
            self._wake.set()

    async def start_servers(self) -> None:
        if self.healthz:
            self._servers.append(await serve(bind(None, *self.healthz), json_route(
                lambda path: self.health.response() if path in ("/healthz", "/livez", "/") else (404, {}))))
        if self.metrics_addr:
            def metrics(path):
                if path != "/metrics":
                    return 404, "text/plain", b"not found\n", {}
                return 200, "text/plain; version=0.0.4", self.metrics.render().encode(), {}
            self._servers.append(await serve(bind(None, *self.metrics_addr), metrics))

    async def _service_health_ports(self) -> None:
        """Open, update and close the listeners of policy-Local services' health check ports."""
        wanted = self.engine.view.health_check_ports()
        self._hc_counts = wanted
        for port in list(self._hc_servers):
            if port not in wanted:
                self._hc_servers.pop(port).close()
        for port in wanted:
            if port in self._hc_servers:
                continue
            def route(path, port=port):
                svc, n = self._hc_counts.get(port, (None, 0))
                if svc is None:
                    return 503, {}, {}
                return service_health_response(svc.namespace, svc.name, n, self.health.healthy())
            try:
                self._hc_servers[port] = await serve(bind(self.netns, self.health_check_host, port), json_route(route))
            except OSError as err:
                log.warning("health check node port %d: %s", port, err)

    def _observe(self, out, started: float) -> None:
        r = out.result
        elapsed = time.perf_counter() - started
        self.metrics.sync_duration.observe(elapsed)
        (self.metrics.full_sync_duration if r.full else self.metrics.partial_sync_duration).observe(elapsed)
        self.metrics.last_sync.set(time.time())
        self.metrics.elements_sent.inc(r.elements, sync="full" if r.full else "partial")
        now = time.time()
        for t in out.trigger_times:
            self.metrics.programming_latency.observe(max(0.0, now - t))
        for kind, n in self.engine.proxier.counts().items():
            self.metrics.rules.set(n, kind=kind)

    async def run(self, informers=(), stop: asyncio.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await self.start_servers()
        tasks = [asyncio.create_task(i.run()) for i in informers]
        try:
            for i in informers:
                await i.synced.wait()
            log.info("informers synced; first sync")
            last = 0.0
            last_full = 0.0
            failures = 0
            while stop is None or not stop.is_set():
                full = time.monotonic() - last_full >= self.full_sync_period
                self._wake.clear()
                started = time.perf_counter()
                try:
                    out = await self._loop.run_in_executor(None, self.engine.sync, full)
                except Exception as err:
                    failures += 1
                    self.metrics.failures.inc()
                    log.error("sync failed (%d in a row): %s", failures, err)
                    self.engine.proxier.invalidate()
                    await asyncio.sleep(min(self.min_sync_period * 2 ** failures, self.sync_period))
                    continue
                failures = 0
                self.syncs += 1
                if out.result.full:
                    last_full = time.monotonic()
                self.health.updated()
                self._observe(out, started)
                await self._service_health_ports()
                last = time.monotonic()
                # wait for a change (or the periodic sync), then keep syncs min_sync_period apart
                try:
                    await asyncio.wait_for(self._wake.wait(), self.sync_period)
                except asyncio.TimeoutError:
                    pass
                gap = self.min_sync_period - (time.monotonic() - last)
                if gap > 0:
                    await asyncio.sleep(gap)
                if self.engine.tracker.pending():
                    self.health.queued()
        finally:
            for t in tasks:
                t.cancel()
            for s in self._servers + list(self._hc_servers.values()):
                s.close()
