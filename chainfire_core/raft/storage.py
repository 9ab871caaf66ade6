"""The stable part of the Raft log: the `Storage` protocol and `MemoryStorage`.

Theory of operation
-------------------
Raft keeps its log in two parts. Entries that have been made durable live
behind the `Storage` protocol, which the driver hands in; entries that have
not yet been written live in `Unstable` (unstable.py); `RaftLog` (log.py)
stitches the two together. Raft only *reads* through `Storage`: the driver
writes to it (append entries, set the hard state, apply a snapshot) when it
persists a `Ready`, and compacts it when the state machine has taken a
snapshot.

Storage holds a contiguous run of entries `first_index .. last_index` after a
snapshot that covers everything up to `first_index - 1`. The term of that
last compacted index stays known (it is the snapshot's term), because Raft
needs it to check that an append matches the entry just before it. So
`term(i)` answers for `first_index - 1 .. last_index` and `entries(lo, hi)`
for `first_index <= lo <= hi <= last_index + 1`. Outside those ranges a
storage raises `LogCompacted` (too old) or `LogUnavailable` (too new); both
are expected failures the caller handles, not broken invariants.

`MemoryStorage` follows etcd-io/raft: a Python list whose slot 0 is a dummy
entry carrying the index and term of the last compacted entry (initially 0,
0), so list position `k` holds index `dummy.index + k`. Appending is amortised
O(1); compaction drops a prefix and puts a new dummy in front.

Size limits (`max_size_bytes`) count `Entry.size_bytes` and are soft: a
non-empty range always yields at least its first entry, then as many more as
keep the running total within the limit. None means no limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Protocol

from chainfire_core.errors import ChainfireError
from chainfire_core.raft.messages import (
    EMPTY_HARD_STATE,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from chainfire_core.types import Index, Term


class RaftStorageError(ChainfireError):
    """Root of the expected failures of reading or changing the Raft log."""


class LogCompacted(RaftStorageError):
    """The index asked for lies before the first available entry (compacted)."""

    def __init__(self, index: int, first_index: int) -> None:
        super().__init__(f"raft log: index {index} is compacted (first index {first_index})")
        self.index = index
        self.first_index = first_index


class LogUnavailable(RaftStorageError):
    """The index asked for lies beyond the last entry."""

    def __init__(self, index: int, last_index: int) -> None:
        super().__init__(f"raft log: index {index} is unavailable (last index {last_index})")
        self.index = index
        self.last_index = last_index


class SnapshotOutOfDate(RaftStorageError):
    """The snapshot offered is not newer than the one already held."""

    def __init__(self, index: int, current_index: int) -> None:
        super().__init__(f"raft log: snapshot at {index} is not newer than {current_index}")
        self.index = index
        self.current_index = current_index


class Storage(Protocol):
    """Read access to the durable part of the Raft log (etcd's Storage)."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership of the latest snapshot."""
        ...

    def entries(self, lo: Index, hi: Index, max_size_bytes: int | None) -> tuple[Entry, ...]:
        """Entries `lo .. hi-1`, size-limited but never empty when `lo < hi`.

        Raises LogCompacted if `lo < first_index()`, LogUnavailable if
        `hi > last_index() + 1`."""
        ...

    def term(self, i: Index) -> Term:
        """The term of entry `i`, for `first_index() - 1 <= i <= last_index()`.

        Raises LogCompacted below that range, LogUnavailable above it."""
        ...

    def first_index(self) -> Index:
        """The index of the first entry held (snapshot index + 1)."""
        ...

    def last_index(self) -> Index:
        """The index of the last entry held (snapshot index if none)."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot."""
        ...


def entries_size_bytes(entries: Sequence[Entry]) -> int:
    """The total `size_bytes` of `entries`."""
    return sum(entry.size_bytes for entry in entries)


def size_limited_stop(
    entries: Sequence[Entry], start: int, stop: int, max_size_bytes: int | None
) -> int:
    """The end position `e` such that `entries[start:e]` honours the soft limit.

    At least one entry is kept when `start < stop`; then entries are added while
    the running total stays within `max_size_bytes`."""
    assert 0 <= start <= stop <= len(entries), (start, stop, len(entries))
    if max_size_bytes is None or stop - start <= 1:
        return stop
    total_bytes = entries[start].size_bytes
    end = start + 1
    while end < stop:
        total_bytes += entries[end].size_bytes
        if total_bytes > max_size_bytes:
            break
        end += 1
    return end


def limit_size(entries: Sequence[Entry], max_size_bytes: int | None) -> tuple[Entry, ...]:
    """The longest prefix of `entries` within the soft size limit (never empty
    unless `entries` is)."""
    return tuple(entries[: size_limited_stop(entries, 0, len(entries), max_size_bytes)])


def assert_contiguous(entries: Sequence[Entry]) -> None:
    """Check that `entries` have consecutive indexes."""
    for previous, entry in pairwise(entries):
        assert entry.index == previous.index + 1, (previous.index, entry.index)


class MemoryStorage:
    """An in-memory `Storage`, written to by the driver (etcd's MemoryStorage)."""

    __slots__ = ("_entries", "_hard_state", "_snapshot")

    def __init__(self) -> None:
        self._hard_state = EMPTY_HARD_STATE
        self._snapshot = Snapshot(metadata=SnapshotMetadata(index=Index(0), term=Term(0)))
        # Slot 0 is the dummy: the index and term of the last compacted entry.
        self._entries: list[Entry] = [Entry(term=Term(0), index=Index(0))]

    # -- reads (the Storage protocol) ------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    def entries(self, lo: Index, hi: Index, max_size_bytes: int | None) -> tuple[Entry, ...]:
        assert lo <= hi, (lo, hi)
        if lo < self.first_index():
            raise LogCompacted(lo, self.first_index())
        if hi > self.last_index() + 1:
            raise LogUnavailable(hi - 1, self.last_index())
        offset = self._offset()
        stop = size_limited_stop(self._entries, lo - offset, hi - offset, max_size_bytes)
        return tuple(self._entries[lo - offset : stop])

    def term(self, i: Index) -> Term:
        offset = self._offset()
        if i < offset:
            raise LogCompacted(i, self.first_index())
        if i > self.last_index():
            raise LogUnavailable(i, self.last_index())
        return self._entries[i - offset].term

    def first_index(self) -> Index:
        return Index(self._offset() + 1)

    def last_index(self) -> Index:
        return Index(self._offset() + len(self._entries) - 1)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- writes (by the driver) --------------------------------------------------

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log by `snapshot`; raises SnapshotOutOfDate unless
        it is newer than the snapshot held."""
        current = self._snapshot.metadata.index
        if snapshot.metadata.index <= current:
            raise SnapshotOutOfDate(snapshot.metadata.index, current)
        self._snapshot = snapshot
        self._entries = [Entry(term=snapshot.metadata.term, index=snapshot.metadata.index)]

    def create_snapshot(self, index: Index, conf_state: ConfState, data: bytes = b"") -> Snapshot:
        """Record a snapshot of the state machine at `index` (an entry still held,
        or the last compacted one). The log itself is not compacted: see `compact`."""
        current = self._snapshot.metadata.index
        if index <= current:
            raise SnapshotOutOfDate(index, current)
        assert index <= self.last_index(), (index, self.last_index())
        term = self.term(index)  # raises LogCompacted if compacted past `index`
        metadata = SnapshotMetadata(index=index, term=term, conf_state=conf_state)
        self._snapshot = Snapshot(metadata=metadata, data=data)
        return self._snapshot

    def compact(self, compact_index: Index) -> None:
        """Discard entries up to and including `compact_index`; it becomes the dummy.

        Raises LogCompacted if that is already done. The caller must only compact
        entries it has applied (and snapshotted)."""
        offset = self._offset()
        if compact_index <= offset:
            raise LogCompacted(compact_index, self.first_index())
        assert compact_index <= self.last_index(), (compact_index, self.last_index())
        position = compact_index - offset
        dummy = Entry(term=self._entries[position].term, index=compact_index)
        del self._entries[:position]
        self._entries[0] = dummy

    def append(self, entries: Sequence[Entry]) -> None:
        """Persist `entries` (consecutive indexes). Entries already compacted are
        skipped; any held entries from the first new index on are replaced."""
        if not entries:
            return
        assert_contiguous(entries)
        first = self.first_index()
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        position = entries[0].index - self._offset()
        assert position <= len(self._entries), ("gap before appended entries", entries[0].index)
        del self._entries[position:]
        self._entries.extend(entries)

    def check_invariants(self) -> None:
        assert self._entries, "the dummy entry is always there"
        assert self._snapshot.metadata.index <= self.last_index(), "snapshot beyond the log"
        previous = self._entries[0]
        for entry in self._entries[1:]:
            assert entry.index == previous.index + 1, (previous.index, entry.index)
            assert entry.term >= previous.term, ("terms decrease", previous, entry)
            previous = entry

    def _offset(self) -> Index:
        return self._entries[0].index


__all__ = [
    "LogCompacted",
    "LogUnavailable",
    "MemoryStorage",
    "RaftStorageError",
    "SnapshotOutOfDate",
    "Storage",
    "assert_contiguous",
    "entries_size_bytes",
    "limit_size",
    "size_limited_stop",
]
