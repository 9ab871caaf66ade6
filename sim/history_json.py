"""Core requests, responses and watch deliveries in the checker's JSON schema.

The simulator's clients speak chainfire_core's messages (mvcc/messages.py,
lease/messages.py) to a `ChainfireNode`; the checker reads operations and
watch streams as JSON objects (checker/etcd_model.py's "Operation schema",
checker/watch_check.py's "Stream schema"). This module is the one place
that translates the first into the second, so both sides can change without
the workload knowing.

Bytes
-----
Keys and values are bytes in the core and strings in the schema. Every
byte string is decoded as latin-1 (`to_text`), which maps byte b to code
point b: lossless for any bytes, the identity on ASCII, and order-preserving
(bytewise order is the string order the checker sorts keys by), so ranges,
`range_end` b"\\0" (the checker's "\\u0000") and VALUE compares keep their
meaning. The reverse is `from_text` (`str.encode("latin-1")`). A UTF-8 key
with non-ASCII characters therefore shows up as its bytes, one character
each ("é" is "Ã©"); that is the price of one rule that never fails.

Requests (`request_json`)
-------------------------
Range, put, delete, txn (compares and nested ops), compaction and the four
client lease calls map field for field onto the schema's "range", "put",
"delete", "txn", "compact", "lease_grant", "lease_revoke",
"lease_keepalive" and "lease_ttl"; every field is written out. A request
the schema cannot express raises `TypeError` rather than being recorded as
something it is not: a range with `keys_only`, min/max revision filters or
an order other than by key ascending, a put with `ignore_value` or
`ignore_lease`, a serializable read-only txn (the schema's txn is always
linearizable), and requests with no schema operation at all (lease list and
checkpoint, membership, status). `serializable=True` marks a range; writes
ignore it, as the node does. A compaction's `physical` flag changes nothing
a client can observe and is dropped.

Responses (`response_json`)
---------------------------
`revision` is the header's revision; key-values are full-form entries
[key, value, mod_revision, create_revision, version, lease], so every field
is checked. A range records `kvs`, `count` and `more`; a put its
`prev_kv` (entry or null) and a delete its `prev_kvs` only when the request
asked for them; a delete records `deleted`; a txn `succeeded` and the
responses of the branch it took, each converted against its own request.
Lease grant: `id`, `ttl_s`; keepalive: `ttl_s`; time-to-live: `ttl_s`
(-1: no such lease), `granted_ttl_s`, and `keys` when asked. Their `id`
has no field: it must equal the request's (else `TypeError`).

Errors (`error_json`, `is_definite`)
------------------------------------
The checker reads `{"error": code}` as "took no effect", so only a definite
error may be recorded that way; `is_definite` says which are (see its
docstring) and `error_json` refuses the others: an operation that ended in
`RequestTimeout` must be recorded with `unknown: true` and no output.
Codes are the error class names in snake case ("not_leader", "compacted",
"future_revision", "lease_not_found", "lease_exists", "proposal_dropped",
...); `NotPrimaryLessor` is "not_leader", as etcd says. Of these the
checker gives meaning only to "lease_not_found" (the lease is gone).

Watches (`watch_delivery_json`, `watch_stream_json`)
----------------------------------------------------
One `WatchResponse` is one delivery: `revision` (the header's), `created`,
`events`, `progress` (etcd's IsProgressNotify) or `canceled` with
`compact_revision`. A put event records its value, create revision and
version; a delete event only its key and revision, as the schema wants.
The schema has no field for an event's lease or prev_kv, nor for a cancel's
reason: those are not recorded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from chainfire_core.errors import (
    ChainfireError,
    Compacted,
    FutureRevision,
    InvalidRequest,
    LearnerNotReady,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    MemberExists,
    MemberNotFound,
    MemberNotLearner,
    NotLeader,
    ProposalDropped,
    TooManyWatchers,
    WatchNotFound,
)
from chainfire_core.lease.lessor import NotPrimaryLessor
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
    Event,
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
)
from chainfire_core.mvcc.watch_messages import WatchCreateRequest, WatchFilter, WatchResponse

BYTES_ENCODING: Final = "latin-1"

_TARGETS: Final = {
    CompareTarget.VERSION: "version",
    CompareTarget.CREATE: "create",
    CompareTarget.MOD: "mod",
    CompareTarget.VALUE: "value",
    CompareTarget.LEASE: "lease",
}
_RESULTS: Final = {
    CompareResult.EQUAL: "=",
    CompareResult.NOT_EQUAL: "!=",
    CompareResult.GREATER: ">",
    CompareResult.LESS: "<",
}
_FILTERS: Final = {WatchFilter.NOPUT: "noput", WatchFilter.NODELETE: "nodelete"}

# Codes are the class names in snake case; these say the same in other words.
_CODE_ALIASES: Final = {"not_primary_lessor": "not_leader"}
_WORD_BREAK: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

# Errors that prove the request took no effect (see `is_definite`).
_DEFINITE: Final = (
    InvalidRequest,
    Compacted,
    FutureRevision,
    LeaseNotFound,
    LeaseExists,
    LeaseTTLTooLarge,
    WatchNotFound,
    TooManyWatchers,
    ProposalDropped,
    NotLeader,
    NotPrimaryLessor,
    MemberNotFound,
    MemberExists,
    MemberNotLearner,
    LearnerNotReady,
)

_T = TypeVar("_T")


# -- bytes -------------------------------------------------------------------------


def to_text(data: bytes) -> str:
    """The schema's string for core bytes (latin-1: lossless, order-preserving)."""
    assert isinstance(data, bytes), data
    return data.decode(BYTES_ENCODING)


