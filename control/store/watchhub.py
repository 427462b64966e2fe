"""In-process watch fan-out: one bounded queue per watcher.

A write never waits for a watcher: events are appended to each matching watcher's queue, and a
watcher whose queue is full is closed instead (like kube-apiserver's cacher, which terminates a
watcher that cannot keep up). Its client re-watches from the last resourceVersion it saw, which
the event history still holds, so nothing is lost and nobody else is slowed down.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import AsyncIterator, Iterable

from .base import Event


class Closed(Exception):
    """The watch ended: closed by its owner, or by the hub because it fell behind."""


class QueueWatch:
    def __init__(self, hub: "WatchHub", prefix: str, maxlen: int):
        self._hub = hub
        self.prefix = prefix
        self._maxlen = maxlen
        self._queue: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._ticked = False
        self.overflowed = False

    def push(self, ev: Event) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._maxlen:
            self.overflowed = True
            self.close()
            return
        self._queue.append(ev)
        self._wake.set()

    def prime(self, events: Iterable[Event]) -> None:
        """History that precedes everything push() will deliver (no size limit)."""
        self._queue.extendleft(reversed(list(events)))
        if self._queue:
            self._wake.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._hub.discard(self)
            self._wake.set()

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event; None when `timeout` passes first (or a tick() is due). Raises Closed
        once the watch has ended and its queue is drained.

        Waiting uses one asyncio.Event and, for a timeout, a plain timer handle: with 100
        watchers on every event, asyncio.wait_for's extra Task per wait doubled the cost."""
        if self._queue:
            return self._queue.popleft()
        timer = asyncio.get_running_loop().call_later(timeout, self.tick) if timeout is not None else None
        try:
            while not self._queue:
                if self._closed:
                    raise Closed
                if self._ticked:
                    self._ticked = False
                    return None
                self._wake.clear()
                await self._wake.wait()
            return self._queue.popleft()
        finally:
            if timer is not None:
                timer.cancel()

    def tick(self) -> None:
        """Make a waiting (or the next) next() return None once: timeouts and bookmarks."""
        self._ticked = True
        self._wake.set()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self.next()
            except Closed:
                return


class WatchHub:
    def __init__(self, queue_len: int = 10_000):
        self.queue_len = queue_len
        self._watchers: set[QueueWatch] = set()

    def subscribe(self, prefix: str) -> QueueWatch:
        w = QueueWatch(self, prefix, self.queue_len)
        self._watchers.add(w)
        return w

    def discard(self, w: QueueWatch) -> None:
        self._watchers.discard(w)

    def publish(self, events: list[Event]) -> None:
        for w in tuple(self._watchers):
            for ev in events:
                if ev.record.key.startswith(w.prefix):
                    w.push(ev)

    def close_all(self) -> None:
        for w in tuple(self._watchers):
            w.close()

    def __len__(self) -> int:
        return len(self._watchers)
