"""How each durable record is turned into bytes and checked when read back.

Theory of operation
-------------------
Every row the storage writes carries a CRC-32 of everything else in it, made
when the row is written and checked whenever the row is read (at recovery,
and on every read from the database afterwards). SQLite keeps the rows
atomic and ordered; the checksums catch what SQLite cannot see: bit rot or a
stray write in a page that still parses. Values are encoded with the core's
deterministic, strict `Codec` over the Raft types (`RAFT_CODEC`), so a record
decodes to exactly the object that was written or raises.

Rows:
- an entry: its index, term and data, and the codec bytes of its conf change
  if it has one (NULL otherwise: the usual entry needs no encoding at all);
- the state row: the hard state and the log start (the index and term of the
  last compacted entry, MemoryStorage's "dummy");
- the snapshot row: the codec bytes of its `SnapshotMetadata`, and its data.

These functions are pure: they know nothing of files or SQLite; a mismatch
is reported as `RecordError(reason)`, which the caller turns into
`CorruptStorage` naming the file and the row.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from chainfire_core.codec import Codec, CodecError
from chainfire_core.raft.messages import (
    ConfChange,
    ConfChangeSingle,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from chainfire_core.types import Index, NodeId, Term

# The order of this list is the on-disk format: append new types at the end only.
RAFT_CODEC = Codec([ConfChange, ConfChangeSingle, SnapshotMetadata, ConfState])

_ENTRY_KEY = struct.Struct(">QQ")
_STATE = struct.Struct(">QQQQQ")


class RecordError(Exception):
    """A row failed its checksum or its decoding (internal: see CorruptStorage)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StateRow:
    """The hard state and the log start (index and term of the last compacted entry)."""

    hard_state: HardState
    start_index: Index
    start_term: Term


# -- entries ------------------------------------------------------------------


def entry_row(entry: Entry) -> tuple[int, int, bytes, bytes | None, int]:
    """The (index, term, data, conf change, crc) row of `entry`; the conf change
    is codec bytes, or None for the usual entry that has none."""
    conf = None if entry.conf_change is None else RAFT_CODEC.encode(entry.conf_change)
    return (entry.index, entry.term, entry.data, conf,
            entry_crc(entry.index, entry.term, entry.data, conf))


def entry_crc(index: int, term: int, data: bytes, conf: bytes | None) -> int:
    crc = zlib.crc32(data, zlib.crc32(_ENTRY_KEY.pack(index, term)))
    return crc if conf is None else zlib.crc32(conf, crc ^ 0xFFFFFFFF)


def check_entry_row(index: int, term: int, data: bytes, conf: bytes | None, crc: int) -> None:
    """Raise RecordError unless the row's checksum matches (no decoding)."""
    try:
        actual = entry_crc(index, term, data, conf)
    except (struct.error, TypeError) as error:  # a column of the wrong type or range
        raise RecordError(f"malformed row: {error}") from error
    if actual != crc:
        raise RecordError("checksum mismatch")


def decode_entry_row(index: int, term: int, data: bytes, conf: bytes | None,
                     crc: int) -> Entry:
    check_entry_row(index, term, data, conf, crc)
    if conf is None:
        return Entry(term=Term(term), index=Index(index), data=data)
    try:
        conf_change = RAFT_CODEC.decode(conf)
    except (CodecError, AssertionError) as error:  # some types check their values by assert
        raise RecordError(f"undecodable conf change: {error}") from error
    if not isinstance(conf_change, ConfChange):
        raise RecordError(f"conf change column holds a {type(conf_change).__name__}")
    return Entry(term=Term(term), index=Index(index), data=data, conf_change=conf_change)


# -- the state row ----------------------------------------------------------------


def state_row(state: StateRow) -> tuple[int, int, int, int, int, int]:
    """The (term, vote, commit, start index, start term, crc) row of `state`."""
    hard = state.hard_state
    values = (hard.term, hard.vote, hard.commit, state.start_index, state.start_term)
    return (*values, zlib.crc32(_STATE.pack(*values)))


def decode_state_row(row: tuple[int, int, int, int, int, int]) -> StateRow:
    *values, crc = row
    try:
        packed = _STATE.pack(*values)
    except (struct.error, TypeError) as error:
        raise RecordError(f"malformed row: {error}") from error
    if zlib.crc32(packed) != crc:
        raise RecordError("checksum mismatch")
    term, vote, commit, start_index, start_term = values
    return StateRow(hard_state=HardState(term=Term(term), vote=NodeId(vote), commit=Index(commit)),
                    start_index=Index(start_index), start_term=Term(start_term))


# -- the snapshot row ----------------------------------------------------------------


def snapshot_row(snapshot: Snapshot) -> tuple[bytes, bytes, int]:
    """The (metadata, data, crc) row of `snapshot`."""
    metadata = RAFT_CODEC.encode(snapshot.metadata)
    return metadata, snapshot.data, zlib.crc32(snapshot.data, zlib.crc32(metadata))


def decode_snapshot_row(metadata: bytes, data: bytes, crc: int) -> Snapshot:
    if not (isinstance(metadata, bytes) and isinstance(data, bytes)):
        raise RecordError("malformed row: metadata and data must be blobs")
    if zlib.crc32(data, zlib.crc32(metadata)) != crc:
        raise RecordError("checksum mismatch")
    try:
        decoded = RAFT_CODEC.decode(metadata)
    except (CodecError, AssertionError) as error:  # ConfState checks its ids by assert
        raise RecordError(f"undecodable metadata: {error}") from error
    if not isinstance(decoded, SnapshotMetadata):
        raise RecordError(f"metadata is a {type(decoded).__name__}")
    return Snapshot(metadata=decoded, data=data)


__all__ = [
    "RAFT_CODEC",
    "RecordError",
    "StateRow",
    "check_entry_row",
    "decode_entry_row",
    "decode_snapshot_row",
    "decode_state_row",
    "entry_crc",
    "entry_row",
    "snapshot_row",
    "state_row",
]
