"""etcd protobuf messages <-> the core's request and response dataclasses: KV,
transactions, events and watches (lease, cluster and status are in
convert_admin.py).

Theory of operation
-------------------
The core's messages mirror etcd's field for field (chainfire_core/mvcc/
messages.py), so each function here is a mechanical copy in one direction:
`*_from_pb` builds a core object from a protobuf message, `*_to_pb` the
reverse. Both directions exist for requests and responses: the server
decodes requests and encodes responses, the client library the opposite,
and the tests check round trips.

Decoding is where untrusted input enters. The core's constructors check
every documented rule (empty key, ignore_value with a value, negative
revisions, ...) and raise `InvalidRequest`/`EmptyKey`; what only the wire
can get wrong (an enum number etcd does not define, a txn nested deeper
than `MAX_TXN_DEPTH`) is checked here and raised the same way, so a bad
request always becomes INVALID_ARGUMENT and never a crash. etcd's lenient
readings are kept: a range `revision` or `limit` <= 0 means "newest" / "no
limit"; a compare reads the union field its target names (a missing one is
zero, as in etcd).

Response headers carry the member's identity and Raft term besides the
revision; the servicer passes them in as a `HeaderFields`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar, cast

from chainfire_core.errors import InvalidRequest
from chainfire_core.mvcc.messages import (
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
    RequestOp,
    ResponseHeader,
    ResponseOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from chainfire_core.node_messages import ReadConsistency
from chainfire_core.types import LeaseId, Revision
from real.etcdpb import kv_pb2, rpc_pb2

# Nesting of txns inside txns accepted from the wire (etcd sets none; the
# protobuf parser stops at 100 levels of messages anyway).
MAX_TXN_DEPTH = 32

_E = TypeVar("_E", bound=IntEnum)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderFields:
    """The parts of etcd's ResponseHeader the core's responses do not carry."""

    cluster_id: int = 0
    member_id: int = 0
    raft_term: int = 0


# Members by number, per enum class (a dict lookup is cheaper than `kind(value)`).
_ENUM_MEMBERS: dict[type[IntEnum], dict[int, IntEnum]] = {}


def parse_enum(kind: type[_E], value: int, what: str) -> _E:
    members = _ENUM_MEMBERS.get(kind)
    if members is None:
        members = _ENUM_MEMBERS[kind] = {int(member): member for member in kind}
    member = members.get(value)
    if member is None:
        raise InvalidRequest(f"unknown {what} {value}")
    return cast(_E, member)


# -- headers, key-values, events ------------------------------------------------


def header_to_pb(header: ResponseHeader, fields: HeaderFields) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(cluster_id=fields.cluster_id, member_id=fields.member_id,
                                  revision=header.revision, raft_term=fields.raft_term)


def header_from_pb(pb: rpc_pb2.ResponseHeader) -> ResponseHeader:
    return ResponseHeader(revision=Revision(pb.revision))


def kv_to_pb(kv: KeyValue) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(key=kv.key, create_revision=kv.create_revision,
                           mod_revision=kv.mod_revision, version=kv.version, value=kv.value,
                           lease=kv.lease)


def kv_from_pb(pb: kv_pb2.KeyValue) -> KeyValue:
    return KeyValue(key=pb.key, create_revision=Revision(pb.create_revision),
                    mod_revision=Revision(pb.mod_revision), version=pb.version,
                    value=pb.value, lease=LeaseId(pb.lease))


def event_to_pb(event: Event) -> kv_pb2.Event:
    pb = kv_pb2.Event(type=cast(kv_pb2.Event.EventType, int(event.type)), kv=kv_to_pb(event.kv))
    if event.prev_kv is not None:
        pb.prev_kv.CopyFrom(kv_to_pb(event.prev_kv))
    return pb


def event_from_pb(pb: kv_pb2.Event) -> Event:
    return Event(type=parse_enum(EventType, pb.type, "event type"), kv=kv_from_pb(pb.kv),
                 prev_kv=kv_from_pb(pb.prev_kv) if pb.HasField("prev_kv") else None)


# -- range ------------------------------------------------------------------------


def range_from_pb(pb: rpc_pb2.RangeRequest) -> tuple[RangeRequest, ReadConsistency]:
    request = RangeRequest(
        key=pb.key, range_end=pb.range_end, limit=max(pb.limit, 0),
        revision=max(pb.revision, 0),
        sort_order=parse_enum(SortOrder, pb.sort_order, "sort order"),
        sort_target=parse_enum(SortTarget, pb.sort_target, "sort target"),
        keys_only=pb.keys_only, count_only=pb.count_only,
        min_mod_revision=pb.min_mod_revision, max_mod_revision=pb.max_mod_revision,
        min_create_revision=pb.min_create_revision, max_create_revision=pb.max_create_revision,
    )
    consistency = (ReadConsistency.SERIALIZABLE if pb.serializable
                   else ReadConsistency.LINEARIZABLE)
    return request, consistency


def range_to_pb(request: RangeRequest,
                consistency: ReadConsistency = ReadConsistency.LINEARIZABLE
                ) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(
        key=request.key, range_end=request.range_end, limit=request.limit,
        revision=request.revision,
        sort_order=cast(rpc_pb2.RangeRequest.SortOrder, int(request.sort_order)),
        sort_target=cast(rpc_pb2.RangeRequest.SortTarget, int(request.sort_target)),
        serializable=consistency == ReadConsistency.SERIALIZABLE,
        keys_only=request.keys_only, count_only=request.count_only,
        min_mod_revision=request.min_mod_revision, max_mod_revision=request.max_mod_revision,
        min_create_revision=request.min_create_revision,
        max_create_revision=request.max_create_revision,
    )


def _header_fields(header: ResponseHeader, fields: HeaderFields) -> dict[str, int]:
    """A ResponseHeader as constructor keywords (cheaper than a message to copy)."""
    return {"cluster_id": fields.cluster_id, "member_id": fields.member_id,
            "revision": header.revision, "raft_term": fields.raft_term}


def range_response_to_pb(response: RangeResponse, fields: HeaderFields) -> rpc_pb2.RangeResponse:
    pb = rpc_pb2.RangeResponse(header=_header_fields(response.header, fields),
                               more=response.more, count=response.count)
    add = pb.kvs.add
    for kv in response.kvs:
        add(key=kv.key, create_revision=kv.create_revision, mod_revision=kv.mod_revision,
            version=kv.version, value=kv.value, lease=kv.lease)
    return pb


def range_response_from_pb(pb: rpc_pb2.RangeResponse) -> RangeResponse:
    return RangeResponse(header=header_from_pb(pb.header),
                         kvs=tuple(kv_from_pb(kv) for kv in pb.kvs), more=pb.more,
                         count=pb.count)


# -- put, delete, compact ----------------------------------------------------------


def put_from_pb(pb: rpc_pb2.PutRequest) -> PutRequest:
    return PutRequest(key=pb.key, value=pb.value, lease=LeaseId(pb.lease), prev_kv=pb.prev_kv,
                      ignore_value=pb.ignore_value, ignore_lease=pb.ignore_lease)


def put_to_pb(request: PutRequest) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=request.key, value=request.value, lease=request.lease,
                              prev_kv=request.prev_kv, ignore_value=request.ignore_value,
                              ignore_lease=request.ignore_lease)


def put_response_to_pb(response: PutResponse, fields: HeaderFields) -> rpc_pb2.PutResponse:
    pb = rpc_pb2.PutResponse(header=_header_fields(response.header, fields))
    if response.prev_kv is not None:
        pb.prev_kv.CopyFrom(kv_to_pb(response.prev_kv))
    return pb


def put_response_from_pb(pb: rpc_pb2.PutResponse) -> PutResponse:
    return PutResponse(header=header_from_pb(pb.header),
                       prev_kv=kv_from_pb(pb.prev_kv) if pb.HasField("prev_kv") else None)


def delete_from_pb(pb: rpc_pb2.DeleteRangeRequest) -> DeleteRangeRequest:
    return DeleteRangeRequest(key=pb.key, range_end=pb.range_end, prev_kv=pb.prev_kv)


def delete_to_pb(request: DeleteRangeRequest) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(key=request.key, range_end=request.range_end,
                                      prev_kv=request.prev_kv)


def delete_response_to_pb(response: DeleteRangeResponse,
                          fields: HeaderFields) -> rpc_pb2.DeleteRangeResponse:
    return rpc_pb2.DeleteRangeResponse(header=header_to_pb(response.header, fields),
                                       deleted=response.deleted,
                                       prev_kvs=[kv_to_pb(kv) for kv in response.prev_kvs])


def delete_response_from_pb(pb: rpc_pb2.DeleteRangeResponse) -> DeleteRangeResponse:
    return DeleteRangeResponse(header=header_from_pb(pb.header), deleted=pb.deleted,
                               prev_kvs=tuple(kv_from_pb(kv) for kv in pb.prev_kvs))


def compaction_from_pb(pb: rpc_pb2.CompactionRequest) -> CompactionRequest:
    return CompactionRequest(revision=Revision(pb.revision), physical=pb.physical)


def compaction_to_pb(request: CompactionRequest) -> rpc_pb2.CompactionRequest:
    return rpc_pb2.CompactionRequest(revision=request.revision, physical=request.physical)


def compaction_response_to_pb(response: CompactionResponse,
                              fields: HeaderFields) -> rpc_pb2.CompactionResponse:
    return rpc_pb2.CompactionResponse(header=header_to_pb(response.header, fields))


def compaction_response_from_pb(pb: rpc_pb2.CompactionResponse) -> CompactionResponse:
    return CompactionResponse(header=header_from_pb(pb.header))


# -- txn ---------------------------------------------------------------------------


def compare_from_pb(pb: rpc_pb2.Compare) -> Compare:
    target = parse_enum(CompareTarget, pb.target, "compare target")
    value: int | bytes
    match target:
        case CompareTarget.VERSION:
            value = pb.version
        case CompareTarget.CREATE:
            value = pb.create_revision
        case CompareTarget.MOD:
            value = pb.mod_revision
        case CompareTarget.VALUE:
            value = pb.value
        case CompareTarget.LEASE:
            value = pb.lease
    return Compare(key=pb.key, range_end=pb.range_end, target=target,
                   result=parse_enum(CompareResult, pb.result, "compare result"), value=value)


def compare_to_pb(compare: Compare) -> rpc_pb2.Compare:
    pb = rpc_pb2.Compare(result=cast(rpc_pb2.Compare.CompareResult, int(compare.result)),
                         target=cast(rpc_pb2.Compare.CompareTarget, int(compare.target)),
                         key=compare.key, range_end=compare.range_end)
    value = compare.value
    match compare.target:
        case CompareTarget.VALUE:
            assert isinstance(value, bytes)
            pb.value = value
        case CompareTarget.VERSION:
            pb.version = cast(int, value)
        case CompareTarget.CREATE:
            pb.create_revision = cast(int, value)
        case CompareTarget.MOD:
            pb.mod_revision = cast(int, value)
        case CompareTarget.LEASE:
            pb.lease = cast(int, value)
    return pb


def _op_from_pb(pb: rpc_pb2.RequestOp, depth: int) -> RequestOp:
    match pb.WhichOneof("request"):
        case "request_range":
            return range_from_pb(pb.request_range)[0]
        case "request_put":
            return put_from_pb(pb.request_put)
        case "request_delete_range":
            return delete_from_pb(pb.request_delete_range)
        case "request_txn":
            return _txn_from_pb(pb.request_txn, depth + 1)
    raise InvalidRequest("a txn operation sets no request")


def _txn_from_pb(pb: rpc_pb2.TxnRequest, depth: int) -> TxnRequest:
    if depth > MAX_TXN_DEPTH:
        raise InvalidRequest(f"txn nested deeper than {MAX_TXN_DEPTH}")
    return TxnRequest(compare=tuple(compare_from_pb(c) for c in pb.compare),
                      success=tuple(_op_from_pb(op, depth) for op in pb.success),
                      failure=tuple(_op_from_pb(op, depth) for op in pb.failure))


def txn_from_pb(pb: rpc_pb2.TxnRequest) -> tuple[TxnRequest, ReadConsistency]:
    """The core txn, and its consistency: etcd serves a txn serializably when
    every operation in both branches is a serializable range."""
    ops = list(pb.success) + list(pb.failure)
    serializable = all(op.WhichOneof("request") == "request_range"
                       and op.request_range.serializable for op in ops)
    consistency = (ReadConsistency.SERIALIZABLE if serializable
                   else ReadConsistency.LINEARIZABLE)
    return _txn_from_pb(pb, 1), consistency


def _op_to_pb(op: RequestOp, consistency: ReadConsistency) -> rpc_pb2.RequestOp:
    match op:
        case RangeRequest():
            return rpc_pb2.RequestOp(request_range=range_to_pb(op, consistency))
        case PutRequest():
            return rpc_pb2.RequestOp(request_put=put_to_pb(op))
        case DeleteRangeRequest():
            return rpc_pb2.RequestOp(request_delete_range=delete_to_pb(op))
        case TxnRequest():
            return rpc_pb2.RequestOp(request_txn=txn_to_pb(op))


def txn_to_pb(request: TxnRequest,
              consistency: ReadConsistency = ReadConsistency.LINEARIZABLE) -> rpc_pb2.TxnRequest:
    """`consistency` SERIALIZABLE marks every range of the txn serializable."""
    return rpc_pb2.TxnRequest(
        compare=[compare_to_pb(c) for c in request.compare],
        success=[_op_to_pb(op, consistency) for op in request.success],
        failure=[_op_to_pb(op, consistency) for op in request.failure])


# Header fields of the responses nested in a txn response: none but the revision.
_INNER_FIELDS = HeaderFields()


def _response_op_to_pb(op: ResponseOp, fields: HeaderFields) -> rpc_pb2.ResponseOp:
    match op:
        case RangeResponse():
            return rpc_pb2.ResponseOp(response_range=range_response_to_pb(op, fields))
        case PutResponse():
            return rpc_pb2.ResponseOp(response_put=put_response_to_pb(op, fields))
        case DeleteRangeResponse():
            return rpc_pb2.ResponseOp(response_delete_range=delete_response_to_pb(op, fields))
        case TxnResponse():
            return rpc_pb2.ResponseOp(response_txn=txn_response_to_pb(op, fields))


def txn_response_to_pb(response: TxnResponse, fields: HeaderFields) -> rpc_pb2.TxnResponse:
    """The txn's own header carries `fields`; the headers of the responses
    inside it carry only their revision, as etcd's do (etcd fills in the
    member's identity on the outermost header alone)."""
    return rpc_pb2.TxnResponse(header=header_to_pb(response.header, fields),
                               succeeded=response.succeeded,
                               responses=[_response_op_to_pb(op, _INNER_FIELDS)
                                          for op in response.responses])


