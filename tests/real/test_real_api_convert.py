"""etcd protobuf <-> core conversions: round trips both ways, etcd's field
numbers, and malformed input turned into InvalidRequest."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from chainfire_core.errors import EmptyKey, InvalidRequest
from chainfire_core.lease.messages import (
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
)
from chainfire_core.mvcc.messages import (
    CompactionRequest,
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
    RequestOp,
    ResponseHeader,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from chainfire_core.mvcc.watch_messages import WatchCreateRequest, WatchFilter, WatchResponse
from chainfire_core.node_messages import Member, MemberAddRequest, MemberResponse, ReadConsistency
from chainfire_core.types import LeaseId, NodeId, Revision, WatchId
from real.api import convert, convert_admin, convert_watch
from real.api.convert import HeaderFields
from real.etcdpb import kv_pb2, rpc_pb2

FIELDS = HeaderFields(cluster_id=9, member_id=3, raft_term=5)
keys = st.binary(min_size=1, max_size=8)
ints = st.integers(min_value=0, max_value=2**40)
revisions = ints.map(Revision)
leases = ints.map(LeaseId)


@st.composite
def key_values(draw: st.DrawFn) -> KeyValue:
    return KeyValue(key=draw(keys), create_revision=draw(revisions),
                    mod_revision=draw(revisions), version=draw(ints),
                    value=draw(st.binary(max_size=8)), lease=draw(leases))


@st.composite
def range_requests(draw: st.DrawFn) -> RangeRequest:
    return RangeRequest(
        key=draw(keys), range_end=draw(st.sampled_from([b"", b"\0", b"zz"])),
        limit=draw(ints), revision=draw(ints), sort_order=draw(st.sampled_from(SortOrder)),
        sort_target=draw(st.sampled_from(SortTarget)), keys_only=draw(st.booleans()),
        count_only=draw(st.booleans()), min_mod_revision=draw(ints),
        max_mod_revision=draw(ints), min_create_revision=draw(ints),
        max_create_revision=draw(ints))


@st.composite
def put_requests(draw: st.DrawFn) -> PutRequest:
    ignore_value, ignore_lease = draw(st.booleans()), draw(st.booleans())
    return PutRequest(key=draw(keys), value=b"" if ignore_value else draw(st.binary(max_size=8)),
                      lease=LeaseId(0) if ignore_lease else draw(leases),
                      prev_kv=draw(st.booleans()), ignore_value=ignore_value,
                      ignore_lease=ignore_lease)


delete_requests = st.builds(DeleteRangeRequest, key=keys, range_end=st.sampled_from([b"", b"\0"]),
                            prev_kv=st.booleans())


@st.composite
def compares(draw: st.DrawFn) -> Compare:
    target = draw(st.sampled_from(CompareTarget))
    value: int | bytes = draw(st.binary(max_size=4)) if target == CompareTarget.VALUE else draw(
        ints)
    return Compare(key=draw(keys), target=target, result=draw(st.sampled_from(CompareResult)),
                   value=value, range_end=draw(st.sampled_from([b"", b"\0"])))


def txns(ops: st.SearchStrategy[RequestOp]) -> st.SearchStrategy[TxnRequest]:
    return st.builds(TxnRequest, compare=st.lists(compares(), max_size=3).map(tuple),
                     success=st.lists(ops, max_size=3).map(tuple),
                     failure=st.lists(ops, max_size=3).map(tuple))


request_ops = st.recursive(
    st.one_of(range_requests(), put_requests(), delete_requests),
    txns, max_leaves=8)
headers = st.builds(ResponseHeader, revision=revisions)


# -- round trips ---------------------------------------------------------------------


@given(key_values())
def test_key_value_round_trip(kv: KeyValue) -> None:
    assert convert.kv_from_pb(convert.kv_to_pb(kv)) == kv


@given(st.sampled_from(EventType), key_values(), st.none() | key_values())
def test_event_round_trip(kind: EventType, kv: KeyValue, prev: KeyValue | None) -> None:
    event = Event(type=kind, kv=kv, prev_kv=prev)
    assert convert.event_from_pb(convert.event_to_pb(event)) == event


@given(range_requests(), st.sampled_from(ReadConsistency))
def test_range_request_round_trip(request: RangeRequest, consistency: ReadConsistency) -> None:
    wire = rpc_pb2.RangeRequest.FromString(
        convert.range_to_pb(request, consistency).SerializeToString())
    assert convert.range_from_pb(wire) == (request, consistency)


@given(put_requests(), delete_requests, revisions, st.booleans())
def test_put_delete_compact_round_trip(put: PutRequest, delete: DeleteRangeRequest,
                                       revision: Revision, physical: bool) -> None:
    assert convert.put_from_pb(convert.put_to_pb(put)) == put
    assert convert.delete_from_pb(convert.delete_to_pb(delete)) == delete
    compaction = CompactionRequest(revision=revision, physical=physical)
    assert convert.compaction_from_pb(convert.compaction_to_pb(compaction)) == compaction


@settings(max_examples=60)
@given(txns(request_ops))
def test_nested_txn_round_trip(txn: TxnRequest) -> None:
    wire = rpc_pb2.TxnRequest.FromString(convert.txn_to_pb(txn).SerializeToString())
    assert convert.txn_from_pb(wire)[0] == txn


@given(headers, st.lists(key_values(), max_size=3), st.booleans(), ints)
def test_responses_round_trip(header: ResponseHeader, kvs: list[KeyValue], more: bool,
                              count: int) -> None:
    ranged = RangeResponse(header=header, kvs=tuple(kvs), more=more, count=count)
    put = PutResponse(header=header, prev_kv=kvs[0] if kvs else None)
    deleted = DeleteRangeResponse(header=header, deleted=len(kvs), prev_kvs=tuple(kvs))
    txn = TxnResponse(header=header, succeeded=more, responses=(
        ranged, put, deleted, TxnResponse(header=header, succeeded=True, responses=(put,))))
    assert convert.range_response_from_pb(convert.range_response_to_pb(ranged, FIELDS)) == ranged
    assert convert.put_response_from_pb(convert.put_response_to_pb(put, FIELDS)) == put
    assert convert.delete_response_from_pb(
        convert.delete_response_to_pb(deleted, FIELDS)) == deleted
    assert convert.txn_response_from_pb(convert.txn_response_to_pb(txn, FIELDS)) == txn
    pb = convert.range_response_to_pb(ranged, FIELDS)
    assert (pb.header.cluster_id, pb.header.member_id, pb.header.raft_term) == (9, 3, 5)
    # As in etcd, only the outermost txn header names the member; inner ones
    # carry their revision alone.
    outer = convert.txn_response_to_pb(txn, FIELDS)
    assert (outer.header.member_id, outer.header.revision) == (3, header.revision)
    inner = [outer.responses[0].response_range.header, outer.responses[1].response_put.header,
             outer.responses[3].response_txn.header,
             outer.responses[3].response_txn.responses[0].response_put.header]
    assert all((h.cluster_id, h.member_id, h.raft_term, h.revision) == (0, 0, 0, header.revision)
               for h in inner)


@pytest.mark.parametrize("ttl", [0, -5, 1])
def test_lease_grant_below_one_second_asks_for_the_minimum(ttl: int) -> None:
    # etcd raises a TTL below its minimum to the minimum; the core refuses
    # TTL <= 0, so the conversion asks for 1 s and the core raises that.
    core = convert_admin.lease_grant_from_pb(rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=3))
    assert (core.ttl_s, core.id) == (1, 3)


def test_lease_messages_round_trip() -> None:
    header = ResponseHeader(revision=Revision(4))
    grant = LeaseGrantRequest(ttl_s=30, id=LeaseId(7))
    assert convert_admin.lease_grant_from_pb(convert_admin.lease_grant_to_pb(grant)) == grant
    revoke = LeaseRevokeRequest(id=LeaseId(7))
    assert convert_admin.lease_revoke_from_pb(convert_admin.lease_revoke_to_pb(revoke)) == revoke
    keep = LeaseKeepAliveRequest(id=LeaseId(7))
    assert convert_admin.keepalive_from_pb(convert_admin.keepalive_to_pb(keep)) == keep
    ttl = LeaseTimeToLiveRequest(id=LeaseId(7), keys=True)
    assert convert_admin.ttl_from_pb(convert_admin.ttl_to_pb(ttl)) == ttl
    granted = LeaseGrantResponse(header=header, id=LeaseId(7), ttl_s=30)
    assert convert_admin.lease_grant_response_from_pb(
        convert_admin.lease_grant_response_to_pb(granted, FIELDS)) == granted
    kept = LeaseKeepAliveResponse(header=header, id=LeaseId(7), ttl_s=30)
    assert convert_admin.keepalive_response_from_pb(
        convert_admin.keepalive_response_to_pb(kept, FIELDS)) == kept
    left = LeaseTimeToLiveResponse(header=header, id=LeaseId(7), ttl_s=12, granted_ttl_s=30,
                                   keys=(b"a", b"b"))
    assert convert_admin.ttl_response_from_pb(
        convert_admin.ttl_response_to_pb(left, FIELDS)) == left
    listed = LeaseLeasesResponse(header=header, leases=(LeaseId(1), LeaseId(7)))
    assert convert_admin.leases_response_from_pb(
        convert_admin.leases_response_to_pb(listed, FIELDS)) == listed


def test_member_messages_round_trip() -> None:
    member = Member(id=NodeId(2), name="n2", peer_urls=("http://a:2380",),
                    client_urls=("http://a:2379",), is_learner=True)
    assert convert_admin.member_from_pb(convert_admin.member_to_pb(member)) == member
    add = MemberAddRequest(peer_urls=("http://a:2380",), is_learner=True)
    assert convert_admin.member_add_from_pb(convert_admin.member_add_to_pb(add)) == add
    # Cluster responses carry no store revision (as etcd's): it does not round-trip.
    listing = MemberResponse(header=ResponseHeader(revision=Revision(1)), member=None,
                             members=(member,))
    listed = convert_admin.member_list_response_to_pb(listing, FIELDS)
    assert listed.header.revision == 0 and listed.header.member_id == FIELDS.member_id
    assert convert_admin.member_list_response_from_pb(listed) == MemberResponse(
        header=ResponseHeader(revision=Revision(0)), member=None, members=(member,))
    added = convert_admin.member_add_response_to_pb(
        MemberResponse(header=listing.header, member=member, members=(member,)), FIELDS)
    assert added.member.ID == 2 and added.member.isLearner


@given(st.sampled_from(WatchFilter).map(lambda f: (f,)) | st.just(()), ints, st.booleans())
def test_watch_messages_round_trip(filters: tuple[WatchFilter, ...], start: int,
                                   prev: bool) -> None:
    create = WatchCreateRequest(key=b"k", range_end=b"\0", start_revision=start,
                                progress_notify=not prev, filters=filters, prev_kv=prev)
    pb = convert_watch.watch_create_to_pb(create, watch_id=5, fragment=True)
    assert (pb.watch_id, pb.fragment) == (5, True)
    assert convert_watch.watch_create_from_pb(pb) == create
    event = Event(type=EventType.PUT, kv=KeyValue(
        key=b"k", create_revision=Revision(2), mod_revision=Revision(3), version=2, value=b"v"))
    response = WatchResponse(watch_id=WatchId(5), revision=Revision(3), events=(event,))
    assert convert_watch.watch_response_from_pb(
        convert_watch.watch_response_to_pb(response, 5, FIELDS)) == response
    canceled = WatchResponse(watch_id=WatchId(5), revision=Revision(9), canceled=True,
                             compact_revision=Revision(4), cancel_reason="why")
    assert convert_watch.watch_response_from_pb(
        convert_watch.watch_response_to_pb(canceled, 5, FIELDS)) == canceled


def test_fragment_splits_under_the_limit_and_joins_back() -> None:
    events = [kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k%d" % i, value=b"x" * 100, mod_revision=7))
              for i in range(20)]
    whole = rpc_pb2.WatchResponse(watch_id=3, header=rpc_pb2.ResponseHeader(revision=7),
                                  events=events)
    pieces = convert_watch.fragment(whole, 500)
    assert len(pieces) > 1 and all(p.ByteSize() < 500 for p in pieces)
    assert [p.fragment for p in pieces] == [True] * (len(pieces) - 1) + [False]
    assert all(p.watch_id == 3 and p.header.revision == 7 for p in pieces)
    assert convert_watch.join_fragments(pieces) == whole
    assert convert_watch.fragment(whole, 1 << 20) == [whole]
    single = rpc_pb2.WatchResponse(events=events[:1])
    assert convert_watch.fragment(single, 10) == [single]  # one event always travels whole


# -- etcd's wire format ---------------------------------------------------------------

# (message, field) -> etcd's field number, from etcd's API reference.
ETCD_FIELD_NUMBERS: dict[tuple[type[Message], str], int] = {
    (kv_pb2.KeyValue, "key"): 1, (kv_pb2.KeyValue, "create_revision"): 2,
    (kv_pb2.KeyValue, "mod_revision"): 3, (kv_pb2.KeyValue, "version"): 4,
    (kv_pb2.KeyValue, "value"): 5, (kv_pb2.KeyValue, "lease"): 6,
    (kv_pb2.Event, "type"): 1, (kv_pb2.Event, "kv"): 2, (kv_pb2.Event, "prev_kv"): 3,
    (rpc_pb2.ResponseHeader, "raft_term"): 4, (rpc_pb2.RangeRequest, "serializable"): 7,
    (rpc_pb2.RangeRequest, "max_create_revision"): 13, (rpc_pb2.PutRequest, "ignore_lease"): 6,
    (rpc_pb2.Compare, "lease"): 8, (rpc_pb2.Compare, "range_end"): 64,
    (rpc_pb2.RequestOp, "request_txn"): 4, (rpc_pb2.WatchCreateRequest, "fragment"): 8,
    (rpc_pb2.WatchCreateRequest, "watch_id"): 7, (rpc_pb2.WatchResponse, "fragment"): 7,
    (rpc_pb2.WatchResponse, "events"): 11, (rpc_pb2.WatchRequest, "progress_request"): 3,
    (rpc_pb2.LeaseTimeToLiveResponse, "grantedTTL"): 4, (rpc_pb2.LeaseGrantResponse, "error"): 4,
    (rpc_pb2.Member, "isLearner"): 5, (rpc_pb2.StatusResponse, "isLearner"): 10,
    (rpc_pb2.StatusResponse, "raftAppliedIndex"): 7, (rpc_pb2.CompactionRequest, "physical"): 2,
}


def test_field_numbers_are_etcds() -> None:
    for (message, name), number in ETCD_FIELD_NUMBERS.items():
        assert message.DESCRIPTOR.fields_by_name[name].number == number, (message, name)
    assert rpc_pb2.DESCRIPTOR.package == "etcdserverpb"
    assert kv_pb2.DESCRIPTOR.package == "mvccpb"
    services = {s.full_name: [m.name for m in s.methods]
                for s in rpc_pb2.DESCRIPTOR.services_by_name.values()}
    assert services["etcdserverpb.KV"] == ["Range", "Put", "DeleteRange", "Txn", "Compact"]
    assert services["etcdserverpb.Lease"] == [
        "LeaseGrant", "LeaseRevoke", "LeaseKeepAlive", "LeaseTimeToLive", "LeaseLeases"]
    assert "Status" in services["etcdserverpb.Maintenance"]
    assert "Authenticate" in services["etcdserverpb.Auth"]


def test_known_etcd_bytes_decode() -> None:
    """A PutRequest as etcd's own encoder writes it: key=1, value=2, lease=3, prev_kv=4."""
    wire = b"\x0a\x03foo\x12\x03bar\x18\x07\x20\x01"
    assert convert.put_from_pb(rpc_pb2.PutRequest.FromString(wire)) == PutRequest(
        key=b"foo", value=b"bar", lease=LeaseId(7), prev_kv=True)


