"""Applying auth commands, and authorizing requests (etcd's authApplierV3).

Theory of operation
-------------------
`authorize` is what apply runs before a command sent with credentials
(`AuthorizedCommand`): the same checks etcd's auth applier makes, against
the auth state at that point of the log, so every replica refuses the same
commands. `authorize_read` does the same for reads, which the node serves
without the log. While auth is disabled everything passes.

- put: WRITE on the key; with prev_kv also READ; with a lease, WRITE on
  every key already attached to that lease (etcd: a user who could not
  revoke the lease may not attach keys to it).
- delete range: WRITE on the range; with prev_kv also READ.
- txn: READ on every compare's range, and each op on both branches as above
  (nested txns included; etcd 3.4 does not descend into them).
- range: READ on the range.
- lease revoke: WRITE on every attached key.
- compaction, lease grant, alarms: no check (as in etcd 3.4).
- auth changes, namespace quota changes, user/role list, auth status: the
  root role (admin). User get: admin or the user itself; role get: admin or
  a holder of that role.

`apply_auth` applies the auth commands proper and keeps this member's
simple tokens in step: authenticate assigns one, disabling auth drops all,
deleting a user or changing its password drops that user's.
"""

from __future__ import annotations

from collections.abc import Sequence

from chainfire_core.auth.messages import (
    ADMIN_COMMANDS,
    AuthCommand,
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateCommand,
    AuthenticateResponse,
    AuthInfo,
    AuthRead,
    AuthResponse,
    AuthStatusRequest,
    AuthStatusResponse,
    CheckedCommand,
    PermissionType,
    RoleAddRequest,
    RoleDeleteRequest,
    RoleGetRequest,
    RoleGetResponse,
    RoleGrantPermissionRequest,
    RoleListRequest,
    RoleListResponse,
    RoleRevokePermissionRequest,
    UserAddCommand,
    UserChangePasswordCommand,
    UserDeleteRequest,
    UserGetRequest,
    UserGetResponse,
    UserGrantRoleRequest,
    UserListRequest,
    UserListResponse,
    UserRevokeRoleRequest,
)
from chainfire_core.auth.store import AuthStore
from chainfire_core.auth.tokens import SimpleTokenStore
from chainfire_core.errors import InvalidAuthToken
from chainfire_core.lease.lessor import Lessor
from chainfire_core.lease.messages import LeaseRevokeRequest
from chainfire_core.mvcc.messages import (
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    RequestOp,
    ResponseHeader,
    TxnRequest,
)
from chainfire_core.quota import QuotaDeleteRequest, QuotaSetRequest
from chainfire_core.types import NO_LEASE, LeaseId

READ, WRITE = PermissionType.READ, PermissionType.WRITE


def authorize(auth: AuthStore, lessor: Lessor, info: AuthInfo, command: CheckedCommand) -> None:
    """Raise the auth error etcd would answer `command` sent as `info` with."""
    if not auth.enabled:
        return
    match command:
        case PutRequest() | DeleteRangeRequest() | TxnRequest():
            _check_ops(auth, lessor, info, (command,))
        case LeaseRevokeRequest():
            _check_lease_keys(auth, lessor, info, command.id)
        case QuotaSetRequest() | QuotaDeleteRequest():
            auth.check_admin(info)
        case _ if isinstance(command, ADMIN_COMMANDS):
            auth.check_admin(info)
        case _:
            pass  # compaction, lease grant, alarms: unchecked, as in etcd 3.4


def authorize_read(auth: AuthStore, info: AuthInfo, request: object) -> None:
    """Raise the auth error etcd would answer the read `request` with
    (alarm and quota lists: no check)."""
    if not auth.enabled:
        return
    match request:
        case RangeRequest() | TxnRequest():
            _check_ops(auth, None, info, (request,))
        case UserGetRequest():
            if request.name != info.user:
                auth.check_admin(info)
        case RoleGetRequest():
            if not auth.has_role(info.user, request.role):
                auth.check_admin(info)
        case UserListRequest() | RoleListRequest() | AuthStatusRequest():
            auth.check_admin(info)


