"""The storage interface of the API server.

It is shaped like etcd's v3 API on purpose (see the HA issue): one global revision that every
committed transaction raises by one, a modification revision per key (the object's
resourceVersion), multi-key transactions that compare before they write, watches that resume
from a revision, and compaction of old revisions (a watch from before it gets `Expired`).
SQLite implements it for one control node; etcd can implement it for several.

Values are the object's JSON bytes *with* `metadata.resourceVersion` already set to the key's
modification revision, so that gets, lists and watch events send stored bytes without
re-encoding them (the list and watch fan-out hot paths).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol

import orjson

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


class StoreError(Exception):
    """Base of the store's errors; `index` names the failing operation of a transaction."""

    def __init__(self, key: str, index: int = 0, message: str = ""):
        super().__init__(message or f"{type(self).__name__}: {key}")
        self.key = key
        self.index = index


class KeyExists(StoreError):
    pass


class KeyNotFound(StoreError):
    pass


class RevisionMismatch(StoreError):
    """The key's modification revision is not the one the writer read (optimistic concurrency)."""


class Expired(Exception):
    """The requested revision has been compacted away."""

    def __init__(self, requested: int, oldest: int):
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


@dataclass(slots=True)
class Record:
    key: str
    value: bytes
    mod_rev: int
    create_rev: int = 0
    _obj: dict | None = field(default=None, repr=False)

    @property
    def obj(self) -> dict:
        """The decoded object; decoded once and shared, so callers must not mutate it."""
        if self._obj is None:
            self._obj = orjson.loads(self.value)
        return self._obj


@dataclass(slots=True)
class Event:
    type: str
    record: Record
    prev: Record | None = None  # the value before a MODIFIED, for selector-filtered watches


# Transaction operations. expected_rev None means "whatever is there now".
@dataclass(slots=True)
class Create:
    key: str
    obj: dict | None  # None: a bare marker key (allocations), stored as b"null"


@dataclass(slots=True)
class Update:
    key: str
    obj: dict
    expected_rev: int | None = None


@dataclass(slots=True)
class Delete:
    key: str
    expected_rev: int | None = None


Op = Create | Update | Delete


class Watch(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...
    def close(self) -> None: ...
    @property
    def overflowed(self) -> bool: ...


class Store(Protocol):
    async def get(self, key: str) -> Record | None: ...

    async def list(self, prefix: str, *, start_after: str = "", limit: int = 0
                   ) -> tuple[list[Record], int, bool]:
        """Records under prefix in key order, the store's revision, and whether more remain."""
        ...

    async def count(self, prefix: str, *, start_after: str = "") -> int: ...

    async def commit(self, ops: list[Op]) -> list[Record]:
        """All operations or none, under one new revision. Returns one record per operation
        (for a Delete, the last value re-stamped with the deletion revision)."""
        ...

    def watch(self, prefix: str, from_rev: int) -> Watch:
        """Events with revision > from_rev (from_rev 0: only new ones). Raises Expired."""
        ...

    def revision(self) -> int: ...

    async def ready(self) -> bool: ...

    async def close(self) -> None: ...


def stamp(obj: dict | None, rev: int) -> bytes:
    """Encode an object with its resourceVersion set to rev (mutates obj's metadata)."""
    if obj is None:
        return b"null"
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    meta["resourceVersion"] = str(rev)
    return orjson.dumps(obj)
