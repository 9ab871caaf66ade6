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

The member refused the caller's credentials, so nothing was applied: a
request is checked when it arrives and a write again when it applies (a
refused write is refused whole, on every replica). A client that has a user
and password authenticates again and retries the call once
(`reauthenticate`), wherever it was in the retry budget:

| error | why it proves nothing was applied |
| --- | --- |
| `AuthRevisionError` | the token predates an auth change: refused before or at apply |
| `InvalidTokenError` | the token is unknown or expired here: refused before proposing |
| `UserEmptyError` | no token was sent (auth was enabled since): refused before or at apply |

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
    # The caller's credentials were refused: authenticate again, then retry once.
    reauthenticate: ClassVar[bool] = False

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


class BadLeaderTransfereeError(ServerError):
    """MoveLeader's target is not a voting member."""


class LeaderTransferTimeoutError(ServerError):
    """MoveLeader did not finish in time (the transfer may still complete)."""


# -- auth, alarms and quotas ------------------------------------------------------------


class AuthError(ServerError):
    """A refusal by the auth store (etcd's auth errors)."""


class AuthFailedError(AuthError):
    """Unknown user or wrong password."""


class PermissionDeniedError(AuthError):
    """The user's roles do not cover the request (or it needs the root role)."""


class InvalidTokenError(AuthError):
    """The token is unknown on the member, expired or was invalidated."""

    reauthenticate = True


class AuthRevisionError(AuthError):
    """The token was issued before the last user or role change."""

    reauthenticate = True


class UserEmptyError(AuthError):
    """A call without a token while auth is enabled."""

    reauthenticate = True


class AuthNotEnabledError(AuthError):
    pass


class UserNotFoundError(AuthError):
    pass


class UserExistsError(AuthError):
    pass


class RoleNotFoundError(AuthError):
    pass


class RoleExistsError(AuthError):
    pass


class RoleEmptyError(AuthError):
    pass


class RoleNotGrantedError(AuthError):
    pass


class PermissionNotGrantedError(AuthError):
    pass


class InvalidAuthMgmtError(AuthError):
    """Deleting root or the root role, or taking it from root, while auth is on."""


class RootUserNotExistError(AuthError):
    pass


class RootRoleNotExistError(AuthError):
    pass


class NoSpaceError(ServerError):
    """The backend quota is exhausted (NOSPACE alarm): writes are refused
    until an operator makes room and disarms the alarm."""


class CorruptClusterError(ServerError):
    """A CORRUPT alarm is active."""


