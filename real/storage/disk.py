"""`DiskStorage`: the Raft log, hard state and snapshot, durable in SQLite.

Theory of operation
-------------------
The read side is the core's `Storage` protocol, with `MemoryStorage`'s
semantics exactly (a test runs both on random operation sequences). The
write side is what a driver does for each `Ready`: `save(hard_state,
entries, snapshot)` writes into an open SQLite transaction (visible to
reads at once, durable not yet), then `sync()` commits it; with
`synchronous=FULL` the commit returns only once SQLite has fsynced its WAL.
Only then may the driver send messages or answer clients. The node's own
`create_snapshot` and `compact` (called from `advance`) commit at once, and
so also make everything saved before them durable, as etcd's WAL does for a
snapshot record.

What lives where: one row per log entry (index, term, data, conf change, CRC);
one state row (hard state, and the index and term of the last compacted
entry, MemoryStorage's "dummy"); one snapshot row (metadata, data, CRC). A
snapshot and the log truncation that goes with it are one transaction, so
no crash can leave a half-installed snapshot. In memory: the state row, the
snapshot, the terms of every live entry (`term()` never touches the disk)
and the last `cached_entries_max` entries decoded (the entries a leader
sends and a node applies are nearly always recent).

Recovery (`open`): lock the directory, let SQLite replay its WAL (a torn
last transaction is dropped by SQLite, and `open` logs a warning; `walcheck`
refuses a damaged *synced* frame), then read the state row, the snapshot row
and every live entry row, checking each CRC, the indexes' contiguity and the
terms' order. Anything wrong raises `CorruptStorage` naming the file and the
row; nothing is served from a log that fails. Compaction deletes the rows
before the snapshot, so the work grows with the live (un-snapshotted) log,
not with history.

Threads: one writer at a time (the driver's Ready loop). `sync()` may run
in a worker thread while the event loop keeps reading: every use of the
SQLite connection holds `_io_lock`, and sync changes no in-memory state.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chainfire_core.errors import InvalidRequest
from chainfire_core.raft.messages import (
    EMPTY_HARD_STATE,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from chainfire_core.raft.storage import (
    LogCompacted,
    LogUnavailable,
    SnapshotOutOfDate,
    assert_contiguous,
    size_limited_stop,
)
from chainfire_core.types import Index, Term
from real.storage import records
from real.storage.db import Database, open_database
from real.storage.errors import StorageFailed, from_sqlite
from real.storage.log_rows import LogRows, load_rows, read_entries

logger = logging.getLogger("chainfire.storage")


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageOptions:
    # Recent entries kept decoded in memory (older ones are read back from disk).
    cached_entries_max: int = 4096
    # Commit without fsync: a crash may lose "synced" writes. Tests and benchmarks only.
    unsafe_no_fsync: bool = False

    def __post_init__(self) -> None:
        if self.cached_entries_max < 1:
            raise InvalidRequest(
                f"storage options: cached_entries_max must be >= 1, got {self.cached_entries_max}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryReport:
    """What `open` found: live entries recovered and whether a torn tail was cut."""

    entries: int
    torn_tail_truncated: bool
    wal_frames_dropped: int


class DiskStorage:
    """Durable Raft storage in one SQLite database (see the module docstring)."""

    def __init__(self, database: Database, rows: LogRows, options: StorageOptions) -> None:
        """Use `DiskStorage.open`."""
        self._db = database
        self._options = options
        self._io_lock = threading.Lock()
        self._hard_state = rows.state.hard_state
        self._start_index = rows.state.start_index
        self._start_term = rows.state.start_term
        self._terms = rows.terms
        self._snapshot = rows.snapshot
        self._cache: list[Entry] = list(rows.tail)
        self._in_transaction = False
        self._state_dirty = False
        self._failed: str | None = None
        self.recovery = RecoveryReport(entries=len(rows.terms),
                                       torn_tail_truncated=database.wal.torn_tail,
                                       wal_frames_dropped=database.wal.dropped_frames)

    @classmethod
    def open(cls, data_dir: str | Path, options: StorageOptions | None = None) -> DiskStorage:
        """Open (creating if needed) the storage in `data_dir` and recover it.

        Raises CorruptStorage for a record that cannot be trusted, StorageLocked
        if another process has the directory open."""
        options = options or StorageOptions()
        database = open_database(Path(data_dir), _write_initial_rows,
                                 unsafe_no_fsync=options.unsafe_no_fsync)
        try:
            rows = load_rows(database.connection, database.path, options.cached_entries_max)
        except sqlite3.Error as error:
            database.close()
            raise from_sqlite(database.path, error) from error
        except BaseException:
            database.close()
            raise
        storage = cls(database, rows, options)
        report = storage.recovery
        if report.torn_tail_truncated:  # operators should know a crash cut something
            logger.warning("%s: cut a torn WAL tail (an unfinished transaction; %d whole "
                           "frame(s) dropped); recovered %d live entries", database.path,
                           report.wal_frames_dropped, report.entries)
        return storage

    @property
    def path(self) -> Path:
        return self._db.path

    # -- reads (the Storage protocol) ----------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    def first_index(self) -> Index:
        return Index(self._start_index + 1)

    def last_index(self) -> Index:
        return Index(self._start_index + len(self._terms))

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def term(self, i: Index) -> Term:
        if i < self._start_index:
            raise LogCompacted(i, self.first_index())
        if i > self.last_index():
            raise LogUnavailable(i, self.last_index())
        if i == self._start_index:
            return self._start_term
        return Term(self._terms[i - self._start_index - 1])

    def entries(self, lo: Index, hi: Index, max_size_bytes: int | None) -> tuple[Entry, ...]:
        assert lo <= hi, (lo, hi)
        if lo < self.first_index():
            raise LogCompacted(lo, self.first_index())
        if hi > self.last_index() + 1:
            raise LogUnavailable(hi - 1, self.last_index())
        if lo == hi:
            return ()
        cache_first = self.last_index() + 1 - len(self._cache)
        if lo >= cache_first:
            start, stop = lo - cache_first, hi - cache_first
            return tuple(self._cache[start:size_limited_stop(self._cache, start, stop,
                                                             max_size_bytes)])
        self._check_usable()
        with self._io_lock:
            try:
                return read_entries(self._db.connection, self.path, lo, hi, max_size_bytes)
            except sqlite3.Error as error:
                raise self._io_error(error) from error

    # -- writes (by the driver) ----------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Sequence[Entry],
             snapshot: Snapshot | None) -> None:
        """Write one Ready's snapshot, entries and hard state (in that order); not
        durable until `sync`. Raises SnapshotOutOfDate (before writing anything)
        for a snapshot not newer than the one held."""
        if snapshot is not None:
            self.apply_snapshot(snapshot)
        self.append(entries)
        if hard_state is not None:
            self.set_hard_state(hard_state)

    def sync(self) -> None:
        """Make everything saved durable (one commit, one fsync)."""
        self._check_usable()
        with self._io_lock:
            self._commit()

    def defragment(self) -> None:
        """Rebuild the database file without its free pages (SQLite VACUUM:
        the space of compacted entries goes back to the file system). Saved
        rows not yet synced are committed first (they would be at the next
        sync anyway). A failed VACUUM changes nothing (SQLite rebuilds into
        a copy), so it raises without stopping the storage."""
        self._check_usable()
        with self._io_lock:
            self._commit()
            try:
                self._db.connection.execute("VACUUM")
            except sqlite3.Error as error:
                raise from_sqlite(self.path, error) from error

    def set_hard_state(self, hard_state: HardState) -> None:
        self._begin()
        self._hard_state = hard_state
        self._state_dirty = True

    def append(self, entries: Sequence[Entry]) -> None:
        """Persist `entries` (consecutive indexes) as MemoryStorage.append does:
        compacted ones are skipped, held ones from the first new index on replaced."""
        if not entries:
            return
        assert_contiguous(entries)
        first = self.first_index()
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        start = entries[0].index
        assert start <= self.last_index() + 1, ("gap before appended entries", start)
        self._begin()
        with self._io_lock:
            try:
                connection = self._db.connection
                if start <= self.last_index():
                    connection.execute("DELETE FROM entries WHERE idx >= ?", (start,))
                connection.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?)",
                                       [records.entry_row(entry) for entry in entries])
            except sqlite3.Error as error:
                raise self._io_error(error) from error
        self._truncate_memory(start)
        self._terms.extend(entry.term for entry in entries)
        self._cache.extend(entries)
        if len(self._cache) > self._options.cached_entries_max:
            del self._cache[: len(self._cache) - self._options.cached_entries_max]

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log by `snapshot` (not durable until `sync`)."""
        current = self._snapshot.metadata.index
        if snapshot.metadata.index <= current:
            raise SnapshotOutOfDate(snapshot.metadata.index, current)
        self._begin()
        self._write_snapshot(snapshot, delete_entries=True)
        self._snapshot = snapshot
        self._start_index = snapshot.metadata.index
        self._start_term = snapshot.metadata.term
        self._terms = array("Q")
        self._cache.clear()
        self._state_dirty = True

    def create_snapshot(self, index: Index, conf_state: ConfState, data: bytes = b"") -> Snapshot:
        """Record a snapshot at `index` (held, or the last compacted one) and make it,
        and everything saved before it, durable. The log is not compacted."""
        current = self._snapshot.metadata.index
        if index <= current:
            raise SnapshotOutOfDate(index, current)
        assert index <= self.last_index(), (index, self.last_index())
        term = self.term(index)  # raises LogCompacted if compacted past `index`
        snapshot = Snapshot(metadata=SnapshotMetadata(index=index, term=term,
                                                      conf_state=conf_state), data=data)
        self._begin()
        self._write_snapshot(snapshot, delete_entries=False)
        self._snapshot = snapshot
        self.sync()
        return snapshot

    def compact(self, compact_index: Index) -> None:
        """Discard entries up to and including `compact_index` (durable at once).
        Raises LogCompacted if that is already done."""
        if compact_index <= self._start_index:
            raise LogCompacted(compact_index, self.first_index())
        assert compact_index <= self.last_index(), (compact_index, self.last_index())
        term = self.term(compact_index)
        self._begin()
        with self._io_lock:
            try:
                self._db.connection.execute("DELETE FROM entries WHERE idx <= ?", (compact_index,))
            except sqlite3.Error as error:
                raise self._io_error(error) from error
        del self._terms[: compact_index - self._start_index]
        self._start_index, self._start_term = compact_index, term
        cache_first = self.last_index() + 1 - len(self._cache)
        if cache_first < self.first_index():
            del self._cache[: self.first_index() - cache_first]
        self._state_dirty = True
        self.sync()

    def close(self) -> None:
        """Sync what was saved, then release the database and the directory lock."""
        if self._failed is None and self._in_transaction:
            self.sync()
        self._failed = self._failed or "closed"
        self._db.close()

    def abandon(self) -> None:
        """Release everything *without* syncing: unsynced writes are lost, as in a
        crash (tests, and a driver that failed in the middle of a Ready)."""
        self._failed = self._failed or "abandoned"
        self._db.close()

    def check_invariants(self) -> None:
        assert self._snapshot.metadata.index <= self.last_index(), "snapshot beyond the log"
        assert len(self._cache) <= min(len(self._terms), self._options.cached_entries_max)
        cache_first = self.last_index() + 1 - len(self._cache)
        for offset, entry in enumerate(self._cache):
            assert entry.index == cache_first + offset, (entry.index, cache_first + offset)
            assert entry.term == self.term(entry.index), entry.index
        previous = self._start_term
        for term in self._terms:
            assert term >= previous, ("terms decrease", previous, term)
            previous = Term(term)
        assert self._in_transaction or not self._state_dirty

    # -- internals ------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise StorageFailed(self.path, self._failed)

    def _begin(self) -> None:
        self._check_usable()
        if self._in_transaction:
            return
        with self._io_lock:
            try:
                self._db.connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise self._io_error(error) from error
        self._in_transaction = True

    def _commit(self) -> None:
        if not self._in_transaction:
            return
        try:
            if self._state_dirty:
                self._db.connection.execute(
                    "INSERT OR REPLACE INTO state VALUES (1, ?, ?, ?, ?, ?, ?)",
                    records.state_row(self._state_row()))
            self._db.connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._io_error(error) from error
        self._in_transaction = False
        self._state_dirty = False

    def _write_snapshot(self, snapshot: Snapshot, *, delete_entries: bool) -> None:
        with self._io_lock:
            try:
                connection = self._db.connection
                if delete_entries:
                    connection.execute("DELETE FROM entries")
                connection.execute("INSERT OR REPLACE INTO snapshot VALUES (1, ?, ?, ?)",
                                   records.snapshot_row(snapshot))
            except sqlite3.Error as error:
                raise self._io_error(error) from error

    def _truncate_memory(self, start: Index) -> None:
        """Forget held entries from `start` on (the rows are already deleted)."""
        keep = start - self._start_index - 1
        removed = len(self._terms) - keep
        if removed > 0:
            del self._terms[keep:]
            del self._cache[max(len(self._cache) - removed, 0):]

    def _state_row(self) -> records.StateRow:
        return records.StateRow(hard_state=self._hard_state, start_index=self._start_index,
                                start_term=self._start_term)

    def _io_error(self, error: sqlite3.Error) -> Exception:
        """A failed statement: memory and disk may now disagree, so stop for good."""
        self._failed = f"{type(error).__name__}: {error}"
        return from_sqlite(self.path, error)


def _write_initial_rows(connection: sqlite3.Connection) -> None:
    """A new storage (inside the schema's transaction): empty hard state, log
    start (0, 0), the empty snapshot at 0."""
    state = records.StateRow(hard_state=EMPTY_HARD_STATE, start_index=Index(0),
                             start_term=Term(0))
    snapshot = Snapshot(metadata=SnapshotMetadata(index=Index(0), term=Term(0)))
    connection.execute("INSERT INTO state VALUES (1, ?, ?, ?, ?, ?, ?)", records.state_row(state))
    connection.execute("INSERT INTO snapshot VALUES (1, ?, ?, ?)", records.snapshot_row(snapshot))


__all__ = ["DiskStorage", "RecoveryReport", "StorageOptions"]
