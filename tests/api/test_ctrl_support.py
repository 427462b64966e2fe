"""Helpers for the scheduler and controller tests (this module holds no tests itself).

- ``Cluster``: a fresh in-process API server per test (nodes are cluster-wide, so tests that
  count pods per node must not share one), with helpers to create nodes and workloads.
- ``Background``: runs a component's coroutine (the scheduler, the controller-manager) on its own
  event loop in a thread, so a test can drive the API synchronously meanwhile.
- ``FakeAgent``: plays the node agents of a later issue: renews each live node's Lease in
  kube-node-lease, turns pods bound to a live node Running and Ready with an IP after
  ``ready_after`` seconds, and finishes graceful deletions on live nodes. ``kill(node)`` stops
  all of that for one node, as if its machine died.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from datetime import datetime, timezone

import httpx

from control.client import ApiClient

from tests.waiting import wait

from .server import ThreadServer


def wait_until(cond, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    return wait(cond, timeout, what, interval)


def micro_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Background:
    """``factory(client)`` -> coroutine, run until ``stop()`` on a loop in a thread."""

    def __init__(self, url: str, factory):
        self.url, self.factory = url, factory
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.task = None
        self.client = None

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.client = ApiClient(self.url)
            self.task = asyncio.current_task()
            try:
                await self.factory(self.client)
            finally:
                await self.client.close()
        try:
            self.loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        except BaseException as err:  # shown by stop()
            self.error = err
        finally:
            self.loop.close()

    def start(self) -> "Background":
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            def cancel():
                if self.task is not None:
                    self.task.cancel()
            self.loop.call_soon_threadsafe(cancel)
            self.thread.join(10)
        if self.error is not None:
            raise self.error


def start_server(**kw) -> ThreadServer:
    """A ThreadServer, with TCP_NODELAY on its listening socket: the ThreadServer binds its own
    socket with proto 0, so asyncio does not set TCP_NODELAY on accepted connections and every
    request waits ~40 ms for a delayed ACK (Nagle). Accepted sockets inherit the option."""
    s = ThreadServer(**kw)
    for sock in getattr(s, "sockets", None) or [getattr(s, "sock", None)]:
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s.start()


class Cluster:
    def __init__(self):
        self.server = start_server()
        self.url = self.server.url
        self.api = self.server.client()
        self.components: list[Background] = []

    def close(self) -> None:
        try:
            for c in reversed(self.components):
                c.stop()
        finally:
            self.api.close()
            self.server.stop()

    def run(self, factory) -> Background:
        b = Background(self.url, factory).start()
        self.components.append(b)
        return b

    def scheduler(self, **config) -> Background:
        from control.scheduler.scheduler import Scheduler, SchedulerConfig
        cfg = SchedulerConfig(**{"initial_backoff": 0.1, "max_backoff": 0.5, **config})
        return self.run(lambda client: Scheduler(client, cfg).run())

    def controllers(self, **opts) -> Background:
        from control.controllers.command import ControllerOptions, run_controllers
        o = ControllerOptions(**opts)
        return self.run(lambda client: run_controllers(client, o))

    # -- objects ------------------------------------------------------------------------------
    def ok(self, r: httpx.Response, *codes: int) -> dict:
        assert r.status_code in (codes or (200, 201)), f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
        return r.json()

    def add_node(self, name: str, *, zone: str | None = None, cpu: str = "4", memory: str = "8Gi",
                 pods: str = "110", taints: list | None = None, unschedulable: bool = False,
                 ready: str = "True", labels: dict | None = None) -> dict:
        lab = {"kubernetes.io/hostname": name, **(labels or {})}
        if zone:
            lab["topology.kubernetes.io/zone"] = zone
        spec: dict = {}
        if taints:
            spec["taints"] = taints
        if unschedulable:
            spec["unschedulable"] = True
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": lab}, "spec": spec,
                "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                           "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                           "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                           "lastHeartbeatTime": rfc_now(), "lastTransitionTime": rfc_now()}],
                           "addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]}}
        return self.ok(self.api.post("/api/v1/nodes", json=body))

    def pods(self, ns: str, selector: str = "") -> list[dict]:
        params = {"labelSelector": selector} if selector else {}
        return self.ok(self.api.get(f"/api/v1/namespaces/{ns}/pods", params=params))["items"]

    def namespace(self, name: str) -> str:
        self.ok(self.api.post("/api/v1/namespaces", json={"metadata": {"name": name}}))
        return name

    def deployment(self, ns: str, name: str, replicas: int, *, tolerations: list | None = None,
                   cpu: str | None = None, max_surge=None, max_unavailable=None, ports: list | None = None,
                   image: str = "netexec:1", min_ready: int = 0) -> dict:
        container: dict = {"name": "app", "image": image}
        if cpu:
            container["resources"] = {"requests": {"cpu": cpu}}
        if ports:
            container["ports"] = ports
        spec: dict = {"containers": [container], "terminationGracePeriodSeconds": 1}
        if tolerations:
            spec["tolerations"] = tolerations
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}
        if min_ready:
            body["spec"]["minReadySeconds"] = min_ready
        if max_surge is not None or max_unavailable is not None:
            ru = {}
            if max_surge is not None:
                ru["maxSurge"] = max_surge
            if max_unavailable is not None:
                ru["maxUnavailable"] = max_unavailable
            body["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": ru}
        return self.ok(self.api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=body))


class FakeAgent:
    """The node agents of every node not killed, in one polling thread."""

    def __init__(self, url: str, *, ready_after: float = 0.0, lease_seconds: int = 40, period: float = 0.05):
        self.api = httpx.Client(base_url=url, timeout=5)
        self.ready_after = ready_after
        self.lease_seconds = lease_seconds
        self.period = period
        self.dead: set[str] = set()
        self.first_seen: dict[str, float] = {}
        self.ips: dict[str, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[str] = []
        self._last_lease = 0.0

    def start(self) -> "FakeAgent":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.api.close()

    def kill(self, node: str) -> None:
        with self._lock:
            self.dead.add(node)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except httpx.HTTPError as err:
                self.errors.append(repr(err))
            self._stop.wait(self.period)

    def renew_leases(self) -> None:
        nodes = self.api.get("/api/v1/nodes").json()["items"]
        for n in nodes:
            name = n["metadata"]["name"]
            if name in self.dead:
                continue
            spec = {"holderIdentity": name, "leaseDurationSeconds": self.lease_seconds, "renewTime": micro_now()}
            r = self.api.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")
            if r.status_code == 404:
                self.api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                              json={"metadata": {"name": name}, "spec": spec})
            else:
                lease = r.json()
                lease["spec"] = {**lease.get("spec", {}), **spec}
                self.api.put(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}", json=lease)

    def step(self) -> None:
        now = time.monotonic()
        if now - self._last_lease >= 0.3:
            self._last_lease = now
            self.renew_leases()
        pods = self.api.get("/api/v1/pods").json()["items"]
        for p in pods:
            m, spec, st = p["metadata"], p["spec"], p.get("status") or {}
            node = spec.get("nodeName")
            if not node:
                continue
            with self._lock:
                if node in self.dead:
                    continue
            path = f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}"
            if m.get("deletionTimestamp"):
                self.api.request("DELETE", path, json={"gracePeriodSeconds": 0})
                continue
            if st.get("phase") == "Running":
                continue
            first = self.first_seen.setdefault(m["uid"], now)
            if now - first < self.ready_after:
                continue
            ip = self.ips.setdefault(m["uid"], f"10.244.{len(self.ips) // 250}.{len(self.ips) % 250 + 2}")
            status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.0.2.1",
                      "conditions": [{"type": "PodScheduled", "status": "True"},
                                     {"type": "Ready", "status": "True", "lastTransitionTime": rfc_now()},
                                     {"type": "ContainersReady", "status": "True"}]}
            self.api.patch(path + "/status", json={"status": status},
                           headers={"Content-Type": "application/merge-patch+json"})


def pods_per_node(pods: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in pods:
        n = p["spec"].get("nodeName")
        if n:
            out[n] = out.get(n, 0) + 1
    return out
