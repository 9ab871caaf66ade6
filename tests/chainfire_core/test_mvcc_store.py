"""MvccStore: every error path, and etcd's documented examples.

Each test names the etcd rule it checks. Tests marked xfail(strict=True)
reproduce a known difference from etcd (a bug to fix); the reference model
copies it (see KNOWN_DEVIATIONS in test_mvcc_model.py) until it is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from chainfire_core.config import StateMachineConfig
from chainfire_core.errors import (
    Compacted,
    DuplicateKey,
    EmptyKey,
    FutureRevision,
    InvalidRequest,
    KeyNotFound,
    LeaseNotFound,
    RequestError,
    RequestTooLarge,
    TooManyOps,
)
from chainfire_core.mvcc.messages import (
    ALL_KEYS,
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    EventType,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RequestOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
    prefix_end,
)
from chainfire_core.mvcc.store import FIRST_REVISION, KEY_BUCKET, MvccStore
from chainfire_core.storage import MemoryBackend
from chainfire_core.types import LeaseId

EQ, NE, GT, LT = (
    CompareResult.EQUAL, CompareResult.NOT_EQUAL, CompareResult.GREATER, CompareResult.LESS
)


class FakeLeases:
    """LeaseHooks over a dict: lease id -> attached keys."""

    def __init__(self, *lease_ids: int) -> None:
        self.keys: dict[int, set[bytes]] = {lease_id: set() for lease_id in lease_ids}

    def exists(self, lease_id: LeaseId) -> bool:
        return lease_id in self.keys

    def attach(self, lease_id: LeaseId, key: bytes) -> None:
        self.keys[lease_id].add(key)

    def detach(self, lease_id: LeaseId, key: bytes) -> None:
        self.keys[lease_id].discard(key)


def new_store(
    config: StateMachineConfig | None = None, leases: FakeLeases | None = None
) -> MvccStore:
    return MvccStore(MemoryBackend(), config, leases)


def put(store: MvccStore, key: bytes, value: bytes = b"", **options: object) -> PutResponse:
    return store.put(PutRequest(key=key, value=value, **options))  # type: ignore[arg-type]


def get(store: MvccStore, key: bytes, range_end: bytes = b"", **options: object) -> RangeResponse:
    return store.range(RangeRequest(key=key, range_end=range_end, **options))  # type: ignore[arg-type]


def pairs(response: RangeResponse) -> list[tuple[bytes, bytes]]:
    return [(kv.key, kv.value) for kv in response.kvs]


def keys(response: RangeResponse) -> list[bytes]:
    return [kv.key for kv in response.kvs]


def txn(store: MvccStore, *success: RequestOp, compare: tuple[Compare, ...] = (),
        failure: tuple[RequestOp, ...] = ()) -> TxnResponse:
    return store.txn(TxnRequest(compare=compare, success=success, failure=failure))


def p(key: bytes, value: bytes = b"") -> PutRequest:
    return PutRequest(key=key, value=value)


def d(key: bytes, range_end: bytes = b"") -> DeleteRangeRequest:
    return DeleteRangeRequest(key=key, range_end=range_end)


def r(key: bytes, range_end: bytes = b"", revision: int = 0) -> RangeRequest:
    return RangeRequest(key=key, range_end=range_end, revision=revision)


def nested(success: tuple[RequestOp, ...] = (), failure: tuple[RequestOp, ...] = (),
           compare: tuple[Compare, ...] = ()) -> TxnRequest:
    return TxnRequest(compare=compare, success=success, failure=failure)


def version_is(key: bytes, result: CompareResult, value: int) -> Compare:
    return Compare(key=key, target=CompareTarget.VERSION, result=result, value=value)


def unchanged(store: MvccStore, call: Callable[[], object], error: type[Exception]) -> None:
    """`call` raises `error` and leaves the store exactly as it was."""
    revision = store.current_revision
    before = store.backend.snapshot()
    with pytest.raises(error):
        call()
    assert store.current_revision == revision
    assert store.backend.snapshot() == before
    store.check_invariants(deep=True)


# -- requests that cannot exist -----------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: RangeRequest(key=b""),
        lambda: PutRequest(key=b"", value=b"v"),
        lambda: DeleteRangeRequest(key=b""),
        lambda: Compare(key=b"", target=CompareTarget.VERSION, result=EQ, value=0),
    ],
    ids=["range", "put", "delete", "compare"],
)
def test_empty_key_is_refused_when_the_request_is_built(build: Callable[[], object]) -> None:
    with pytest.raises(EmptyKey) as caught:
        build()
    assert isinstance(caught.value, InvalidRequest)
    assert str(caught.value) == "etcdserver: key is not provided"


@pytest.mark.parametrize(
    "build",
    [
        lambda: PutRequest(key=b"a", value=b"v", ignore_value=True),
        lambda: PutRequest(key=b"a", lease=LeaseId(1), ignore_lease=True),
        lambda: RangeRequest(key=b"a", limit=-1),
        lambda: RangeRequest(key=b"a", revision=-1),
        lambda: RangeRequest(key=b"a", min_mod_revision=-1),
        lambda: Compare(key=b"a", target=CompareTarget.VALUE, result=EQ, value=1),
        lambda: Compare(key=b"a", target=CompareTarget.MOD, result=EQ, value=b"1"),
        lambda: Compare(key=b"a", target=CompareTarget.VERSION, result=EQ, value=True),
        lambda: CompactionRequest(revision=-1),
        lambda: TxnRequest(success=[PutRequest(key=b"a")]),  # type: ignore[arg-type]
    ],
    ids=[
        "value-with-ignore-value", "lease-with-ignore-lease", "negative-limit",
        "negative-revision", "negative-filter", "value-compare-of-int", "mod-compare-of-bytes",
        "bool-compare", "negative-compaction", "list-branch",
    ],
)
def test_malformed_requests_are_refused_when_built(build: Callable[[], object]) -> None:
    with pytest.raises(InvalidRequest):
        build()


# -- revisions: future and compacted --------------------------------------------------


def test_a_fresh_store_is_at_revision_one_and_the_first_write_gets_two() -> None:
    # etcd: an empty store's current revision is 1 (no key has it).
    store = new_store()
    assert store.current_revision == FIRST_REVISION == 1
    empty = get(store, b"a")
    assert (empty.header.revision, empty.count) == (1, 0)
    assert get(store, b"a", revision=1).count == 0  # revision 1 is readable, and empty
    first = put(store, b"a", b"1")
    assert first.header.revision == 2 == store.current_revision
    (kv,) = get(store, b"a").kvs
    assert (kv.create_revision, kv.mod_revision, kv.version) == (2, 2, 1)
    assert get(store, b"a", revision=1).count == 0
    assert list(store.events_between(1, 1)) == []
    store.check_invariants(deep=True)


def test_a_store_reopened_over_an_empty_backend_is_at_revision_one() -> None:
    backend = MemoryBackend()
    MvccStore(backend)
    assert MvccStore(backend).current_revision == 1


def test_reading_a_future_revision_is_refused() -> None:
    store = new_store()
    put(store, b"a", b"1")
    assert pairs(get(store, b"a", revision=2)) == [(b"a", b"1")]
    with pytest.raises(FutureRevision) as caught:
        get(store, b"a", revision=3)
    assert (caught.value.revision, caught.value.current_revision) == (3, 2)
    assert caught.value.grpc_code == "OUT_OF_RANGE"
    with pytest.raises(FutureRevision):
        store.hash_kv(3)
    with pytest.raises(FutureRevision):
        get(new_store(), b"a", revision=2)


def test_reads_below_the_compaction_revision_are_refused_and_at_it_allowed() -> None:
    store = new_store()
    for value in (b"1", b"2", b"3"):  # revisions 2, 3, 4
        put(store, b"a", value)
    store.compact(CompactionRequest(revision=3))
    with pytest.raises(Compacted) as caught:
        get(store, b"a", revision=2)
    assert (caught.value.revision, caught.value.compact_revision) == (2, 3)
    assert isinstance(caught.value, RequestError)
    assert pairs(get(store, b"a", revision=3)) == [(b"a", b"2")]
    assert pairs(get(store, b"a", revision=4)) == [(b"a", b"3")]
    assert pairs(get(store, b"a")) == [(b"a", b"3")]
    with pytest.raises(Compacted):
        store.hash_kv(2)


@pytest.mark.parametrize(("revision", "error"), [(0, Compacted), (1, Compacted), (2, Compacted),
                                                 (3, Compacted), (5, FutureRevision)])
def test_compaction_at_or_below_the_last_one_or_in_the_future_is_refused(
    revision: int, error: type[Exception]
) -> None:
    store = new_store()
    for value in (b"1", b"2", b"3"):  # revisions 2, 3, 4
        put(store, b"a", value)
    store.compact(CompactionRequest(revision=3))
    unchanged(store, lambda: store.compact(CompactionRequest(revision=revision)), error)
    assert store.compact_revision == 3


def test_compaction_of_a_fresh_store_at_zero_is_compacted() -> None:
    # etcd: rev <= compactMainRev -> ErrCompacted.
    with pytest.raises(Compacted):
        new_store().compact(CompactionRequest(revision=0))


def test_compaction_of_a_fresh_store_at_one_is_allowed_once() -> None:
    # etcd: a fresh store has compacted nothing (compactMainRev -1), and its
    # current revision is 1: compacting at 1 works, then 1 is compacted.
    store = new_store()
    assert store.compact(CompactionRequest(revision=1)).header.revision == 1
    assert store.compact_revision == 1
    unchanged(store, lambda: store.compact(CompactionRequest(revision=1)), Compacted)
    unchanged(store, lambda: store.compact(CompactionRequest(revision=2)), FutureRevision)
    assert get(store, b"a", revision=1).count == 0  # at the compaction revision: fine
    assert put(store, b"a").header.revision == 2


def test_compaction_answers_with_the_current_revision() -> None:
    store = new_store()
    put(store, b"a")
    put(store, b"b")
    assert store.compact(CompactionRequest(revision=2)).header.revision == 3
    assert store.current_revision == 3


# -- put: ignore_value / ignore_lease / leases ---------------------------------------------


@pytest.mark.parametrize("flag", ["ignore_value", "ignore_lease"])
def test_ignore_flags_need_an_existing_key(flag: str) -> None:
    store = new_store()
    unchanged(store, lambda: put(store, b"a", **{flag: True}), KeyNotFound)
    put(store, b"a", b"1")
    store.delete_range(d(b"a"))
    unchanged(store, lambda: put(store, b"a", **{flag: True}), KeyNotFound)


def test_ignore_value_keeps_the_value_and_ignore_lease_keeps_the_lease() -> None:
    leases = FakeLeases(7, 8)
    store = new_store(leases=leases)
    put(store, b"a", b"old", lease=LeaseId(7))
    put(store, b"a", ignore_value=True, lease=LeaseId(8))
    (kv,) = get(store, b"a").kvs
    assert (kv.value, kv.lease, kv.version) == (b"old", 8, 2)
    assert leases.keys == {7: set(), 8: {b"a"}}
    put(store, b"a", b"new", ignore_lease=True)
    (kv,) = get(store, b"a").kvs
    assert (kv.value, kv.lease, kv.version) == (b"new", 8, 3)
    assert leases.keys == {7: set(), 8: {b"a"}}


def test_put_with_an_unknown_lease_is_refused() -> None:
    without_lessor = new_store()
    unchanged(without_lessor, lambda: put(without_lessor, b"a", lease=LeaseId(5)), LeaseNotFound)
    store = new_store(leases=FakeLeases(1))
    unchanged(store, lambda: put(store, b"a", lease=LeaseId(5)), LeaseNotFound)
    put(store, b"a", lease=LeaseId(1))
    assert get(store, b"a").kvs[0].lease == 1


def test_keys_attach_on_put_and_detach_on_overwrite_and_delete() -> None:
    leases = FakeLeases(1)
    store = new_store(leases=leases)
    put(store, b"a", lease=LeaseId(1))
    put(store, b"b", lease=LeaseId(1))
    assert leases.keys[1] == {b"a", b"b"}
    put(store, b"a", b"no lease now")  # an overwrite without a lease detaches
    assert leases.keys[1] == {b"b"}
    assert get(store, b"a").kvs[0].lease == 0
    store.delete_range(d(b"b"))
    assert leases.keys[1] == set()


def test_txn_with_an_unknown_lease_writes_nothing() -> None:
    store = new_store(leases=FakeLeases(1))
    put(store, b"a", b"1")
    unchanged(
        store,
        lambda: txn(store, p(b"b"), d(b"a"), PutRequest(key=b"c", lease=LeaseId(9))),
        LeaseNotFound,
    )
    assert pairs(get(store, b"a")) == [(b"a", b"1")]


def test_txn_with_ignore_value_on_a_missing_key_writes_nothing() -> None:
    store = new_store()
    unchanged(
        store,
        lambda: txn(store, p(b"b"), nested((PutRequest(key=b"z", ignore_value=True),))),
        KeyNotFound,
    )


def test_txn_put_checks_the_key_before_the_lease_like_etcd() -> None:
    store = new_store(leases=FakeLeases())
    with pytest.raises(KeyNotFound):
        txn(store, PutRequest(key=b"missing", ignore_value=True, lease=LeaseId(3)))


def test_top_level_put_checks_the_lease_before_the_key_like_etcd() -> None:
    store = new_store(leases=FakeLeases())
    with pytest.raises(LeaseNotFound):
        put(store, b"missing", ignore_value=True, lease=LeaseId(3))


# -- request size and txn shape ------------------------------------------------------------


def test_a_put_larger_than_max_request_bytes_is_refused() -> None:
    store = new_store(StateMachineConfig(max_request_bytes=16))
    put(store, b"k", b"v" * 15)  # 16 bytes: allowed
    unchanged(store, lambda: put(store, b"k", b"v" * 16), RequestTooLarge)
    unchanged(store, lambda: txn(store, p(b"a"), p(b"k", b"v" * 16)), RequestTooLarge)
    assert pairs(get(store, b"k")) == [(b"k", b"v" * 15)]


@pytest.mark.parametrize(
    "request_",
    [
        TxnRequest(success=(p(b"a"), p(b"b"), p(b"c"))),
        TxnRequest(failure=(p(b"a"), p(b"b"), p(b"c"))),
        TxnRequest(success=(nested(failure=(r(b"a"), r(b"b"), r(b"c"))),)),
        TxnRequest(failure=(nested(success=(nested(success=(d(b"a"), d(b"b"), d(b"c"))),)),)),
    ],
    ids=["success", "failure", "nested", "nested-twice"],
)
def test_a_branch_with_more_than_max_txn_ops_is_refused(request_: TxnRequest) -> None:
    store = new_store(StateMachineConfig(max_txn_ops=2))
    unchanged(store, lambda: store.txn(request_), TooManyOps)


def test_branches_of_max_txn_ops_are_allowed() -> None:
    store = new_store(StateMachineConfig(max_txn_ops=2))
    response = store.txn(TxnRequest(success=(p(b"a"), p(b"b")), failure=(p(b"c"), p(b"d"))))
    assert response.succeeded
    assert keys(get(store, b"\0", ALL_KEYS)) == [b"a", b"b"]


def test_compares_count_towards_max_txn_ops_like_etcd() -> None:
    store = new_store(StateMachineConfig(max_txn_ops=2))
    compares = tuple(version_is(key, EQ, 0) for key in (b"a", b"b", b"c"))
    with pytest.raises(TooManyOps):
        store.txn(TxnRequest(compare=compares, success=(p(b"x"),)))


def test_a_nested_txn_gets_the_budget_its_parent_left_like_etcd() -> None:
    store = new_store(StateMachineConfig(max_txn_ops=3))
    # The parent uses 2 of 3 ops, so the nested txn may have 1, not 2.
    request = TxnRequest(success=(p(b"a"), nested(success=(p(b"b"), p(b"c")))))
    with pytest.raises(TooManyOps):
        store.txn(request)


# -- duplicate keys (etcd's checkIntervals) ---------------------------------------------------


DUPLICATES: list[tuple[str, tuple[RequestOp, ...], bool]] = [
    ("same key put twice", (p(b"a"), p(b"a")), False),
    ("put and delete of the key", (d(b"a"), p(b"a")), False),
    ("put inside a delete range", (p(b"b"), d(b"a", b"c")), False),
    ("put inside a delete of all keys >= key", (p(b"z"), d(b"b", ALL_KEYS)), False),
    ("put inside a delete of every key", (d(ALL_KEYS, ALL_KEYS), p(b"a")), False),
    ("put at a delete range's end", (p(b"c"), d(b"a", b"c")), True),
    ("put below a delete range", (p(b"a"), d(b"b", ALL_KEYS)), True),
    ("two deletes of one key", (d(b"a"), d(b"a", b"b")), True),
    ("then and else of a nested txn", (nested((p(b"a"),), (p(b"a"),)),), True),
    ("nested then and outer put", (nested((p(b"a"),)), p(b"a")), False),
    ("nested else and outer put", (p(b"a"), nested((), (p(b"a"),))), False),
    ("nested put in an outer delete", (d(b"a", b"c"), nested((p(b"b"),))), False),
    ("outer put in a nested delete", (p(b"b"), nested((), (d(b"a", b"c"),))), False),
    ("two nested thens", (nested((p(b"a"),)), nested((p(b"a"),))), False),
    ("nested then and a later nested else", (nested((p(b"a"),)), nested((), (p(b"a"),))), False),
    ("nested put, then a later nested delete", (nested((p(b"a"),)), nested((d(b"a"),))), True),
    ("nested delete, then a later nested put", (nested((d(b"a"),)), nested((p(b"a"),))), False),
    ("put twice two levels down", (nested((nested((p(b"a"),)),)), p(b"a")), False),
    ("then/else two levels down", (nested((nested((p(b"a"),), (p(b"a"),)),)),), True),
]


@pytest.mark.parametrize(
    ("ops", "allowed"),
    [(ops, allowed) for _, ops, allowed in DUPLICATES],
    ids=[name for name, _, _ in DUPLICATES],
)
def test_duplicate_key_rule(ops: tuple[RequestOp, ...], allowed: bool) -> None:
    store = new_store()
    put(store, b"a")
    put(store, b"b")
    if allowed:
        txn(store, *ops)
        store.check_invariants(deep=True)
    else:
        unchanged(store, lambda: txn(store, *ops), DuplicateKey)


def test_duplicates_in_the_branch_not_taken_are_refused_too() -> None:
    store = new_store()
    unchanged(store, lambda: txn(store, p(b"a"), failure=(p(b"b"), p(b"b"))), DuplicateKey)


def test_the_same_key_in_success_and_failure_is_allowed() -> None:
    store = new_store()
    response = txn(store, p(b"a", b"s"), failure=(p(b"a", b"f"),))
    assert response.succeeded
    assert pairs(get(store, b"a")) == [(b"a", b"s")]


def test_a_put_then_a_later_nested_delete_of_it_leaves_it_deleted_in_one_revision() -> None:
    store = new_store()
    response = txn(store, nested((p(b"a", b"1"),)), nested((DeleteRangeRequest(
        key=b"a", prev_kv=True),)))
    assert response.header.revision == 2 == store.current_revision
    assert get(store, b"a").count == 0
    (deleted,) = response.responses[1].responses  # type: ignore[union-attr]
    assert isinstance(deleted, DeleteRangeResponse)
    assert [kv.value for kv in deleted.prev_kvs] == [b"1"]
    assert [e.type for e in store.events_between(2, 2)] == [EventType.PUT, EventType.DELETE]


# -- ranges: etcd's conventions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "end"),
    [(b"a", b"b"), (b"foo/", b"foo0"), (b"a\xff", b"b"), (b"a\xff\xff", b"b"),
     (b"\xff", ALL_KEYS), (b"\xff\xff", ALL_KEYS), (b"", ALL_KEYS), (b"\x00", b"\x01")],
)
def test_prefix_end(prefix: bytes, end: bytes) -> None:
    assert prefix_end(prefix) == end


def _store_with(*names: bytes) -> MvccStore:
    store = new_store()
    for name in names:
        put(store, name, b"v-" + name)
    return store


def test_a_prefix_range_returns_exactly_the_keys_with_that_prefix() -> None:
    store = _store_with(b"fo", b"foo", b"foo/", b"foo/a", b"foo/b", b"foo0", b"fop", b"\xff")
    assert keys(get(store, b"foo/", prefix_end(b"foo/"))) == [b"foo/", b"foo/a", b"foo/b"]
    assert keys(get(store, b"foo", prefix_end(b"foo"))) == [
        b"foo", b"foo/", b"foo/a", b"foo/b", b"foo0"
    ]
    assert keys(get(store, b"\xff", prefix_end(b"\xff"))) == [b"\xff"]


def test_range_end_nul_means_every_key_from_key_on() -> None:
    store = _store_with(b"a", b"b", b"c", b"\xff")
    assert keys(get(store, b"b", ALL_KEYS)) == [b"b", b"c", b"\xff"]
    assert get(store, b"b", ALL_KEYS).count == 3


def test_key_nul_and_range_end_nul_means_every_key() -> None:
    store = _store_with(b"\x00", b"\x00\x01", b"a", b"\xff\xff")
    response = get(store, ALL_KEYS, ALL_KEYS)
    assert keys(response) == [b"\x00", b"\x00\x01", b"a", b"\xff\xff"]
    assert response.count == 4


def test_range_end_at_or_below_key_selects_nothing() -> None:
    store = _store_with(b"a", b"b", b"c")
    for end in (b"b", b"a"):
        response = get(store, b"b", end)
        assert (response.kvs, response.count, response.more) == ((), 0, False)


def test_empty_range_end_is_one_key() -> None:
    store = _store_with(b"a", b"ab")
    assert keys(get(store, b"a")) == [b"a"]
    assert get(store, b"abc").count == 0


@pytest.mark.parametrize(
    ("limit", "expected", "more"),
    [(0, [b"a", b"b", b"c", b"d", b"e"], False), (2, [b"a", b"b"], True),
     (4, [b"a", b"b", b"c", b"d"], True), (5, [b"a", b"b", b"c", b"d", b"e"], False),
     (9, [b"a", b"b", b"c", b"d", b"e"], False)],
)
def test_limit_more_and_count(limit: int, expected: list[bytes], more: bool) -> None:
    store = _store_with(b"a", b"b", b"c", b"d", b"e")
    store.delete_range(d(b"x"))  # nothing: no effect
    response = get(store, b"a", b"z", limit=limit)
    assert keys(response) == expected
    assert (response.more, response.count) == (more, 5)


def _sort_store() -> MvccStore:
    """Keys whose version, create, mod and value orders all differ from key order."""
    store = new_store()
    put(store, b"c", b"1")   # rev 2
    put(store, b"a", b"3")   # rev 3
    put(store, b"b", b"2")   # rev 4
    put(store, b"c", b"0")   # rev 5: c version 2
    put(store, b"c", b"4")   # rev 6: c version 3
    put(store, b"b", b"5")   # rev 7: b version 2
    return store


@pytest.mark.parametrize(
    ("order", "target", "expected"),
    [
        (SortOrder.NONE, SortTarget.KEY, [b"a", b"b", b"c"]),
        (SortOrder.ASCEND, SortTarget.KEY, [b"a", b"b", b"c"]),
        (SortOrder.DESCEND, SortTarget.KEY, [b"c", b"b", b"a"]),
        (SortOrder.ASCEND, SortTarget.VERSION, [b"a", b"b", b"c"]),
        (SortOrder.DESCEND, SortTarget.VERSION, [b"c", b"b", b"a"]),
        (SortOrder.ASCEND, SortTarget.CREATE, [b"c", b"a", b"b"]),
        (SortOrder.DESCEND, SortTarget.CREATE, [b"b", b"a", b"c"]),
        (SortOrder.ASCEND, SortTarget.MOD, [b"a", b"c", b"b"]),
        (SortOrder.DESCEND, SortTarget.MOD, [b"b", b"c", b"a"]),
        (SortOrder.ASCEND, SortTarget.VALUE, [b"a", b"c", b"b"]),
        (SortOrder.DESCEND, SortTarget.VALUE, [b"b", b"c", b"a"]),
        # etcd: a target other than KEY with order NONE sorts ascending.
        (SortOrder.NONE, SortTarget.CREATE, [b"c", b"a", b"b"]),
        (SortOrder.NONE, SortTarget.MOD, [b"a", b"c", b"b"]),
        (SortOrder.NONE, SortTarget.VALUE, [b"a", b"c", b"b"]),
    ],
)
def test_sort(order: SortOrder, target: SortTarget, expected: list[bytes]) -> None:
    store = _sort_store()
    assert keys(get(store, b"a", b"z", sort_order=order, sort_target=target)) == expected
    # The limit cuts after sorting.
    limited = get(store, b"a", b"z", sort_order=order, sort_target=target, limit=2)
    assert keys(limited) == expected[:2]
    assert (limited.more, limited.count) == (True, 3)


def test_sort_ties_keep_key_order() -> None:
    # etcd leaves the order of ties unspecified; we pin it to key order.
    store = _store_with(b"b", b"a", b"c")
    for order in (SortOrder.ASCEND, SortOrder.DESCEND):
        response = get(store, b"a", b"z", sort_order=order, sort_target=SortTarget.VERSION)
        assert keys(response) == [b"a", b"b", b"c"]


def test_sort_on_a_historical_revision() -> None:
    store = _sort_store()
    response = get(store, b"a", b"z", revision=4, sort_order=SortOrder.DESCEND,
                   sort_target=SortTarget.VALUE)
    assert pairs(response) == [(b"a", b"3"), (b"b", b"2"), (b"c", b"1")]


def test_keys_only_and_count_only() -> None:
    store = _sort_store()
    full = get(store, b"a", b"z")
    keys_only = get(store, b"a", b"z", keys_only=True)
    assert [kv.value for kv in keys_only.kvs] == [b"", b"", b""]
    assert [(kv.key, kv.version, kv.mod_revision, kv.create_revision) for kv in keys_only.kvs] \
        == [(kv.key, kv.version, kv.mod_revision, kv.create_revision) for kv in full.kvs]
    count_only = get(store, b"a", b"z", count_only=True, limit=1)
    assert (count_only.kvs, count_only.count, count_only.more) == ((), 3, False)
    single = get(store, b"a", count_only=True)
    assert (single.kvs, single.count) == ((), 1)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"min_mod_revision": 6}, [b"b", b"c"]),
        ({"max_mod_revision": 6}, [b"a", b"c"]),
        ({"min_create_revision": 3}, [b"a", b"b"]),
        ({"max_create_revision": 3}, [b"a", b"c"]),
        ({"min_mod_revision": 4, "max_mod_revision": 6}, [b"c"]),
        ({"min_create_revision": 3, "max_create_revision": 3}, [b"a"]),
        ({"min_mod_revision": 8}, []),
    ],
)
def test_revision_filters_do_not_change_count(filters: dict[str, int],
                                              expected: list[bytes]) -> None:
    # a: create 3 mod 3; b: create 4 mod 7; c: create 2 mod 6.
    store = _sort_store()
    response = get(store, b"a", b"z", **filters)
    assert keys(response) == expected
    assert (response.count, response.more) == (3, False)
    limited = get(store, b"a", b"z", limit=1, **filters)
    assert keys(limited) == expected[:1]
    assert limited.more == (len(expected) > 1)
    single = get(store, b"a", **filters)
    assert keys(single) == [b"a"][: int(b"a" in expected)]
    assert single.count == 1


# -- versions, generations, revisions ------------------------------------------------------------


def test_versions_restart_at_one_after_a_delete_with_a_new_create_revision() -> None:
    store = new_store()
    put(store, b"a", b"1")                       # rev 2
    put(store, b"a", b"2")                       # rev 3
    deleted = store.delete_range(DeleteRangeRequest(key=b"a", prev_kv=True))  # rev 4
    assert deleted.deleted == 1
    assert deleted.header.revision == 4
    assert deleted.prev_kvs == (KeyValue(key=b"a", create_revision=2, mod_revision=3, version=2,
                                         value=b"2"),)
    put(store, b"a", b"3")                       # rev 5
    assert get(store, b"a").kvs == (
        KeyValue(key=b"a", create_revision=5, mod_revision=5, version=1, value=b"3"),
    )
    assert get(store, b"a", revision=4).count == 0
    assert get(store, b"a", revision=3).kvs == (
        KeyValue(key=b"a", create_revision=2, mod_revision=3, version=2, value=b"2"),
    )


def test_put_returns_prev_kv_only_when_asked() -> None:
    store = new_store()
    first = put(store, b"a", b"1", prev_kv=True)
    assert (first.header.revision, first.prev_kv) == (2, None)
    assert put(store, b"a", b"2").prev_kv is None
    third = put(store, b"a", b"3", prev_kv=True)
    assert third.prev_kv == KeyValue(key=b"a", create_revision=2, mod_revision=3, version=2,
                                     value=b"2")


def test_a_delete_of_nothing_does_not_bump_the_revision() -> None:
    store = _store_with(b"a")
    response = store.delete_range(DeleteRangeRequest(key=b"b", range_end=b"z", prev_kv=True))
    assert (response.deleted, response.prev_kvs, response.header.revision) == (0, (), 2)
    assert store.current_revision == 2


def test_a_delete_range_deletes_every_key_in_one_revision() -> None:
    store = _store_with(b"a", b"b", b"c", b"d")
    response = store.delete_range(DeleteRangeRequest(key=b"b", range_end=b"d", prev_kv=True))
    assert response.deleted == 2
    assert [kv.key for kv in response.prev_kvs] == [b"b", b"c"]
    assert response.header.revision == store.current_revision == 6
    assert keys(get(store, ALL_KEYS, ALL_KEYS)) == [b"a", b"d"]
    events = list(store.events_between(6, 6))
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in events] == [
        (EventType.DELETE, b"b", 6), (EventType.DELETE, b"c", 6)
    ]


# -- transactions -------------------------------------------------------------------------------


def test_a_multi_key_txn_takes_one_revision_with_sub_revisions_in_op_order() -> None:
    store = _store_with(b"x")
    response = txn(store, p(b"c", b"1"), p(b"a", b"2"), d(b"x"), p(b"b", b"3"))
    assert response.succeeded
    assert response.header.revision == store.current_revision == 3
    assert {kv.mod_revision for kv in get(store, ALL_KEYS, ALL_KEYS).kvs} == {3}
    events = list(store.events_between(3, 3))
    assert [(e.type, e.kv.key) for e in events] == [
        (EventType.PUT, b"c"), (EventType.PUT, b"a"), (EventType.DELETE, b"x"),
        (EventType.PUT, b"b"),
    ]


def test_a_read_only_txn_does_not_bump_the_revision() -> None:
    store = _store_with(b"a")
    response = txn(store, r(b"a"), d(b"zzz"), compare=(version_is(b"a", EQ, 1),))
    assert response.succeeded
    assert response.header.revision == store.current_revision == 2


def test_reads_in_a_txn_see_its_earlier_writes_and_history_does_not() -> None:
    store = _store_with(b"a")
    response = txn(store, r(b"a"), p(b"a", b"new"), r(b"a"), r(b"a", revision=2))
    before, written, after, historical = response.responses
    assert isinstance(before, RangeResponse) and isinstance(after, RangeResponse)
    assert isinstance(historical, RangeResponse) and isinstance(written, PutResponse)
    assert pairs(before) == [(b"a", b"v-a")]
    assert before.header.revision == 2
    assert after.kvs == (KeyValue(key=b"a", create_revision=2, mod_revision=3, version=2,
                                  value=b"new"),)
    assert after.header.revision == written.header.revision == 3
    assert pairs(historical) == [(b"a", b"v-a")]


def test_a_txn_read_of_its_own_future_revision_is_refused() -> None:
    # etcd checks a txn's range revisions against the revision before the txn.
    store = _store_with(b"a")
    unchanged(store, lambda: txn(store, p(b"b"), r(b"a", revision=3)), FutureRevision)


def test_a_txn_read_of_a_compacted_revision_writes_nothing() -> None:
    store = _store_with(b"a", b"b", b"c")
    store.compact(CompactionRequest(revision=3))
    unchanged(store, lambda: txn(store, p(b"x"), r(b"a", revision=2)), Compacted)
    # ... but only on the branch taken.
    response = txn(store, p(b"x"), failure=(r(b"a", revision=2),))
    assert response.succeeded


def test_nested_compares_see_the_state_before_the_txn() -> None:
    store = new_store()
    inner = nested((p(b"b", b"then"),), (p(b"b", b"else"),),
                   compare=(version_is(b"a", EQ, 0),))
    response = txn(store, p(b"a"), inner)
    assert response.responses[1].succeeded  # type: ignore[union-attr]
    assert pairs(get(store, b"b")) == [(b"b", b"then")]


def test_nested_txn_responses_follow_the_path_taken() -> None:
    store = _store_with(b"a")
    inner_then = nested((r(b"a"),), (p(b"b"),), compare=(version_is(b"a", EQ, 1),))
    inner_else = nested((p(b"c"),), (r(b"a"), p(b"d")), compare=(version_is(b"a", GT, 1),))
    response = txn(store, inner_then, inner_else)
    first, second = response.responses
    assert isinstance(first, TxnResponse) and isinstance(second, TxnResponse)
    assert first.succeeded and not second.succeeded
    assert [type(x) for x in first.responses] == [RangeResponse]
    assert [type(x) for x in second.responses] == [RangeResponse, PutResponse]
    assert keys(get(store, ALL_KEYS, ALL_KEYS)) == [b"a", b"d"]


def test_compare_and_swap_on_mod_revision() -> None:
    store = _store_with(b"lock")
    seen = get(store, b"lock").kvs[0].mod_revision

    def swap(value: bytes) -> TxnResponse:
        same = Compare(key=b"lock", target=CompareTarget.MOD, result=EQ, value=seen)
        return txn(store, p(b"lock", value), compare=(same,), failure=(r(b"lock"),))

    assert swap(b"mine").succeeded
    lost = swap(b"theirs")  # `seen` is stale now
    assert not lost.succeeded
    (current,) = lost.responses
    assert isinstance(current, RangeResponse)
    assert pairs(current) == [(b"lock", b"mine")]
    assert store.current_revision == 3


@pytest.mark.parametrize(
    ("compare", "holds"),
    [
        # Over a range, a compare must hold for every key in it.
        (Compare(key=b"a", range_end=b"c", target=CompareTarget.VERSION, result=EQ, value=1),
         False),
        (Compare(key=b"a", range_end=b"c", target=CompareTarget.VERSION, result=GT, value=0),
         True),
        (Compare(key=b"a", range_end=b"c", target=CompareTarget.VALUE, result=NE, value=b"z"),
         True),
        (Compare(key=b"a", range_end=b"c", target=CompareTarget.VALUE, result=LT, value=b"2"),
         False),
        (Compare(key=b"a", range_end=ALL_KEYS, target=CompareTarget.LEASE, result=EQ, value=0),
         True),
        (Compare(key=b"a", range_end=b"c", target=CompareTarget.CREATE, result=LT, value=4),
         True),
        (Compare(key=b"a", range_end=b"c", target=CompareTarget.CREATE, result=LT, value=3),
         False),
        (Compare(key=b"b", target=CompareTarget.MOD, result=EQ, value=4), True),
        (Compare(key=b"b", target=CompareTarget.VALUE, result=GT, value=b"1"), True),
        (Compare(key=b"b", target=CompareTarget.VALUE, result=GT, value=b"2"), False),
        # An empty range compares against zero values ...
        (Compare(key=b"x", target=CompareTarget.VERSION, result=EQ, value=0), True),
        (Compare(key=b"x", range_end=b"z", target=CompareTarget.CREATE, result=LT, value=1),
         True),
        (Compare(key=b"x", target=CompareTarget.MOD, result=GT, value=-1), True),
        (Compare(key=b"x", target=CompareTarget.LEASE, result=NE, value=0), False),
        # ... except VALUE, which always fails on missing keys.
        (Compare(key=b"x", target=CompareTarget.VALUE, result=EQ, value=b""), False),
        (Compare(key=b"x", target=CompareTarget.VALUE, result=NE, value=b"v"), False),
        (Compare(key=b"c", range_end=b"a", target=CompareTarget.VALUE, result=NE, value=b""),
         False),
    ],
)
def test_compare_rules(compare: Compare, holds: bool) -> None:
    store = new_store()
    put(store, b"a", b"1")  # rev 2
    put(store, b"b", b"1")  # rev 3
    put(store, b"b", b"2")  # rev 4
    assert txn(store, compare=(compare,)).succeeded is holds


def test_all_compares_must_hold() -> None:
    store = _store_with(b"a")
    response = txn(store, p(b"b"), compare=(version_is(b"a", EQ, 1), version_is(b"a", EQ, 2)),
                   failure=(p(b"c"),))
    assert not response.succeeded
    assert keys(get(store, ALL_KEYS, ALL_KEYS)) == [b"a", b"c"]


# -- compaction and hashing ------------------------------------------------------------------------


def test_compaction_keeps_the_latest_version_and_drops_older_ones() -> None:
    store = new_store()
    for value in (b"1", b"2", b"3"):
        put(store, b"a", value)               # revs 2-4
    put(store, b"b", b"gone")                 # rev 5
    store.delete_range(d(b"b"))               # rev 6
    assert store.backend.count(KEY_BUCKET) == 5
    store.compact(CompactionRequest(revision=3))
    assert store.backend.count(KEY_BUCKET) == 4  # a@2 dropped; a@3 is still visible at 3
    assert pairs(get(store, b"a", revision=3)) == [(b"a", b"2")]
    store.compact(CompactionRequest(revision=6))
    # Only a@4 is left: b's whole generation (put and tombstone) is gone.
    assert store.backend.count(KEY_BUCKET) == 1
    assert get(store, b"a", revision=6).kvs == (
        KeyValue(key=b"a", create_revision=2, mod_revision=4, version=3, value=b"3"),
    )
    assert get(store, b"b", revision=6).count == 0
    store.check_invariants(deep=True)
    put(store, b"b", b"back")
    assert get(store, b"b").kvs[0].create_revision == 7


def _replay(store: MvccStore) -> None:
    put(store, b"a", b"1")
    put(store, b"b", b"1")
    txn(store, p(b"c", b"1"), d(b"a"))
    put(store, b"b", b"2")
    store.delete_range(d(b"b", b"c"))
    put(store, b"a", b"2")


def test_hash_kv_is_equal_on_replicas_with_different_compaction() -> None:
    plain, compacted = new_store(), new_store()
    _replay(plain)
    _replay(compacted)
    assert plain.current_revision == compacted.current_revision == 7
    compacted.compact(CompactionRequest(revision=4))
    assert compacted.hash_kv() == replace(plain.hash_kv(), compact_revision=4)
    for at in range(4, 8):
        assert compacted.hash_kv(at).hash == plain.hash_kv(at).hash
        assert compacted.hash_kv(at).revision == at
    compacted.compact(CompactionRequest(revision=7))
    assert compacted.hash_kv().hash == plain.hash_kv().hash
    # Different data hashes differently (same keys, one value changed).
    put(plain, b"a", b"x")
    put(compacted, b"a", b"y")
    assert compacted.hash_kv().hash != plain.hash_kv().hash
    # ... and so does a different revision of the same data (1: the empty store).
    assert len({plain.hash_kv(at).hash for at in range(1, 9)}) == 8


def test_reopening_a_store_over_its_backend_gives_the_same_reads() -> None:
    backend = MemoryBackend()
    store = MvccStore(backend)
    _replay(store)
    store.compact(CompactionRequest(revision=4))
    put(store, b"d", b"1")
    reopened = MvccStore(backend)
    reopened.check_invariants(deep=True)
    assert reopened.current_revision == store.current_revision == 8
    assert reopened.compact_revision == 4
    for at in range(4, 9):
        request = RangeRequest(key=ALL_KEYS, range_end=ALL_KEYS, revision=at)
        assert reopened.range(request) == store.range(request)
    with pytest.raises(Compacted):
        reopened.range(RangeRequest(key=b"a", revision=3))
    assert put(reopened, b"e").header.revision == 9


def test_reopening_after_compacting_away_the_newest_records_keeps_the_revision() -> None:
    backend = MemoryBackend()
    store = MvccStore(backend)
    put(store, b"a")
    put(store, b"b")
    store.delete_range(d(b"a", b"c"))  # rev 4: only tombstones at the top
    store.compact(CompactionRequest(revision=4))
    assert backend.count(KEY_BUCKET) == 0
    reopened = MvccStore(backend)
    assert (reopened.current_revision, reopened.compact_revision) == (4, 4)
    assert put(reopened, b"a").header.revision == 5
    assert get(reopened, b"a").kvs[0].create_revision == 5


def test_delete_keys_deletes_the_live_ones_in_one_revision() -> None:
    leases = FakeLeases(1)
    store = new_store(leases=leases)
    for key in (b"a", b"b", b"c"):
        put(store, key, lease=LeaseId(1))
    assert store.delete_keys([b"a", b"c", b"missing"]) == 5
    assert keys(get(store, ALL_KEYS, ALL_KEYS)) == [b"b"]
    assert leases.keys[1] == {b"b"}
    assert store.delete_keys([b"missing"]) == 5  # nothing deleted: no revision
    assert store.current_revision == 5


def test_events_between_have_etcds_shape() -> None:
    store = new_store()
    put(store, b"a", b"1")
    put(store, b"a", b"2")
    store.delete_range(d(b"a"))
    events = list(store.events_between(1, 4, with_prev=True))
    assert [e.type for e in events] == [EventType.PUT, EventType.PUT, EventType.DELETE]
    assert events[0].prev_kv is None
    assert events[1].prev_kv == events[0].kv
    # A DELETE holds the key and the deleting revision, every other field zero.
    assert events[2].kv == KeyValue(key=b"a", create_revision=0, mod_revision=4, version=0,
                                    value=b"")
    assert events[2].prev_kv == events[1].kv
    assert list(store.events_between(5, 9)) == []


# -- etcd details that once differed ---------------------------------------------------------------


def test_a_historical_range_reports_the_current_revision_like_etcd() -> None:
    store = _store_with(b"a", b"b")
    assert get(store, b"a", revision=2).header.revision == 3
    assert get(store, b"a", b"z", revision=2).header.revision == 3


def test_an_empty_delete_after_a_write_in_a_txn_reports_the_txn_revision_like_etcd() -> None:
    store = _store_with(b"a")
    response = txn(store, p(b"b"), d(b"missing"))
    assert response.header.revision == 3
    assert response.responses[1].header.revision == 3


# -- the per-transaction change limit (max_sub_revisions) ------------------------------------------


def test_the_change_limit_does_not_carry_over_from_the_previous_write() -> None:
    store = new_store(StateMachineConfig(max_txn_ops=2, max_sub_revisions=3))
    for key in (b"a", b"b", b"c"):
        put(store, key)
    assert store.delete_range(d(b"a", ALL_KEYS)).deleted == 3
    assert txn(store, p(b"x")).header.revision == 6


def test_a_txn_over_the_change_limit_writes_nothing() -> None:
    store = new_store(StateMachineConfig(max_txn_ops=4, max_sub_revisions=5))
    put(store, b"c")
    put(store, b"d")
    txn(store)  # a read-only txn (resets the counter the other bug leaves behind)
    # 2 puts + 4 deletes (a, b, c, d) = 6 changes > 5.
    over = (nested((p(b"a"), p(b"b"))), nested((d(b"a", ALL_KEYS),)))
    unchanged(store, lambda: txn(store, *over), InvalidRequest)


def test_a_txn_within_the_change_limit_is_applied() -> None:
    store = new_store(StateMachineConfig(max_txn_ops=4, max_sub_revisions=5))
    put(store, b"c")
    txn(store)
    response = txn(store, nested((p(b"a"), p(b"b"))), nested((d(b"a", ALL_KEYS),)))
    assert response.header.revision == 3
    assert get(store, ALL_KEYS, ALL_KEYS).count == 0
    assert len(list(store.events_between(3, 3))) == 5
