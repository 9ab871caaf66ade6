"""sim.history_json: core messages in the checker's schema.

Unit tests per request and response kind (every request goes through the
checker's own parser), the error mapping, and two end-to-end runs on a
single-node ChainfireNode: the recorded history must check Ok (and Illegal
once tampered with), and the watch streams recorded alongside must have no
violations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from chainfire_core.errors import (
    ChainfireError,
    Compacted,
    CorruptSnapshot,
    DuplicateKey,
    EmptyKey,
    FutureRevision,
    InvalidRequest,
    KeyNotFound,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    NotLeader,
    ProposalDropped,
    RequestTimeout,
    TooManyOps,
)
from chainfire_core.lease.lessor import NotPrimaryLessor
from chainfire_core.lease.messages import (
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesRequest,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
)
from chainfire_core.mvcc.messages import (
    ALL_KEYS,
    CompactionRequest,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    ResponseHeader,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
    prefix_end,
)
from chainfire_core.mvcc.watch_messages import WatchCreateRequest, WatchFilter, WatchResponse
from chainfire_core.node import ChainfireNode, NodeConfig
from chainfire_core.node_messages import ClientResponse, ReadConsistency, StatusRequest
from chainfire_core.raft import ConfState, MemoryStorage, RaftConfig, Snapshot, SnapshotMetadata
from chainfire_core.types import Index, LeaseId, NodeId, Revision, Term, WatchId
from checker import etcd_model as em
from checker.etcd_model import EtcdModel, parse_request
from checker.history import Operation
from checker.lease_check import check_leases
from checker.linearizability import check_operations
from checker.result import Verdict
from checker.revision_check import check_etcd_history
from checker.watch_check import check_watch_streams, stream_from_json
from sim.history_json import (
    entry,
    error_code,
    error_json,
    from_text,
    is_definite,
    request_json,
    response_json,
    to_text,
    watch_delivery_json,
    watch_stream_json,
)


def header(revision: int) -> ResponseHeader:
    return ResponseHeader(revision=Revision(revision))


def kv(key: bytes, value: bytes, mod: int, *, create: int = 1, version: int = 1,
       lease: int = 0) -> KeyValue:
    return KeyValue(key=key, value=value, mod_revision=Revision(mod),
                    create_revision=Revision(create), version=version, lease=LeaseId(lease))


# -- bytes ---------------------------------------------------------------------------


def test_every_byte_round_trips_and_order_is_kept() -> None:
    every = bytes(range(256))
    assert from_text(to_text(every)) == every
    assert to_text(b"plain ascii") == "plain ascii"
    samples = [b"", b"\x00", b"a", b"a\x00", b"a\xff", b"b", b"\x7f", b"\x80", b"\xc3\xa9",
               b"\xff", b"\xff\xff"]
    assert sorted(samples) == sorted(samples, key=to_text)
    assert to_text(ALL_KEYS) == em.ALL_KEYS


# -- requests --------------------------------------------------------------------------


def test_range_requests_parse_with_every_field() -> None:
    request = RangeRequest(key=b"a", range_end=b"\xff", revision=3, limit=2, count_only=True)
    assert parse_request(request_json(request)) == em.Range(
        key="a", range_end="\xff", revision=3, limit=2, count_only=True)
    assert parse_request(request_json(RangeRequest(key=b"k"), serializable=True)) == em.Range(
        key="k", serializable=True)
    everything = RangeRequest(key=ALL_KEYS, range_end=ALL_KEYS, sort_order=SortOrder.ASCEND)
    assert parse_request(request_json(everything)) == em.Range(key="\0", range_end="\0")


def test_put_delete_compact_and_lease_requests_parse() -> None:
    cases: list[tuple[object, em.Request]] = [
        (PutRequest(key=b"k", value=b"\xc3(", lease=LeaseId(7), prev_kv=True),
         em.Put(key="k", value="\xc3(", lease=7, prev_kv=True)),
        (PutRequest(key=b"k"), em.Put(key="k")),
        (DeleteRangeRequest(key=b"a", range_end=prefix_end(b"a"), prev_kv=True),
         em.Delete(key="a", range_end="b", prev_kv=True)),
        (CompactionRequest(revision=Revision(4), physical=True), em.Compact(revision=4)),
        (LeaseGrantRequest(ttl_s=10), em.LeaseGrant(ttl_s=10)),
        (LeaseGrantRequest(ttl_s=5, id=LeaseId(9)), em.LeaseGrant(ttl_s=5, id=9)),
        (LeaseRevokeRequest(id=LeaseId(9)), em.LeaseRevoke(id=9)),
        (LeaseKeepAliveRequest(id=LeaseId(9)), em.LeaseKeepAlive(id=9)),
        (LeaseTimeToLiveRequest(id=LeaseId(9), keys=True), em.LeaseTimeToLive(id=9, keys=True)),
    ]
    for request, expected in cases:
        assert parse_request(request_json(request)) == expected, request


def test_txn_requests_parse_with_every_compare_and_nesting() -> None:
    compares = tuple(
        Compare(key=b"k", target=target, result=result,
                value=b"v" if target == CompareTarget.VALUE else 3)
        for target in CompareTarget for result in CompareResult)
    inner = TxnRequest(compare=(Compare(key=b"a", range_end=b"c", target=CompareTarget.VERSION,
                                        result=CompareResult.GREATER, value=0),),
                       success=(DeleteRangeRequest(key=b"a"),))
    txn = TxnRequest(compare=compares,
                     success=(PutRequest(key=b"k", value=b"1"), RangeRequest(key=b"k")),
                     failure=(inner,))
    parsed = parse_request(request_json(txn))
    assert isinstance(parsed, em.Txn)
    assert [(c.target, c.result, c.value) for c in parsed.compare] == [
        (t, r, "v" if t == "value" else 3)
        for t in ("version", "create", "mod", "value", "lease") for r in ("=", ">", "<", "!=")]
    assert parsed.success == (em.Put(key="k", value="1"), em.Range(key="k"))
    assert parsed.failure == (em.Txn(
        compare=(em.Compare(key="a", range_end="c", target="version", result=">", value=0),),
        success=(em.Delete(key="a"),)),)


def test_a_writing_txn_ignores_serializable_but_a_read_only_one_is_refused() -> None:
    writes = TxnRequest(success=(PutRequest(key=b"k"),))
    assert request_json(writes, serializable=True) == request_json(writes)
    with pytest.raises(TypeError, match="serializable"):
        request_json(TxnRequest(success=(RangeRequest(key=b"k"),)), serializable=True)


@pytest.mark.parametrize("request_", [
    RangeRequest(key=b"k", keys_only=True),
    RangeRequest(key=b"k", range_end=ALL_KEYS, sort_order=SortOrder.DESCEND),
    RangeRequest(key=b"k", range_end=ALL_KEYS, sort_target=SortTarget.MOD),
    RangeRequest(key=b"k", min_mod_revision=2),
    RangeRequest(key=b"k", max_create_revision=2),
    PutRequest(key=b"k", ignore_value=True),
    PutRequest(key=b"k", ignore_lease=True),
    TxnRequest(success=(RangeRequest(key=b"k", keys_only=True),)),
    LeaseLeasesRequest(),
    StatusRequest(),
    object(),
])
def test_requests_the_schema_cannot_express_raise_type_error(request_: object) -> None:
    with pytest.raises(TypeError):
        request_json(request_)


# -- responses -------------------------------------------------------------------------


def test_range_response_has_full_entries_count_and_more() -> None:
    one = kv(b"a", b"\xff", 4, create=2, version=3, lease=7)
    found = RangeResponse(header=header(9), kvs=(one,), more=True, count=5)
    assert response_json(RangeRequest(key=b"a", range_end=ALL_KEYS, limit=1), found) == {
        "revision": 9, "kvs": [["a", "\xff", 4, 2, 3, 7]], "count": 5, "more": True}


def test_put_and_delete_record_prev_kvs_only_when_asked() -> None:
    old = kv(b"k", b"0", 1)
    put = PutResponse(header=header(2), prev_kv=old)
    assert response_json(PutRequest(key=b"k"), put) == {"revision": 2}
    assert response_json(PutRequest(key=b"k", prev_kv=True), put) == {
        "revision": 2, "prev_kv": entry(old)}
    assert response_json(PutRequest(key=b"k", prev_kv=True), PutResponse(header=header(1))) == {
        "revision": 1, "prev_kv": None}
    deleted = DeleteRangeResponse(header=header(3), deleted=1, prev_kvs=(old,))
    assert response_json(DeleteRangeRequest(key=b"k"), deleted) == {"revision": 3, "deleted": 1}
    assert response_json(DeleteRangeRequest(key=b"k", prev_kv=True), deleted) == {
        "revision": 3, "deleted": 1, "prev_kvs": [["k", "0", 1, 1, 1, 0]]}


def test_txn_response_pairs_the_taken_branch_with_its_requests() -> None:
    txn = TxnRequest(success=(PutRequest(key=b"x"),),
                     failure=(RangeRequest(key=b"a"), DeleteRangeRequest(key=b"b", prev_kv=True)))
    answer = TxnResponse(header=header(5), succeeded=False, responses=(
        RangeResponse(header=header(5), kvs=(), more=False, count=0),
        DeleteRangeResponse(header=header(5), deleted=0)))
    assert response_json(txn, answer) == {
        "revision": 5, "succeeded": False, "responses": [
            {"revision": 5, "kvs": [], "count": 0, "more": False},
            {"revision": 5, "deleted": 0, "prev_kvs": []}]}
    with pytest.raises(TypeError):
        response_json(txn, replace(answer, succeeded=True))


def test_compaction_and_lease_responses() -> None:
    lease = LeaseId(7)
    cases: list[tuple[object, object, dict[str, Any]]] = [
        (CompactionRequest(revision=Revision(2)), CompactionResponse(header=header(4)),
         {"revision": 4}),
        (LeaseGrantRequest(ttl_s=10), LeaseGrantResponse(header=header(4), id=lease, ttl_s=10),
         {"revision": 4, "id": 7, "ttl_s": 10}),
        (LeaseRevokeRequest(id=lease), LeaseRevokeResponse(header=header(5)), {"revision": 5}),
        (LeaseKeepAliveRequest(id=lease),
         LeaseKeepAliveResponse(header=header(4), id=lease, ttl_s=10),
         {"revision": 4, "ttl_s": 10}),
        (LeaseTimeToLiveRequest(id=lease, keys=True),
         LeaseTimeToLiveResponse(header=header(4), id=lease, ttl_s=8, granted_ttl_s=10,
                                 keys=(b"a", b"b")),
         {"revision": 4, "ttl_s": 8, "granted_ttl_s": 10, "keys": ["a", "b"]}),
        (LeaseTimeToLiveRequest(id=lease),
         LeaseTimeToLiveResponse(header=header(4), id=lease, ttl_s=-1, granted_ttl_s=0),
         {"revision": 4, "ttl_s": -1, "granted_ttl_s": 0}),
    ]
    for request, response, expected in cases:
        assert response_json(request, response) == expected, request


def test_mismatched_responses_raise_type_error() -> None:
    with pytest.raises(TypeError):
        response_json(PutRequest(key=b"k"), CompactionResponse(header=header(1)))
    with pytest.raises(TypeError):
        response_json(LeaseKeepAliveRequest(id=LeaseId(1)),
                      LeaseKeepAliveResponse(header=header(1), id=LeaseId(2), ttl_s=5))
    with pytest.raises(TypeError):
        response_json(LeaseLeasesRequest(), object())


# -- errors -----------------------------------------------------------------------------


def test_errors_the_checker_knows_use_its_codes() -> None:
    assert error_json(LeaseNotFound(3)) == {"error": "lease_not_found"}
    assert error_json(Compacted(1, 2)) == {"error": "compacted"}
    assert error_json(NotLeader(2)) == {"error": "not_leader"}
    assert error_json(NotPrimaryLessor()) == {"error": "not_leader"}
    assert error_json(LeaseExists(3)) == {"error": "lease_exists"}
    assert error_json(FutureRevision(9, 2)) == {"error": "future_revision"}
    assert error_json(ProposalDropped("no leader")) == {"error": "proposal_dropped"}
    assert error_json(DuplicateKey(b"k")) == {"error": "duplicate_key"}
    assert error_json(LeaseTTLTooLarge(10, 5)) == {"error": "lease_ttl_too_large"}
    assert error_code(RequestTimeout()) == "request_timeout"


@pytest.mark.parametrize("error", [
    NotLeader(0), NotPrimaryLessor(), ProposalDropped("lost to a leader change"),
    Compacted(1, 2), FutureRevision(9, 2), LeaseNotFound(1), LeaseExists(1),
    LeaseTTLTooLarge(10, 5), InvalidRequest("bad"), EmptyKey(), KeyNotFound(b"k"),
    TooManyOps(3, 2), DuplicateKey(b"k"),
])
def test_definite_errors(error: ChainfireError) -> None:
    assert is_definite(error)


class _NewKindOfFailure(ChainfireError):
    pass


@pytest.mark.parametrize("error", [
    RequestTimeout(), CorruptSnapshot("bad"), _NewKindOfFailure("?"),
])
def test_errors_with_unknown_outcome_are_not_definite(error: ChainfireError) -> None:
    assert not is_definite(error)
    assert error_code(error)  # still named, for traces
    with pytest.raises(ValueError, match="unknown"):
        error_json(error)


# -- a single-node run, recorded ------------------------------------------------------------


@dataclass
class Recorder:
    """One ChainfireNode (docs/node.md "Driving it"); each request is run to
    its answer and recorded as an Operation with sequential times."""

    storage: MemoryStorage = field(default_factory=MemoryStorage)
    ops: list[Operation] = field(default_factory=list)
    watches: dict[WatchId, list[WatchResponse]] = field(default_factory=dict)
    node: ChainfireNode = field(init=False)

    def __post_init__(self) -> None:
        self.storage.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
            index=Index(1), term=Term(1), conf_state=ConfState(voters=(NodeId(1),)))))
        self.node = ChainfireNode(NodeConfig(raft=RaftConfig(id=NodeId(1))), self.storage,
                                  random.Random(1))
        self.node.campaign()
        assert not self.drive()

    def drive(self) -> list[ClientResponse]:
        answers: list[ClientResponse] = []
        while self.node.has_ready():
            ready = self.node.ready()
            if ready.raft is not None:
                if ready.raft.snapshot is not None:
                    self.storage.apply_snapshot(ready.raft.snapshot)
                self.storage.append(ready.raft.entries)
                if ready.raft.hard_state is not None:
                    self.storage.set_hard_state(ready.raft.hard_state)
            answers += ready.responses
            self.node.advance(ready)
        self.node.check_invariants()
        return answers

    def run(self, request: object, *, serializable: bool = False) -> ClientResponse:
        request_id = len(self.ops) + 1
        consistency = ReadConsistency.SERIALIZABLE if serializable else \
            ReadConsistency.LINEARIZABLE
        self.node.submit(request_id, request, consistency)  # type: ignore[arg-type]
        (answer,) = self.drive()
        assert answer.request_id == request_id
        if answer.error is None:
            output = response_json(request, answer.response)
        else:
            assert is_definite(answer.error), answer.error
            output = error_json(answer.error)
        self.ops.append(Operation(id=request_id, client=request_id % 3,
                                  input=request_json(request, serializable=serializable),
                                  call=2 * request_id, output=output,
                                  return_time=2 * request_id + 1))
        self.poll_watches()
        return answer

    def ok(self, request: object, *, serializable: bool = False) -> Any:
        answer = self.run(request, serializable=serializable)
        assert answer.error is None, answer.error
        return answer.response

    def fails(self, request: object, error: type[ChainfireError]) -> None:
        answer = self.run(request)
        assert isinstance(answer.error, error), answer

    def watch(self, request: WatchCreateRequest) -> WatchId:
        watch_id = self.node.sm.watches.watch(request)
        self.watches[watch_id] = []
        self.poll_watches()
        return watch_id

    def poll_watches(self) -> None:
        for watch_id, got in self.watches.items():
            if watch_id in self.node.sm.watches._watchers:
                got.extend(self.node.sm.watches.poll_watcher(watch_id, 1000))


def _workload(rec: Recorder) -> None:
    """Every kind of request, answered and failed; keys include non-ASCII bytes."""
    odd = b"k\xff\x00z"
    rec.ok(PutRequest(key=b"a", value=b"1"))                                   # r2
    rec.ok(PutRequest(key=odd, value=b"\xc3("))                                # r3
    rec.ok(PutRequest(key=b"a", value=b"2", prev_kv=True))                     # r4
    rec.ok(RangeRequest(key=b"a"))
    rec.ok(RangeRequest(key=b"a"), serializable=True)
    rec.ok(RangeRequest(key=ALL_KEYS, range_end=ALL_KEYS))
    rec.ok(RangeRequest(key=b"a", range_end=ALL_KEYS, limit=1))
    rec.ok(RangeRequest(key=b"a", range_end=ALL_KEYS, count_only=True), serializable=True)
    rec.ok(RangeRequest(key=b"a", revision=2))
    cas = Compare(key=b"a", target=CompareTarget.VALUE, result=CompareResult.EQUAL, value=b"2")
    swap = TxnRequest(compare=(cas,), success=(PutRequest(key=b"a", value=b"3"),
                                               PutRequest(key=b"b", value=b"1")),
                      failure=(RangeRequest(key=b"a"),))
    assert rec.ok(swap).succeeded                                              # r5
    assert not rec.ok(swap).succeeded
    mod = Compare(key=b"b", target=CompareTarget.MOD, result=CompareResult.LESS, value=100)
    assert rec.ok(TxnRequest(compare=(mod,), success=(RangeRequest(key=b"b"),))).succeeded
    nested = TxnRequest(compare=(Compare(key=b"z", target=CompareTarget.VERSION,
                                         result=CompareResult.GREATER, value=0),),
                        success=(PutRequest(key=b"z", value=b"no"),),
                        failure=(DeleteRangeRequest(key=b"b", prev_kv=True),
                                 TxnRequest(success=(PutRequest(key=b"c", value=b"1"),))))
    assert not rec.ok(nested).succeeded                                        # r6
    rec.ok(DeleteRangeRequest(key=b"nothing"))
    lease = rec.ok(LeaseGrantRequest(ttl_s=60)).id
    rec.ok(PutRequest(key=b"l1", value=b"x", lease=lease))                     # r7
    rec.ok(TxnRequest(success=(PutRequest(key=b"l2", value=b"y", lease=lease),)))  # r8
    rec.ok(LeaseKeepAliveRequest(id=lease))
    rec.ok(LeaseTimeToLiveRequest(id=lease, keys=True))
    rec.ok(RangeRequest(key=b"l", range_end=prefix_end(b"l")))
    rec.ok(LeaseRevokeRequest(id=lease))                                       # r9
    rec.fails(LeaseKeepAliveRequest(id=lease), LeaseNotFound)
    rec.ok(LeaseTimeToLiveRequest(id=lease))
    rec.ok(RangeRequest(key=b"l", range_end=prefix_end(b"l")))
    rec.ok(DeleteRangeRequest(key=b"a", range_end=b"c"))                       # r10
    rec.ok(CompactionRequest(revision=Revision(7)))
    rec.fails(RangeRequest(key=b"a", revision=4), Compacted)
    rec.fails(RangeRequest(key=b"a", revision=99), FutureRevision)
    rec.ok(RangeRequest(key=ALL_KEYS, range_end=ALL_KEYS, revision=8))
    rec.ok(RangeRequest(key=ALL_KEYS, range_end=ALL_KEYS))


def test_recorded_single_node_history_checks_ok_with_both_checkers() -> None:
    rec = Recorder()
    _workload(rec)
    assert rec.node.sm.revision == 10
    assert check_etcd_history(rec.ops).verdict == Verdict.OK
    assert check_operations(rec.ops, EtcdModel()).verdict == Verdict.OK
    assert check_leases(rec.ops, clock_bound_ms=0, revoke_bound_ms=0) == []


def test_errors_raised_while_applying_are_recorded_as_definite() -> None:
    rec = Recorder()
    _workload(rec)
    rec.fails(PutRequest(key=b"l3", lease=LeaseId(999)), LeaseNotFound)
    rec.fails(LeaseRevokeRequest(id=LeaseId(999)), LeaseNotFound)
    rec.fails(CompactionRequest(revision=Revision(5)), Compacted)
    rec.fails(CompactionRequest(revision=Revision(99)), FutureRevision)
    rec.fails(TxnRequest(success=(PutRequest(key=b"d"), PutRequest(key=b"d"))), DuplicateKey)
    held = rec.ok(LeaseGrantRequest(ttl_s=10)).id
    rec.fails(LeaseGrantRequest(ttl_s=10, id=held), LeaseExists)
    assert check_etcd_history(rec.ops).verdict == Verdict.OK
    assert check_operations(rec.ops, EtcdModel()).verdict == Verdict.OK


def _tampered(ops: list[Operation], index: int, output: dict[str, Any]) -> list[Operation]:
    return [*ops[:index], replace(ops[index], output=output), *ops[index + 1:]]


def test_tampering_with_one_recorded_output_makes_it_illegal() -> None:
    rec = Recorder()
    _workload(rec)
    read = next(i for i, op in enumerate(rec.ops)
                if op.input["f"] == "range" and op.output.get("kvs"))
    kvs = [list(e) for e in rec.ops[read].output["kvs"]]
    kvs[0][1] = "not what was written"
    bad_value = _tampered(rec.ops, read, {**rec.ops[read].output, "kvs": kvs})
    assert check_etcd_history(bad_value).verdict == Verdict.ILLEGAL
    put = next(i for i, op in enumerate(rec.ops) if op.input["f"] == "put")
    bad_revision = _tampered(rec.ops, put, {**rec.ops[put].output, "revision": 4})
    assert check_etcd_history(bad_revision).verdict == Verdict.ILLEGAL
    version = [list(e) for e in rec.ops[read].output["kvs"]]
    version[0][4] += 1  # only the full form's version is wrong
    bad_version = _tampered(rec.ops, read, {**rec.ops[read].output, "kvs": version})
    assert check_etcd_history(bad_version).verdict == Verdict.ILLEGAL


# -- watches ---------------------------------------------------------------------------------


def test_watch_deliveries_match_the_recorded_history() -> None:
    rec = Recorder()
    requests = {
        "all": WatchCreateRequest(key=ALL_KEYS, range_end=ALL_KEYS),
        "a": WatchCreateRequest(key=b"a", filters=(WatchFilter.NODELETE,), prev_kv=True),
        "l": WatchCreateRequest(key=b"l", range_end=prefix_end(b"l"),
                                filters=(WatchFilter.NOPUT,)),
    }
    ids = {name: rec.watch(request) for name, request in requests.items()}
    rec.ok(PutRequest(key=b"zz", value=b"0"))
    requests["late"] = WatchCreateRequest(key=ALL_KEYS, range_end=ALL_KEYS, start_revision=1)
    ids["late"] = rec.watch(requests["late"])
    _workload(rec)
    rec.node.sm.watches.request_progress()
    rec.poll_watches()
    requests["compacted"] = WatchCreateRequest(key=b"a", start_revision=2)
    ids["compacted"] = rec.watch(requests["compacted"])
    streams = [stream_from_json(watch_stream_json(name, requests[name], rec.watches[ids[name]]))
               for name in requests]
    assert check_etcd_history(rec.ops).verdict == Verdict.OK
    assert check_watch_streams(streams, rec.ops) == []
    kinds = {name: [sorted(d) for d in watch_stream_json(name, requests[name],
                                                          rec.watches[ids[name]])["deliveries"]]
             for name in requests}
    assert kinds["all"][0] == ["created", "revision"]
    assert ["events", "revision"] in kinds["late"]
    assert kinds["all"][-1] == ["progress", "revision"]
    assert kinds["compacted"][-1] == ["canceled", "compact_revision", "revision"]
    all_events = [e for s in streams if s.id == "all" for d in s.deliveries for e in d.events]
    assert [e.mod_revision for e in all_events] == sorted(e.mod_revision for e in all_events)
    assert {e.type for e in all_events} == {"put", "delete"}


def test_a_wrong_event_is_a_watch_violation() -> None:
    rec = Recorder()
    request = WatchCreateRequest(key=b"a")
    watch_id = rec.watch(request)
    rec.ok(PutRequest(key=b"a", value=b"1"))
    stream = watch_stream_json("w", request, rec.watches[watch_id])
    assert check_watch_streams([stream_from_json(stream)], rec.ops) == []
    stream["deliveries"][1]["events"][0]["value"] = "2"
    kinds = [v.kind for v in check_watch_streams([stream_from_json(stream)], rec.ops)]
    assert kinds == ["valid"]


def test_watch_delivery_json_kinds() -> None:
    w = WatchId(1)
    put = Event(type=EventType.PUT, kv=kv(b"k", b"v", 3, create=2, version=2))
    gone = Event(type=EventType.DELETE, kv=KeyValue(
        key=b"k", create_revision=Revision(0), mod_revision=Revision(4), version=0, value=b""))
    assert watch_delivery_json(WatchResponse(watch_id=w, revision=Revision(2), created=True)) \
        == {"revision": 2, "created": True}
    assert watch_delivery_json(WatchResponse(watch_id=w, revision=Revision(4),
                                             events=(put, gone))) == {
        "revision": 4, "events": [
            {"type": "put", "key": "k", "value": "v", "mod_revision": 3, "create_revision": 2,
             "version": 2},
            {"type": "delete", "key": "k", "mod_revision": 4}]}
    assert watch_delivery_json(WatchResponse(watch_id=w, revision=Revision(5))) == {
        "revision": 5, "progress": True}
    assert watch_delivery_json(WatchResponse(watch_id=w, revision=Revision(5), canceled=True,
                                             compact_revision=Revision(5))) == {
        "revision": 5, "canceled": True, "compact_revision": 5}
    with pytest.raises(ValueError, match="one watcher"):
        watch_stream_json("s", WatchCreateRequest(key=b"k"), [
            WatchResponse(watch_id=w, revision=Revision(1), created=True),
            WatchResponse(watch_id=WatchId(2), revision=Revision(1), created=True)])
