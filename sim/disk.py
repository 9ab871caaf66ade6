"""A simulated disk for one simulated node: latency, crashes, torn writes, bit rot.

Theory of operation
-------------------
The disk keeps a journal of records, each one operation on the node's Raft
storage (load a whole image, apply a snapshot, append entries, set the hard
state, create a snapshot, compact). Record 0 is always a checkpoint: a whole
`StorageImage`, at first that of the storage handed in.

Durability. `write(ready)` applies the Ready's snapshot, entries and hard
state to the live storage, in the order of the Ready contract, and journals
one *unsynced* record per operation under one write sequence number.
`sync(seq)` is the fsync completing: every record up to `seq` is durable.
The node's own writes (`create_snapshot`, `compact`) are durable at once, as
if the snapshot file were fsynced before the log is cut, and, like etcd's WAL
snapshot record, they sync every record before them. So the durable records
are a prefix of the journal. A shadow storage replays each record as it
becomes durable: it is what a crash now would leave, and it answers the
`durable_*` questions.

Crash: every unsynced record is lost. With `torn_writes` the first lost one
may stay on disk half-written: its bytes cut short (never garbled).
Corruption: `corrupt_random_record` flips one byte of the encoding of a
random durable record (its stored length and checksum stay).

Recovery decodes every record from its bytes, checks its length and CRC-32,
and replays it into a fresh storage by the same operations in the same order
as the live storage saw them. A short *last* record is a torn write: it is
cut off and reported. A wrong checksum anywhere, or a short record before
the last, raises `CorruptLog`: the node must not start on a log it cannot
trust. A wrong checksum in the last record counts as corruption, not as a
torn write: torn writes here only shorten, and cutting off a durable record
would silently forget an acknowledged vote or entry. The recovered storage
must equal the shadow (asserted).

Encoding: the pickle (fixed protocol) of the operation, a frozen dataclass,
plus the CRC-32 of those bytes, made lazily the first time they are needed
(a torn crash, a corruption, a recovery). The operations are immutable, so
encoding late gives the bytes encoding at write time would have given, and
the hot path stays cheap.

Memory stays bounded: when the node journals a snapshot or a compaction, and
whenever `FOLD_AFTER_RECORDS` durable records pile up, the durable prefix is
folded into one new checkpoint (the shadow's image), as a real store writes
a snapshot and deletes old log segments; corruption in them goes with them.
"""

from __future__ import annotations

import math
import pickle
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import assert_never

from chainfire_core.errors import DataError, InvalidRequest
from chainfire_core.raft.messages import ConfState, Entry, HardState, Snapshot
from chainfire_core.raft.rawnode import Ready
from chainfire_core.raft.storage import LogCompacted, LogUnavailable, MemoryStorage
from chainfire_core.types import Index, NodeId, Term

PICKLE_PROTOCOL = 5
# Durable records allowed behind the checkpoint before they are folded into it.
FOLD_AFTER_RECORDS = 1_024
# The chance that a crash with torn_writes leaves the first lost record half-written.
TORN_WRITE_PROBABILITY = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskOptions:
    write_latency_ms: tuple[float, float] = (0.05, 0.5)  # uniform range per write
    fsync_latency_ms: tuple[float, float] = (0.5, 5.0)  # uniform range per fsync
    torn_writes: bool = False  # a crash may leave the first unsynced record half-written
    corruption: bool = False  # enables corrupt_random_record()

    def __post_init__(self) -> None:
        for name in ("write_latency_ms", "fsync_latency_ms"):
            value = getattr(self, name)
            if not (len(value) == 2 and all(math.isfinite(v) for v in value)
                    and 0 <= value[0] <= value[1]):
                raise InvalidRequest(
                    f"disk options: {name} must be a range (lo, hi) with 0 <= lo <= hi, "
                    f"got {value!r}")


class CorruptLog(DataError):
    """A durable record failed its checksum somewhere other than the tail: the
    node must not start. (Also raised for a bad checksum in the last record,
    which a torn write cannot produce; see the module docstring.)"""

    def __init__(self, node_id: NodeId, record_index: int, reason: str) -> None:
        super().__init__(f"node {node_id}: disk record {record_index} is corrupt ({reason}); "
                         "refusing to start")
        self.node_id = node_id
        self.record_index = record_index


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryReport:
    records: int  # durable records replayed
    torn_tail_truncated: bool


