"""Reading the log's rows back: the recovery scan and range reads.

Theory of operation
-------------------
`load_rows` is recovery's read: the state row, the snapshot row and every
live entry row, in index order. Each entry row's CRC is checked (without
decoding it: the check covers every column), the
indexes must run contiguously from the log start + 1, and the terms must not
decrease; only the last `cached_entries_max` rows are decoded, to seed the
cache. The cost is one pass over the live log: compaction deletes the rows
before the snapshot, so it does not grow with history.

`read_entries` serves a range the cache does not hold, decoding and checking
each row and stopping at the soft size limit, as MemoryStorage does. A row
that fails, or a missing row, raises `CorruptStorage` naming the entry.
"""

from __future__ import annotations

import sqlite3
from array import array
from dataclasses import dataclass
from pathlib import Path

from chainfire_core.raft.messages import Entry, Snapshot
from chainfire_core.types import Index
from real.storage import records
from real.storage.errors import CorruptStorage


@dataclass(slots=True, kw_only=True)
class LogRows:
    """Everything recovery read: the state, the snapshot, the live entries' terms
    and the last few entries decoded."""

    state: records.StateRow
    snapshot: Snapshot
    terms: array[int]
    tail: tuple[Entry, ...]


def load_rows(connection: sqlite3.Connection, path: Path, cached_entries_max: int) -> LogRows:
    state = _load_state(connection, path)
    snapshot = _load_snapshot(connection, path)
    terms: array[int] = array("Q")
    expected, previous_term = state.start_index + 1, state.start_term
    cursor = connection.execute("SELECT idx, term, data, conf, crc FROM entries ORDER BY idx")
    for index, term, data, conf, crc in cursor:
        where = f"entry {index}"
        if index != expected:
            raise CorruptStorage(path, f"entry {expected}",
                                 f"missing (the next row holds entry {index})")
        try:
            records.check_entry_row(index, term, data, conf, crc)
        except records.RecordError as error:
            raise CorruptStorage(path, where, str(error)) from error
        if term < previous_term:
            raise CorruptStorage(path, where, f"term {term} after term {previous_term}")
        terms.append(term)
        expected, previous_term = expected + 1, term
    last_index = state.start_index + len(terms)
    if snapshot.metadata.index > last_index:
        raise CorruptStorage(path, "the snapshot row",
                             f"snapshot at {snapshot.metadata.index} beyond the log's last "
                             f"index {last_index}")
    count = min(len(terms), cached_entries_max)
    tail = read_entries(connection, path, Index(last_index + 1 - count), Index(last_index + 1),
                        None) if count else ()
    return LogRows(state=state, snapshot=snapshot, terms=terms, tail=tail)


def read_entries(connection: sqlite3.Connection, path: Path, lo: Index, hi: Index,
                 max_size_bytes: int | None) -> tuple[Entry, ...]:
    """Entries `lo .. hi-1` from their rows (all present, the caller checked),
    within the soft size limit: never empty when lo < hi."""
    result: list[Entry] = []
    total_bytes = 0
    cursor = connection.execute(
        "SELECT idx, term, data, conf, crc FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
        (lo, hi))
    for index, term, data, conf, crc in cursor:
        expected = lo + len(result)
        if index != expected:
            raise CorruptStorage(path, f"entry {expected}", f"missing (found entry {index})")
        try:
            entry = records.decode_entry_row(index, term, data, conf, crc)
        except records.RecordError as error:
            raise CorruptStorage(path, f"entry {index}", str(error)) from error
        total_bytes += entry.size_bytes
        if result and max_size_bytes is not None and total_bytes > max_size_bytes:
            return tuple(result)  # the soft limit: at least one entry, then what fits
        result.append(entry)
    if len(result) < hi - lo:
        raise CorruptStorage(path, f"entry {lo + len(result)}", "missing")
    return tuple(result)


def _load_state(connection: sqlite3.Connection, path: Path) -> records.StateRow:
    row = connection.execute("SELECT term, vote, hard_commit, start_index, start_term, crc "
                             "FROM state WHERE id = 1").fetchone()
    if row is None:
        raise CorruptStorage(path, "the state row", "missing")
    try:
        return records.decode_state_row(row)
    except records.RecordError as error:
        raise CorruptStorage(path, "the state row", str(error)) from error


def _load_snapshot(connection: sqlite3.Connection, path: Path) -> Snapshot:
    row = connection.execute("SELECT metadata, data, crc FROM snapshot WHERE id = 1").fetchone()
    if row is None:
        raise CorruptStorage(path, "the snapshot row", "missing")
    try:
        return records.decode_snapshot_row(*row)
    except records.RecordError as error:
        raise CorruptStorage(path, "the snapshot row", str(error)) from error


__all__ = ["LogRows", "load_rows", "read_entries"]