def from_text(text: str) -> bytes:
    """The core bytes a schema string stands for (the inverse of `to_text`)."""
    return text.encode(BYTES_ENCODING)


# -- requests --------------------------------------------------------------------


def request_json(request: object, *, serializable: bool = False) -> dict[str, Any]:
    """The checker's input object for a core request (see the module docstring).
    Raises `TypeError` for a request the schema cannot express."""
    match request:
        case RangeRequest():
            found = _range_request(request)
            if serializable:
                found["serializable"] = True
            return found
        case TxnRequest() if serializable and _read_only(request):
            raise TypeError("a serializable read-only txn: the schema's txn is linearizable")
        case PutRequest() | DeleteRangeRequest() | TxnRequest():
            return _kv_request(request)
        case CompactionRequest():
            return {"f": "compact", "revision": request.revision}
        case LeaseGrantRequest():
            return {"f": "lease_grant", "ttl_s": request.ttl_s, "id": request.id}
        case LeaseRevokeRequest():
            return {"f": "lease_revoke", "id": request.id}
        case LeaseKeepAliveRequest():
            return {"f": "lease_keepalive", "id": request.id}
        case LeaseTimeToLiveRequest():
            return {"f": "lease_ttl", "id": request.id, "keys": request.keys}
    raise TypeError(f"the checker's schema has no operation for {type(request).__name__}")


def _kv_request(request: RequestOp) -> dict[str, Any]:
    match request:
        case RangeRequest():
            return _range_request(request)
        case PutRequest():
            if request.ignore_value or request.ignore_lease:
                raise TypeError("a put with ignore_value or ignore_lease: not in the schema")
            return {"f": "put", "key": to_text(request.key), "value": to_text(request.value),
                    "lease": request.lease, "prev_kv": request.prev_kv}
        case DeleteRangeRequest():
            return {"f": "delete", "key": to_text(request.key),
                    "range_end": to_text(request.range_end), "prev_kv": request.prev_kv}
        case TxnRequest():
            return {"f": "txn", "compare": [_compare(c) for c in request.compare],
                    "success": [_kv_request(op) for op in request.success],
                    "failure": [_kv_request(op) for op in request.failure]}
    raise TypeError(f"not a txn operation: {type(request).__name__}")


def _range_request(request: RangeRequest) -> dict[str, Any]:
    unsupported = [name for name in ("keys_only", "min_mod_revision", "max_mod_revision",
                                     "min_create_revision", "max_create_revision")
                   if getattr(request, name)]
    if request.sort_target != SortTarget.KEY or request.sort_order == SortOrder.DESCEND:
        unsupported.append("sort")
    if unsupported:
        raise TypeError(f"a range with {', '.join(unsupported)}: not in the schema")
    return {"f": "range", "key": to_text(request.key), "range_end": to_text(request.range_end),
            "revision": request.revision, "limit": request.limit,
            "count_only": request.count_only}