class NamespaceQuotaExceededError(ServerError):
    """A write would pass a namespace quota; nothing of it was written."""


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
    (Code.FAILED_PRECONDITION, "etcdserver: bad leader transferee"): BadLeaderTransfereeError,
    (Code.UNAVAILABLE, "etcdserver: request timed out, leader transfer took too long"):
        LeaderTransferTimeoutError,
    (Code.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password"):
        AuthFailedError,
    (Code.PERMISSION_DENIED, "etcdserver: permission denied"): PermissionDeniedError,
    (Code.UNAUTHENTICATED, "etcdserver: invalid auth token"): InvalidTokenError,
    (Code.INVALID_ARGUMENT, "etcdserver: revision of auth store is old"): AuthRevisionError,
    (Code.INVALID_ARGUMENT, "etcdserver: user name is empty"): UserEmptyError,
    (Code.FAILED_PRECONDITION, "etcdserver: authentication is not enabled"):
        AuthNotEnabledError,
    (Code.FAILED_PRECONDITION, "etcdserver: user name not found"): UserNotFoundError,
    (Code.FAILED_PRECONDITION, "etcdserver: user name already exists"): UserExistsError,
    (Code.FAILED_PRECONDITION, "etcdserver: role name not found"): RoleNotFoundError,
    (Code.FAILED_PRECONDITION, "etcdserver: role name already exists"): RoleExistsError,
    (Code.INVALID_ARGUMENT, "etcdserver: role name is empty"): RoleEmptyError,
    (Code.FAILED_PRECONDITION, "etcdserver: role is not granted to the user"):
        RoleNotGrantedError,
    (Code.FAILED_PRECONDITION, "etcdserver: permission is not granted to the role"):
        PermissionNotGrantedError,
    (Code.INVALID_ARGUMENT, "etcdserver: invalid auth management"): InvalidAuthMgmtError,
    (Code.FAILED_PRECONDITION, "etcdserver: root user does not exist"): RootUserNotExistError,
    (Code.FAILED_PRECONDITION, "etcdserver: root user does not have root role"):
        RootRoleNotExistError,
    (Code.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"): NoSpaceError,
    (Code.DATA_LOSS, "etcdserver: corrupt cluster"): CorruptClusterError,
}
# Texts that go on with details (a namespace quota names its prefix and numbers).
_BY_PREFIX: tuple[tuple[grpc.StatusCode, str, type[ServerError]], ...] = (
    (Code.RESOURCE_EXHAUSTED, "etcdserver: namespace quota exceeded",
     NamespaceQuotaExceededError),
)

_BY_CODE: dict[grpc.StatusCode, type[ClientError]] = {
    Code.INVALID_ARGUMENT: InvalidArgumentError,
    Code.NOT_FOUND: NotFoundError,
    Code.UNIMPLEMENTED: UnimplementedError,
    Code.DEADLINE_EXCEEDED: DeadlineExceededError,
    Code.CANCELLED: ConnectionLostError,
    Code.PERMISSION_DENIED: PermissionDeniedError,
    Code.UNAUTHENTICATED: InvalidTokenError,
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
    for prefix_code, prefix, prefixed in _BY_PREFIX:
        if code == prefix_code and details.startswith(prefix):
            return prefixed(details, code=code, endpoint=endpoint)
    if code == Code.UNAVAILABLE:
        if details.startswith(_PROPOSAL_DROPPED):
            return ProposalDroppedError(details, code=code, endpoint=endpoint)
        if any(text in details.lower() for text in _NEVER_SENT):
            return EndpointUnreachableError(details, code=code, endpoint=endpoint)
        return ConnectionLostError(details, code=code, endpoint=endpoint)
    return _BY_CODE.get(code, ServerError)(details, code=code, endpoint=endpoint)


def from_cancel_reason(reason: str, endpoint: str = "") -> ClientError:
    """The typed error for a watcher the server canceled with `reason` (a
    cancel carries etcd's text but no status code: e.g. "etcdserver:
    permission denied" when the user may not read the range)."""
    for (code, text), kind in _BY_TEXT.items():
        if text == reason:
            return kind(reason, code=code, endpoint=endpoint)
    return ServerError(reason or "the watch was canceled", code=Code.CANCELLED,
                       endpoint=endpoint)


def from_rpc_error(error: grpc.RpcError, endpoint: str = "") -> ClientError:
    """The typed error for a failed gRPC call (`grpc.aio.AioRpcError`)."""
    if isinstance(error, grpc.aio.AioRpcError):
        return classify(error.code(), error.details() or "", endpoint)
    return ConnectionLostError(str(error), endpoint=endpoint)


__all__ = [
    "AuthError", "AuthFailedError", "AuthNotEnabledError", "AuthRevisionError",
    "BadLeaderTransfereeError", "ClientClosedError", "ClientError", "CompactedError",
    "ConnectionLostError", "CorruptClusterError", "DeadlineExceededError",
    "DuplicateKeyError", "EmptyKeyError", "EndpointUnreachableError", "FutureRevisionError",
    "InvalidArgumentError", "InvalidAuthMgmtError", "InvalidTokenError", "KeyNotFoundError",
    "LeaderChangedError", "LeaderTransferTimeoutError", "LearnerNotReadyError",
    "LeaseExistsError", "LeaseNotFoundError", "LeaseProvidedError", "LeaseTTLTooLargeError",
    "MemberExistsError", "MemberNotFoundError", "MemberNotLearnerError",
    "NamespaceQuotaExceededError", "NoLeaderError", "NoSpaceError", "NotFoundError",
    "NotLeaderError", "PermissionDeniedError", "PermissionNotGrantedError",
    "ProposalDroppedError", "RequestTimeoutError", "RequestTooLargeError", "RoleEmptyError",
    "RoleExistsError", "RoleNotFoundError", "RoleNotGrantedError", "RootRoleNotExistError",
    "RootUserNotExistError", "ServerError", "ServerStoppedError", "TooManyOpsError",
    "TooManyRequestsError", "UnimplementedError", "UserEmptyError", "UserExistsError",
    "UserNotFoundError", "ValueProvidedError", "classify", "from_cancel_reason",
    "from_rpc_error",
]