def _response_op_from_pb(pb: rpc_pb2.ResponseOp) -> ResponseOp:
    match pb.WhichOneof("response"):
        case "response_range":
            return range_response_from_pb(pb.response_range)
        case "response_put":
            return put_response_from_pb(pb.response_put)
        case "response_delete_range":
            return delete_response_from_pb(pb.response_delete_range)
        case "response_txn":
            return txn_response_from_pb(pb.response_txn)
    raise InvalidRequest("a txn response sets no response")


def txn_response_from_pb(pb: rpc_pb2.TxnResponse) -> TxnResponse:
    return TxnResponse(header=header_from_pb(pb.header), succeeded=pb.succeeded,
                       responses=tuple(_response_op_from_pb(op) for op in pb.responses))


__all__ = [
    "MAX_TXN_DEPTH",
    "parse_enum",
    "HeaderFields",
    "compaction_from_pb",
    "compaction_response_from_pb",
    "compaction_response_to_pb",
    "compaction_to_pb",
    "compare_from_pb",
    "compare_to_pb",
    "delete_from_pb",
    "delete_response_from_pb",
    "delete_response_to_pb",
    "delete_to_pb",
    "event_from_pb",
    "event_to_pb",
    "header_from_pb",
    "header_to_pb",
    "kv_from_pb",
    "kv_to_pb",
    "put_from_pb",
    "put_response_from_pb",
    "put_response_to_pb",
    "put_to_pb",
    "range_from_pb",
    "range_response_from_pb",
    "range_response_to_pb",
    "range_to_pb",
    "txn_from_pb",
    "txn_response_from_pb",
    "txn_response_to_pb",
    "txn_to_pb",
]
