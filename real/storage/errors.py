"""The typed failures of durable storage.

`StorageError` is the root (a `ChainfireError`, so a driver catching the
core's root sees these too). `CorruptStorage` is data that cannot be trusted:
the node must not start on it. `StorageLocked` is a data directory another
process holds. `StorageFailed` is an I/O error while writing: what is in
memory may no longer match the disk, so the storage refuses every later call
and the node must stop (and recover from the disk by restarting).
"""

from __future__ import annotations

from pathlib import Path

from chainfire_core.errors import ChainfireError, DataError


class StorageError(ChainfireError):
    """Root of the expected failures of durable storage."""

    grpc_code = "UNAVAILABLE"


class CorruptStorage(StorageError, DataError):
    """A record on disk fails its checksum or cannot be decoded; refusing to serve it."""

    grpc_code = "DATA_LOSS"

    def __init__(self, path: Path, record: str, reason: str) -> None:
        super().__init__(f"storage {path}: {record} is corrupt ({reason}); refusing to start")
        self.path = path
        self.record = record
        self.reason = reason


class StorageLocked(StorageError):
    """Another process holds this data directory."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"storage {path}: locked by another process")
        self.path = path


class StorageFailed(StorageError):
    """A write or sync failed; this storage object is unusable from now on."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"storage {path}: failed ({reason}); restart to recover from disk")
        self.path = path
        self.reason = reason


def from_sqlite(path: Path, error: Exception, record: str = "the database file") -> StorageError:
    """The typed error for a SQLite failure: corruption, or an I/O failure."""
    if getattr(error, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return CorruptStorage(path, record, str(error))
    return StorageFailed(path, f"{type(error).__name__}: {error}")


__all__ = ["CorruptStorage", "StorageError", "StorageFailed", "StorageLocked", "from_sqlite"]
