"""Change tracking between informer events and syncs (kube-proxy's servicechangetracker.go and
endpointslicecache.go, reduced to what we need).

Informer handlers call `service_event` / `slice_event`: they parse the object (cheap, pure) and
record one (previous, current) pair per object key. Later events for the same key replace only
`current`; when `current` equals `previous` again the entry disappears, so a change that is undone
before the next sync costs nothing. A sync calls `take()` and gets every pending change at once;
`ProxyState.apply` folds them in and returns the set of services whose rules must be re-rendered:
that set is what makes a partial sync proportional to the change.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .model import (Endpoint, ServiceName, ServicePort, ServicePortName, Slice, endpoints_for,
                    parse_slice, service_ports)

SliceKey = tuple[str, str]  # (namespace, slice name)


@dataclass
class Changes:
    services: dict[ServiceName, tuple[dict, dict]] = field(default_factory=dict)
    slices: dict[SliceKey, tuple[Slice | None, Slice | None]] = field(default_factory=dict)
    trigger_times: list[float] = field(default_factory=list)  # wall clock, for programming latency

    def __bool__(self) -> bool:
        return bool(self.services or self.slices)


class ChangeTracker:
    """Thread-safe: handlers run on the informers' event loop, syncs on a worker thread."""

    def __init__(self, on_change: Callable[[], None] | None = None, clock: Callable[[], float] = time.time):
        self._lock = threading.Lock()
        self._seen_services: dict[ServiceName, dict] = {}
        self._seen_slices: dict[SliceKey, Slice] = {}
        self._services: dict[ServiceName, list] = {}   # key -> [previous, current, trigger time]
        self._slices: dict[SliceKey, list] = {}
        self.on_change = on_change
        self.clock = clock

    # -- handlers (must only record) -------------------------------------------------------
    def service_event(self, etype: str, obj: dict, old: dict | None = None) -> None:
        meta = obj.get("metadata") or {}
        key = ServiceName(meta.get("namespace", ""), meta.get("name", ""))
        current = {} if etype == "DELETED" else service_ports(obj)
        self._record(self._services, self._seen_services, key, current, self.clock())

    def slice_event(self, etype: str, obj: dict, old: dict | None = None) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        current = None if etype == "DELETED" else parse_slice(obj)
        when = self.clock()
        if current is not None and current.trigger_time is not None:
            when = min(when, current.trigger_time)
        self._record(self._slices, self._seen_slices, key, current, when)

    def _record(self, pending: dict, seen: dict, key, current, when: float) -> None:
        empty = {} if pending is self._services else None
        with self._lock:
            entry = pending.get(key)
            if entry is None:
                previous = seen.get(key, empty)
                if previous == current:
                    return
                pending[key] = [previous, current, when]
            else:
                entry[1] = current
                if entry[0] == current:
                    del pending[key]
            if current == empty:
                seen.pop(key, None)
            else:
                seen[key] = current
        if self.on_change:
            self.on_change()

    # -- the sync side -----------------------------------------------------------------------
    def take(self) -> Changes:
        with self._lock:
            services, self._services = self._services, {}
            slices, self._slices = self._slices, {}
        triggers = [e[2] for e in services.values()] + [e[2] for e in slices.values()]
        return Changes({k: (e[0], e[1]) for k, e in services.items()},
                       {k: (e[0], e[1]) for k, e in slices.items()}, triggers)

    def pending(self) -> int:
        with self._lock:
            return len(self._services) + len(self._slices)


class ProxyState:
    """The current Services and EndpointSlices as the last sync applied them."""

    def __init__(self) -> None:
        self.services: dict[ServiceName, dict[ServicePortName, ServicePort]] = {}
        self.slices: dict[SliceKey, Slice] = {}
        self.slices_by_service: dict[ServiceName, set[SliceKey]] = {}

    def apply(self, changes: Changes) -> set[ServiceName]:
        """Fold changes in; return the services whose rules may differ now."""
        touched: set[ServiceName] = set()
        for key, (_, current) in changes.services.items():
            touched.add(key)
            if current:
                self.services[key] = current
            else:
                self.services.pop(key, None)
        for key, (_, current) in changes.slices.items():
            old = self.slices.pop(key, None)
            if old is not None:
                touched.add(old.service)
                refs = self.slices_by_service.get(old.service)
                if refs is not None:
                    refs.discard(key)
                    if not refs:
                        del self.slices_by_service[old.service]
            if current is not None:
                touched.add(current.service)
                self.slices[key] = current
                self.slices_by_service.setdefault(current.service, set()).add(key)
        return touched

    def ports(self, svc: ServiceName) -> dict[ServicePortName, ServicePort]:
        return self.services.get(svc, {})

    def endpoints(self, spn: ServicePortName) -> list[Endpoint]:
        keys = self.slices_by_service.get(spn.service, ())
        return endpoints_for(spn, [self.slices[k] for k in sorted(keys)])
