"""A deliberately naive reference model of etcd v3's KV and lease semantics.

It keeps the full state of every revision in a plain list (`states[r]` is a
dict key -> KeyValue holding exactly the keys live at revision r) and answers
every request by looking at those dicts. Nothing is indexed, nothing is
incremental, nothing is shared with chainfire_core except the message and
error types: it is meant to be slow and obviously right.

The rules, in etcd's words (server/etcdserver/txn, mvcc/kvstore_txn.go and
api/v3rpc/key.go), are:

Revisions
  * an empty store is at revision 1 (nothing is stored there); the first
    write gets revision 2, so no response ever carries revision 0.

Range
  * revision 0 reads the current revision; a revision above it is
    FutureRevision, one below the compaction revision is Compacted (reading at
    the compaction revision itself is fine).
  * `count` is the number of live keys in the range, before any filter/limit.
  * min/max mod/create revision filters, then sort (a target other than KEY
    with order NONE sorts ascending), then `limit` (`more` says it cut).
    etcd leaves the order of ties unspecified; we pin it to key order.
  * count_only returns no kvs; keys_only blanks the values.
  * the header carries the revision of the store (the view, inside a txn),
    not the revision read at.

Put / DeleteRange / Txn
  * one revision per write request, however many keys; a request that changes
    nothing (read-only txn, delete of nothing) leaves the revision alone.
  * a put keeps create_revision and bumps version of a live key, and starts a
    new generation (create = this revision, version 1) otherwise.
  * put with an unknown lease -> LeaseNotFound; ignore_value/ignore_lease on a
    missing key -> KeyNotFound (top-level put: lease checked first; inside a
    txn: key checked first, as etcd's checkPut does).
  * txn: TooManyOps (compares count as ops; a nested txn gets the budget
    left by its parent), then DuplicateKey (success, then failure branch),
    then the branch path is chosen by evaluating every compare, nested ones
    included, against the state before the txn; then the ops on that path are
    checked in order; only then is anything written.
  * compares hold only if they hold for every key in the range; an empty
    range compares against zero values, except that VALUE fails.
  * reads inside a txn see the txn's earlier writes (revision 0), or the
    given historical revision.
  * sub-response headers: a put reports the txn's revision; a delete reports
    it once the txn has changed anything, else the pre-txn revision; a range
    reports the view revision; a nested txn reports the view revision after
    its own ops (etcd leaves that header empty; we pin it).

Compaction: at or below the compaction revision -> Compacted; above the
current revision -> FutureRevision.

Leases: grant with an id (LeaseExists if taken) or 0 (the lowest free id from
a counter that only moves forward); TTL raised to the minimum; revoke deletes
every key attached to the lease (the live keys whose `lease` field names it)
in one revision, none -> no revision. A lessor that keeps time expires a
lease at grant/renew/promotion time + TTL.

`deviations` switches on named, documented differences between this model and
chainfire_core that are known bugs (see test_mvcc_model.py); with an empty
set the model is pure etcd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from chainfire_core.errors import (
    Compacted,
    DuplicateKey,
    FutureRevision,
    KeyNotFound,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    TooManyOps,
)
from chainfire_core.lease.messages import (
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
)
from chainfire_core.mvcc.messages import (
    CompactionRequest,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RequestOp,
    ResponseHeader,
    ResponseOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from chainfire_core.types import LeaseId, Revision

State = dict[bytes, KeyValue]

# Known differences between chainfire_core and etcd (each one a reported bug).
# A top-level put checks ignore_value/ignore_lease's key before its lease
# (etcd checks the lease first there, and the key first inside a txn).
PUT_CHECKS_KEY_BEFORE_LEASE = "put_checks_key_before_lease"

ALL_DEVIATIONS = frozenset({PUT_CHECKS_KEY_BEFORE_LEASE})

MS_PER_S = 1000


def in_range(key: bytes, range_end: bytes, candidate: bytes) -> bool:
    """Whether etcd's (key, range_end) selects `candidate`."""
    if range_end == b"":
        return candidate == key
    if range_end == b"\0":
        return candidate >= key
    return key <= candidate < range_end


