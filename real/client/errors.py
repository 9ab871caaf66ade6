"""Typed client errors: etcd's server errors by code and text, and the
client's own transport failures, each marked with what a retry may assume.

Theory of operation
-------------------
An etcd server answers a failed call with a gRPC status whose message is one
of etcd's fixed texts (`etcdserver: no leader`, `etcdserver: mvcc: required
revision has been compacted`, ...; real/api/errors.py writes them for
Chainfire). `from_rpc_error` turns a status back into one class per text, as
Go's clientv3 turns them into `rpctypes` errors; a text it does not know
becomes the generic class for its code.

Every class carries two facts the endpoint pool (real/client/pool.py) acts on:

* `retry_read`: another attempt (usually on another endpoint) may succeed,
  and repeating a read is harmless;
* `retry_write`: the error *proves* the write was not carried out, so it
  may be sent again without risk of applying it twice.

Only these prove a write did not happen, and why:

| error | why it proves nothing was applied |
| --- | --- |
| `EndpointUnreachableError` | no connection was ever made: the request was never sent |
| `NoLeaderError` | the node refused before proposing (no leader known / election) |
| `LeaderChangedError` | the proposal's log slot went to another entry: it can never commit |
| `ProposalDroppedError` | Raft refused the proposal: it never entered a log |
| `TooManyRequestsError` | refused by admission control before proposing |
| `NotLeaderError` | a leader-only request (keepalive, time-to-live) refused by a follower |

These are transient but leave a write's outcome unknown (`outcome_unknown`),
so a write failing with one is raised to the caller, never retried:
`RequestTimeoutError` (the proposal may still commit), `ServerStoppedError`
(a stopping node fails requests it had already taken with the same text as
those it refuses), `ConnectionLostError` (the connection broke after the
request left), `DeadlineExceededError` (the client's own deadline).
Everything else is a definitive answer (a bad request, a compacted revision,
a missing lease) and is never retried.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

from chainfire_core.errors import ChainfireError

Code = grpc.StatusCode


class ClientError(ChainfireError):
    """Root of the client's errors. `code` and `details` are the gRPC status
    (for transport failures, the one gRPC reported); `endpoint` where it failed."""

    retry_read: ClassVar[bool] = False
    retry_write: ClassVar[bool] = False

    def __init__(self, details: str, *, code: grpc.StatusCode = Code.UNKNOWN,
                 endpoint: str = "") -> None:
        where = f" [{endpoint}]" if endpoint else ""
        super().__init__(f"{details}{where}")
        self.code = code
        self.details = details
        self.endpoint = endpoint

    @classmethod
    def outcome_unknown(cls) -> bool:
        """A write failing with this error may or may not have been applied."""
        return cls.retry_read and not cls.retry_write


# -- the client's own failures -------------------------------------------------------


class EndpointUnreachableError(ClientError):
    """No connection to the endpoint could be made; nothing was sent."""

    retry_read = True
    retry_write = True


class ConnectionLostError(ClientError):
    """The connection failed while the call was in flight."""

    retry_read = True


class DeadlineExceededError(ClientError):
    """The call's client-side deadline passed before an answer."""

    retry_read = True


class ClientClosedError(ClientError):
    """The client (or the lease / watch) was closed."""


# -- etcd's server errors -------------------------------------------------------------


class ServerError(ClientError):
    """The server answered with an error status (generic: a text we do not know)."""


class InvalidArgumentError(ServerError):
    pass


class EmptyKeyError(InvalidArgumentError):
    pass


class KeyNotFoundError(InvalidArgumentError):
    pass


class ValueProvidedError(InvalidArgumentError):
    pass


class LeaseProvidedError(InvalidArgumentError):
    pass


class TooManyOpsError(InvalidArgumentError):
    pass


class DuplicateKeyError(InvalidArgumentError):
    pass


class RequestTooLargeError(InvalidArgumentError):
    pass


class CompactedError(ServerError):
    """The revision asked for was compacted. `compact_revision` is known when a
    watch was canceled for it (0 otherwise)."""

    def __init__(self, details: str, *, code: grpc.StatusCode = Code.OUT_OF_RANGE,
                 endpoint: str = "", compact_revision: int = 0) -> None:
        super().__init__(details, code=code, endpoint=endpoint)
        self.compact_revision = compact_revision


class FutureRevisionError(ServerError):
    pass


class NotFoundError(ServerError):
    pass


class LeaseNotFoundError(NotFoundError):
    pass


class MemberNotFoundError(NotFoundError):
    pass


class LeaseExistsError(ServerError):
    pass


class LeaseTTLTooLargeError(ServerError):
    pass


class MemberExistsError(ServerError):
    pass


class MemberNotLearnerError(ServerError):
    pass


class LearnerNotReadyError(ServerError):
    pass


class NoLeaderError(ServerError):
    retry_read = True
    retry_write = True


class NotLeaderError(ServerError):
    retry_read = True
    retry_write = True


class LeaderChangedError(ServerError):
    retry_read = True
    retry_write = True


class ProposalDroppedError(ServerError):
    retry_read = True
    retry_write = True


class TooManyRequestsError(ServerError):
    retry_read = True
    retry_write = True