def _compare(compare: Compare) -> dict[str, Any]:
    value = to_text(compare.value) if isinstance(compare.value, bytes) else compare.value
    return {"key": to_text(compare.key), "range_end": to_text(compare.range_end),
            "target": _TARGETS[compare.target], "result": _RESULTS[compare.result],
            "value": value}


def _read_only(txn: TxnRequest) -> bool:
    """Whether no branch of `txn` writes (the node then serves it as a read)."""
    for op in txn.success + txn.failure:
        if isinstance(op, PutRequest | DeleteRangeRequest):
            return False
        if isinstance(op, TxnRequest) and not _read_only(op):
            return False
    return True


# -- responses -------------------------------------------------------------------


def response_json(request: object, response: object) -> dict[str, Any]:
    """The checker's output object for a successful `response` to `request`.
    Raises `TypeError` if the two do not belong together or the request is
    not expressible (as `request_json`)."""
    match request:
        case RangeRequest() | PutRequest() | DeleteRangeRequest() | TxnRequest():
            return _kv_response(request, response)
        case CompactionRequest():
            return {"revision": _as(response, CompactionResponse).header.revision}
        case LeaseGrantRequest():
            grant = _as(response, LeaseGrantResponse)
            return {"revision": grant.header.revision, "id": grant.id, "ttl_s": grant.ttl_s}
        case LeaseRevokeRequest():
            return {"revision": _as(response, LeaseRevokeResponse).header.revision}
        case LeaseKeepAliveRequest():
            renewed = _as(response, LeaseKeepAliveResponse)
            _same_lease(request.id, renewed.id)
            return {"revision": renewed.header.revision, "ttl_s": renewed.ttl_s}
        case LeaseTimeToLiveRequest():
            return _time_to_live(request, _as(response, LeaseTimeToLiveResponse))
    raise TypeError(f"the checker's schema has no operation for {type(request).__name__}")


def _kv_response(request: RequestOp, response: object) -> dict[str, Any]:
    match request:
        case RangeRequest():
            _range_request(request)  # refuses what the schema cannot express
            found = _as(response, RangeResponse)
            return {"revision": found.header.revision, "kvs": [entry(kv) for kv in found.kvs],
                    "count": found.count, "more": found.more}
        case PutRequest():
            put = _as(response, PutResponse)
            result: dict[str, Any] = {"revision": put.header.revision}
            if request.prev_kv:
                result["prev_kv"] = None if put.prev_kv is None else entry(put.prev_kv)
            return result
        case DeleteRangeRequest():
            deleted = _as(response, DeleteRangeResponse)
            result = {"revision": deleted.header.revision, "deleted": deleted.deleted}
            if request.prev_kv:
                result["prev_kvs"] = [entry(kv) for kv in deleted.prev_kvs]
            return result
        case TxnRequest():
            return _txn_response(request, _as(response, TxnResponse))
    raise TypeError(f"not a txn operation: {type(request).__name__}")


def _txn_response(request: TxnRequest, response: TxnResponse) -> dict[str, Any]:
    branch = request.success if response.succeeded else request.failure
    if len(branch) != len(response.responses):
        raise TypeError(f"a txn branch of {len(branch)} ops answered with "
                        f"{len(response.responses)} responses")
    return {"revision": response.header.revision, "succeeded": response.succeeded,
            "responses": [_kv_response(op, answer)
                          for op, answer in zip(branch, response.responses, strict=True)]}


def _time_to_live(request: LeaseTimeToLiveRequest,
                  response: LeaseTimeToLiveResponse) -> dict[str, Any]:
    _same_lease(request.id, response.id)
    result: dict[str, Any] = {"revision": response.header.revision, "ttl_s": response.ttl_s,
                              "granted_ttl_s": response.granted_ttl_s}
    if request.keys:
        result["keys"] = [to_text(key) for key in response.keys]
    return result