def keys_in(state: State, key: bytes, range_end: bytes) -> list[bytes]:
    return sorted(k for k in state if in_range(key, range_end, k))


def _compare_ints_or_bytes(result: CompareResult, left: int | bytes, right: int | bytes) -> bool:
    if result == CompareResult.EQUAL:
        return left == right
    if result == CompareResult.NOT_EQUAL:
        return left != right
    if result == CompareResult.GREATER:
        return left > right  # type: ignore[operator]
    return left < right  # type: ignore[operator]


def compare_holds(state: State, compare: Compare) -> bool:
    found = [state[k] for k in keys_in(state, compare.key, compare.range_end)]
    if not found:
        if compare.target == CompareTarget.VALUE:
            return False
        return _compare_ints_or_bytes(compare.result, 0, compare.value)
    for kv in found:
        if compare.target == CompareTarget.VALUE:
            left: int | bytes = kv.value
        elif compare.target == CompareTarget.VERSION:
            left = kv.version
        elif compare.target == CompareTarget.CREATE:
            left = kv.create_revision
        elif compare.target == CompareTarget.MOD:
            left = kv.mod_revision
        else:
            left = kv.lease
        if not _compare_ints_or_bytes(compare.result, left, compare.value):
            return False
    return True


def _sort_value(target: SortTarget) -> Callable[[KeyValue], int | bytes]:
    def value_of(kv: KeyValue) -> int | bytes:
        if target == SortTarget.KEY:
            return kv.key
        if target == SortTarget.VERSION:
            return kv.version
        if target == SortTarget.CREATE:
            return kv.create_revision
        if target == SortTarget.MOD:
            return kv.mod_revision
        return kv.value

    return value_of


def shape_range(request: RangeRequest, state: State, header_revision: int) -> RangeResponse:
    """etcd's executeRange over the live keys of `state`."""
    kvs = [state[k] for k in keys_in(state, request.key, request.range_end)]
    count = len(kvs)
    header = ResponseHeader(revision=Revision(header_revision))
    if request.count_only:
        return RangeResponse(header=header, kvs=(), more=False, count=count)
    if request.max_mod_revision:
        kvs = [kv for kv in kvs if kv.mod_revision <= request.max_mod_revision]
    if request.min_mod_revision:
        kvs = [kv for kv in kvs if kv.mod_revision >= request.min_mod_revision]
    if request.max_create_revision:
        kvs = [kv for kv in kvs if kv.create_revision <= request.max_create_revision]
    if request.min_create_revision:
        kvs = [kv for kv in kvs if kv.create_revision >= request.min_create_revision]
    order = request.sort_order
    if order == SortOrder.NONE and request.sort_target != SortTarget.KEY:
        order = SortOrder.ASCEND
    if order != SortOrder.NONE:
        # kvs are in key order, and Python's sort is stable (also with
        # reverse=True), so ties stay in key order.
        kvs = sorted(
            kvs, key=_sort_value(request.sort_target), reverse=order == SortOrder.DESCEND
        )
    more = False
    if request.limit and len(kvs) > request.limit:
        kvs = kvs[: request.limit]
        more = True
    if request.keys_only:
        kvs = [replace(kv, value=b"") for kv in kvs]
    return RangeResponse(header=header, kvs=tuple(kvs), more=more, count=count)


# -- txn request checks that need no state ------------------------------------


def check_txn_shape(txn: TxnRequest, max_txn_ops: int) -> None:
    """etcd's checkTxnRequest: ops = max(#compares, #success, #failure) must fit
    the budget; each nested txn gets the budget minus its parent's ops."""
    ops = max(len(txn.compare), len(txn.success), len(txn.failure))
    if ops > max_txn_ops:
        raise TooManyOps(ops, max_txn_ops)
    for op in (*txn.success, *txn.failure):
        if isinstance(op, TxnRequest):
            check_txn_shape(op, max_txn_ops - ops)


