"""A small watch reader for tests: a background thread collects events from a stream."""
from __future__ import annotations

import json
import queue
import threading
import time

import httpx


class Watcher:
    def __init__(self, url: str, path: str, params: dict | None = None, headers: dict | None = None):
        self.events: queue.Queue = queue.Queue()
        self.ended = threading.Event()
        self._client = httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=None))
        self._params = {"watch": "true", **(params or {})}
        self._path, self._headers = path, headers or {}
        self.status_code = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5), "watch did not connect"

    def _run(self):
        try:
            with self._client.stream("GET", self._path, params=self._params, headers=self._headers) as r:
                self.status_code = r.status_code
                self._ready.set()
                for line in r.iter_lines():
                    if line:
                        self.events.put(json.loads(line))
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()
            self.ended.set()

    def next(self, timeout: float = 5.0) -> dict:
        return self.events.get(timeout=timeout)

    def take(self, n: int, timeout: float = 5.0) -> list[dict]:
        return [self.next(timeout) for _ in range(n)]

    def quiet(self, seconds: float = 0.3) -> bool:
        time.sleep(seconds)
        return self.events.empty()

    def close(self):
        self._client.close()
