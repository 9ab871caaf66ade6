"""Core errors -> gRPC status codes and etcd's exact error strings.

Theory of operation
-------------------
etcd clients recognise server errors by status code and by the exact
message text (Go's clientv3 turns a known text back into a typed error such
as `rpctypes.ErrCompacted`; Python clients match codes), and they decide
whether to retry from both: UNAVAILABLE "etcdserver: no leader" is safe to
retry, UNAVAILABLE "etcdserver: request timed out" is not for a write. So
`to_status` maps each core `ChainfireError` type to etcd's code and etcd's
text (v3rpc/rpctypes), dropping the detail the core adds for humans (counts,
key names). An error etcd has no word for keeps the core's message and the
code the core error declares (`grpc_code`).

`ProposalDropped` is split by its reason: without a leader (none known, an
election under way) it is etcd's "no leader", which clients retry; a
proposal that lost its log slot to a leader change is "leader changed";
overload is "too many requests". Every dropped proposal was not applied.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from chainfire_core.errors import (
    ChainfireError,
    Compacted,
    DuplicateKey,
    EmptyKey,
    FutureRevision,
    KeyNotFound,
    LearnerNotReady,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    MemberExists,
    MemberNotFound,
    MemberNotLearner,
    NotLeader,
    ProposalDropped,
    RequestTimeout,
    RequestTooLarge,
    TooManyOps,
)

Code = grpc.StatusCode

NO_LEADER = (Code.UNAVAILABLE, "etcdserver: no leader")
NOT_LEADER = (Code.FAILED_PRECONDITION, "etcdserver: not leader")
LEADER_CHANGED = (Code.UNAVAILABLE, "etcdserver: leader changed")
TIMEOUT = (Code.UNAVAILABLE, "etcdserver: request timed out")
STOPPED = (Code.UNAVAILABLE, "etcdserver: server stopped")
TOO_MANY_REQUESTS = (Code.RESOURCE_EXHAUSTED, "etcdserver: too many requests")

# Exact type -> etcd's (code, text); looked up by exact type, then by base class.
_BY_TYPE: dict[type[ChainfireError], tuple[Code, str]] = {
    EmptyKey: (Code.INVALID_ARGUMENT, "etcdserver: key is not provided"),
    KeyNotFound: (Code.INVALID_ARGUMENT, "etcdserver: key not found"),
    TooManyOps: (Code.INVALID_ARGUMENT, "etcdserver: too many operations in txn request"),
    DuplicateKey: (Code.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"),
    RequestTooLarge: (Code.INVALID_ARGUMENT, "etcdserver: request is too large"),
    Compacted: (Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
    FutureRevision: (Code.OUT_OF_RANGE,
                     "etcdserver: mvcc: required revision is a future revision"),
    LeaseNotFound: (Code.NOT_FOUND, "etcdserver: requested lease not found"),
    LeaseExists: (Code.FAILED_PRECONDITION, "etcdserver: lease already exists"),
    LeaseTTLTooLarge: (Code.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
    MemberNotFound: (Code.NOT_FOUND, "etcdserver: member not found"),
    MemberNotLearner: (Code.FAILED_PRECONDITION,
                       "etcdserver: can only promote a learner member"),
    LearnerNotReady: (Code.FAILED_PRECONDITION,
                      "etcdserver: can only promote a learner member which is in sync with "
                      "leader"),
    RequestTimeout: TIMEOUT,
}

_MEMBER_EXISTS = {
    "etcdserver: ID already exists": (Code.FAILED_PRECONDITION,
                                      "etcdserver: member ID already exist"),
    "etcdserver: Peer URLs already exists": (Code.FAILED_PRECONDITION,
                                             "etcdserver: Peer URLs already exists"),
}

_DROPPED: dict[str, tuple[Code, str]] = {
    "no leader": NO_LEADER,
    "election in progress": NO_LEADER,
    "no leader to confirm the read": NO_LEADER,
    "lost to a leader change": LEADER_CHANGED,
    "too many pending requests": TOO_MANY_REQUESTS,
    "too many uncommitted bytes": TOO_MANY_REQUESTS,
    "too many pending reads": TOO_MANY_REQUESTS,
}


def to_status(error: ChainfireError) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and message etcd would answer `error` with."""
    if isinstance(error, NotLeader):
        return NOT_LEADER if error.leader_hint else NO_LEADER
    if isinstance(error, ProposalDropped):
        return _DROPPED.get(error.reason, (Code.UNAVAILABLE, str(error)))
    if isinstance(error, MemberExists):
        return _MEMBER_EXISTS.get(str(error), (Code.FAILED_PRECONDITION, str(error)))
    for kind in type(error).__mro__:
        known = _BY_TYPE.get(kind)
        if known is not None:
            return known
    return _code_named(error.grpc_code), str(error)


def _code_named(name: str) -> grpc.StatusCode:
    code = getattr(grpc.StatusCode, name, None)
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: ChainfireError) -> NoReturn:
    """End the RPC with `error`'s status (raises, as `context.abort` does)."""
    code, message = to_status(error)
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover


__all__ = ["LEADER_CHANGED", "NOT_LEADER", "NO_LEADER", "STOPPED", "TIMEOUT",
           "TOO_MANY_REQUESTS", "abort", "to_status"]
