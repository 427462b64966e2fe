"""The scheduling loop: informers -> queue -> filter -> score -> assume -> bind.

Informer handlers only record: they update the cache and the queue (in-memory, no I/O). One
loop pops a pod, runs the filters and scores (plain CPU work, no awaits inside), assumes the
pod on the chosen node in the cache and hands the binding to a task; at most
``parallel_binds`` bindings are in flight, which is also the loop's back-pressure.

Cost per pod is kept O(nodes) with small constants:
- static filters (ready, cordon, taints, node selector/affinity) are computed once per pod
  *shape* (``PodInfo.static_key``) and node-set version (``Cache.static_gen``), not per pod;
- like kube-scheduler, the loop stops looking once it has found ``num_feasible_to_find`` nodes
  (adaptive: 50% of nodes at 100, falling to 5% at 5,000+; never fewer than 100), starting
  each search where the previous one stopped, so every node gets its turn;
- scores that cannot change the choice are skipped (no spreading groups, no preferred terms).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from control.client import ApiClient, ApiStatusError, Informer
from control.client.client import STRATEGIC_PATCH

from . import filters as F
from . import scores as S
from .binder import Binder, BindError
from .cache import Cache
from .nodeinfo import NodeInfo, PodInfo
from .queue import SchedulingQueue

log = logging.getLogger("nodeagent.scheduler")

MIN_FEASIBLE_NODES = 100


@dataclass
class SchedulerConfig:
    scheduler_name: str = "default-scheduler"
    percentage_of_nodes_to_score: int = 0  # 0: adaptive, as kube-scheduler
    weights: S.Weights = field(default_factory=S.Weights)
    initial_backoff: float = 1.0
    max_backoff: float = 10.0
    unschedulable_timeout: float = 60.0
    parallel_binds: int = 16
    assume_ttl: float = 30.0


def num_feasible_to_find(num_nodes: int, percentage: int = 0) -> int:
    """kube-scheduler's numFeasibleNodesToFind."""
    if num_nodes < MIN_FEASIBLE_NODES or percentage >= 100:
        return num_nodes
    if percentage <= 0:
        percentage = max(50 - num_nodes // 125, 5)
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES)


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Scheduler:
    def __init__(self, client: ApiClient, config: SchedulerConfig | None = None, *,
                 ssl_context=None, token: str | None = None):
        """``ssl_context`` and ``token``: the credentials of ``client``, for the binder's own
        connections (https API servers)."""
        self.client = client
        self.ssl_context, self.token = ssl_context, token
        self.config = config or SchedulerConfig()
        self.cache = Cache(assume_ttl=self.config.assume_ttl)
        self.queue = SchedulingQueue(self.config.initial_backoff, self.config.max_backoff,
                                     self.config.unschedulable_timeout)
        self.nodes = Informer(client, "v1", "nodes", handler=self.on_node)
        # Like kube-scheduler: finished pods hold no resources, so they are not even watched.
        self.pods = Informer(client, "v1", "pods", handler=self.on_pod,
                             field_selector="status.phase!=Succeeded,status.phase!=Failed")
        self.services = Informer(client, "v1", "services", handler=self.on_service)
        self._static: dict[bytes, tuple[int, list[NodeInfo], Counter]] = {}
        self._next_start = 0
        self._bind_slots = asyncio.Semaphore(self.config.parallel_binds)
        self.binder: Binder | None = None
        self._tasks: set[asyncio.Task] = set()
        self.bound = 0
        self.failed_binds = 0
        self.unschedulable_attempts = 0

    # -- event handlers: record only ----------------------------------------------------------
    def responsible(self, obj: dict) -> bool:
        spec = obj.get("spec") or {}
        return (spec.get("schedulerName") or "default-scheduler") == self.config.scheduler_name

    def on_node(self, etype: str, obj: dict, old: dict | None) -> None:
        if etype == "DELETED":
            self.cache.remove_node(obj["metadata"]["name"])
            return
        if self.cache.set_node(obj):
            self.queue.move_all()

    def on_service(self, etype: str, obj: dict, old: dict | None) -> None:
        if etype == "DELETED":
            self.cache.remove_service(obj)
        else:
            self.cache.set_service(obj)

    def on_pod(self, etype: str, obj: dict, old: dict | None) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        key = (meta.get("namespace", ""), meta["name"])
        uid = meta.get("uid", "")
        if etype == "DELETED":
            self.queue.delete(key)
            if self.cache.remove_pod(uid) is not None:
                self.queue.move_all()  # room freed on a node
            return
        if spec.get("nodeName"):
            self.queue.delete(key)
            self.cache.add_pod(obj)
            return
        if not self.responsible(obj) or meta.get("deletionTimestamp"):
            self.queue.delete(key)
            return
        if self.cache.is_assumed(uid):
            return  # our binding is in flight; the watch has not caught up
        p = PodInfo(obj)
        if old is None or key not in self.queue or _scheduling_relevant(old, obj):
            self.queue.add(p)
        else:
            self.queue.update(p)

    # -- the algorithm --------------------------------------------------------------------------
    def static_feasible(self, p: PodInfo) -> tuple[list[NodeInfo], Counter]:
        gen = self.cache.static_gen
        hit = self._static.get(p.static_key)
        if hit is not None and hit[0] == gen:
            return hit[1], hit[2]
        ok: list[NodeInfo] = []
        reasons: Counter = Counter()
        for ni in self.cache.node_list:
            r = F.static_filter(p, ni)
            if r:
                for x in r:
                    reasons[x] += 1
            else:
                ok.append(ni)
        if len(self._static) > 512:
            self._static.clear()
        self._static[p.static_key] = (gen, ok, reasons)
        return ok, reasons

    def find_node(self, p: PodInfo) -> tuple[NodeInfo | None, Counter]:
        """Filter and score; the chosen node, or None and the reasons (node counts per reason)."""
        p.groups = self.cache.groups_for(p)
        candidates, static_reasons = self.static_feasible(p)
        reasons = Counter(static_reasons)
        n = len(candidates)
        if n == 0:
            return None, reasons
        want = num_feasible_to_find(len(self.cache.node_list), self.config.percentage_of_nodes_to_score)
        st = None
        if p.anti_required or p.affinity_required or self.cache.with_anti:
            st = F.prefilter_inter_pod(p, self.cache.placed(), self.cache.placed_subset(self.cache.with_anti))
        start = self._next_start % n
        w = self.config.weights
        if p.scalars or p.host_ports or (st is not None and not st.empty):
            feasible, processed = self._filter_general(p, candidates, start, want, st, reasons)
            base = None
        else:
            feasible, base, processed = fit_and_score(p, candidates, start, want, w.least_allocated,
                                                      w.balanced_allocation, reasons)
        self._next_start = (start + processed) % n
        if not feasible:
            return None, reasons
        if len(feasible) == 1:
            return feasible[0], reasons
        return self.pick(p, feasible, base), reasons

    @staticmethod
    def _filter_general(p: PodInfo, candidates: list[NodeInfo], start: int, want: int,
                        st: F.InterPodState | None, reasons: Counter) -> tuple[list[NodeInfo], int]:
        feasible: list[NodeInfo] = []
        n = len(candidates)
        processed = 0
        for i in range(n):
            ni = candidates[(start + i) % n]
            processed += 1
            r = F.dynamic_filter(p, ni, st)
            if r:
                for x in r:
                    reasons[x] += 1
                continue
            feasible.append(ni)
            if len(feasible) >= want:
                break
        return feasible, processed

    def score(self, p: PodInfo, nodes: list[NodeInfo], base: list[float] | None = None) -> list[float]:
        w = self.config.weights
        total = list(base) if base is not None else [0.0] * len(nodes)
        if base is None and (w.least_allocated or w.balanced_allocation):
            la, ba = S.least_allocated, S.balanced_allocation
            wl, wb = w.least_allocated, w.balanced_allocation
            for i, ni in enumerate(nodes):
                total[i] = wl * la(p, ni) + wb * ba(p, ni)
        parts = []
        if w.selector_spread and p.groups:
            parts.append((w.selector_spread, S.selector_spread(p, nodes)))
        if w.node_affinity and p.preferred_node_terms:
            parts.append((w.node_affinity, S.node_affinity(p, nodes)))
        if w.taint_toleration and any(t.get("effect") == "PreferNoSchedule" for ni in nodes for t in ni.taints):
            parts.append((w.taint_toleration, S.taint_toleration(p, nodes)))
        if w.inter_pod_affinity and (p.affinity_preferred or p.anti_preferred or self.cache.with_affinity):
            tw = S.inter_pod_topology_weights(p, self.cache.placed(), self.cache.placed_subset(self.cache.with_affinity))
            if tw:
                parts.append((w.inter_pod_affinity, S.inter_pod_affinity(tw, nodes)))
        for weight, values in parts:
            for i, v in enumerate(values):
                total[i] += weight * v
        return total

    def pick(self, p: PodInfo, nodes: list[NodeInfo], base: list[float] | None = None) -> NodeInfo:
        """The best-scored node; ties broken at random, as kube-scheduler does."""
        scores = self.score(p, nodes, base)
        best, best_score, ties = nodes[0], scores[0], 1
        for ni, s in zip(nodes[1:], scores[1:]):
            if s > best_score + 1e-9:
                best, best_score, ties = ni, s, 1
            elif abs(s - best_score) <= 1e-9:
                ties += 1
                if random.random() * ties < 1:
                    best = ni
        return best

    # -- one cycle ------------------------------------------------------------------------------
    async def schedule_one(self, p: PodInfo) -> None:
        cycle = self.queue.cycle
        node, reasons = self.find_node(p)
        if node is None:
            self.unschedulable_attempts += 1
            self.queue.unschedulable(p.key, cycle)
            msg = F.unschedulable_message(len(self.cache.node_list), reasons)
            log.debug("pod %s/%s unschedulable: %s", p.namespace, p.name, msg)
            self._spawn(self.write_unschedulable(p, msg))
            return
        self.cache.assume(p, node.name)
        await self._bind_slots.acquire()
        self._spawn(self.bind(p, node.name))

    def _spawn(self, coro) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def bind(self, p: PodInfo, node: str) -> None:
        try:
            await (self.binder or self.client).bind(p.namespace, p.name, node, p.uid)
        except ApiStatusError as err:
            self.failed_binds += 1
            self.cache.forget(p.uid)
            if err.code == 404 or (err.code == 409 and "already assigned" in str(err)):
                self.queue.delete(p.key)  # gone, or bound by someone else: the watch will tell
            else:
                log.info("binding %s/%s to %s failed: %s", p.namespace, p.name, node, err)
                self.queue.retry(p.key)
        except (httpx.HTTPError, OSError, BindError) as err:
            self.failed_binds += 1
            log.info("binding %s/%s to %s failed: %s", p.namespace, p.name, node, err)
            self.cache.forget(p.uid)
            self.queue.retry(p.key)
        else:
            self.bound += 1
            self.cache.finish_binding(p.uid)
            self.queue.done(p.key)
            log.debug("bound pod %s/%s to node %s", p.namespace, p.name, node)
        finally:
            self._bind_slots.release()

    async def write_unschedulable(self, p: PodInfo, message: str) -> None:
        """PodScheduled=False/Unschedulable with the message, written only when it changes."""
        for c in (p.obj.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False" \
                    and c.get("reason") == "Unschedulable" and c.get("message") == message:
                return
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
        patch = {"status": {"conditions": [cond]}}
        try:
            await self.client.patch("v1", "pods", p.namespace, p.name, patch, sub="status",
                                    content_type=STRATEGIC_PATCH)
        except (ApiStatusError, httpx.HTTPError, OSError) as err:
            log.debug("could not write the PodScheduled condition of %s/%s: %s", p.namespace, p.name, err)

    # -- running --------------------------------------------------------------------------------
    async def run(self) -> None:
        informers = [self.nodes, self.pods, self.services]
        tasks = [asyncio.create_task(i.run(), name=f"informer-{i.plural}") for i in informers]
        tasks.append(asyncio.create_task(self._housekeeping(), name="scheduler-housekeeping"))
        ctx = self.ssl_context if not isinstance(self.ssl_context, bool) else None
        self.binder = Binder(self.client.servers, connections=self.config.parallel_binds, token=self.token,
                             ssl_context=ctx)
        try:
            await asyncio.gather(*(i.synced.wait() for i in informers))
            log.info("scheduler %s: caches synced (%d nodes, %d pending pods)",
                     self.config.scheduler_name, len(self.cache.node_list), len(self.queue))
            while True:
                p = await self.queue.pop()
                if p.key not in self.queue:
                    continue
                await self.schedule_one(p)
                await asyncio.sleep(0)  # let watch events and binding replies in
        finally:
            for t in tasks + list(self._tasks):
                t.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
            await self.binder.close()

    async def _housekeeping(self) -> None:
        last = (0, 0)
        while True:
            await asyncio.sleep(1.0)
            self.cache.cleanup_expired()
            self.queue.flush()
            if (self.bound, self.unschedulable_attempts) != last:
                last = (self.bound, self.unschedulable_attempts)
                log.debug("bound %d pods so far; queue %s", self.bound, self.queue.counts())


def fit_and_score(p: PodInfo, candidates: list[NodeInfo], start: int, want: int, w_least: float,
                  w_balanced: float, reasons: Counter) -> tuple[list[NodeInfo], list[float], int]:
    """The hot loop, for pods without host ports, extended resources or inter-pod terms:
    filters.fits_resources and w_least * scores.least_allocated + w_balanced *
    scores.balanced_allocation fused into one pass with everything in local variables (a unit
    test holds it equal to the pure functions). Returns the feasible nodes (at most ``want``,
    searching from ``start``), their scores and how many nodes were looked at."""
    pc, pm, pnc, pnm = p.cpu, p.mem, p.nz_cpu, p.nz_mem
    feasible: list[NodeInfo] = []
    scores: list[float] = []
    add_node, add_score = feasible.append, scores.append
    too_many = no_cpu = no_mem = 0
    processed = 0
    half_least = w_least * 50.0  # least_allocated averages two percentages: 100 / 2
    for ni in (candidates[start:] + candidates[:start]) if start else candidates:
        processed += 1
        ac, am = ni.alloc_cpu, ni.alloc_mem
        ok = True
        if ni.num_pods >= ni.alloc_pods:
            too_many += 1
            ok = False
        if pc and pc > ac - ni.cpu:
            no_cpu += 1
            ok = False
        if pm and pm > am - ni.mem:
            no_mem += 1
            ok = False
        if not ok:
            continue
        la = 0.0
        if ac > 0:
            used = ni.nz_cpu + pnc
            if used <= ac:
                la = (ac - used) / ac
            fc = (ni.cpu + pc) / ac
            if fc > 1.0:
                fc = 1.0
        else:
            fc = 0.0
        if am > 0:
            used = ni.nz_mem + pnm
            if used <= am:
                la += (am - used) / am
            fm = (ni.mem + pm) / am
            if fm > 1.0:
                fm = 1.0
        else:
            fm = 0.0
        d = fc - fm
        if d < 0:
            d = -d
        add_node(ni)
        add_score(half_least * la + w_balanced * (100.0 - d * 50.0))
        if len(feasible) >= want:
            break
    if too_many:
        reasons[F.ERR_TOO_MANY_PODS] += too_many
    if no_cpu:
        reasons["Insufficient cpu"] += no_cpu
    if no_mem:
        reasons["Insufficient memory"] += no_mem
    return feasible, scores, processed


def _scheduling_relevant(old: dict, new: dict) -> bool:
    """kube's isPodUpdated: a change other than status, resourceVersion, generation and
    managedFields may make a pending pod schedulable (tolerations added, labels changed...)."""
    def strip(o: dict) -> tuple:
        meta = {k: v for k, v in o.get("metadata", {}).items()
                if k not in ("resourceVersion", "generation", "managedFields")}
        return meta, o.get("spec")
    return strip(old) != strip(new)
