"""The revisioned key-value store (etcd's mvcc store), over a `StorageBackend`.

Theory of operation
-------------------
Every change is written to the backend's "key" bucket under its revision
(see revision.py) and recorded in the in-memory `KeyIndex` under its key. A
read at revision R asks the index which change of each key was visible at R
and fetches that record; so any revision not yet compacted can be read.

Writes happen in write transactions: a top-level put, delete range or txn
opens one at main revision `current + 1`; each change inside takes the next
sub-revision; when the transaction ends with at least one change, `current`
becomes that main revision (one revision per transaction, however many
keys it touched) and the observer (the watchable store) is told. A txn is
checked in full (txn.py, plus the data-dependent checks here) before its
first write, so it applies completely or not at all.

Revisions start where etcd's do: an empty store is at revision 1
(`FIRST_REVISION`: no key ever has it), so the first write gets 2 and no
response ever carries revision 0, which clients read as "any revision"
(a read or watch at revision 0 means "now"). Nothing is stored at
revision 1: a read at 1 sees no keys, a watch from 1 replays from the
first write, and compaction at 1 is allowed once (etcd's empty store has
compacted nothing: its compaction revision starts below 1).

Compaction at C drops every change that no read at or after C can see, from
index and backend, and refuses reads below C with `Compacted`. The store's
metadata (the compaction revision) sits in the backend's "meta" bucket, so
`MvccStore(backend)` over an existing backend rebuilds the index and carries
on where it was.

Leases are not this module's business beyond calling `LeaseHooks`: a put
with a lease attaches the key, an overwrite or delete detaches it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from chainfire_core.config import StateMachineConfig
from chainfire_core.errors import (
    Compacted,
    FutureRevision,
    InvalidRequest,
    KeyNotFound,
    LeaseNotFound,
    RequestTooLarge,
)
from chainfire_core.mvcc.key_index import KeyIndex
from chainfire_core.mvcc.messages import (
    CompactionRequest,
    CompactionResponse,
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RequestOp,
    ResponseHeader,
    ResponseOp,
    SortOrder,
    TxnRequest,
    TxnResponse,
    make_key_value,
)
from chainfire_core.mvcc.range_query import needs_all_records, select_in_key_order, select_kvs
from chainfire_core.mvcc.revision import (
    MAIN_LIMIT,
    RECORD_HEADER_SIZE,
    SHIFT_MAIN,
    TOMBSTONE_BIT,
    backend_key,
    backend_key_of_main,
    encode_record,
    encode_tombstone,
    main_of,
    packed_from_backend_key,
    record_header,
)
from chainfire_core.mvcc.txn import check_duplicates, check_shape, compare_holds, in_range
from chainfire_core.storage import BatchDelete, BatchOp, BatchPut, StorageBackend
from chainfire_core.types import NO_LEASE, LeaseId, Revision

KEY_BUCKET = "key"
META_BUCKET = "meta"
_COMPACT_REVISION_KEY = b"compact_revision"
# The revision of an empty store (etcd's): the first write gets the next one.
FIRST_REVISION = Revision(1)


class LeaseHooks(Protocol):
    def exists(self, lease_id: LeaseId) -> bool: ...
    def attach(self, lease_id: LeaseId, key: bytes) -> None: ...
    def detach(self, lease_id: LeaseId, key: bytes) -> None: ...


class WriteObserver(Protocol):
    def on_write(self, revision: Revision, changes: Sequence[tuple[bytes, int]]) -> None:
        """Called once per write transaction with its (key, packed revision) changes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KVHash:
    """A hash of the live key-value state at `revision` (HashKV)."""

    hash: int
    revision: Revision
    compact_revision: Revision


@dataclass(frozen=True, slots=True, kw_only=True)
class _Path:
    """The branch a txn takes, and the paths of the nested txns on it."""

    succeeded: bool
    nested: tuple[_Path, ...]


