"""`MemStore`: the runtime's storage interface over the core's `MemoryStorage`.

Theory of operation
-------------------
A stand-in for `real.storage.DiskStorage` with the same write surface
(`save` / `sync` / `compact` / `create_snapshot` / `close`, see
real/durability.py), for tests and for a throwaway in-memory node. `save`
applies a Ready's snapshot, entries and hard state to the live
`MemoryStorage` at once (Raft reads them back from there); `sync` is the
fsync, and here only counts: `sync_count` and `saved_since_sync` let tests
see how many fsyncs a load cost (group commit) and whether anything was left
unsynced. `sync_delay_s` makes each sync block its thread that long, to
imitate a disk. Nothing survives the process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from chainfire_core.raft.messages import ConfState, Entry, HardState, Snapshot
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.types import Index, Term


class MemStore:
    """In-memory `DurableStorage` (see the module docstring)."""

    def __init__(self, storage: MemoryStorage | None = None, *, sync_delay_s: float = 0.0) -> None:
        assert sync_delay_s >= 0, sync_delay_s
        self.inner = storage if storage is not None else MemoryStorage()
        self.sync_delay_s = sync_delay_s
        self.sync_count = 0
        self.save_count = 0
        self.saved_since_sync = False
        self.closed = False

    # -- reads (chainfire_core.raft.storage.Storage) -------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.inner.initial_state()

    def entries(self, lo: Index, hi: Index, max_size_bytes: int | None) -> tuple[Entry, ...]:
        return self.inner.entries(lo, hi, max_size_bytes)

    def term(self, i: Index) -> Term:
        return self.inner.term(i)

    def first_index(self) -> Index:
        return self.inner.first_index()

    def last_index(self) -> Index:
        return self.inner.last_index()

    def snapshot(self) -> Snapshot:
        return self.inner.snapshot()

    # -- writes ----------------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Sequence[Entry],
             snapshot: Snapshot | None) -> None:
        assert not self.closed, "save after close"
        if snapshot is not None:
            self.inner.apply_snapshot(snapshot)
        self.inner.append(entries)
        if hard_state is not None:
            self.inner.set_hard_state(hard_state)
        self.save_count += 1
        self.saved_since_sync = True

    def sync(self) -> None:
        assert not self.closed, "sync after close"
        if self.sync_delay_s:
            time.sleep(self.sync_delay_s)
        self.sync_count += 1
        self.saved_since_sync = False

    def create_snapshot(self, index: Index, conf_state: ConfState, data: bytes = b"") -> Snapshot:
        return self.inner.create_snapshot(index, conf_state, data)

    def compact(self, compact_index: Index) -> None:
        self.inner.compact(compact_index)

    def close(self) -> None:
        self.closed = True


__all__ = ["MemStore"]
