"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it,
shared by `nodeagent scheduler` and `nodeagent controller-manager`; plus the connection and
leader-election options both commands take.

- A candidate reads the Lease. It takes it when there is none (create), when the holder released
  it (empty holderIdentity), or when the record has not changed for leaseDurationSeconds *as
  measured by the candidate's own clock* since it first saw that record: only local durations are
  compared, never another machine's timestamps, so clock skew between machines does not matter.
- Writes carry the resourceVersion read (optimistic concurrency): of two candidates racing for an
  expired lease, one gets a 409 and stays a follower.
- The leader renews every retry_period; when it has not managed to renew for renew_deadline
  (< lease duration) it steps down: its work is cancelled before any other candidate may take
  the lease, so two leaders never act at once (given bounded clock *rate* drift).
- On a clean stop the leader releases the lease (holder "", duration 1 s) so a standby takes
  over at once instead of after a full lease duration.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable

import httpx
import yaml

from control.client import ApiClient, ApiStatusError

log = logging.getLogger("nodeagent.leaderelection")


def micro_time(t: float | None = None) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds."""
    dt = datetime.fromtimestamp(time.time() if t is None else t, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


@dataclass
class LeaseRecord:
    holder: str
    duration: float
    acquire_time: str | None
    renew_time: str | None
    transitions: int

    @classmethod
    def of(cls, lease: dict) -> "LeaseRecord":
        spec = lease.get("spec") or {}
        return cls(spec.get("holderIdentity") or "", float(spec.get("leaseDurationSeconds") or 0),
                   spec.get("acquireTime"), spec.get("renewTime"), int(spec.get("leaseTransitions") or 0))


def may_acquire(record: LeaseRecord | None, identity: str, observed_at: float, now: float) -> bool:
    """Whether ``identity`` may write the lease: it is free, released, ours, or its record has
    not changed for its duration since we first observed it (``observed_at``, local clock)."""
    if record is None or not record.holder or record.holder == identity:
        return True
    return observed_at + record.duration <= now


class LeaderElector:
    def __init__(self, client: ApiClient, name: str, *, namespace: str = "kube-system",
                 identity: str | None = None, lease_duration: float = 15.0, renew_deadline: float = 10.0,
                 retry_period: float = 2.0, release_on_cancel: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("leader election needs retry period < renew deadline < lease duration")
        self.client, self.name, self.namespace = client, name, namespace
        self.identity = identity or default_identity()
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.release_on_cancel = release_on_cancel
        self.clock = clock
        self._observed: tuple | None = None
        self._observed_at = 0.0
        self._lease: dict | None = None
        self.leading = False
        self.transitions = 0

    # -- one attempt --------------------------------------------------------------------------
    async def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        try:
            lease = await self.client.get("coordination.k8s.io/v1", "leases", self.namespace, self.name)
        except ApiStatusError as err:
            if err.code != 404:
                raise
            lease = None
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(None)}
            try:
                self._lease = await self.client.create("coordination.k8s.io/v1", "leases", self.namespace, body)
            except ApiStatusError as err:
                if err.code == 409:
                    return False
                raise
            self._observe(self._lease, self.clock())
            return True
        rec = LeaseRecord.of(lease)
        fingerprint = (rec.holder, rec.renew_time, rec.acquire_time, rec.transitions, rec.duration)
        if fingerprint != self._observed:
            self._observed, self._observed_at = fingerprint, now
        if not may_acquire(rec, self.identity, self._observed_at, now):
            return False
        new = {**lease, "spec": self._spec(rec)}
        try:
            self._lease = await self.client.update("coordination.k8s.io/v1", "leases", self.namespace, new)
        except ApiStatusError as err:
            if err.code in (409, 404):
                return False
            raise
        self._observe(self._lease, self.clock())
        return True

    def _spec(self, rec: LeaseRecord | None) -> dict:
        now = micro_time()
        ours = rec is not None and rec.holder == self.identity
        return {"holderIdentity": self.identity, "leaseDurationSeconds": max(int(round(self.lease_duration)), 1),
                "acquireTime": rec.acquire_time if ours and rec.acquire_time else now, "renewTime": now,
                "leaseTransitions": (rec.transitions if ours else rec.transitions + 1) if rec else 0}

    def _observe(self, lease: dict, at: float) -> None:
        rec = LeaseRecord.of(lease)
        self._observed = (rec.holder, rec.renew_time, rec.acquire_time, rec.transitions, rec.duration)
        self._observed_at = at

    async def release(self) -> None:
        if self._lease is None:
            return
        body = {**self._lease, "spec": {**self._lease["spec"], "holderIdentity": "",
                                        "leaseDurationSeconds": 1, "renewTime": micro_time()}}
        try:
            await asyncio.wait_for(self.client.update("coordination.k8s.io/v1", "leases", self.namespace, body),
                                   max(self.retry_period, 1.0))
            log.info("released lease %s/%s", self.namespace, self.name)
        except (ApiStatusError, httpx.HTTPError, OSError, asyncio.TimeoutError) as err:
            log.info("could not release lease %s/%s: %s", self.namespace, self.name, err)
        self._lease = None

    # -- the loop -----------------------------------------------------------------------------
    async def _attempt(self) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), self.retry_period * 2)
        except (ApiStatusError, httpx.HTTPError, OSError, asyncio.TimeoutError) as err:
            log.info("lease %s/%s: %s", self.namespace, self.name, err or type(err).__name__)
            return False

    async def acquire(self) -> None:
        log.info("%s: trying to acquire lease %s/%s", self.identity, self.namespace, self.name)
        while not await self._attempt():
            await asyncio.sleep(self.retry_period)
        log.info("%s: acquired lease %s/%s", self.identity, self.namespace, self.name)

    async def _renew_until_lost(self) -> None:
        last = self.clock()
        while True:
            await asyncio.sleep(self.retry_period)
            if await self._attempt():
                last = self.clock()
            elif self.clock() - last >= self.renew_deadline:
                log.warning("%s: failed to renew lease %s/%s within %.1fs: stepping down",
                            self.identity, self.namespace, self.name, self.renew_deadline)
                return

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Forever: become leader, run ``lead()`` while leading; cancel it when the lease is
        lost and stand again. Returns (after releasing the lease) if ``lead()`` returns; raises
        what ``lead()`` raises."""
        while True:
            await self.acquire()
            self.leading = True
            self.transitions += 1
            work = asyncio.create_task(lead(), name=f"{self.name}-leading")
            renew = asyncio.create_task(self._renew_until_lost(), name=f"{self.name}-renew")
            try:
                done, _ = await asyncio.wait({work, renew}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                for t in (work, renew):
                    t.cancel()
                await asyncio.gather(work, renew, return_exceptions=True)
                self.leading = False
                if self.release_on_cancel:
                    await self.release()
                raise
            self.leading = False
            if work in done:
                renew.cancel()
                await asyncio.gather(renew, return_exceptions=True)
                await self.release()
                work.result()
                return
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            self._lease = None


# -- options shared by the component commands --------------------------------------------------------
def add_connection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="",
                   help="API server URL(s), comma-separated for fail-over (default: from --kubeconfig)")
    p.add_argument("--kubeconfig", default="",
                   help="kubeconfig whose first cluster's server is used when --server is not given")
    p.add_argument("--log-level", default="info")


