"""The error hierarchy of the core.

Expected failures (a bad request, a compacted revision, an unknown lease) are
typed errors under one root, `ChainfireError`, split like h11 by whose fault
they are: `RequestError` for a caller's bad or unanswerable request,
`DataError` for bytes handed in that cannot be trusted (a corrupt snapshot).
A broken internal invariant is never one of these: it is an `assert`.

Each error carries the etcd gRPC status code name and message it maps to, so
the real runtime can answer etcd clients the way etcd does.
"""

from __future__ import annotations


class ChainfireError(Exception):
    """Root of every expected failure raised by Chainfire."""

    grpc_code: str = "UNKNOWN"


class RequestError(ChainfireError):
    """The caller's request is malformed or cannot be served."""

    grpc_code = "INVALID_ARGUMENT"


class DataError(ChainfireError):
    """Bytes handed to the core (a snapshot, a record) are corrupt or unknown."""

    grpc_code = "DATA_LOSS"


class InvalidRequest(RequestError):
    """A request breaks a documented rule (empty key, bad range, bad option)."""


class EmptyKey(InvalidRequest):
    def __init__(self) -> None:
        super().__init__("etcdserver: key is not provided")


class KeyNotFound(InvalidRequest):
    """A put with ignore_value / ignore_lease names a key that does not exist."""

    def __init__(self, key: bytes) -> None:
        super().__init__("etcdserver: key not found")
        self.key = key


class RequestTooLarge(InvalidRequest):
    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"etcdserver: request is too large ({size_bytes} bytes > {limit_bytes} bytes)"
        )


class TooManyOps(InvalidRequest):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"etcdserver: too many operations in txn request ({count} > {limit})")


class DuplicateKey(InvalidRequest):
    """A transaction writes the same key twice (etcd forbids it)."""

    def __init__(self, key: bytes) -> None:
        super().__init__(f"etcdserver: duplicate key given in txn request: {key!r}")
        self.key = key


class Compacted(RequestError):
    """The revision asked for has been compacted away."""

    grpc_code = "OUT_OF_RANGE"

    def __init__(self, revision: int, compact_revision: int) -> None:
        super().__init__("etcdserver: mvcc: required revision has been compacted")
        self.revision = revision
        self.compact_revision = compact_revision


class FutureRevision(RequestError):
    """The revision asked for is newer than the store's current revision."""

    grpc_code = "OUT_OF_RANGE"

    def __init__(self, revision: int, current_revision: int) -> None:
        super().__init__("etcdserver: mvcc: required revision is a future revision")
        self.revision = revision
        self.current_revision = current_revision


class LeaseNotFound(RequestError):
    grpc_code = "NOT_FOUND"

    def __init__(self, lease_id: int) -> None:
        super().__init__("etcdserver: requested lease not found")
        self.lease_id = lease_id


class LeaseExists(RequestError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self, lease_id: int) -> None:
        super().__init__("etcdserver: lease already exists")
        self.lease_id = lease_id


class LeaseTTLTooLarge(RequestError):
    grpc_code = "OUT_OF_RANGE"

    def __init__(self, ttl_s: int, limit_s: int) -> None:
        super().__init__(f"etcdserver: too large lease TTL ({ttl_s} s > {limit_s} s)")


class WatchNotFound(RequestError):
    grpc_code = "NOT_FOUND"

    def __init__(self, watch_id: int) -> None:
        super().__init__(f"etcdserver: watch {watch_id} not found")
        self.watch_id = watch_id


class TooManyWatchers(RequestError):
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, limit: int) -> None:
        super().__init__(f"etcdserver: too many watchers (limit {limit})")


class ProposalDropped(RequestError):
    """Raft did not take the proposal (no leader known, leadership transfer
    in progress, a membership change already pending, too many uncommitted
    bytes, or this node was removed); it was not and will not be applied."""

    grpc_code = "UNAVAILABLE"

    def __init__(self, reason: str) -> None:
        super().__init__(f"raft: proposal dropped: {reason}")
        self.reason = reason


class NotLeader(RequestError):
    """This node is not the leader; `leader_hint` names the one it knows (0: none)."""

    grpc_code = "UNAVAILABLE"

    def __init__(self, leader_hint: int) -> None:
        text = "etcdserver: not leader" if leader_hint else "etcdserver: no leader"
        super().__init__(text)
        self.leader_hint = leader_hint


class RequestTimeout(RequestError):
    """The request's deadline passed before it was answered. Its outcome is
    unknown: a write may or may not have been applied."""

    grpc_code = "DEADLINE_EXCEEDED"

    def __init__(self) -> None:
        super().__init__("etcdserver: request timed out")


class MemberNotFound(RequestError):
    grpc_code = "NOT_FOUND"

    def __init__(self, member_id: int) -> None:
        super().__init__("etcdserver: member not found")
        self.member_id = member_id


class MemberExists(RequestError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self, what: str) -> None:
        super().__init__(f"etcdserver: {what} already exists")