# -- the journal's operations ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageImage:
    """Everything a MemoryStorage holds; `entries[0]` is its dummy entry (the
    index and term of the last compacted entry)."""

    snapshot: Snapshot
    entries: tuple[Entry, ...]
    hard_state: HardState

    @classmethod
    def of(cls, storage: MemoryStorage) -> StorageImage:
        first, last = storage.first_index(), storage.last_index()
        dummy = Entry(term=storage.term(Index(first - 1)), index=Index(first - 1))
        entries = (dummy, *storage.entries(first, Index(last + 1), None))
        return cls(snapshot=storage.snapshot(), entries=entries, hard_state=storage.hard_state)


@dataclass(frozen=True, slots=True, kw_only=True)
class _ApplySnapshot:
    snapshot: Snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class _Append:
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _SetHardState:
    hard_state: HardState


@dataclass(frozen=True, slots=True, kw_only=True)
class _CreateSnapshot:
    index: Index
    conf_state: ConfState
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _Compact:
    index: Index


_Operation = StorageImage | _ApplySnapshot | _Append | _SetHardState | _CreateSnapshot | _Compact
_OPERATION_TYPES = (StorageImage, _ApplySnapshot, _Append, _SetHardState, _CreateSnapshot,
                    _Compact)


def _replay(storage: JournaledStorage, operation: _Operation) -> None:
    match operation:
        case StorageImage():
            storage.load_image(operation)
        case _ApplySnapshot(snapshot=snapshot):
            storage.apply_snapshot(snapshot)
        case _Append(entries=entries):
            storage.append(entries)
        case _SetHardState(hard_state=hard_state):
            storage.set_hard_state(hard_state)
        case _CreateSnapshot(index=index, conf_state=conf_state, data=data):
            storage.create_snapshot(index, conf_state, data)
        case _Compact(index=index):
            storage.compact(index)
        case _:
            assert_never(operation)


@dataclass(slots=True, kw_only=True)
class _Record:
    seq: int
    operation: _Operation
    # The bytes on disk, made lazily (see the module docstring): None until needed.
    data: bytes | None = None
    length: int = 0  # of the full encoding, as stored in the record's header
    crc: int = 0

    def encode(self) -> bytes:
        if self.data is None:
            self.data = pickle.dumps(self.operation, protocol=PICKLE_PROTOCOL)
            self.length, self.crc = len(self.data), zlib.crc32(self.data)
        return self.data


# -- the storage the node is given ------------------------------------------------------


class JournaledStorage(MemoryStorage):
    """A MemoryStorage whose writes are journaled by its SimDisk.

    The driver's writes (apply_snapshot, append, set_hard_state) must come
    through `SimDisk.write`; the node's own (create_snapshot, compact) are
    journaled as durable at once. Not attached to a disk (replay, the shadow),
    it is a plain MemoryStorage."""

    __slots__ = ("_disk",)

    def __init__(self) -> None:
        super().__init__()
        self._disk: SimDisk | None = None

    def image(self) -> StorageImage:
        return StorageImage.of(self)

    def load_image(self, image: StorageImage) -> None:
        """Become exactly `image` (a checkpoint being replayed)."""
        assert self._disk is None, "only a storage being rebuilt loads an image"
        self._snapshot = image.snapshot
        self._entries = list(image.entries)
        self._hard_state = image.hard_state
        self.check_invariants()

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        super().apply_snapshot(snapshot)
        self._journal(_ApplySnapshot(snapshot=snapshot))

    def append(self, entries: Sequence[Entry]) -> None:
        super().append(entries)
        if entries:
            self._journal(_Append(entries=tuple(entries)))

    def set_hard_state(self, hard_state: HardState) -> None:
        super().set_hard_state(hard_state)
        self._journal(_SetHardState(hard_state=hard_state))

    def create_snapshot(self, index: Index, conf_state: ConfState, data: bytes = b"") -> Snapshot:
        snapshot = super().create_snapshot(index, conf_state, data)
        self._journal(_CreateSnapshot(index=index, conf_state=conf_state, data=data))
        return snapshot

    def compact(self, compact_index: Index) -> None:
        super().compact(compact_index)
        self._journal(_Compact(index=compact_index))

    def _journal(self, operation: _Operation) -> None:
        if self._disk is not None:
            self._disk._journal(self, operation)