def add_leader_election_arguments(p: argparse.ArgumentParser, lease_name: str) -> None:
    g = p.add_argument_group("leader election")
    g.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                   help="run only while holding the lease, so that several copies can stand by (default: on)")
    g.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="SECONDS")
    g.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="SECONDS")
    g.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="SECONDS")
    g.add_argument("--leader-elect-resource-namespace", default="kube-system")
    g.add_argument("--leader-elect-resource-name", default=lease_name)
    g.add_argument("--identity", default="", help="holder identity in the lease (default: hostname_pid)")


@dataclass
class Connection:
    """Where the API servers are and how to talk to them (TLS context and bearer token, from the
    kubeconfig; none for plain http)."""
    servers: list[str]
    ssl_context: object = True  # an ssl.SSLContext for https, True otherwise
    token: str | None = None

    def client(self) -> ApiClient:
        return ApiClient(self.servers, token=self.token, verify=self.ssl_context)


def connection_from_args(args: argparse.Namespace) -> Connection:
    """--server (comma-separated, fail-over) and/or --kubeconfig: the kubeconfig gives the
    credentials (client certificate, token, CA) and, without --server, the server."""
    servers = [s.strip().rstrip("/") for s in (args.server or "").split(",") if s.strip()]
    path = args.kubeconfig or ("" if servers else os.environ.get("KUBECONFIG", "").split(os.pathsep)[0])
    if not path:
        if not servers:
            raise SystemExit("give --server URL or --kubeconfig PATH")
        return Connection(servers)
    import dataclasses

    from control import kubeconfig
    try:
        creds = kubeconfig.load(path)
        servers = servers or [creds.server.rstrip("/")]
        ctx = dataclasses.replace(creds, server=servers[0]).ssl_context()
    except (OSError, KeyError, IndexError, TypeError, ValueError, StopIteration, yaml.YAMLError) as err:
        raise SystemExit(f"cannot use kubeconfig {path}: {err}")
    return Connection(servers, ctx, creds.token)


def elector_from_args(client: ApiClient, args: argparse.Namespace) -> LeaderElector:
    return LeaderElector(client, args.leader_elect_resource_name,
                         namespace=args.leader_elect_resource_namespace, identity=args.identity or None,
                         lease_duration=args.leader_elect_lease_duration,
                         renew_deadline=args.leader_elect_renew_deadline,
                         retry_period=args.leader_elect_retry_period)


def fast_httpx() -> None:
    """httpcore imports `sniffio` on every request to learn which async library runs it; when
    sniffio is not installed each request pays for a failed import (a scan of sys.path). Marking
    the module absent makes that import fail at once. Only for our own component processes."""
    import sys
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


async def run_component(args: argparse.Namespace, client: ApiClient,
                        lead: Callable[[], Awaitable[None]]) -> None:
    """Run ``lead`` under leader election (unless --no-leader-elect) until cancelled."""
    if not args.leader_elect:
        await lead()
        return
    await elector_from_args(client, args).run(lead)


def main_loop(coro_factory: Callable[[], Awaitable[None]]) -> int:
    """asyncio.run with SIGTERM/SIGINT turned into a clean cancel (the lease gets released)."""
    import signal

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        await coro_factory()

    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        runner(main())
    except asyncio.CancelledError:
        return 0
    except KeyboardInterrupt:
        return 0
    return 0
