from .base import (ADDED, DELETED, MODIFIED, Create, Delete, Event, Expired, KeyExists,
                   KeyNotFound, Record, RevisionMismatch, Store, StoreError, Update)
from .sqlite import SQLiteStore

__all__ = ["ADDED", "DELETED", "MODIFIED", "Create", "Delete", "Event", "Expired", "KeyExists",
           "KeyNotFound", "Record", "RevisionMismatch", "Store", "StoreError", "Update",
           "SQLiteStore"]