def _fresh_storage(image: StorageImage) -> JournaledStorage:
    storage = JournaledStorage()
    storage.load_image(image)
    return storage


# -- the disk ---------------------------------------------------------------------------


class SimDisk:
    """One node's disk. See the module docstring."""

    def __init__(self, node_id: NodeId, rng: random.Random, options: DiskOptions,
                 storage: MemoryStorage) -> None:
        self.node_id = node_id
        self.options = options
        self._rng = rng
        image = StorageImage.of(storage)
        self._records = [_Record(seq=0, operation=image)]
        self._durable_count = 1  # the durable records are _records[:_durable_count]
        self._durable_seq = 0
        self._last_seq = 0  # the last sequence number handed out
        self._lost_seq = 0  # the last sequence number lost in a crash
        self._open_seq: int | None = None  # set while `write` runs
        self._crashed = False
        self._shadow = _fresh_storage(image)
        self._live = _fresh_storage(image)
        self._live._disk = self

    # -- the live side ----------------------------------------------------------------

    @property
    def storage(self) -> JournaledStorage:
        """The live storage to give the node (a copy of the one handed in)."""
        assert not self._crashed, f"node {self.node_id}: the disk has crashed; recover() first"
        return self._live

    def write(self, ready: Ready) -> int:
        """Persist `ready`'s snapshot, entries and hard state, unsynced; returns
        the write's sequence number, for `sync`."""
        assert not self._crashed, f"node {self.node_id}: write to a crashed disk"
        assert self._open_seq is None, "writes do not nest"
        self._last_seq += 1
        self._open_seq = self._last_seq
        try:
            if ready.snapshot is not None:
                self._live.apply_snapshot(ready.snapshot)
            self._live.append(ready.entries)
            if ready.hard_state is not None:
                self._live.set_hard_state(ready.hard_state)
        finally:
            self._open_seq = None
        return self._last_seq

    def io_delay_ms(self) -> float:
        """How long one Ready's write and fsync take."""
        write_lo, write_hi = self.options.write_latency_ms
        fsync_lo, fsync_hi = self.options.fsync_latency_ms
        return self._rng.uniform(write_lo, write_hi) + self._rng.uniform(fsync_lo, fsync_hi)

    def sync(self, seq: int) -> None:
        """The fsync issued after write `seq` completed: all up to it is durable."""
        assert not self._crashed, f"node {self.node_id}: sync on a crashed disk"
        assert self._open_seq is None
        assert seq <= self._last_seq, ("sync of a write never made", seq, self._last_seq)
        assert seq <= self._durable_seq or seq > self._lost_seq, (
            "sync of a write lost in a crash", seq, self._lost_seq)
        if seq <= self._durable_seq:
            return
        self._durable_seq = seq
        records = self._records
        while self._durable_count < len(records) and records[self._durable_count].seq <= seq:
            _replay(self._shadow, records[self._durable_count].operation)
            self._durable_count += 1
        if self._durable_count > FOLD_AFTER_RECORDS:
            self._fold()

    def _journal(self, storage: JournaledStorage, operation: _Operation) -> None:
        """Called by the live storage after each change it made."""
        assert not self._crashed and storage is self._live, (
            f"node {self.node_id}: a dead process's storage was written to")
        if isinstance(operation, _CreateSnapshot | _Compact):
            assert self._open_seq is None, "the node snapshots outside a write"
            self._last_seq += 1
            self._records.append(_Record(seq=self._last_seq, operation=operation))
            self.sync(self._last_seq)
            self._fold()
        else:
            assert self._open_seq is not None, (
                "persist a Ready through SimDisk.write, not the storage directly")
            self._records.append(_Record(seq=self._open_seq, operation=operation))

    def _fold(self) -> None:
        """Rewrite the durable prefix as one checkpoint: the shadow's image."""
        last_durable = self._records[self._durable_count - 1]
        checkpoint = _Record(seq=last_durable.seq, operation=self._shadow.image())
        self._records[: self._durable_count] = [checkpoint]
        self._durable_count = 1

    # -- what is durable ----------------------------------------------------------------

    @property
    def durable_seq(self) -> int:
        return self._durable_seq

    @property
    def crashed(self) -> bool:
        return self._crashed

    @property
    def record_count(self) -> int:
        """Records in the journal, durable or not (a torn one included)."""
        return len(self._records)

    def durable_hard_state(self) -> HardState:
        return self._shadow.hard_state

    def durable_last_index(self) -> Index:
        return self._shadow.last_index()

    def durable_term_at(self, index: Index) -> Term | None:
        """The term of durable entry `index`; like Storage.term it also answers
        for the last compacted index. None where Storage.term would raise."""
        try:
            return self._shadow.term(index)
        except (LogCompacted, LogUnavailable):
            return None

    def durable_image(self) -> StorageImage:
        """What a crash now would leave (recover() returns a storage equal to it)."""
        return self._shadow.image()

    # -- faults -------------------------------------------------------------------------

    def crash(self) -> int:
        """The process died: drop the unsynced records; returns how many."""
        assert not self._crashed, f"node {self.node_id}: crash of a crashed disk"
        assert self._open_seq is None
        lost = self._records[self._durable_count:]
        del self._records[self._durable_count:]
        self._lost_seq = self._last_seq
        self._crashed = True
        if lost and self.options.torn_writes and self._rng.random() < TORN_WRITE_PROBABILITY:
            first = lost[0]
            data = first.encode()
            kept = self._rng.randrange(1, len(data))
            self._records.append(_Record(seq=first.seq, operation=first.operation,
                                         data=data[:kept], length=first.length, crc=first.crc))
        return len(lost)

    def corrupt_random_record(self) -> int | None:
        """Flip one byte of a random durable record's encoding; its position.

        The checkpoint (record 0) is always durable, so today there is always
        one to corrupt; None would mean there was none."""
        assert self.options.corruption, "corrupt_random_record needs DiskOptions.corruption"
        if self._durable_count == 0:
            return None
        position = self._rng.randrange(self._durable_count)
        record = self._records[position]
        data = bytearray(record.encode())
        data[self._rng.randrange(len(data))] ^= self._rng.randrange(1, 256)
        record.data = bytes(data)
        return position

    # -- recovery -----------------------------------------------------------------------

    def recover(self) -> tuple[JournaledStorage, RecoveryReport]:
        """Rebuild the storage from the durable bytes; raises CorruptLog. The
        disk then goes on with the new storage as its live storage."""
        assert self._crashed, f"node {self.node_id}: recover() restarts a crashed disk"
        storage = JournaledStorage()
        last = len(self._records) - 1
        torn = False
        for position, record in enumerate(self._records):
            data = record.encode()
            if len(data) < record.length:
                if position != last:
                    raise CorruptLog(self.node_id, position, "short record before the tail")
                torn = True
                break
            if zlib.crc32(data) != record.crc:
                raise CorruptLog(self.node_id, position, "checksum mismatch")
            operation = pickle.loads(data)
            assert isinstance(operation, _OPERATION_TYPES), operation
            _replay(storage, operation)
        if torn:
            assert last == self._durable_count, "only an unsynced record can be torn"
            del self._records[last]
        assert len(self._records) == self._durable_count, "recovery replays durable records only"
        assert storage.image() == self._shadow.image(), "replay differs from the durable state"
        storage._disk = self
        self._live = storage
        self._crashed = False
        return storage, RecoveryReport(records=len(self._records), torn_tail_truncated=torn)

    def check_invariants(self) -> None:
        records = self._records
        assert records and isinstance(records[0].operation, StorageImage), "checkpoint first"
        assert 1 <= self._durable_count <= min(len(records), FOLD_AFTER_RECORDS)
        assert self._durable_seq <= self._last_seq and self._lost_seq <= self._last_seq
        for previous, record in pairwise(records):
            assert previous.seq <= record.seq, (previous.seq, record.seq)
        assert records[self._durable_count - 1].seq <= self._durable_seq
        assert all(record.seq > self._durable_seq for record in records[self._durable_count:])
        self._shadow.check_invariants()
        if self._crashed:
            tail = records[self._durable_count:]
            assert len(tail) <= 1, "after a crash only a torn record may follow the durable ones"
            assert all(len(record.encode()) < record.length for record in tail)
            return
        self._live.check_invariants()
        if self._durable_count == len(records):
            assert self._live.image() == self._shadow.image(), "synced, yet live != durable"


__all__ = [
    "FOLD_AFTER_RECORDS",
    "TORN_WRITE_PROBABILITY",
    "CorruptLog",
    "DiskOptions",
    "JournaledStorage",
    "RecoveryReport",
    "SimDisk",
    "StorageImage",
]
