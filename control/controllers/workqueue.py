"""A work queue of keys, as client-go's workqueue: a key waiting is queued once however often it
is added; a key being processed is not handed to a second worker, and if it is added meanwhile
it is processed again afterwards; failures come back after a per-key exponential backoff."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Hashable


class WorkQueue:
    def __init__(self, base_delay: float = 0.005, max_delay: float = 60.0):
        self.base_delay, self.max_delay = base_delay, max_delay
        self._queue: deque = deque()
        self._dirty: set = set()
        self._processing: set = set()
        self._failures: dict[Hashable, int] = {}
        self._timers: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}
        self._cond = asyncio.Event()
        self.shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: Hashable) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.set()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Add once ``delay`` seconds have passed; an earlier pending add wins."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= when:
                return
            pending[1].cancel()

        def fire():
            self._timers.pop(key, None)
            self.add(key)
        self._timers[key] = (when, loop.call_at(when, fire))

    def add_rate_limited(self, key: Hashable) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self.base_delay * (2 ** n), self.max_delay))

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> Hashable:
        while not self._queue:
            self._cond.clear()
            await self._cond.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._cond.set()

    def close(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
