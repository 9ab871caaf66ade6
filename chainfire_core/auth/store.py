"""The auth store: users, roles, permissions, auth on/off and the auth revision.

Theory of operation
-------------------
This is replicated state, changed only by commands applied in log order
(auth/apply.py), so every replica holds the same users and roles and takes
the same permission decisions. It lives in the backend in etcd's buckets
("auth" for the enabled flag and the revision, "authUsers", "authRoles"),
one record per user and role, so a snapshot of the backend carries it and a
restored replica reads it back (`reload`, which refuses malformed records
with CorruptSnapshot before changing anything). Python dicts mirror the
buckets for reads.

The auth revision starts at 1 (0 means "no credentials") and every change
bumps it, in the same backend batch as the change, except the changes etcd
leaves alone: enabling auth, granting a role the user already has. A request
whose credentials carry an older revision is refused with AuthOldRevision.

The rules are etcd 3.4's: enabling auth needs a user "root" holding the
role "root" (which need not exist as a role record: the root role is
built in and grants everything, including admin); while auth is enabled,
the root user cannot be deleted, the root role cannot be deleted or taken
from root (InvalidAuthMgmt); deleting a role takes it from every user.

`check_range` and `check_admin` are etcd's isOpPermitted and
IsAdminPermitted. A user's permissions are merged once and cached
(permissions.py) until the next change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from chainfire_core.auth.messages import (
    ROOT_ROLE,
    ROOT_USER,
    AuthInfo,
    PasswordHash,
    Permission,
    PermissionType,
    UserAddCommand,
)
from chainfire_core.auth.password import verify_password
from chainfire_core.auth.permissions import RangePermissions
from chainfire_core.codec import Codec, CodecError
from chainfire_core.errors import (
    AuthFailed,
    AuthNotEnabled,
    AuthOldRevision,
    CorruptSnapshot,
    InvalidAuthMgmt,
    InvalidRequest,
    PermissionDenied,
    PermissionNotGranted,
    RoleAlreadyExist,
    RoleNotFound,
    RoleNotGranted,
    RootRoleNotExist,
    RootUserNotExist,
    UserAlreadyExist,
    UserEmpty,
    UserNotFound,
)
from chainfire_core.storage import BatchDelete, BatchOp, BatchPut, StorageBackend

AUTH_BUCKET = "auth"
USERS_BUCKET = "authUsers"
ROLES_BUCKET = "authRoles"
AUTH_BUCKETS = (AUTH_BUCKET, USERS_BUCKET, ROLES_BUCKET)
_ENABLED_KEY = b"authEnabled"
_REVISION_KEY = b"authRevision"


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    name: str
    password_hash: PasswordHash | None
    roles: tuple[str, ...] = ()
    no_password: bool = False

    def __post_init__(self) -> None:
        if not self.name or list(self.roles) != sorted(set(self.roles)):
            raise InvalidRequest("user record: empty name or roles not sorted and unique")


@dataclass(frozen=True, slots=True, kw_only=True)
class Role:
    name: str
    perms: tuple[Permission, ...] = ()

    def __post_init__(self) -> None:
        spans = [(p.key, p.range_end) for p in self.perms]
        if not self.name or spans != sorted(set(spans)):
            raise InvalidRequest("role record: empty name or permissions not sorted and unique")


_RECORDS = Codec([PasswordHash, Permission, User, Role])
_Record = TypeVar("_Record", User, Role)


class AuthStore:
    """See the module docstring."""

    def __init__(self, backend: StorageBackend) -> None:
        self._backend = backend
        self._enabled = False
        self._revision = 1
        self._users: dict[str, User] = {}
        self._roles: dict[str, Role] = {}
        self._cache: dict[str, RangePermissions] = {}
        self.reload()

    # -- loading ---------------------------------------------------------------------

    def reload(self) -> None:
        """Read the state from the backend; CorruptSnapshot if malformed."""
        flag = self._backend.get(AUTH_BUCKET, _ENABLED_KEY)
        raw_revision = self._backend.get(AUTH_BUCKET, _REVISION_KEY)
        if flag not in (None, b"\0", b"\1") or (raw_revision is not None
                                                 and len(raw_revision) != 8):
            raise CorruptSnapshot("auth bucket: malformed enabled flag or revision")
        users = {name.decode(errors="replace"): _decode(value, User)
                 for name, value in self._backend.range(USERS_BUCKET, b"")}
        roles = {name.decode(errors="replace"): _decode(value, Role)
                 for name, value in self._backend.range(ROLES_BUCKET, b"")}
        if any(user.name != name for name, user in users.items()) or any(
                role.name != name for name, role in roles.items()):
            raise CorruptSnapshot("auth buckets: a record under another name")
        revision = 1 if raw_revision is None else int.from_bytes(raw_revision, "big")
        if revision < 1:
            raise CorruptSnapshot("auth bucket: revision 0")
        self._enabled, self._revision = flag == b"\1", revision
        self._users, self._roles, self._cache = users, roles, {}

    # -- state -------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def revision(self) -> int:
        return self._revision

    def user_names(self) -> frozenset[str]:
        return frozenset(self._users)

    def user_get(self, name: str) -> tuple[str, ...]:
        return self._user(name).roles

    def user_list(self) -> tuple[str, ...]:
        return tuple(sorted(self._users))

    def role_get(self, role: str) -> tuple[Permission, ...]:
        return self._role(role).perms

    def role_list(self) -> tuple[str, ...]:
        return tuple(sorted(self._roles))

    def has_role(self, user: str, role: str) -> bool:
        found = self._users.get(user)
        return found is not None and role in found.roles

    def _user(self, name: str) -> User:
        found = self._users.get(name)
        if found is None:
            raise UserNotFound()
        return found

    def _role(self, name: str) -> Role:
        found = self._roles.get(name)
        if found is None:
            raise RoleNotFound()
        return found

    # -- changes (commands, in log order) ---------------------------------------------

    def _commit(self, ops: list[BatchOp], *, bump: bool = True) -> None:
        """Write `ops` (and the next revision) in one batch, then drop the cache."""
        if bump:
            self._revision += 1
            ops.append(BatchPut(bucket=AUTH_BUCKET, key=_REVISION_KEY,
                                value=self._revision.to_bytes(8, "big")))
        self._backend.write_batch(ops)
        self._cache.clear()

    def _put_user(self, user: User) -> None:
        self._users[user.name] = user
        self._commit([BatchPut(bucket=USERS_BUCKET, key=user.name.encode(),
                               value=_RECORDS.encode(user))])

    def _put_role(self, role: Role) -> None:
        self._roles[role.name] = role
        self._commit([BatchPut(bucket=ROLES_BUCKET, key=role.name.encode(),
                               value=_RECORDS.encode(role))])

    def enable(self) -> None:
        if self._enabled:
            return
        root = self._users.get(ROOT_USER)
        if root is None:
            raise RootUserNotExist()
        if ROOT_ROLE not in root.roles:
            raise RootRoleNotExist()
        self._enabled = True
        self._commit([BatchPut(bucket=AUTH_BUCKET, key=_ENABLED_KEY, value=b"\1")], bump=False)

    def disable(self) -> bool:
        """Turn auth off; False if it was off already."""
        if not self._enabled:
            return False
        self._enabled = False
        self._commit([BatchPut(bucket=AUTH_BUCKET, key=_ENABLED_KEY, value=b"\0")])
        return True

    def user_add(self, command: UserAddCommand) -> None:
        if command.name in self._users:
            raise UserAlreadyExist()
        self._put_user(User(name=command.name, password_hash=command.password_hash,
                            no_password=command.no_password))

    def user_delete(self, name: str) -> None:
        if self._enabled and name == ROOT_USER:
            raise InvalidAuthMgmt()
        self._user(name)
        del self._users[name]
        self._commit([BatchDelete(bucket=USERS_BUCKET, key=name.encode())])

    def user_change_password(self, name: str, password_hash: PasswordHash) -> None:
        user = self._user(name)
        self._put_user(replace(user, password_hash=password_hash))

    def user_grant_role(self, name: str, role: str) -> None:
        user = self._user(name)
        if role != ROOT_ROLE:
            self._role(role)
        if role in user.roles:
            return  # etcd: already granted, ignored (no revision change)
        self._put_user(replace(user, roles=tuple(sorted((*user.roles, role)))))

    def user_revoke_role(self, name: str, role: str) -> None:
        if self._enabled and name == ROOT_USER and role == ROOT_ROLE:
            raise InvalidAuthMgmt()
        user = self._user(name)
        if role not in user.roles:
            raise RoleNotGranted()
        self._put_user(replace(user, roles=tuple(r for r in user.roles if r != role)))

    def role_add(self, name: str) -> None:
        if name in self._roles:
            raise RoleAlreadyExist()
        self._put_role(Role(name=name))

    def role_delete(self, name: str) -> None:
        if self._enabled and name == ROOT_ROLE:
            raise InvalidAuthMgmt()
        self._role(name)
        del self._roles[name]
        ops: list[BatchOp] = [BatchDelete(bucket=ROLES_BUCKET, key=name.encode())]
        for user in [u for _, u in sorted(self._users.items()) if name in u.roles]:
            changed = replace(user, roles=tuple(r for r in user.roles if r != name))
            self._users[user.name] = changed
            ops.append(BatchPut(bucket=USERS_BUCKET, key=user.name.encode(),
                                value=_RECORDS.encode(changed)))
        self._commit(ops)

    def role_grant_permission(self, name: str, perm: Permission) -> None:
        role = self._role(name)
        kept = [p for p in role.perms if (p.key, p.range_end) != (perm.key, perm.range_end)]
        perms = sorted((*kept, perm), key=lambda p: (p.key, p.range_end))
        self._put_role(replace(role, perms=tuple(perms)))

    def role_revoke_permission(self, name: str, key: bytes, range_end: bytes) -> None:
        role = self._role(name)
        kept = tuple(p for p in role.perms if (p.key, p.range_end) != (key, range_end))
        if len(kept) == len(role.perms):
            raise PermissionNotGranted()
        self._put_role(replace(role, perms=kept))

    # -- checks ----------------------------------------------------------------------------

    def check_password(self, name: str, password: str) -> int:
        """etcd's CheckPassword: the auth revision the check was made at."""
        if not self._enabled:
            raise AuthNotEnabled()
        user = self._users.get(name)
        if user is None or user.password_hash is None or not verify_password(
                password, user.password_hash):
            raise AuthFailed()
        return self._revision

    def check_authenticate(self, name: str, checked_revision: int) -> None:
        """Whether a token may be assigned to `name` at apply time."""
        if not self._enabled:
            raise AuthNotEnabled()
        user = self._users.get(name)
        if user is None or user.no_password:
            raise AuthFailed()
        if checked_revision != self._revision:
            raise AuthOldRevision()

    def check_admin(self, info: AuthInfo) -> None:
        """etcd's IsAdminPermitted: the user holds the root role."""
        if not self._enabled:
            return
        if not info.user:
            raise UserEmpty()
        if ROOT_ROLE not in self._user(info.user).roles:
            raise PermissionDenied()

    def check_range(self, info: AuthInfo, key: bytes, range_end: bytes,
                    perm_type: PermissionType) -> None:
        """etcd's isOpPermitted: `perm_type` access to the whole range, with
        credentials no older than the store (READWRITE: read and write)."""
        if not self._enabled:
            return
        if info.revision == 0:
            raise UserEmpty()
        if info.revision < self._revision:
            raise AuthOldRevision()
        user = self._users.get(info.user)
        if user is None:
            raise PermissionDenied()
        if ROOT_ROLE in user.roles:
            return
        if not self._permissions(user).allows(key, range_end, perm_type):
            raise PermissionDenied()

    def _permissions(self, user: User) -> RangePermissions:
        cached = self._cache.get(user.name)
        if cached is None:
            perms = [p for name in user.roles if name in self._roles
                     for p in self._roles[name].perms]
            cached = self._cache[user.name] = RangePermissions.of(perms)
        return cached

    def check_invariants(self) -> None:
        assert self._revision >= 1
        if self._enabled:
            assert ROOT_ROLE in self._users[ROOT_USER].roles, "auth on without root/root"
        stored_users = {k.decode() for k, _ in self._backend.range(USERS_BUCKET, b"")}
        stored_roles = {k.decode() for k, _ in self._backend.range(ROLES_BUCKET, b"")}
        assert stored_users == set(self._users), "user cache drifted"
        assert stored_roles == set(self._roles), "role cache drifted"


def _decode(data: bytes, kind: type[_Record]) -> _Record:
    try:
        value = _RECORDS.decode(data)
    except CodecError as error:
        raise CorruptSnapshot(f"auth record: {error}") from error
    if not isinstance(value, kind):
        raise CorruptSnapshot(f"auth record: a {type(value).__name__} where a "
                              f"{kind.__name__} belongs")
    return value


__all__ = ["AUTH_BUCKET", "AUTH_BUCKETS", "ROLES_BUCKET", "USERS_BUCKET", "AuthStore", "Role",
           "User"]
