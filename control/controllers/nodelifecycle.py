"""Node lifecycle: notice dead nodes, taint them, and evict their pods after their tolerations.

Heartbeats: each node agent renews a Lease named after its node in kube-node-lease (and may also
post its Ready condition's lastHeartbeatTime). The controller records, on its own monotonic clock,
when it last saw either change (clock skew between machines never matters). A node not heard of
for ``grace`` seconds (40 by default) gets:
- every condition set to Unknown ("Kubelet stopped posting node status."), through /status;
- the taints node.kubernetes.io/unreachable with effects NoSchedule and NoExecute (Ready False
  gets node.kubernetes.io/not-ready instead); they go again when Ready is True;
- its pods' Ready condition set to False, as kube's MarkPodsNotReady (the EndpointSlice
  controller has already taken them out of service from the node's own change).

Eviction (kube's NoExecute taint manager): a pod that does not tolerate a NoExecute taint of its
node is deleted at once; one that tolerates it with tolerationSeconds is deleted that long after
the taint was added; without tolerationSeconds, never. As Kubernetes' DefaultTolerationSeconds
admission plugin would have given every pod, a pod without a toleration for the not-ready and
unreachable taints is treated as tolerating them for ``default_toleration_seconds`` (300).
The decisions are pure functions: ``node_health``, ``wanted_taints``, ``eviction_deadline``.
"""
from __future__ import annotations

import asyncio
import logging
import time

from control.client import ApiStatusError
from control.client.client import MERGE_PATCH, STRATEGIC_PATCH

from .manager import (Controller, Manager, condition, node_of, node_ready_status, now_rfc3339,
                      parse_time, pod_ready)

log = logging.getLogger("nodeagent.controllers.nodelifecycle")

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
CONDITION_TAINTS = (NOT_READY, UNREACHABLE)


# -- pure -----------------------------------------------------------------------------------------
def heartbeat_of(node: dict, lease: dict | None) -> tuple:
    """What changes when the node's agent is alive."""
    renew = ((lease or {}).get("spec") or {}).get("renewTime")
    hb = (condition(node, "Ready") or {}).get("lastHeartbeatTime")
    return renew, hb


def unknown_conditions(node: dict, now: str) -> list[dict]:
    conds = (node.get("status") or {}).get("conditions") or []
    if not conds:
        return [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                 "message": "Kubelet never posted node status.", "lastHeartbeatTime": now,
                 "lastTransitionTime": now}]
    out = []
    for c in conds:
        if c.get("status") == "Unknown":
            out.append(c)
            continue
        out.append({**c, "status": "Unknown", "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.", "lastTransitionTime": now})
    return out


def wanted_taints(node: dict, now: str) -> list[dict]:
    """The node's taints with the condition taints made to match its Ready status."""
    status = node_ready_status(node)
    want_key = UNREACHABLE if status == "Unknown" else NOT_READY if status == "False" else None
    taints = list((node.get("spec") or {}).get("taints") or [])
    out = [t for t in taints if t.get("key") not in CONDITION_TAINTS or
           (t.get("key") == want_key and t.get("effect") in ("NoSchedule", "NoExecute"))]
    if want_key:
        for effect in ("NoSchedule", "NoExecute"):
            if not any(t.get("key") == want_key and t.get("effect") == effect for t in out):
                t = {"key": want_key, "effect": effect}
                if effect == "NoExecute":
                    t["timeAdded"] = now
                out.append(t)
    return out


def tolerates(tol: dict, taint: dict) -> bool:
    effect = tol.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    if key and key != taint.get("key"):
        return False
    if (tol.get("operator") or "Equal") == "Exists":
        return True
    return (tol.get("value") or "") == (taint.get("value") or "")


def taint_added(taint: dict, first_seen: float | None) -> float:
    """When the taint was added, in epoch seconds. timeAdded has whole seconds only; when we saw
    the taint appear ourselves within that second, our own finer time is used."""
    added = parse_time(taint.get("timeAdded"))
    if added is None:
        return first_seen if first_seen is not None else time.time()
    if first_seen is not None and added <= first_seen < added + 1.5:
        return first_seen
    return added