# -- malformed input and etcd's lenient readings -----------------------------------------


def test_unknown_enum_numbers_are_invalid_requests() -> None:
    with pytest.raises(InvalidRequest, match="sort target"):
        convert.range_from_pb(rpc_pb2.RangeRequest(key=b"a", sort_target=9))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="compare result"):
        convert.compare_from_pb(rpc_pb2.Compare(key=b"a", result=7))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="watch filter"):
        convert_watch.watch_create_from_pb(rpc_pb2.WatchCreateRequest(key=b"a", filters=[5]))  # type: ignore[list-item]
    with pytest.raises(EmptyKey):
        convert.put_from_pb(rpc_pb2.PutRequest(key=b""))
    with pytest.raises(InvalidRequest, match="sets no request"):
        convert.txn_from_pb(rpc_pb2.TxnRequest(failure=[rpc_pb2.RequestOp()]))


def test_txn_nesting_is_bounded() -> None:
    txn = rpc_pb2.TxnRequest()
    for _ in range(convert.MAX_TXN_DEPTH + 1):
        txn = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_txn=txn)])
    with pytest.raises(InvalidRequest, match="nested deeper"):
        convert.txn_from_pb(txn)


def test_nonpositive_range_revision_and_limit_mean_newest_and_unlimited() -> None:
    request, consistency = convert.range_from_pb(
        rpc_pb2.RangeRequest(key=b"a", revision=-3, limit=-1, serializable=True))
    assert (request.revision, request.limit) == (0, 0)
    assert consistency == ReadConsistency.SERIALIZABLE


def test_compare_reads_the_union_field_its_target_names() -> None:
    mixed = rpc_pb2.Compare(key=b"a", target=rpc_pb2.Compare.VALUE, version=3)
    assert convert.compare_from_pb(mixed).value == b""  # etcd compares with the empty value
    lease = rpc_pb2.Compare(key=b"a", target=rpc_pb2.Compare.LEASE, lease=5)
    assert convert.compare_from_pb(lease).value == 5


def test_txn_is_serializable_only_when_every_op_is_a_serializable_range() -> None:
    ranged = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"a", serializable=True))
    plain = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"a"))
    put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a"))
    cases = [([ranged], [ranged], ReadConsistency.SERIALIZABLE),
             ([ranged], [plain], ReadConsistency.LINEARIZABLE),
             ([ranged, put], [], ReadConsistency.LINEARIZABLE)]
    for success, failure, expected in cases:
        _, consistency = convert.txn_from_pb(rpc_pb2.TxnRequest(success=success, failure=failure))
        assert consistency == expected