def entry(kv: KeyValue) -> list[Any]:
    """The full-form response entry of a key-value."""
    return [to_text(kv.key), to_text(kv.value), kv.mod_revision, kv.create_revision,
            kv.version, kv.lease]


def _as(response: object, kind: type[_T]) -> _T:
    if not isinstance(response, kind):
        raise TypeError(f"expected a {kind.__name__}, got {type(response).__name__}")
    return response


def _same_lease(asked: int, answered: int) -> None:
    if asked != answered:
        raise TypeError(f"a response for lease {answered} to a request for lease {asked}")


# -- errors ----------------------------------------------------------------------


def error_code(error: ChainfireError) -> str:
    """The schema's code for `error`, definite or not (traces want them all):
    its class name in snake case ("LeaseTTLTooLarge" is "lease_ttl_too_large")."""
    assert isinstance(error, ChainfireError), error
    code = _WORD_BREAK.sub("_", type(error).__name__).lower()
    return _CODE_ALIASES.get(code, code)


def error_json(error: ChainfireError) -> dict[str, Any]:
    """The checker's output for a request that failed with a definite error.
    Raises `ValueError` for an error whose outcome is unknown: record that
    operation as unknown (no output) instead."""
    if not is_definite(error):
        raise ValueError(f"{type(error).__name__} leaves the outcome unknown: "
                         "record the operation as unknown, not as an error")
    return {"error": error_code(error)}


def is_definite(error: ChainfireError) -> bool:
    """Whether `error` proves its request took no effect.

    True for errors the node raises before proposing (`NotLeader`,
    `ProposalDropped` when Raft refuses or too many requests are pending,
    `InvalidRequest` and its kin, and every error of a read or a leader-local
    lease call), for `ProposalDropped` when another entry took the log index
    of the proposal (it can never apply), and for errors the state machine
    raises while applying: it checks a command in full before changing
    anything (`Compacted`, `FutureRevision`, `LeaseNotFound`, `LeaseExists`,
    `LeaseTTLTooLarge`, `DuplicateKey`, ...). False for `RequestTimeout`
    (the write may still apply), for data errors and for any error not
    named here.
    """
    return isinstance(error, _DEFINITE)


# -- watches -----------------------------------------------------------------------


def watch_delivery_json(response: WatchResponse) -> dict[str, Any]:
    """One delivery in checker/watch_check.py's stream schema."""
    delivery: dict[str, Any] = {"revision": response.revision}
    if response.created:
        delivery["created"] = True
    if response.events:
        delivery["events"] = [_event(event) for event in response.events]
    if response.is_progress_notify:
        delivery["progress"] = True
    if response.canceled:
        delivery["canceled"] = True
        delivery["compact_revision"] = response.compact_revision
    return delivery


def _event(event: Event) -> dict[str, Any]:
    kv = event.kv
    if event.type == EventType.DELETE:
        return {"type": "delete", "key": to_text(kv.key), "mod_revision": kv.mod_revision}
    return {"type": "put", "key": to_text(kv.key), "value": to_text(kv.value),
            "mod_revision": kv.mod_revision, "create_revision": kv.create_revision,
            "version": kv.version}


def watch_stream_json(stream_id: str, request: WatchCreateRequest,
                      responses: Sequence[WatchResponse], *,
                      resumes: str | None = None) -> dict[str, Any]:
    """A whole stream: what `request` asked for and the responses it got, in
    order (watch_check.stream_from_json reads it). `resumes` names the
    stream this one continues after a disconnect."""
    watch_ids = {response.watch_id for response in responses}
    if len(watch_ids) > 1:
        raise ValueError(f"one stream holds one watcher's responses, not {sorted(watch_ids)}")
    return {"id": stream_id, "key": to_text(request.key),
            "range_end": to_text(request.range_end),
            "start_revision": request.start_revision,
            "filters": [_FILTERS[kind] for kind in request.filters],
            "resumes": resumes,
            "deliveries": [watch_delivery_json(response) for response in responses]}


__all__ = [
    "BYTES_ENCODING",
    "entry",
    "error_code",
    "error_json",
    "from_text",
    "is_definite",
    "request_json",
    "response_json",
    "to_text",
    "watch_delivery_json",
    "watch_stream_json",
]
