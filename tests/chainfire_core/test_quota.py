"""Quotas: etcd's backend quota and NOSPACE alarm (capped writes, disarm),
the CORRUPT alarm, the logical backend size, and per-namespace key and byte
limits enforced at apply time, whole or not at all."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from node_cluster import Cluster

from chainfire_core.alarms import AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType
from chainfire_core.auth import ANONYMOUS, AuthorizedCommand
from chainfire_core.errors import (
    ClusterCorrupt,
    InvalidRequest,
    NamespaceQuotaExceeded,
    NoSpace,
    PermissionDenied,
    UserEmpty,
)
from chainfire_core.lease.messages import LeaseGrantRequest, LeaseRevokeRequest
from chainfire_core.mvcc.messages import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from chainfire_core.node_messages import ReadConsistency
from chainfire_core.quota import (
    KV_OVERHEAD_BYTES,
    LEASE_OVERHEAD_BYTES,
    QuotaDeleteRequest,
    QuotaListRequest,
    QuotaResponse,
    QuotaSetRequest,
    SizedBackend,
    backend_has_room,
    request_cost,
)
from chainfire_core.state_machine import Command, StateMachine
from chainfire_core.storage import BatchDelete, BatchOp, BatchPut, MemoryBackend
from chainfire_core.types import LeaseId, NodeId, Revision
from tests.chainfire_core.auth.auth_helpers import Driver as AuthDriver
from tests.chainfire_core.auth.auth_helpers import with_root_and_app


class Driver:
    def __init__(self) -> None:
        self.sm = StateMachine()
        self.index = 0

    def __call__(self, command: Command) -> object:
        self.index += 1
        return self.sm.apply(command, now_ms=0, index=self.index)


def put(key: bytes, value: bytes = b"v") -> PutRequest:
    return PutRequest(key=key, value=value)


NOSPACE_ON = AlarmRequest(action=AlarmAction.ACTIVATE, member_id=NodeId(1),
                          alarm=AlarmType.NOSPACE)
NOSPACE_OFF = AlarmRequest(action=AlarmAction.DEACTIVATE, member_id=NodeId(1),
                           alarm=AlarmType.NOSPACE)


# -- etcd's cost model -------------------------------------------------------------------


def test_request_costs_are_etcds() -> None:
    assert request_cost(put(b"key", b"value")) == KV_OVERHEAD_BYTES + 8 == 264
    assert request_cost(LeaseGrantRequest(ttl_s=5)) == LEASE_OVERHEAD_BYTES == 64
    assert request_cost(DeleteRangeRequest(key=b"k")) == 0
    assert request_cost(CompactionRequest(revision=Revision(1))) == 0
    txn = TxnRequest(success=(put(b"a", b"12"), put(b"b")),
                     failure=(TxnRequest(success=(put(b"c", b"x" * 100),)),))
    # The larger branch (two puts beat one big nested put)...
    assert request_cost(txn) == 2 * KV_OVERHEAD_BYTES + 5
    # ... and a nested txn's puts count too.
    nested = TxnRequest(failure=(TxnRequest(success=(put(b"c", b"x" * 100),)),))
    assert request_cost(nested) == KV_OVERHEAD_BYTES + 101
    assert request_cost(TxnRequest(success=(RangeRequest(key=b"a"),))) == 0


def test_a_write_fits_while_size_plus_cost_stays_under_the_quota() -> None:
    assert backend_has_room(99, 0, 100)
    assert backend_has_room(90, 9, 100) and not backend_has_room(90, 10, 100)


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(("put", "delete", "batch")),
                              st.sampled_from(("a", "b")), st.binary(max_size=3),
                              st.binary(max_size=5)), max_size=30))
def test_the_sized_backend_counts_every_key_and_value(
        ops: list[tuple[str, str, bytes, bytes]]) -> None:
    inner = MemoryBackend()
    inner.put("a", b"seed", b"1234")
    sized = SizedBackend(inner, ("a", "b"))
    for kind, bucket, key, value in ops:
        if kind == "put":
            sized.put(bucket, key, value)
        elif kind == "delete":
            sized.delete(bucket, key)
        else:
            batch: list[BatchOp] = [BatchPut(bucket=bucket, key=key, value=value),
                                    BatchPut(bucket=bucket, key=key, value=value + b"!"),
                                    BatchDelete(bucket="a", key=b"seed")]
            sized.write_batch(batch)
        sized.check_invariants()
    snapshot = sized.snapshot()
    sized.restore(MemoryBackend().snapshot())
    assert sized.size_bytes == 0
    sized.restore(snapshot)
    sized.check_invariants()


def test_compaction_gives_backend_space_back() -> None:
    driver = Driver()
    for value in (b"x" * 100, b"y" * 100, b"z" * 100):
        driver(put(b"k", value))
    before = driver.sm.backend_size_bytes
    driver(CompactionRequest(revision=driver.sm.revision))
    assert driver.sm.backend_size_bytes < before - 150


# -- alarms ---------------------------------------------------------------------------------


def test_alarm_activate_deactivate_and_list_answer_as_etcd() -> None:
    driver = Driver()
    header = driver.sm._header()
    member = AlarmMember(member_id=NodeId(1), alarm=AlarmType.NOSPACE)
    assert driver(NOSPACE_ON) == AlarmResponse(header=header, alarms=(member,))
    assert driver(NOSPACE_ON) == AlarmResponse(header=header)  # already active
    corrupt = AlarmRequest(action=AlarmAction.ACTIVATE, member_id=NodeId(2),
                           alarm=AlarmType.CORRUPT)
    driver(corrupt)
    everything = driver.sm.serve_read(AlarmRequest(action=AlarmAction.GET))
    assert isinstance(everything, AlarmResponse)
    assert [(a.member_id, a.alarm) for a in everything.alarms] == [
        (1, AlarmType.NOSPACE), (2, AlarmType.CORRUPT)]
    nospace = driver.sm.serve_read(AlarmRequest(action=AlarmAction.GET,
                                                alarm=AlarmType.NOSPACE))
    assert isinstance(nospace, AlarmResponse) and nospace.alarms == (member,)
    assert driver(NOSPACE_OFF) == AlarmResponse(header=header, alarms=(member,))
    assert driver(NOSPACE_OFF) == AlarmResponse(header=header)
    with pytest.raises(InvalidRequest):
        AlarmRequest(action=AlarmAction.ACTIVATE, member_id=NodeId(1))


def test_nospace_refuses_writes_and_allows_reads_deletes_and_compaction() -> None:
    driver = Driver()
    driver(put(b"a"))
    driver(put(b"b"))
    driver(LeaseGrantRequest(id=LeaseId(5), ttl_s=60))
    driver(NOSPACE_ON)
    revision = driver.sm.revision
    compare = Compare(key=b"a", target=CompareTarget.VERSION, result=CompareResult.EQUAL, value=1)
    for refused in (put(b"c"), LeaseGrantRequest(ttl_s=5),
                    TxnRequest(compare=(compare,), success=(DeleteRangeRequest(key=b"a"),),
                               failure=(put(b"x"),)),  # a put on either branch
                    TxnRequest(success=(TxnRequest(success=(put(b"y"),)),))):
        with pytest.raises(NoSpace):
            driver(refused)
    assert driver.sm.revision == revision
    driver.sm.serve_read(RangeRequest(key=b"a"))
    driver.sm.serve_read(TxnRequest(success=(RangeRequest(key=b"a"),)))
    driver(TxnRequest(success=(DeleteRangeRequest(key=b"b"),)))  # delete-only txn
    driver(DeleteRangeRequest(key=b"a"))
    driver(LeaseRevokeRequest(id=LeaseId(5)))
    driver(CompactionRequest(revision=driver.sm.revision))
    driver(NOSPACE_OFF)
    driver(put(b"c"))  # disarmed: writes again
    assert driver.sm.store.kv_at(b"c", driver.sm.revision) is not None


def test_corrupt_refuses_every_key_value_and_lease_request() -> None:
    driver = Driver()
    driver(put(b"a"))
    driver(AlarmRequest(action=AlarmAction.ACTIVATE, member_id=NodeId(2),
                        alarm=AlarmType.CORRUPT))
    for refused in (put(b"b"), DeleteRangeRequest(key=b"a"), TxnRequest(),
                    CompactionRequest(revision=Revision(1)), LeaseGrantRequest(ttl_s=5),
                    LeaseRevokeRequest(id=LeaseId(1))):
        with pytest.raises(ClusterCorrupt):
            driver(refused)
    with pytest.raises(ClusterCorrupt):
        driver.sm.serve_read(RangeRequest(key=b"a"))


def test_the_nospace_alarm_goes_up_before_the_quota_is_passed_and_is_replicated() -> None:
    cluster = Cluster(3, quota_backend_bytes=4_000)
    leader = cluster.elect()
    follower = next(n for n in cluster.ids if n != leader)
    written = 0
    for number in range(100):
        answer = cluster.request(follower, put(b"k%03d" % number, b"x" * 100))
        assert answer is not None
        if answer.error is not None:
            assert isinstance(answer.error, NoSpace)
            break
        written += 1
    assert 0 < written < 100
    cluster.tick(3)
    for node in cluster.ids:
        sm = cluster.nodes[node].sm
        assert sm.backend_size_bytes < 4_000
        assert sm.alarms.get() == (AlarmMember(member_id=follower, alarm=AlarmType.NOSPACE),)
    # Every member now refuses writes at apply time, even one with room.
    small = cluster.request(leader, put(b"tiny", b""))
    assert small is not None and isinstance(small.error, NoSpace)
    read = cluster.request(leader, RangeRequest(key=b"k000"), ReadConsistency.LINEARIZABLE)
    assert read is not None and read.error is None
    # Make room (delete, compact), disarm, write again.
    for request in (DeleteRangeRequest(key=b"k", range_end=b"l"),
                    CompactionRequest(revision=cluster.nodes[leader].sm.revision + 1),
                    AlarmRequest(action=AlarmAction.DEACTIVATE, member_id=follower,
                                 alarm=AlarmType.NOSPACE),
                    put(b"again")):
        answer = cluster.request(leader, request)
        assert answer is not None and answer.error is None, (request, answer)


# -- namespace quotas --------------------------------------------------------------------


def _usage(driver: Driver, prefix: bytes) -> tuple[int, int]:
    listed = driver.sm.serve_read(QuotaListRequest())
    assert isinstance(listed, QuotaResponse)
    found = [u for u in listed.quotas if u.prefix == prefix]
    return (found[0].used_keys, found[0].used_bytes) if found else (-1, -1)


def test_a_key_limit_refuses_the_key_past_it() -> None:
    driver = Driver()
    driver(QuotaSetRequest(prefix=b"/t/", max_keys=2))
    driver(put(b"/t/a"))
    driver(put(b"/t/b"))
    driver(put(b"/t/a", b"overwrite"))  # not a new key
    driver(put(b"/u/c"))  # another namespace
    with pytest.raises(NamespaceQuotaExceeded) as refused:
        driver(put(b"/t/c"))
    assert refused.value.grpc_code == "RESOURCE_EXHAUSTED"
    assert (refused.value.prefix, refused.value.what, refused.value.limit) == (b"/t/", "keys", 2)
    assert _usage(driver, b"/t/") == (2, 4 + 9 + 4 + 1)
    driver(DeleteRangeRequest(key=b"/t/a"))
    driver(put(b"/t/c"))
    driver.sm.check_invariants(deep=True)


def test_a_byte_limit_counts_keys_and_values() -> None:
    driver = Driver()
    driver(QuotaSetRequest(prefix=b"/b/", max_bytes=20))
    driver(put(b"/b/1", b"x" * 10))  # 14 bytes
    with pytest.raises(NamespaceQuotaExceeded):
        driver(put(b"/b/2", b"x" * 3))  # 14 + 7 > 20
    driver(put(b"/b/2", b"x" * 2))  # 14 + 6 = 20
    with pytest.raises(NamespaceQuotaExceeded):
        driver(put(b"/b/1", b"x" * 11))  # growing an existing key
    driver(put(b"/b/1", b"x"))  # shrinking always passes
    assert _usage(driver, b"/b/") == (2, 5 + 6)


def test_a_namespace_over_a_lowered_limit_still_takes_deletes_and_shrinks() -> None:
    driver = Driver()
    for key in (b"/n/1", b"/n/2", b"/n/3"):
        driver(put(key, b"xx"))
    driver(QuotaSetRequest(prefix=b"/n/", max_keys=1, max_bytes=10))
    assert _usage(driver, b"/n/") == (3, 18)  # counted when the quota was set
    driver(put(b"/n/1", b""))
    driver(DeleteRangeRequest(key=b"/n/2"))
    with pytest.raises(NamespaceQuotaExceeded):
        driver(put(b"/n/4"))
    assert _usage(driver, b"/n/") == (2, 4 + 6)


def test_a_txn_that_would_pass_a_limit_is_refused_whole() -> None:
    driver = Driver()
    driver(QuotaSetRequest(prefix=b"/t/", max_keys=3))
    driver(put(b"/t/a"))
    revision = driver.sm.revision
    txn = TxnRequest(success=(put(b"/t/b"), put(b"/t/c"), put(b"/t/d"), put(b"/free")))
    with pytest.raises(NamespaceQuotaExceeded):
        driver(txn)
    assert driver.sm.revision == revision
    assert driver.sm.store.kv_at(b"/t/b", revision + 1) is None
    assert driver.sm.store.kv_at(b"/free", revision + 1) is None
    # A delete in the same txn makes room for a put (etcd forbids the same key in both).
    driver(TxnRequest(success=(DeleteRangeRequest(key=b"/t/a"), put(b"/t/b"), put(b"/t/c"),
                               put(b"/t/d"))))
    assert _usage(driver, b"/t/") == (3, 15)


def test_only_the_branch_a_txn_takes_counts() -> None:
    driver = Driver()
    driver(QuotaSetRequest(prefix=b"/t/", max_keys=1))
    absent = Compare(key=b"/flag", target=CompareTarget.VERSION, result=CompareResult.EQUAL,
                     value=0)
    driver(TxnRequest(compare=(absent,), success=(put(b"/t/1"),),
                      failure=(put(b"/t/2"), put(b"/t/3"))))
    driver(put(b"/flag"))
    with pytest.raises(NamespaceQuotaExceeded):  # now the failure branch would run
        driver(TxnRequest(compare=(absent,), success=(put(b"/t/1"),),
                          failure=(TxnRequest(success=(put(b"/t/2"),)),)))
    assert _usage(driver, b"/t/") == (1, 5)


def test_overlapping_namespaces_each_count_and_revokes_give_room_back() -> None:
    driver = Driver()
    driver(QuotaSetRequest(prefix=b"/a/", max_keys=3))
    driver(QuotaSetRequest(prefix=b"/a/b/", max_keys=1))
    driver(LeaseGrantRequest(id=LeaseId(9), ttl_s=60))
    driver(PutRequest(key=b"/a/b/1", value=b"v", lease=LeaseId(9)))
    with pytest.raises(NamespaceQuotaExceeded) as refused:
        driver(put(b"/a/b/2"))
    assert refused.value.prefix == b"/a/b/"
    driver(put(b"/a/x"))
    assert (_usage(driver, b"/a/"), _usage(driver, b"/a/b/")) == ((2, 12), (1, 7))
    driver(LeaseRevokeRequest(id=LeaseId(9)))
    assert (_usage(driver, b"/a/"), _usage(driver, b"/a/b/")) == ((1, 5), (0, 0))
    driver(put(b"/a/b/2"))
    driver.sm.check_invariants(deep=True)


def test_quotas_can_be_replaced_removed_and_listed() -> None:
    driver = Driver()
    set_response = driver(QuotaSetRequest(prefix=b"/q/", max_keys=1))
    assert isinstance(set_response, QuotaResponse) and set_response.quotas[0].max_keys == 1
    driver(QuotaSetRequest(prefix=b"/q/", max_keys=5, max_bytes=99))
    driver(QuotaSetRequest(prefix=b"/p/", max_bytes=7))
    listed = driver.sm.serve_read(QuotaListRequest())
    assert isinstance(listed, QuotaResponse)
    assert [(u.prefix, u.max_keys, u.max_bytes) for u in listed.quotas] == [
        (b"/p/", 0, 7), (b"/q/", 5, 99)]
    removed = driver(QuotaDeleteRequest(prefix=b"/q/"))
    assert isinstance(removed, QuotaResponse) and removed.quotas[0].prefix == b"/q/"
    assert driver(QuotaDeleteRequest(prefix=b"/q/")) == QuotaResponse(header=removed.header)
    for key in (b"/q/1", b"/q/2"):
        driver(put(key))
    with pytest.raises(InvalidRequest):
        QuotaSetRequest(prefix=b"/z/")
    with pytest.raises(InvalidRequest):
        QuotaSetRequest(prefix=b"", max_keys=1)


def test_quota_usage_survives_a_snapshot_restore() -> None:
    driver = Driver()
    driver(QuotaSetRequest(prefix=b"/s/", max_keys=2, max_bytes=100))
    driver(put(b"/s/1", b"abc"))
    target = StateMachine()
    target.restore(driver.sm.snapshot())
    assert target.quotas.list(target._header()) == driver.sm.quotas.list(target._header())
    target.apply(put(b"/s/2"), now_ms=0)
    with pytest.raises(NamespaceQuotaExceeded):
        target.apply(put(b"/s/3"), now_ms=0)
    target.check_invariants(deep=True)


def test_changing_quotas_needs_admin_when_auth_is_on() -> None:
    auth = AuthDriver()
    with_root_and_app(auth)
    quota = QuotaSetRequest(prefix=b"/x/", max_keys=1)
    with pytest.raises(UserEmpty):
        auth(AuthorizedCommand.of(ANONYMOUS, quota))
    with pytest.raises(PermissionDenied):
        auth.as_user(auth.login("alice", "alicepw"), quota)
    assert auth.sm.quotas.list(auth.sm._header()).quotas == ()
    auth.as_user(auth.login("root", "rootpw"), quota)
    assert len(auth.sm.quotas.list(auth.sm._header()).quotas) == 1
