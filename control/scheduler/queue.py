"""The scheduling queue (kube-scheduler's PriorityQueue, simplified):

- *active*: pods to try now, highest spec.priority first, then first come first served;
- *backoff*: pods that failed and wait ``initial * 2**(attempts-1)`` seconds (capped);
- *unschedulable*: pods no node fits; they go back when the cluster changes (``move_all``) or
  after ``unschedulable_timeout`` seconds, whichever comes first.

A pod being scheduled is *in flight*: updates to it are kept but do not queue it twice. When a
cluster event arrives while a pod is in flight and that pod then turns out unschedulable, it
goes to backoff rather than waiting for the next event (the event may have been the one that
makes it fit: kube's moveRequestCycle).
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Callable

from .nodeinfo import PodInfo

Key = tuple[str, str]


class SchedulingQueue:
    def __init__(self, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 unschedulable_timeout: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.initial_backoff, self.max_backoff = initial_backoff, max_backoff
        self.unschedulable_timeout = unschedulable_timeout
        self.clock = clock
        self.pods: dict[Key, PodInfo] = {}     # every pod the queue knows, latest version
        self.where: dict[Key, str] = {}        # "active" | "backoff" | "unschedulable" | "flight"
        self.attempts: dict[Key, int] = {}
        self.backoff_until: dict[Key, float] = {}
        self.unsched_since: dict[Key, float] = {}
        self._active: list = []
        self._backoff: list = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self.cycle = 0
        self.move_cycle = -1
        self.closed = False

    def __len__(self) -> int:
        return len(self.pods)

    def counts(self) -> dict[str, int]:
        out = {"active": 0, "backoff": 0, "unschedulable": 0, "flight": 0}
        for w in self.where.values():
            out[w] += 1
        return out

    # -- moves ------------------------------------------------------------------------------
    def _to_active(self, p: PodInfo) -> None:
        self.where[p.key] = "active"
        heapq.heappush(self._active, (-p.priority, next(self._seq), p.key))
        self._wake.set()

    def _to_backoff(self, p: PodInfo) -> None:
        until = self.backoff_until.get(p.key, 0.0)
        if until <= self.clock():
            self._to_active(p)
            return
        self.where[p.key] = "backoff"
        heapq.heappush(self._backoff, (until, next(self._seq), p.key))
        self._wake.set()

    def _bump_backoff(self, key: Key) -> None:
        n = self.attempts.get(key, 0) + 1
        self.attempts[key] = n
        delay = min(self.initial_backoff * (2 ** (n - 1)), self.max_backoff)
        self.backoff_until[key] = self.clock() + delay

    # -- pods arriving and leaving ----------------------------------------------------------
    def add(self, p: PodInfo) -> None:
        """A pending pod appeared or changed in a way that may make it schedulable."""
        where = self.where.get(p.key)
        self.pods[p.key] = p
        if where is None:
            self._to_active(p)
        elif where == "unschedulable":
            self.unsched_since.pop(p.key, None)
            self._to_backoff(p)
        # active, backoff, in flight: the newer copy is picked up where it is

    def update(self, p: PodInfo) -> None:
        """A newer copy that does not by itself warrant a retry (status-only change)."""
        if p.key in self.pods:
            self.pods[p.key] = p

    def delete(self, key: Key) -> None:
        self.pods.pop(key, None)
        self.where.pop(key, None)
        self.attempts.pop(key, None)
        self.backoff_until.pop(key, None)
        self.unsched_since.pop(key, None)

    def __contains__(self, key: Key) -> bool:
        return key in self.pods

    # -- after an attempt -------------------------------------------------------------------
    def done(self, key: Key) -> None:
        """Scheduled (binding succeeded): forget the pod."""
        self.delete(key)

    def unschedulable(self, key: Key, cycle: int) -> None:
        p = self.pods.get(key)
        if p is None:
            return
        self._bump_backoff(key)
        if self.move_cycle >= cycle:
            self._to_backoff(p)
        else:
            self.where[key] = "unschedulable"
            self.unsched_since[key] = self.clock()

    def retry(self, key: Key) -> None:
        """An error (binding failed, API unreachable): try again after backoff."""
        p = self.pods.get(key)
        if p is None:
            return
        self._bump_backoff(key)
        self._to_backoff(p)

    def move_all(self) -> None:
        """The cluster changed (a node appeared, a pod went away...): give every unschedulable
        pod another chance, after its backoff."""
        self.move_cycle = self.cycle
        for key in [k for k, w in self.where.items() if w == "unschedulable"]:
            self.unsched_since.pop(key, None)
            self._to_backoff(self.pods[key])

    def flush(self) -> None:
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff)
            if self.where.get(key) == "backoff":
                self._to_active(self.pods[key])
        for key, since in list(self.unsched_since.items()):
            if now - since >= self.unschedulable_timeout:
                del self.unsched_since[key]
                if self.where.get(key) == "unschedulable":
                    self._to_backoff(self.pods[key])

    # -- taking the next pod ----------------------------------------------------------------
    def pop_nowait(self) -> PodInfo | None:
        self.flush()
        while self._active:
            _, _, key = heapq.heappop(self._active)
            if self.where.get(key) == "active":
                self.where[key] = "flight"
                self.cycle += 1
                return self.pods[key]
        return None

    async def pop(self) -> PodInfo:
        while True:
            p = self.pop_nowait()
            if p is not None:
                return p
            self._wake.clear()
            timeout = None
            if self._backoff:
                timeout = max(self._backoff[0][0] - self.clock(), 0.001)
            if self.unsched_since:
                t = min(self.unsched_since.values()) + self.unschedulable_timeout - self.clock()
                timeout = max(min(timeout if timeout is not None else t, t), 0.001)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