def _check_ops(auth: AuthStore, lessor: Lessor | None, info: AuthInfo,
               ops: Sequence[RequestOp]) -> None:
    for op in ops:
        match op:
            case RangeRequest():
                auth.check_range(info, op.key, op.range_end, READ)
            case PutRequest():
                auth.check_range(info, op.key, b"", WRITE)
                if op.prev_kv:
                    auth.check_range(info, op.key, b"", READ)
                if lessor is not None and op.lease != NO_LEASE:
                    _check_lease_keys(auth, lessor, info, op.lease)
            case DeleteRangeRequest():
                if op.prev_kv:
                    auth.check_range(info, op.key, op.range_end, READ)
                auth.check_range(info, op.key, op.range_end, WRITE)
            case TxnRequest():
                for compare in op.compare:
                    auth.check_range(info, compare.key, compare.range_end, READ)
                _check_ops(auth, lessor, info, op.success)
                _check_ops(auth, lessor, info, op.failure)


def _check_lease_keys(auth: AuthStore, lessor: Lessor, info: AuthInfo, lease: LeaseId) -> None:
    if lessor.exists(lease):
        for key in lessor.keys(lease):
            auth.check_range(info, key, b"", WRITE)


def resolve_token(auth: AuthStore, tokens: SimpleTokenStore, token: str, *, now_ms: int,
                  bind_revision: bool) -> AuthInfo:
    """The credentials a simple token stands for on this member (its TTL
    starts over); InvalidAuthToken if it is unknown or expired here."""
    found = tokens.lookup(token, now_ms)
    if found is None:
        raise InvalidAuthToken()
    user, issued_revision = found
    return AuthInfo(user=user, revision=issued_revision if bind_revision else auth.revision)


def apply_auth(auth: AuthStore, tokens: SimpleTokenStore, command: AuthCommand, *,
               header: ResponseHeader, index: int,
               now_ms: int) -> AuthResponse | AuthenticateResponse:
    """Apply one auth command (in log order, at log index `index`)."""
    match command:
        case AuthEnableRequest():
            auth.enable()
        case AuthDisableRequest():
            if auth.disable():
                tokens.clear()
        case AuthenticateCommand():
            auth.check_authenticate(command.name, command.checked_revision)
            token = f"{command.token_prefix}.{index}"
            tokens.assign(token, command.name, auth.revision, now_ms)
            return AuthenticateResponse(header=header, token=token)
        case UserAddCommand():
            auth.user_add(command)
        case UserDeleteRequest():
            auth.user_delete(command.name)
            tokens.invalidate_user(command.name)
        case UserChangePasswordCommand():
            auth.user_change_password(command.name, command.password_hash)
            tokens.invalidate_user(command.name)
        case UserGrantRoleRequest():
            auth.user_grant_role(command.user, command.role)
        case UserRevokeRoleRequest():
            auth.user_revoke_role(command.name, command.role)
        case RoleAddRequest():
            auth.role_add(command.name)
        case RoleDeleteRequest():
            auth.role_delete(command.role)
        case RoleGrantPermissionRequest():
            auth.role_grant_permission(command.name, command.perm)
        case RoleRevokePermissionRequest():
            auth.role_revoke_permission(command.role, command.key, command.range_end)
    return AuthResponse(header=header)


def serve_auth_read(auth: AuthStore, request: AuthRead, header: ResponseHeader) -> object:
    match request:
        case AuthStatusRequest():
            return AuthStatusResponse(header=header, enabled=auth.enabled,
                                      auth_revision=auth.revision)
        case UserGetRequest():
            return UserGetResponse(header=header, roles=auth.user_get(request.name))
        case UserListRequest():
            return UserListResponse(header=header, users=auth.user_list())
        case RoleGetRequest():
            return RoleGetResponse(header=header, perm=auth.role_get(request.role))
        case RoleListRequest():
            return RoleListResponse(header=header, roles=auth.role_list())


__all__ = ["apply_auth", "authorize", "authorize_read", "resolve_token", "serve_auth_read"]
