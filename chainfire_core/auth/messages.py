"""Requests, commands and responses of the auth API (etcd's Auth service).

They mirror etcd v3's `AuthXRequest` messages field for field (snake_case,
`PermissionType` with authpb's numbers), so the gRPC layer is a mechanical
translation. Three client requests carry a clear-text password and are
never written to the log: the node turns them into commands first.
`UserAddRequest` and `UserChangePasswordRequest` become `UserAddCommand` and
`UserChangePasswordCommand` holding a salted hash computed on the node that
took the request (etcd hashes with bcrypt before proposing, for the same
reason: every replica must store the same hash, so the salt cannot be drawn
inside apply). `AuthenticateRequest` becomes `AuthenticateCommand`: the
password is checked on the node that took the request, and the command
carries the auth revision it was checked at plus a random token prefix.

`AuthorizedCommand` is a command together with who sent it (etcd's
RequestHeader username and auth revision): apply checks the user's
permissions against the replicated auth state at that point in the log, so
every replica takes the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from chainfire_core.alarms import AlarmRequest
from chainfire_core.errors import InvalidRequest, RoleEmpty, UserEmpty
from chainfire_core.lease.messages import LeaseGrantRequest, LeaseRevokeRequest
from chainfire_core.mvcc.messages import (
    CompactionRequest,
    DeleteRangeRequest,
    PutRequest,
    ResponseHeader,
    TxnRequest,
)
from chainfire_core.quota import QuotaDeleteRequest, QuotaSetRequest

ROOT_USER = "root"
ROOT_ROLE = "root"
PASSWORD_ALGORITHM = "pbkdf2-sha256"
MAX_HASH_ITERATIONS = 10_000_000


class PermissionType(IntEnum):
    """authpb.Permission.Type numbers."""

    READ = 0
    WRITE = 1
    READWRITE = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Permission:
    """`perm_type` access to `key` (range_end b""), to [key, range_end), or to
    every key >= key (range_end b"\\0"): etcd's range conventions. A prefix is
    `range_end=prefix_end(key)`; key b"" with range_end b"\\0" is every key."""

    perm_type: PermissionType
    key: bytes
    range_end: bytes = b""

    def __post_init__(self) -> None:
        if type(self.key) is not bytes or type(self.range_end) is not bytes:
            raise InvalidRequest("permission key and range_end must be bytes")
        if not self.key and not self.range_end:
            raise InvalidRequest("etcdserver: permission needs a key or a range end")


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordHash:
    """A salted PBKDF2-HMAC-SHA256 hash; it names its own parameters, so a
    change of the iteration count applies to new passwords only."""

    algorithm: str
    iterations: int
    salt: bytes
    digest: bytes

    def __post_init__(self) -> None:
        if self.algorithm != PASSWORD_ALGORITHM:
            raise InvalidRequest(f"unknown password hash algorithm {self.algorithm!r}")
        if not 0 < self.iterations <= MAX_HASH_ITERATIONS:
            raise InvalidRequest(f"password hash iterations out of range: {self.iterations}")
        if len(self.salt) < 8 or len(self.digest) != 32:
            raise InvalidRequest("password hash: salt under 8 bytes or digest not 32 bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthInfo:
    """Who a request runs as: a user and the auth revision its credentials
    carry. `ANONYMOUS` (user "", revision 0) is a request without a token."""

    user: str
    revision: int

    def __post_init__(self) -> None:
        if self.revision < 0 or (self.revision == 0) != (self.user == ""):
            raise InvalidRequest("auth info: revision 0 exactly when there is no user")


ANONYMOUS = AuthInfo(user="", revision=0)


def _check_name(name: str, empty: type[UserEmpty] | type[RoleEmpty]) -> None:
    if type(name) is not str:
        raise InvalidRequest("user and role names must be str")
    if not name:
        raise empty()


def _check_str(*names: str) -> None:
    if any(type(name) is not str for name in names):
        raise InvalidRequest("user and role names must be str")


# -- auth on and off -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthEnableRequest:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthDisableRequest:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthStatusRequest:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthStatusResponse:
    header: ResponseHeader
    enabled: bool
    auth_revision: int


# -- authenticate ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticateRequest:
    name: str
    password: str

    def __post_init__(self) -> None:
        _check_str(self.name, self.password)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticateCommand:
    """Assign a simple token `token_prefix.<log index>` to `name` on every
    replica. `checked_revision`: the auth revision the password was checked
    at; if the store has moved on by apply time the command is refused
    (AuthOldRevision) and the node checks the password again."""

    name: str
    token_prefix: str
    checked_revision: int

    def __post_init__(self) -> None:
        _check_str(self.name, self.token_prefix)
        if not self.token_prefix.isalpha() or self.checked_revision <= 0:
            raise InvalidRequest("authenticate: bad token prefix or revision")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticateResponse:
    header: ResponseHeader
    token: str


# -- users -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UserAddRequest:
    name: str
    password: str = ""
    no_password: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name, UserEmpty)
        _check_str(self.password)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserAddCommand:
    name: str
    password_hash: PasswordHash | None
    no_password: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name, UserEmpty)
        if (self.password_hash is None) != self.no_password:
            raise InvalidRequest("user add: a password hash exactly when no_password is off")


@dataclass(frozen=True, slots=True, kw_only=True)
class UserDeleteRequest:
    name: str

    def __post_init__(self) -> None:
        _check_str(self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserChangePasswordRequest:
    name: str
    password: str

    def __post_init__(self) -> None:
        _check_str(self.name, self.password)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserChangePasswordCommand:
    name: str
    password_hash: PasswordHash

    def __post_init__(self) -> None:
        _check_str(self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserGrantRoleRequest:
    user: str
    role: str

    def __post_init__(self) -> None:
        _check_str(self.user, self.role)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRevokeRoleRequest:
    name: str
    role: str

    def __post_init__(self) -> None:
        _check_str(self.name, self.role)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserGetRequest:
    name: str

    def __post_init__(self) -> None:
        _check_str(self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserGetResponse:
    header: ResponseHeader
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class UserListRequest:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class UserListResponse:
    header: ResponseHeader
    users: tuple[str, ...]


# -- roles -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleAddRequest:
    name: str

    def __post_init__(self) -> None:
        _check_name(self.name, RoleEmpty)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleDeleteRequest:
    role: str

    def __post_init__(self) -> None:
        _check_str(self.role)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleGrantPermissionRequest:
    name: str
    perm: Permission

    def __post_init__(self) -> None:
        _check_str(self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleRevokePermissionRequest:
    role: str
    key: bytes
    range_end: bytes = b""

    def __post_init__(self) -> None:
        _check_str(self.role)
        if type(self.key) is not bytes or type(self.range_end) is not bytes:
            raise InvalidRequest("permission key and range_end must be bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleGetRequest:
    role: str

    def __post_init__(self) -> None:
        _check_str(self.role)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleGetResponse:
    header: ResponseHeader
    perm: tuple[Permission, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleListRequest:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleListResponse:
    header: ResponseHeader
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthResponse:
    """The answer to every auth command that returns only a header (enable,
    disable, user add/delete/change password/grant/revoke, role
    add/delete/grant/revoke)."""

    header: ResponseHeader


# -- what goes through the log -------------------------------------------------------------

AuthCommand = (
    AuthEnableRequest | AuthDisableRequest | AuthenticateCommand | UserAddCommand
    | UserDeleteRequest | UserChangePasswordCommand | UserGrantRoleRequest
    | UserRevokeRoleRequest | RoleAddRequest | RoleDeleteRequest
    | RoleGrantPermissionRequest | RoleRevokePermissionRequest
)
# Admin-only: etcd's needAdminPermission (user/role get and list are reads).
ADMIN_COMMANDS = (
    AuthEnableRequest, AuthDisableRequest, UserAddCommand, UserDeleteRequest,
    UserChangePasswordCommand, UserGrantRoleRequest, UserRevokeRoleRequest, RoleAddRequest,
    RoleDeleteRequest, RoleGrantPermissionRequest, RoleRevokePermissionRequest,
)
AuthRead = (
    AuthStatusRequest | UserGetRequest | UserListRequest | RoleGetRequest | RoleListRequest
)
# What a client may send with credentials and have checked at apply time.
CheckedCommand = (
    PutRequest | DeleteRangeRequest | TxnRequest | CompactionRequest | LeaseGrantRequest
    | LeaseRevokeRequest | AlarmRequest | QuotaSetRequest | QuotaDeleteRequest | AuthEnableRequest
    | AuthDisableRequest | UserAddCommand | UserDeleteRequest | UserChangePasswordCommand
    | UserGrantRoleRequest | UserRevokeRoleRequest | RoleAddRequest | RoleDeleteRequest
    | RoleGrantPermissionRequest | RoleRevokePermissionRequest
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizedCommand:
    """`command`, sent by `user` with credentials of auth revision
    `auth_revision` (user "" and revision 0: no credentials)."""

    user: str
    auth_revision: int
    command: CheckedCommand

    def __post_init__(self) -> None:
        _check_str(self.user)
        if self.auth_revision < 0 or (self.auth_revision == 0) != (self.user == ""):
            raise InvalidRequest("authorized command: revision 0 exactly when there is no user")

    @classmethod
    def of(cls, info: AuthInfo, command: CheckedCommand) -> AuthorizedCommand:
        return cls(user=info.user, auth_revision=info.revision, command=command)

    @property
    def info(self) -> AuthInfo:
        return AuthInfo(user=self.user, revision=self.auth_revision)


__all__ = [
    "ADMIN_COMMANDS",
    "ANONYMOUS",
    "PASSWORD_ALGORITHM",
    "ROOT_ROLE",
    "ROOT_USER",
    "AuthCommand",
    "AuthDisableRequest",
    "AuthEnableRequest",
    "AuthInfo",
    "AuthRead",
    "AuthResponse",
    "AuthStatusRequest",
    "AuthStatusResponse",
    "AuthenticateCommand",
    "AuthenticateRequest",
    "AuthenticateResponse",
    "AuthorizedCommand",
    "CheckedCommand",
    "PasswordHash",
    "Permission",
    "PermissionType",
    "RoleAddRequest",
    "RoleDeleteRequest",
    "RoleGetRequest",
    "RoleGetResponse",
    "RoleGrantPermissionRequest",
    "RoleListRequest",
    "RoleListResponse",
    "RoleRevokePermissionRequest",
    "UserAddCommand",
    "UserAddRequest",
    "UserChangePasswordCommand",
    "UserChangePasswordRequest",
    "UserDeleteRequest",
    "UserGetRequest",
    "UserGetResponse",
    "UserGrantRoleRequest",
    "UserListRequest",
    "UserListResponse",
    "UserRevokeRoleRequest",
]