class MvccStore:
    """etcd's revisioned store: range, put, delete range, txn, compact."""

    def __init__(
        self,
        backend: StorageBackend,
        config: StateMachineConfig | None = None,
        leases: LeaseHooks | None = None,
    ) -> None:
        self._backend = backend
        self._config = config or StateMachineConfig()
        self._leases = leases
        self.observer: WriteObserver | None = None
        self._index = KeyIndex()
        self._revision = int(FIRST_REVISION)
        self._compact_revision = 0
        # The open write transaction: its main revision (0 when none is
        # open), its next sub-revision and the changes made so far.
        self._write_main = 0
        self._write_sub = 0
        self._changes: list[tuple[bytes, int]] = []
        self._cached_header = ResponseHeader(revision=FIRST_REVISION)
        self._rebuild()

    # -- state ---------------------------------------------------------------

    @property
    def current_revision(self) -> Revision:
        return Revision(self._revision)

    @property
    def compact_revision(self) -> Revision:
        return Revision(self._compact_revision)

    @property
    def backend(self) -> StorageBackend:
        return self._backend

    def _rebuild(self) -> None:
        """Rebuild the index from the backend (start-up and snapshot restore)."""
        self._index = KeyIndex()
        raw = self._backend.get(META_BUCKET, _COMPACT_REVISION_KEY)
        self._compact_revision = 0 if raw is None else int.from_bytes(raw, "big")
        last_main = 0
        for rev_key, record in self._backend.range(KEY_BUCKET, b""):
            flags, _, _, _, key_len = record_header(record)
            packed = packed_from_backend_key(rev_key, bool(flags))
            key = record[RECORD_HEADER_SIZE : RECORD_HEADER_SIZE + key_len]
            self._index.record(key, packed)
            last_main = main_of(packed)
        self._revision = max(last_main, self._compact_revision, FIRST_REVISION)

    def set_lease_hooks(self, leases: LeaseHooks | None) -> None:
        """Hand lease attach/detach to another lessor (after a snapshot restore)."""
        assert not self._write_main, "lease hooks changed inside a write transaction"
        self._leases = leases

    def reload(self) -> None:
        """Re-read everything from the backend (after `backend.restore`)."""
        assert not self._write_main, "reload inside a write transaction"
        self._rebuild()

    # -- reads ---------------------------------------------------------------

    def _view_revision(self) -> int:
        """The revision a read sees now: inside a write txn that has changed
        something, its own changes are visible."""
        if self._write_main and self._changes:
            return self._write_main
        return self._revision

    def _check_read_revision(self, revision: int) -> int:
        current = self._revision
        if revision == 0:
            return self._view_revision()
        if revision > current:
            raise FutureRevision(revision, current)
        if revision < self._compact_revision:
            raise Compacted(revision, self._compact_revision)
        return revision

    def kv_of(self, key: bytes, packed: int) -> KeyValue:
        """The KeyValue stored by the live change `packed` of `key`."""
        record = self._backend.get(KEY_BUCKET, backend_key(packed))
        assert record is not None, ("index names a missing record", key, packed)
        flags, create, version, lease, key_len = record_header(record)
        assert not flags, ("a tombstone read as a value", key, packed)
        value = record[RECORD_HEADER_SIZE + key_len :]
        return make_key_value(key, create, packed >> SHIFT_MAIN, version, value, lease)

    def _kvs_of(self, live: Sequence[tuple[bytes, int]]) -> list[KeyValue]:
        """`kv_of` for many keys: one backend call, no per-key helper calls
        (range reads spend their time here)."""
        records = self._backend.get_many(KEY_BUCKET, [backend_key(p) for _, p in live])
        unpack, header_size = record_header, RECORD_HEADER_SIZE
        kvs = []
        for (key, packed), record in zip(live, records, strict=True):
            assert record is not None, ("index names a missing record", key, packed)
            flags, create, version, lease, key_len = unpack(record)
            assert not flags, ("a tombstone read as a value", key, packed)
            value = record[header_size + key_len :]
            kvs.append(make_key_value(key, create, packed >> SHIFT_MAIN, version, value, lease))
        return kvs

    def kv_at(self, key: bytes, revision: int) -> KeyValue | None:
        """The key's value at `revision` (no compaction check), or None."""
        packed = self._index.visible_at(key, revision)
        return None if packed is None else self.kv_of(key, packed)

    def live_kvs(self, key: bytes, range_end: bytes, revision: int) -> list[KeyValue]:
        """Every key-value live at `revision` in the range, in key order."""
        return self._kvs_of(self._index.live_in(key, range_end, revision))

    def range(self, request: RangeRequest) -> RangeResponse:
        """Read at `request.revision` (0: now). As in etcd, the header carries
        the store's current revision, whatever revision was read."""
        revision = self._check_read_revision(request.revision)
        now = self._view_revision()
        if not request.range_end:
            # Fast path for the most common read: one key.
            packed = self._index.visible_at(request.key, revision)
            if packed is None:
                return select_kvs(request, (), Revision(now))
            kv = self.kv_of(request.key, packed)
            if request.keys_only or request.count_only or request.min_mod_revision or (
                request.max_mod_revision or request.min_create_revision
                or request.max_create_revision
            ):
                return select_kvs(request, (kv,), Revision(now))
            # One key needs no sort and no limit.
            return RangeResponse(header=self._header_at(now), kvs=(kv,), more=False, count=1)
        if revision == now and not (
            needs_all_records(request) or request.min_mod_revision or request.max_mod_revision
        ):
            return self._range_now(request, revision)
        live = self._index.live_in(request.key, request.range_end, revision)
        if needs_all_records(request):
            return select_kvs(request, self._kvs_of(live), Revision(now))
        # Key order, at most mod-revision filters: count and cut on the index
        # alone, and read only the records that will be returned.
        count = len(live)
        chosen, more = select_in_key_order(request, live)
        return select_kvs(request, self._kvs_of(chosen), Revision(now), count=count, more=more)

    def _range_now(self, request: RangeRequest, revision: int) -> RangeResponse:
        """A range at the newest revision in key order: count from the index,
        then read only the keys that will be returned (pagination with
        `limit` stays cheap however large the range)."""
        count = self._index.count_live_now(request.key, request.range_end)
        if request.count_only:
            return select_kvs(request, (), Revision(revision), count=count, more=False)
        descending = request.sort_order == SortOrder.DESCEND
        chosen = self._index.live_now_in(
            request.key, request.range_end, request.limit, descending=descending
        )
        more = bool(request.limit) and count > request.limit
        return select_kvs(request, self._kvs_of(chosen), Revision(revision), count=count, more=more)

    # -- writes --------------------------------------------------------------

    def _begin_write(self) -> None:
        assert not self._write_main, "nested write transaction"
        assert self._revision + 1 < MAIN_LIMIT, "revision beyond the 8-byte backend key"
        self._write_main = self._revision + 1
        self._write_sub = 0
        self._changes = []

    def _end_write(self) -> int:
        main = self._write_main
        self._write_main = 0
        if not self._changes:
            return self._revision
        self._revision = main
        if self.observer is not None:
            self.observer.on_write(Revision(main), self._changes)
        return main

    def _next_packed(self, tombstone: bool) -> int:
        sub = self._write_sub
        assert sub < self._config.max_sub_revisions, "change count not checked before writing"
        self._write_sub = sub + 1
        return self._write_main << SHIFT_MAIN | sub << 1 | tombstone

    def _check_put(self, request: PutRequest, *, in_txn: bool = False) -> None:
        size = len(request.key) + len(request.value)
        if size > self._config.max_request_bytes:
            raise RequestTooLarge(size, self._config.max_request_bytes)
        # etcd checks a put's lease before its key (ignore_value/ignore_lease),
        # but inside a txn the key before the lease; we answer as etcd does.
        if in_txn:
            self._check_put_key(request)
            self._check_put_lease(request)
        else:
            self._check_put_lease(request)
            self._check_put_key(request)

    def _check_put_key(self, request: PutRequest) -> None:
        if request.ignore_value or request.ignore_lease:
            latest = self._index.latest(request.key)
            if latest is None or latest & TOMBSTONE_BIT:
                raise KeyNotFound(request.key)

    def _check_put_lease(self, request: PutRequest) -> None:
        if request.lease != NO_LEASE and (
            self._leases is None or not self._leases.exists(request.lease)
        ):
            raise LeaseNotFound(request.lease)

    def put(self, request: PutRequest) -> PutResponse:
        self._check_put(request)
        self._begin_write()
        try:
            response = self._put(request)
        finally:
            self._end_write()
        return response

    def _put(self, request: PutRequest) -> PutResponse:
        key = request.key
        latest = self._index.latest(key)
        prev: KeyValue | None = None
        create, version, lease = self._write_main, 1, request.lease
        prev_lease: int = NO_LEASE
        value = request.value
        if latest is not None and not latest & TOMBSTONE_BIT:
            if request.prev_kv or request.ignore_value:
                prev = self.kv_of(key, latest)
            record = self._backend.get(KEY_BUCKET, backend_key(latest))
            assert record is not None, ("index names a missing record", key, latest)
            _, create, prev_version, prev_lease, _ = record_header(record)
            version = prev_version + 1
            if request.ignore_value:
                assert prev is not None
                value = prev.value
            if request.ignore_lease:
                lease = LeaseId(prev_lease)
        packed = self._next_packed(False)
        self._backend.put(
            KEY_BUCKET, backend_key(packed), encode_record(key, value, create, version, lease)
        )
        self._index.record(key, packed)
        self._changes.append((key, packed))
        if prev_lease != lease:
            self._move_lease(key, LeaseId(prev_lease), lease)
        return PutResponse(
            header=self._header_at(self._write_main), prev_kv=prev if request.prev_kv else None
        )

    def _header_at(self, revision: int) -> ResponseHeader:
        """A shared header for `revision`: responses at one revision reuse it
        (it is immutable), which saves an allocation per request."""
        cached = self._cached_header
        if cached.revision != revision:
            cached = self._cached_header = ResponseHeader(revision=Revision(revision))
        return cached

    def _move_lease(self, key: bytes, old: LeaseId, new: LeaseId) -> None:
        if old == new or self._leases is None:
            return
        if old != NO_LEASE:
            self._leases.detach(old, key)
        if new != NO_LEASE:
            self._leases.attach(new, key)

    def delete_range(self, request: DeleteRangeRequest) -> DeleteRangeResponse:
        self._begin_write()
        try:
            response = self._delete_range(request)
        finally:
            self._end_write()
        return response

    def _check_change_count(self, count: int) -> None:
        # Checked before the first write, so a refused request writes nothing.
        already = self._write_sub if self._write_main else 0
        if already + count > self._config.max_sub_revisions:
            raise InvalidRequest("etcdserver: too many changes in one transaction")

    def _delete_range(self, request: DeleteRangeRequest) -> DeleteRangeResponse:
        doomed = self.live_kvs(request.key, request.range_end, self._view_revision())
        self._check_change_count(len(doomed))
        for kv in doomed:
            packed = self._next_packed(True)
            self._backend.put(KEY_BUCKET, backend_key(packed), encode_tombstone(kv.key))
            self._index.record(kv.key, packed)
            self._changes.append((kv.key, packed))
            self._move_lease(kv.key, kv.lease, NO_LEASE)
        # Once the write txn has changed anything, its revision is the answer
        # (etcd's rule), even for a delete that found nothing.
        revision = self._write_main if self._changes else self._revision
        return DeleteRangeResponse(
            header=ResponseHeader(revision=Revision(revision)),
            deleted=len(doomed),
            prev_kvs=tuple(doomed) if request.prev_kv else (),
        )

    def delete_keys(self, keys: Sequence[bytes]) -> Revision:
        """Delete every live key of `keys` in one write transaction (a lease
        revoke); return the revision that results."""
        self._begin_write()
        try:
            self._check_change_count(len(keys))
            for key in keys:
                self._delete_range(DeleteRangeRequest(key=key))
        finally:
            revision = self._end_write()
        return Revision(revision)

    def txn(self, request: TxnRequest) -> TxnResponse:
        check_shape(request, self._config.max_txn_ops)
        check_duplicates(request.success)
        check_duplicates(request.failure)
        path = self._choose_path(request)
        self._check_change_count(self._check_path(request, path))
        self._begin_write()
        try:
            response = self._run_txn(request, path)
        finally:
            revision = self._end_write()
        return TxnResponse(
            header=ResponseHeader(revision=Revision(revision)),
            succeeded=response.succeeded,
            responses=response.responses,
        )

    def _choose_path(self, request: TxnRequest) -> _Path:
        revision = self._revision
        succeeded = all(
            compare_holds(c, self.live_kvs(c.key, c.range_end, revision)) for c in request.compare
        )
        branch = request.success if succeeded else request.failure
        nested = tuple(self._choose_path(op) for op in branch if isinstance(op, TxnRequest))
        return _Path(succeeded=succeeded, nested=nested)

    def _check_path(self, request: TxnRequest, path: _Path,
                    puts: list[bytes] | None = None) -> int:
        """Check every op on the path against the data; return an upper
        bound on the changes the path makes: each put, and for each delete
        the keys live before the txn plus the keys the path put earlier in
        its range. Checking that bound before the first write means a txn is
        refused whole or applied whole (one near the limit may be refused
        although it would just fit)."""
        puts = [] if puts is None else puts
        nested = iter(path.nested)
        changes = 0
        for op in request.success if path.succeeded else request.failure:
            match op:
                case PutRequest():
                    self._check_put(op, in_txn=True)
                    puts.append(op.key)
                    changes += 1
                case RangeRequest():
                    self._check_read_revision(op.revision)
                case TxnRequest():
                    changes += self._check_path(op, next(nested), puts)
                case DeleteRangeRequest():
                    changes += len(self._index.live_in(op.key, op.range_end, self._revision))
                    changes += sum(1 for key in puts if in_range(key, op.key, op.range_end))
        return changes

    def _run_txn(self, request: TxnRequest, path: _Path) -> TxnResponse:
        nested = iter(path.nested)
        responses: list[ResponseOp] = []
        for op in request.success if path.succeeded else request.failure:
            responses.append(self._run_op(op, nested))
        return TxnResponse(
            header=ResponseHeader(revision=Revision(self._view_revision())),
            succeeded=path.succeeded,
            responses=tuple(responses),
        )

    def _run_op(self, op: RequestOp, nested: Iterator[_Path]) -> ResponseOp:
        match op:
            case RangeRequest():
                return self.range(op)
            case PutRequest():
                return self._put(op)
            case DeleteRangeRequest():
                return self._delete_range(op)
            case TxnRequest():
                return self._run_txn(op, next(nested))

    # -- compaction, hashing, history -----------------------------------------

    def compact(self, request: CompactionRequest) -> CompactionResponse:
        revision = request.revision
        if revision > self._revision:
            raise FutureRevision(revision, self._revision)
        if revision <= self._compact_revision:
            raise Compacted(revision, self._compact_revision)
        dropped = self._index.compact(revision)
        ops: list[BatchOp] = [BatchDelete(bucket=KEY_BUCKET, key=backend_key(p)) for p in dropped]
        marker = revision.to_bytes(8, "big")
        ops.append(BatchPut(bucket=META_BUCKET, key=_COMPACT_REVISION_KEY, value=marker))
        self._backend.write_batch(ops)
        self._compact_revision = revision
        return CompactionResponse(header=ResponseHeader(revision=Revision(self._revision)))

    def hash_kv(self, revision: int = 0) -> KVHash:
        """A hash of every live key-value at `revision` (0: current); equal
        on replicas that hold the same data, whatever their compaction."""
        at = self._check_read_revision(revision)
        digest = hashlib.blake2b(digest_size=8)
        for kv in self.live_kvs(b"\0", b"\0", at):
            for part in (kv.key, kv.value):
                digest.update(len(part).to_bytes(4, "big"))
                digest.update(part)
            for number in (kv.create_revision, kv.mod_revision, kv.version, kv.lease):
                digest.update(number.to_bytes(8, "big", signed=True))
        return KVHash(
            hash=int.from_bytes(digest.digest(), "big"),
            revision=Revision(at),
            compact_revision=Revision(self._compact_revision),
        )

    def events_between(self, start: int, end: int, *, with_prev: bool = False) -> Iterator[Event]:
        """Every change with start <= main revision <= end, in revision order.
        The caller checks `start` against the compaction revision."""
        assert start > self._compact_revision or start == 0 or self._compact_revision == 0
        stop = backend_key_of_main(end + 1)
        for rev_key, record in self._backend.range(KEY_BUCKET, backend_key_of_main(start), stop):
            yield self._event_of(rev_key, record, with_prev)

    def _event_of(self, rev_key: bytes, record: bytes, with_prev: bool) -> Event:
        flags, create, version, lease, key_len = record_header(record)
        main = main_of(packed_from_backend_key(rev_key, False))
        key = record[RECORD_HEADER_SIZE : RECORD_HEADER_SIZE + key_len]
        prev = self.kv_at(key, main - 1) if with_prev else None
        if flags:
            return Event(
                type=EventType.DELETE, kv=make_key_value(key, 0, main, 0, b"", 0), prev_kv=prev
            )
        value = record[RECORD_HEADER_SIZE + key_len :]
        kv = make_key_value(key, create, main, version, value, lease)
        return Event(type=EventType.PUT, kv=kv, prev_kv=prev)

    def event_of(self, packed: int, *, with_prev: bool = False) -> Event:
        """The event of one change (for watchers told by `on_write`)."""
        rev_key = backend_key(packed)
        record = self._backend.get(KEY_BUCKET, rev_key)
        assert record is not None, ("change without a record", packed)
        return self._event_of(rev_key, record, with_prev)

    def check_invariants(self, *, deep: bool = False) -> None:
        assert not self._write_main, "a write transaction was left open"
        assert 0 <= self._compact_revision <= self._revision
        assert self._revision >= FIRST_REVISION, self._revision
        self._index.check_invariants()
        if deep:
            indexed = self._backend.count(KEY_BUCKET)
            total = sum(1 for _ in self._backend.range(KEY_BUCKET, b""))
            assert indexed == total
            for rev_key, record in self._backend.range(KEY_BUCKET, b""):
                assert main_of(packed_from_backend_key(rev_key, False)) <= self._revision
                assert len(record) >= RECORD_HEADER_SIZE


__all__ = ["FIRST_REVISION", "KEY_BUCKET", "META_BUCKET", "KVHash", "LeaseHooks", "MvccStore",
           "WriteObserver"]