def branch_writes(ops: Sequence[RequestOp]) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    """etcd's checkIntervals: raise DuplicateKey if a branch puts a key twice
    or puts inside one of its deletes; return (puts, deletes) of the branch."""
    deletes = [(op.key, op.range_end) for op in ops if isinstance(op, DeleteRangeRequest)]

    def deleted(key: bytes) -> bool:
        return any(in_range(start, end, key) for start, end in deletes)

    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, TxnRequest):
            continue
        then_puts, then_deletes = branch_writes(op.success)
        else_puts, else_deletes = branch_writes(op.failure)
        for key in then_puts:
            if key in puts or deleted(key):
                raise DuplicateKey(key)
        puts |= then_puts
        for key in else_puts:
            # then and else exclude each other: the same key in both is fine.
            if (key in puts and key not in then_puts) or deleted(key):
                raise DuplicateKey(key)
        puts |= else_puts
        deletes += then_deletes + else_deletes
    for op in ops:
        if isinstance(op, PutRequest):
            if op.key in puts or deleted(op.key):
                raise DuplicateKey(op.key)
            puts.add(op.key)
    return puts, deletes


# -- the model --------------------------------------------------------------------


@dataclass
class ModelLease:
    id: int
    ttl_s: int
    # None while the lessor keeps no time (a follower).
    expiry_ms: int | None = None


@dataclass
class _TxnRun:
    """A write in progress: the revision before it and the state it builds."""

    begin: int
    work: State
    changed: bool = False

    @property
    def view_revision(self) -> int:
        return self.begin + 1 if self.changed else self.begin


