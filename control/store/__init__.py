from .base import (ADDED, DELETED, MODIFIED, Create, Delete, Event, Expired, KeyExists,
                   KeyNotFound, Record, RevisionMismatch, Store, StoreError, Update)
from .sqlite import SQLiteStore

__all__ = ["ADDED", "DELETED", "MODIFIED", "Create", "Delete", "Event", "Expired", "KeyExists",
           "KeyNotFound", "Record", "RevisionMismatch", "Store", "StoreError", "Update",
           "SQLiteStore", "EtcdStore", "open_store"]


def __getattr__(name: str):
    # etcd's client (grpcio, aetcd) is imported only by those who use etcd.
    if name == "EtcdStore":
        from .etcd import EtcdStore
        return EtcdStore
    raise AttributeError(name)


def open_store(spec: str, **options) -> Store:
    """A store from `sqlite:PATH` or `etcd:URL[,URL...]` (a bare path means SQLite). Options go
    to the store's constructor (history, watch_queue; for etcd prefix, ca_file, cert_file,
    key_file, timeout, compaction_interval)."""
    kind, sep, rest = spec.partition(":")
    if sep and kind == "etcd":
        from .etcd import EtcdStore
        return EtcdStore(rest, **options)
    if sep and kind == "sqlite":
        return SQLiteStore(rest, **{k: v for k, v in options.items() if k in ("history", "watch_queue")})
    if sep and "/" not in kind:
        raise ValueError(f"unknown store {spec!r}: use sqlite:PATH or etcd:http(s)://HOST:PORT[,...]")
    return SQLiteStore(spec, **{k: v for k, v in options.items() if k in ("history", "watch_queue")})
