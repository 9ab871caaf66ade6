"""Durable Raft storage for a real node: `DiskStorage` on SQLite.

`DiskStorage.open(data_dir)` recovers the log, hard state, membership and
snapshot a node left in `data_dir`; the node reads through the core's
`Storage` protocol, and the driver writes each Ready with `save(...)` then
`sync()` before sending or acknowledging anything. See disk.py for the
theory of operation and docs/real-storage.md for the guide.

`SqliteBackend` (mvcc_backend.py, `state.db`) is the state machine's durable
`StorageBackend`; real/recovery.py starts a node from it.
"""

from real.storage.disk import DiskStorage, RecoveryReport, StorageOptions
from real.storage.errors import CorruptStorage, StorageError, StorageFailed, StorageLocked
from real.storage.mvcc_backend import SqliteBackend

__all__ = [
    "CorruptStorage",
    "DiskStorage",
    "RecoveryReport",
    "SqliteBackend",
    "StorageError",
    "StorageFailed",
    "StorageLocked",
    "StorageOptions",
]