class RequestTimeoutError(ServerError):
    retry_read = True


class ServerStoppedError(ServerError):
    retry_read = True


class UnimplementedError(ServerError):
    pass


# etcd's texts (v3rpc/rpctypes), as real/api/errors.py writes them.
_BY_TEXT: dict[tuple[grpc.StatusCode, str], type[ServerError]] = {
    (Code.INVALID_ARGUMENT, "etcdserver: key is not provided"): EmptyKeyError,
    (Code.INVALID_ARGUMENT, "etcdserver: key not found"): KeyNotFoundError,
    (Code.INVALID_ARGUMENT, "etcdserver: value is provided"): ValueProvidedError,
    (Code.INVALID_ARGUMENT, "etcdserver: lease is provided"): LeaseProvidedError,
    (Code.INVALID_ARGUMENT, "etcdserver: too many operations in txn request"): TooManyOpsError,
    (Code.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"): DuplicateKeyError,
    (Code.INVALID_ARGUMENT, "etcdserver: request is too large"): RequestTooLargeError,
    (Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"):
        CompactedError,
    (Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"):
        FutureRevisionError,
    (Code.NOT_FOUND, "etcdserver: requested lease not found"): LeaseNotFoundError,
    (Code.FAILED_PRECONDITION, "etcdserver: lease already exists"): LeaseExistsError,
    (Code.OUT_OF_RANGE, "etcdserver: too large lease TTL"): LeaseTTLTooLargeError,
    (Code.NOT_FOUND, "etcdserver: member not found"): MemberNotFoundError,
    (Code.FAILED_PRECONDITION, "etcdserver: member ID already exist"): MemberExistsError,
    (Code.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"): MemberExistsError,
    (Code.FAILED_PRECONDITION, "etcdserver: can only promote a learner member"):
        MemberNotLearnerError,
    (Code.FAILED_PRECONDITION,
     "etcdserver: can only promote a learner member which is in sync with leader"):
        LearnerNotReadyError,
    (Code.UNAVAILABLE, "etcdserver: no leader"): NoLeaderError,
    (Code.FAILED_PRECONDITION, "etcdserver: not leader"): NotLeaderError,
    (Code.UNAVAILABLE, "etcdserver: leader changed"): LeaderChangedError,
    (Code.RESOURCE_EXHAUSTED, "etcdserver: too many requests"): TooManyRequestsError,
    (Code.UNAVAILABLE, "etcdserver: request timed out"): RequestTimeoutError,
    (Code.UNAVAILABLE, "etcdserver: server stopped"): ServerStoppedError,
}

_BY_CODE: dict[grpc.StatusCode, type[ClientError]] = {
    Code.INVALID_ARGUMENT: InvalidArgumentError,
    Code.NOT_FOUND: NotFoundError,
    Code.UNIMPLEMENTED: UnimplementedError,
    Code.DEADLINE_EXCEEDED: DeadlineExceededError,
    Code.CANCELLED: ConnectionLostError,
}

# gRPC's words for "no transport was ever available for this call".
_NEVER_SENT = ("failed to connect to all addresses", "no address available",
               "no connection available")
_PROPOSAL_DROPPED = "raft: proposal dropped:"


def classify(code: grpc.StatusCode, details: str, endpoint: str = "") -> ClientError:
    """The typed error for a gRPC status."""
    kind = _BY_TEXT.get((code, details))
    if kind is not None:
        return kind(details, code=code, endpoint=endpoint)
    if code == Code.UNAVAILABLE:
        if details.startswith(_PROPOSAL_DROPPED):
            return ProposalDroppedError(details, code=code, endpoint=endpoint)
        if any(text in details.lower() for text in _NEVER_SENT):
            return EndpointUnreachableError(details, code=code, endpoint=endpoint)
        return ConnectionLostError(details, code=code, endpoint=endpoint)
    return _BY_CODE.get(code, ServerError)(details, code=code, endpoint=endpoint)


def from_rpc_error(error: grpc.RpcError, endpoint: str = "") -> ClientError:
    """The typed error for a failed gRPC call (`grpc.aio.AioRpcError`)."""
    if isinstance(error, grpc.aio.AioRpcError):
        return classify(error.code(), error.details() or "", endpoint)
    return ConnectionLostError(str(error), endpoint=endpoint)


__all__ = [
    "ClientClosedError",
    "ClientError",
    "CompactedError",
    "ConnectionLostError",
    "DeadlineExceededError",
    "DuplicateKeyError",
    "EmptyKeyError",
    "EndpointUnreachableError",
    "FutureRevisionError",
    "InvalidArgumentError",
    "KeyNotFoundError",
    "LeaderChangedError",
    "LearnerNotReadyError",
    "LeaseExistsError",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "LeaseTTLTooLargeError",
    "MemberExistsError",
    "MemberNotFoundError",
    "MemberNotLearnerError",
    "NoLeaderError",
    "NotFoundError",
    "NotLeaderError",
    "ProposalDroppedError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "ServerError",
    "ServerStoppedError",
    "TooManyOpsError",
    "TooManyRequestsError",
    "UnimplementedError",
    "ValueProvidedError",
    "classify",
    "from_rpc_error",
]
