"""Node registration and heartbeat: the agent's Node object and its Lease.

Like kubelet: create the Node if it is missing (else update what it reports), renew a Lease in
kube-node-lease every 10 s (the node lifecycle controller marks the node Unknown when it lapses),
and keep the Ready condition true while the agent is healthy. Status is written through
/status; the annotations the overlay needs (VTEP MAC, underlay IP) through the main resource."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Callable

from control.client import ApiClient, ApiStatusError

from . import nodeinfo

log = logging.getLogger("nodeagent.registration")
LEASE_NS = "kube-node-lease"


def micro_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Registrar:
    def __init__(self, client: ApiClient, node: str, internal_ip: str, *, max_pods: int = 110,
                 lease_seconds: int = 40, renew_interval: float = 10.0, status_interval: float = 60.0,
                 annotations: Callable[[], dict] | None = None, ready: Callable[[], tuple[bool, str]] | None = None):
        self.client = client
        self.node = node
        self.internal_ip = internal_ip
        self.max_pods = max_pods
        self.lease_seconds = lease_seconds
        self.renew_interval = renew_interval
        self.status_interval = status_interval
        self.annotations = annotations or (lambda: {})
        self.ready = ready or (lambda: (True, "nodeagent is posting ready status"))
        self.registered = asyncio.Event()
        self.restarted_at: float | None = None
        self.restart_grace = 30.0
        self._last_ready: tuple[bool, str] | None = None
        self._ready_since = now()

    def _status(self) -> dict:
        ok, message = self.ready()
        if (ok, message) != self._last_ready:
            self._ready_since = now()
        cond = {"type": "Ready", "status": "True" if ok else "False",
                "reason": "KubeletReady" if ok else "KubeletNotReady", "message": message,
                "lastHeartbeatTime": now(), "lastTransitionTime": self._ready_since}
        cap = nodeinfo.capacity(self.max_pods)
        return {"capacity": cap, "allocatable": cap, "conditions": [cond],
                "addresses": [{"type": "InternalIP", "address": self.internal_ip},
                              {"type": "Hostname", "address": self.node}],
                "nodeInfo": nodeinfo.node_info(), "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}

    async def register(self) -> dict:
        """Create or update our Node; returns it."""
        labels = {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": nodeinfo.node_info()["architecture"]}
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node, "labels": labels, "annotations": self.annotations()},
                "status": self._status()}
        try:
            node = await self.client.create("v1", "nodes", "", body)
            log.info("registered node %s", self.node)
        except ApiStatusError as err:
            if err.code != 409:
                raise
            node = await self.client.patch("v1", "nodes", "", self.node,
                                           {"metadata": {"labels": labels, "annotations": self.annotations()}})
            # A restart: the pods and the kernel state it left keep working, so the node is not
            # reported NotReady while this process catches up (that would pull every endpoint on
            # the node out of service for nothing). The first status goes out once it is ready,
            # or after restart_grace seconds at the latest.
            self.restarted_at = asyncio.get_running_loop().time()
            self._last_ready = None
            self.registered.set()
            return node
        self._last_ready = self.ready()
        self.registered.set()
        return node

    async def post_status(self) -> dict:
        status = self._status()
        self._last_ready = self.ready()
        return await self.client.patch("v1", "nodes", "", self.node, {"status": status}, sub="status")

    async def renew_lease(self) -> None:
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": self.lease_seconds, "renewTime": micro_now()}
        try:
            await self.client.patch("coordination.k8s.io/v1", "leases", LEASE_NS, self.node, {"spec": spec})
        except ApiStatusError as err:
            if err.code != 404:
                raise
            await self.client.create("coordination.k8s.io/v1", "leases", LEASE_NS,
                                     {"metadata": {"name": self.node, "namespace": LEASE_NS}, "spec": spec})

    async def run(self) -> None:
        """Register (retrying with backoff), then renew the lease and report status forever."""
        backoff = 0.2
        while not self.registered.is_set():
            try:
                await self.register()
            except Exception as err:  # the API server may not be up yet
                log.warning("registering node %s failed (%s); retrying", self.node, err)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
        last_status = asyncio.get_running_loop().time()
        while True:
            try:
                await self.renew_lease()
                t = asyncio.get_running_loop().time()
                catching_up = self.restarted_at is not None and not self.ready()[0] and \
                    t - self.restarted_at < self.restart_grace
                if not catching_up and (self.ready() != self._last_ready or t - last_status >= self.status_interval):
                    await self.post_status()
                    last_status = t
            except Exception as err:  # keep going: the next renewal may work
                log.warning("heartbeat for node %s failed: %s", self.node, err)
            await asyncio.sleep(self.renew_interval)