class MemberNotLearner(RequestError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__("etcdserver: can only promote a learner member")


class LearnerNotReady(RequestError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__(
            "etcdserver: can only promote a learner member which is in sync with leader"
        )


class CorruptSnapshot(DataError):
    """A snapshot's framing, version or checksum is wrong; nothing was restored."""



# -- auth (etcd's auth store errors, with the gRPC codes and messages of etcd's
# rpctypes: the real runtime answers clients with these verbatim) -------------


class AuthError(RequestError):
    """A refusal by the auth store (chainfire_core/auth/)."""

    message: str = ""

    def __init__(self) -> None:
        super().__init__(self.message)


class RootUserNotExist(AuthError):
    grpc_code = "FAILED_PRECONDITION"
    message = "etcdserver: root user does not exist"


class RootRoleNotExist(AuthError):
    grpc_code = "FAILED_PRECONDITION"
    message = "etcdserver: root user does not have root role"


class UserAlreadyExist(AuthError):
    grpc_code = "FAILED_PRECONDITION"
    message = "etcdserver: user name already exists"


class UserEmpty(AuthError):
    """No user name: a request without credentials while auth is enabled."""

    message = "etcdserver: user name is empty"


class UserNotFound(AuthError):
    grpc_code = "FAILED_PRECONDITION"
    message = "etcdserver: user name not found"


class RoleAlreadyExist(AuthError):
    grpc_code = "FAILED_PRECONDITION"
    message = "etcdserver: role name already exists"


class RoleNotFound(AuthError):
    grpc_code = "FAILED_PRECONDITION"
    message = "etcdserver: role name not found"


class RoleEmpty(AuthError):
    message = "etcdserver: role name is empty"


class AuthFailed(AuthError):
    """Unknown user, wrong password, or a user without a password."""

    message = "etcdserver: authentication failed, invalid user ID or password"


class PermissionDenied(AuthError):
    grpc_code = "PERMISSION_DENIED"
    message = "etcdserver: permission denied"


class RoleNotGranted(AuthError):
    grpc_code = "FAILED_PRECONDITION"
    message = "etcdserver: role is not granted to the user"


class PermissionNotGranted(AuthError):
    grpc_code = "FAILED_PRECONDITION"
    message = "etcdserver: permission is not granted to the role"


class AuthNotEnabled(AuthError):
    grpc_code = "FAILED_PRECONDITION"
    message = "etcdserver: authentication is not enabled"


class InvalidAuthToken(AuthError):
    """The token is unknown on this member, expired, or was invalidated."""

    grpc_code = "UNAUTHENTICATED"
    message = "etcdserver: invalid auth token"


class InvalidAuthMgmt(AuthError):
    """Deleting the root user or role, or taking the root role from root,
    while auth is enabled."""

    message = "etcdserver: invalid auth management"


class AuthOldRevision(AuthError):
    """The request's credentials were issued before the last auth change."""

    message = "etcdserver: revision of auth store is old"


# -- alarms and quotas --------------------------------------------------------------


class NoSpace(RequestError):
    """The backend quota is exhausted (a NOSPACE alarm is, or is now, active)."""

    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self) -> None:
        super().__init__("etcdserver: mvcc: database space exceeded")


class ClusterCorrupt(RequestError):
    """A CORRUPT alarm is active: every key-value and lease request is refused."""

    grpc_code = "DATA_LOSS"

    def __init__(self) -> None:
        super().__init__("etcdserver: corrupt cluster")


class NamespaceQuotaExceeded(RequestError):
    """A write would take a namespace (a key prefix) past its configured
    number of keys or bytes; nothing of it was written."""

    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, prefix: bytes, what: str, used: int, limit: int) -> None:
        super().__init__(f"etcdserver: namespace quota exceeded: {what} under prefix "
                         f"{prefix!r} would be {used} (limit {limit})")
        self.prefix = prefix
        self.what = what
        self.used = used
        self.limit = limit


__all__ = [
    "AuthError",
    "AuthFailed",
    "AuthNotEnabled",
    "AuthOldRevision",
    "ChainfireError",
    "ClusterCorrupt",
    "Compacted",
    "CorruptSnapshot",
    "DataError",
    "DuplicateKey",
    "EmptyKey",
    "FutureRevision",
    "InvalidAuthMgmt",
    "InvalidAuthToken",
    "InvalidRequest",
    "KeyNotFound",
    "LearnerNotReady",
    "MemberExists",
    "MemberNotFound",
    "MemberNotLearner",
    "LeaseExists",
    "LeaseNotFound",
    "LeaseTTLTooLarge",
    "NamespaceQuotaExceeded",
    "NoSpace",
    "NotLeader",
    "PermissionDenied",
    "PermissionNotGranted",
    "ProposalDropped",
    "RequestError",
    "RequestTimeout",
    "RequestTooLarge",
    "RoleAlreadyExist",
    "RoleEmpty",
    "RoleNotFound",
    "RoleNotGranted",
    "RootRoleNotExist",
    "RootUserNotExist",
    "TooManyOps",
    "TooManyWatchers",
    "UserAlreadyExist",
    "UserEmpty",
    "UserNotFound",
    "WatchNotFound",
]