def eviction_deadline(pod: dict, taints: list[dict], default_seconds: float,
                      first_seen: dict[tuple, float] | None = None) -> float | None:
    """Epoch seconds at which the pod must go (0: now), or None: never. ``first_seen``: when this
    controller first saw each (key, effect) taint, for taints without timeAdded."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    deadline: float | None = None
    for t in taints:
        if t.get("effect") != "NoExecute":
            continue
        used = [tol for tol in tolerations if tolerates(tol, t)]
        if not used:
            if t.get("key") in CONDITION_TAINTS:
                seconds: float | None = default_seconds
            else:
                return 0.0
        else:
            # kube's getMinTolerationTime: the smallest tolerationSeconds of the tolerations in
            # use; forever only when none of them has a limit.
            secs = [tol["tolerationSeconds"] for tol in used if tol.get("tolerationSeconds") is not None]
            seconds = float(min(secs)) if secs else None
        if seconds is None:
            continue
        added = taint_added(t, (first_seen or {}).get((t.get("key"), t.get("effect"))))
        when = added + max(seconds, 0.0)
        deadline = when if deadline is None else min(deadline, when)
    return deadline


# -- the controller -------------------------------------------------------------------------------
class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(self, manager: Manager, grace: float = 40.0, monitor_period: float = 5.0,
                 default_toleration_seconds: float = 300.0, clock=time.monotonic):
        super().__init__(manager)
        self.grace = grace
        self.periodic = monitor_period
        self.default_toleration_seconds = default_toleration_seconds
        self.clock = clock
        self.seen: dict[str, tuple[tuple, float]] = {}  # node -> (heartbeat, when it last changed)
        self.taint_seen: dict[tuple, float] = {}  # (node, key, effect) -> wall time first seen
        self.evicted: dict[str, float] = {}  # pod uid -> when

    def register(self) -> None:
        self.nodes = self.mgr.cache("nodes")
        self.leases = self.mgr.cache("leases")
        self.pods = self.mgr.cache("pods")
        self.pods.add_index("node", node_of)
        self.mgr.subscribe("nodes", self.on_node)
        self.mgr.subscribe("leases", self.on_lease)

    def _observe(self, name: str) -> None:
        node = self.nodes.get("", name)
        if node is None:
            self.seen.pop(name, None)
            return
        hb = heartbeat_of(node, self.leases.get(self.mgr.node_lease_namespace, name))
        prev = self.seen.get(name)
        if prev is None or prev[0] != hb:
            self.seen[name] = (hb, self.clock())

    def on_node(self, etype: str, obj: dict, old: dict | None) -> None:
        name = obj["metadata"]["name"]
        if etype == "DELETED":
            self.seen.pop(name, None)
            return
        self._observe(name)
        self.queue.add(name)

    def on_lease(self, etype: str, obj: dict, old: dict | None) -> None:
        name = obj["metadata"]["name"]
        if etype != "DELETED":
            self._observe(name)

    async def started(self) -> None:
        for node in self.nodes.list():
            self._observe(node["metadata"]["name"])

    async def tick(self) -> None:
        for node in self.nodes.list():
            self.queue.add(node["metadata"]["name"])

    def healthy(self, name: str) -> bool:
        seen = self.seen.get(name)
        return seen is not None and self.clock() - seen[1] <= self.grace

    async def sync(self, name) -> None:
        node = self.nodes.get("", name)
        if node is None:
            return
        self._observe(name)
        now = now_rfc3339()
        if not self.healthy(name) and node_ready_status(node) != "Unknown":
            log.warning("node %s: no heartbeat for %.0fs; marking it Unknown", name, self.grace)
            new = {**node, "status": {**(node.get("status") or {}), "conditions": unknown_conditions(node, now)}}
            node = await self.client.update("v1", "nodes", "", new, sub="status")
            self.nodes.observe(node)
            await self.mark_pods_not_ready(name)
        taints = wanted_taints(node, now)
        if taints != list((node.get("spec") or {}).get("taints") or []):
            patch = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                     "spec": {"taints": taints or None}}
            node = await self.client.patch("v1", "nodes", "", name, patch, content_type=MERGE_PATCH)
            self.nodes.observe(node)
            log.info("node %s: taints now %s", name, [f"{t['key']}:{t['effect']}" for t in taints] or "none")
        await self.evict(node)

    async def mark_pods_not_ready(self, node_name: str) -> None:
        async def one(pod):
            m = pod["metadata"]
            cond = {"type": "Ready", "status": "False", "lastTransitionTime": now_rfc3339()}
            try:
                out = await self.client.patch("v1", "pods", m["namespace"], m["name"],
                                              {"status": {"conditions": [cond]}}, sub="status",
                                              content_type=STRATEGIC_PATCH)
                self.pods.observe(out)
            except ApiStatusError as err:
                if err.code != 404:
                    log.info("could not mark pod %s/%s not ready: %s", m["namespace"], m["name"], err)
        await asyncio.gather(*(one(p) for p in self.pods.by_index("node", node_name) if pod_ready(p)))

    async def evict(self, node: dict) -> None:
        name = node["metadata"]["name"]
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        wall = time.time()
        for t in taints:
            self.taint_seen.setdefault((name, t.get("key"), t.get("effect")), wall)
        for k in [k for k in self.taint_seen if k[0] == name and not any(
                (t.get("key"), t.get("effect")) == k[1:] for t in taints)]:
            del self.taint_seen[k]
        if not taints:
            return
        first_seen = {k[1:]: v for k, v in self.taint_seen.items() if k[0] == name}
        soonest = None
        for pod in self.pods.by_index("node", name):
            m = pod["metadata"]
            if m.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            when = eviction_deadline(pod, taints, self.default_toleration_seconds, first_seen)
            if when is None:
                continue
            if when <= wall:
                if m["uid"] in self.evicted:
                    continue
                log.info("evicting pod %s/%s from node %s (NoExecute taint not tolerated any longer)",
                         m["namespace"], m["name"], name)
                try:
                    out = await self.client.delete("v1", "pods", m["namespace"], m["name"],
                                                   preconditions={"uid": m["uid"]})
                    self.evicted[m["uid"]] = wall
                    if out.get("metadata", {}).get("deletionTimestamp"):
                        self.pods.observe(out)
                    else:
                        self.pods.observe_deleted(pod)
                except ApiStatusError as err:
                    if err.code not in (404, 409):
                        raise
            else:
                soonest = when if soonest is None else min(soonest, when)
        if soonest is not None:
            self.queue.add_after(name, soonest - wall + 0.05)
        if len(self.evicted) > 10000:
            self.evicted = {u: t for u, t in self.evicted.items() if wall - t < 3600}