@dataclass
class ReferenceModel:
    max_txn_ops: int = 128
    min_lease_ttl_s: int = 1
    max_lease_ttl_s: int = 9_000_000_000
    deviations: frozenset[str] = frozenset()
    # states[r] for every revision r; an empty store is at revision 1, as
    # etcd's (states[0] stands for nothing: revision 0 means "now").
    states: list[State] = field(default_factory=lambda: [{}, {}])
    compact_revision: int = 0
    leases: dict[int, ModelLease] = field(default_factory=dict)
    next_lease_id: int = 1
    keeps_time: bool = False

    # -- state -------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return len(self.states) - 1

    @property
    def current(self) -> State:
        return self.states[-1]

    def _header(self) -> ResponseHeader:
        return ResponseHeader(revision=Revision(self.revision))

    def _commit(self, run: _TxnRun) -> int:
        if run.changed:
            self.states.append(run.work)
        return self.revision

    def _new_run(self) -> _TxnRun:
        return _TxnRun(begin=self.revision, work=dict(self.current))

    def lease_keys(self, lease_id: int) -> tuple[bytes, ...]:
        return tuple(sorted(k for k, kv in self.current.items() if kv.lease == lease_id))

    # -- reads -------------------------------------------------------------------

    def _check_read_revision(self, revision: int) -> None:
        if revision > self.revision:
            raise FutureRevision(revision, self.revision)
        if revision and revision < self.compact_revision:
            raise Compacted(revision, self.compact_revision)

    def range(self, request: RangeRequest) -> RangeResponse:
        self._check_read_revision(request.revision)
        state = self.states[request.revision or self.revision]
        return shape_range(request, state, self.revision)

    # -- writes ------------------------------------------------------------------

    def _check_put(self, request: PutRequest, *, in_txn: bool) -> None:
        def check_key() -> None:
            if (request.ignore_value or request.ignore_lease) and request.key not in self.current:
                raise KeyNotFound(request.key)

        def check_lease() -> None:
            if request.lease and request.lease not in self.leases:
                raise LeaseNotFound(request.lease)

        if in_txn or PUT_CHECKS_KEY_BEFORE_LEASE in self.deviations:
            check_key()
            check_lease()
        else:
            check_lease()
            check_key()

    def put(self, request: PutRequest) -> PutResponse:
        self._check_put(request, in_txn=False)
        run = self._new_run()
        response = self._put(request, run)
        self._commit(run)
        return response

    def _put(self, request: PutRequest, run: _TxnRun) -> PutResponse:
        revision = run.begin + 1
        prev = run.work.get(request.key)
        value, lease = request.value, request.lease
        if request.ignore_value:
            assert prev is not None
            value = prev.value
        if request.ignore_lease:
            assert prev is not None
            lease = prev.lease
        run.work[request.key] = KeyValue(
            key=request.key,
            create_revision=Revision(revision if prev is None else prev.create_revision),
            mod_revision=Revision(revision),
            version=1 if prev is None else prev.version + 1,
            value=value,
            lease=lease,
        )
        run.changed = True
        return PutResponse(
            header=ResponseHeader(revision=Revision(revision)),
            prev_kv=prev if request.prev_kv else None,
        )

    def delete_range(self, request: DeleteRangeRequest) -> DeleteRangeResponse:
        run = self._new_run()
        response = self._delete(request, run)
        self._commit(run)
        return response

    def _delete(self, request: DeleteRangeRequest, run: _TxnRun) -> DeleteRangeResponse:
        changed_before = run.changed
        doomed = [run.work.pop(k) for k in keys_in(run.work, request.key, request.range_end)]
        if doomed:
            run.changed = True
        revision = run.begin + 1 if doomed or changed_before else run.begin
        return DeleteRangeResponse(
            header=ResponseHeader(revision=Revision(revision)),
            deleted=len(doomed),
            prev_kvs=tuple(doomed) if request.prev_kv else (),
        )

    # -- txn -----------------------------------------------------------------------

    def _branch(self, txn: TxnRequest) -> tuple[bool, tuple[RequestOp, ...]]:
        """The branch a txn takes: compares always see the state before the txn."""
        succeeded = all(compare_holds(self.current, c) for c in txn.compare)
        return succeeded, txn.success if succeeded else txn.failure

    def _check_path(self, txn: TxnRequest) -> None:
        _, ops = self._branch(txn)
        for op in ops:
            if isinstance(op, PutRequest):
                self._check_put(op, in_txn=True)
            elif isinstance(op, RangeRequest):
                self._check_read_revision(op.revision)
            elif isinstance(op, TxnRequest):
                self._check_path(op)

    def txn(self, request: TxnRequest) -> TxnResponse:
        check_txn_shape(request, self.max_txn_ops)
        branch_writes(request.success)
        branch_writes(request.failure)
        self._check_path(request)
        run = self._new_run()
        response = self._run_txn(request, run)
        revision = self._commit(run)
        return replace(response, header=ResponseHeader(revision=Revision(revision)))

    def _run_txn(self, txn: TxnRequest, run: _TxnRun) -> TxnResponse:
        succeeded, ops = self._branch(txn)
        responses: list[ResponseOp] = []
        for op in ops:
            if isinstance(op, RangeRequest):
                state = self.states[op.revision] if op.revision else run.work
                responses.append(shape_range(op, state, run.view_revision))
            elif isinstance(op, PutRequest):
                responses.append(self._put(op, run))
            elif isinstance(op, DeleteRangeRequest):
                responses.append(self._delete(op, run))
            else:
                responses.append(self._run_txn(op, run))
        return TxnResponse(
            header=ResponseHeader(revision=Revision(run.view_revision)),
            succeeded=succeeded,
            responses=tuple(responses),
        )

    # -- compaction ------------------------------------------------------------------

    def compact(self, request: CompactionRequest) -> CompactionResponse:
        if request.revision > self.revision:
            raise FutureRevision(request.revision, self.revision)
        if request.revision <= self.compact_revision:
            raise Compacted(request.revision, self.compact_revision)
        self.compact_revision = request.revision
        return CompactionResponse(header=self._header())

    # -- leases ----------------------------------------------------------------------

    def grant(self, request: LeaseGrantRequest, now_ms: int) -> LeaseGrantResponse:
        if request.ttl_s > self.max_lease_ttl_s:
            raise LeaseTTLTooLarge(request.ttl_s, self.max_lease_ttl_s)
        lease_id = request.id
        if lease_id == 0:
            lease_id = self.next_lease_id
            while lease_id in self.leases:
                lease_id += 1
            self.next_lease_id = lease_id + 1
        elif lease_id in self.leases:
            raise LeaseExists(lease_id)
        ttl_s = max(request.ttl_s, self.min_lease_ttl_s)
        lease = ModelLease(id=lease_id, ttl_s=ttl_s)
        if self.keeps_time:
            lease.expiry_ms = now_ms + ttl_s * MS_PER_S
        self.leases[lease_id] = lease
        return LeaseGrantResponse(header=self._header(), id=LeaseId(lease_id), ttl_s=ttl_s)

    def revoke(self, request: LeaseRevokeRequest) -> LeaseRevokeResponse:
        if request.id not in self.leases:
            raise LeaseNotFound(request.id)
        doomed = self.lease_keys(request.id)
        if doomed:
            state = {k: kv for k, kv in self.current.items() if k not in doomed}
            self.states.append(state)
        del self.leases[request.id]
        return LeaseRevokeResponse(header=self._header())

    def promote(self, now_ms: int) -> None:
        """The lessor starts keeping time: every lease lives its TTL from now."""
        self.keeps_time = True
        for lease in self.leases.values():
            lease.expiry_ms = now_ms + lease.ttl_s * MS_PER_S

    def expired(self, now_ms: int) -> tuple[int, ...]:
        due = [
            lease for lease in self.leases.values()
            if lease.expiry_ms is not None and lease.expiry_ms <= now_ms
        ]
        return tuple(lease.id for lease in sorted(due, key=lambda le: (le.expiry_ms, le.id)))

    def keepalive(self, request: LeaseKeepAliveRequest, now_ms: int) -> LeaseKeepAliveResponse:
        lease = self.leases.get(request.id)
        if lease is None or lease.expiry_ms is None or lease.expiry_ms <= now_ms:
            raise LeaseNotFound(request.id)
        lease.expiry_ms = now_ms + lease.ttl_s * MS_PER_S
        return LeaseKeepAliveResponse(header=self._header(), id=request.id, ttl_s=lease.ttl_s)

    def time_to_live(
        self, request: LeaseTimeToLiveRequest, now_ms: int
    ) -> LeaseTimeToLiveResponse:
        lease = self.leases.get(request.id)
        if lease is None:
            return LeaseTimeToLiveResponse(
                header=self._header(), id=request.id, ttl_s=-1, granted_ttl_s=0
            )
        if lease.expiry_ms is None:
            remaining_s = lease.ttl_s
        else:
            remaining_ms = max(0, lease.expiry_ms - now_ms)
            remaining_s = (remaining_ms + MS_PER_S - 1) // MS_PER_S
        return LeaseTimeToLiveResponse(
            header=self._header(),
            id=request.id,
            ttl_s=remaining_s,
            granted_ttl_s=lease.ttl_s,
            keys=self.lease_keys(request.id) if request.keys else (),
        )

    def lease_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.leases))

    # -- dispatch ----------------------------------------------------------------------

    def apply(self, command: object, *, now_ms: int) -> object:
        if isinstance(command, PutRequest):
            return self.put(command)
        if isinstance(command, DeleteRangeRequest):
            return self.delete_range(command)
        if isinstance(command, TxnRequest):
            return self.txn(command)
        if isinstance(command, CompactionRequest):
            return self.compact(command)
        if isinstance(command, LeaseGrantRequest):
            return self.grant(command, now_ms)
        if isinstance(command, LeaseRevokeRequest):
            return self.revoke(command)
        raise AssertionError(f"the model does not know {command!r}")

    def live(self) -> tuple[KeyValue, ...]:
        return tuple(self.current[k] for k in sorted(self.current))


__all__ = [
    "ALL_DEVIATIONS",
    "PUT_CHECKS_KEY_BEFORE_LEASE",
    "ModelLease",
    "ReferenceModel",
    "branch_writes",
    "check_txn_shape",
    "compare_holds",
    "in_range",
    "keys_in",
    "shape_range",
]
