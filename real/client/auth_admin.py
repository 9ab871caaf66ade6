"""`client.auth`: users, roles, permissions, auth enable/disable (etcd's
Auth service), for the asyncio client (`AsyncAuthAdmin`) and the sync one
(`AuthAdmin`, the same calls run on the client's loop thread).

Changes are writes (retried only when the error proves nothing was
applied); gets and lists are reads. With auth enabled, changes and lists
need the root role; a user may get itself and a role it holds. Answers are
plain values: roles and names as tuples of str, a role's permissions as the
core's `Permission`s. Permissions follow etcd's range conventions:
`prefix=True` grants every key under `key`, `range_end=b"\\0"` every key from
`key` on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import grpc

from chainfire_core.auth import Permission, PermissionType
from chainfire_core.mvcc.messages import prefix_end
from real.client.pool import CallKind, EndpointPool
from real.client.txn import Bytes, to_bytes
from real.etcdpb import auth_pb2, rpc_pb2, rpc_pb2_grpc

_T = TypeVar("_T")
_Method = Callable[["rpc_pb2_grpc.AuthAsyncStub"], Callable[..., Awaitable[_T]]]


def permission(key: Bytes, range_end: Bytes = b"", *, prefix: bool = False,
               perm_type: PermissionType = PermissionType.READWRITE) -> Permission:
    """A permission on one key, a range, or (`prefix`) every key under `key`."""
    raw = to_bytes(key)
    end = prefix_end(raw) if prefix else to_bytes(range_end)
    return Permission(perm_type=perm_type, key=raw, range_end=end)


class AsyncAuthAdmin:
    def __init__(self, pool: EndpointPool) -> None:
        self._pool = pool

    async def _call(self, kind: CallKind, method: _Method[_T], request: object) -> _T:
        async def invoke(channel: grpc.aio.Channel, timeout_s: float) -> _T:
            return await method(rpc_pb2_grpc.AuthStub(channel))(request, timeout=timeout_s)
        return await self._pool.call(kind, invoke)

    async def auth_enable(self) -> None:
        """Needs a user `root` holding the role `root`."""
        await self._call(CallKind.WRITE, lambda s: s.AuthEnable, rpc_pb2.AuthEnableRequest())

    async def auth_disable(self) -> None:
        await self._call(CallKind.WRITE, lambda s: s.AuthDisable, rpc_pb2.AuthDisableRequest())

    async def user_add(self, name: str, password: str = "", *,
                       no_password: bool = False) -> None:
        request = rpc_pb2.AuthUserAddRequest(
            name=name, password=password,
            options=auth_pb2.UserAddOptions(no_password=no_password))
        await self._call(CallKind.WRITE, lambda s: s.UserAdd, request)

    async def user_delete(self, name: str) -> None:
        await self._call(CallKind.WRITE, lambda s: s.UserDelete,
                         rpc_pb2.AuthUserDeleteRequest(name=name))

    async def user_get(self, name: str) -> tuple[str, ...]:
        """The user's roles."""
        response = await self._call(CallKind.READ, lambda s: s.UserGet,
                                    rpc_pb2.AuthUserGetRequest(name=name))
        return tuple(response.roles)

    async def user_list(self) -> tuple[str, ...]:
        response = await self._call(CallKind.READ, lambda s: s.UserList,
                                    rpc_pb2.AuthUserListRequest())
        return tuple(response.users)

    async def user_change_password(self, name: str, password: str) -> None:
        await self._call(CallKind.WRITE, lambda s: s.UserChangePassword,
                         rpc_pb2.AuthUserChangePasswordRequest(name=name, password=password))

    async def user_grant_role(self, user: str, role: str) -> None:
        await self._call(CallKind.WRITE, lambda s: s.UserGrantRole,
                         rpc_pb2.AuthUserGrantRoleRequest(user=user, role=role))

    async def user_revoke_role(self, user: str, role: str) -> None:
        await self._call(CallKind.WRITE, lambda s: s.UserRevokeRole,
                         rpc_pb2.AuthUserRevokeRoleRequest(name=user, role=role))

    async def role_add(self, name: str) -> None:
        await self._call(CallKind.WRITE, lambda s: s.RoleAdd,
                         rpc_pb2.AuthRoleAddRequest(name=name))

    async def role_delete(self, name: str) -> None:
        await self._call(CallKind.WRITE, lambda s: s.RoleDelete,
                         rpc_pb2.AuthRoleDeleteRequest(role=name))

    async def role_get(self, name: str) -> tuple[Permission, ...]:
        """The role's permissions."""
        response = await self._call(CallKind.READ, lambda s: s.RoleGet,
                                    rpc_pb2.AuthRoleGetRequest(role=name))
        return tuple(Permission(perm_type=PermissionType(perm.permType), key=perm.key,
                                range_end=perm.range_end) for perm in response.perm)

    async def role_list(self) -> tuple[str, ...]:
        response = await self._call(CallKind.READ, lambda s: s.RoleList,
                                    rpc_pb2.AuthRoleListRequest())
        return tuple(response.roles)

    async def role_grant_permission(self, name: str, key: Bytes, range_end: Bytes = b"", *,
                                    prefix: bool = False,
                                    perm_type: PermissionType = PermissionType.READWRITE
                                    ) -> None:
        perm = permission(key, range_end, prefix=prefix, perm_type=perm_type)
        request = rpc_pb2.AuthRoleGrantPermissionRequest(name=name, perm=auth_pb2.Permission(
            permType=int(perm.perm_type),  # type: ignore[arg-type]
            key=perm.key, range_end=perm.range_end))
        await self._call(CallKind.WRITE, lambda s: s.RoleGrantPermission, request)

    async def role_revoke_permission(self, name: str, key: Bytes, range_end: Bytes = b"", *,
                                     prefix: bool = False) -> None:
        perm = permission(key, range_end, prefix=prefix)
        await self._call(CallKind.WRITE, lambda s: s.RoleRevokePermission,
                         rpc_pb2.AuthRoleRevokePermissionRequest(role=name, key=perm.key,
                                                                 range_end=perm.range_end))


class Runner(Protocol):
    """Runs a coroutine to its result (the sync client's loop thread)."""

    def __call__(self, coro: Coroutine[Any, Any, _T]) -> _T: ...


class AuthAdmin:
    """The sync view of `AsyncAuthAdmin` (same methods, blocking)."""

    def __init__(self, run: Runner, admin: AsyncAuthAdmin) -> None:
        self._run = run
        self._aio = admin

    def auth_enable(self) -> None:
        self._run(self._aio.auth_enable())

    def auth_disable(self) -> None:
        self._run(self._aio.auth_disable())

    def user_add(self, name: str, password: str = "", *, no_password: bool = False) -> None:
        self._run(self._aio.user_add(name, password, no_password=no_password))

    def user_delete(self, name: str) -> None:
        self._run(self._aio.user_delete(name))

    def user_get(self, name: str) -> tuple[str, ...]:
        return self._run(self._aio.user_get(name))

    def user_list(self) -> tuple[str, ...]:
        return self._run(self._aio.user_list())

    def user_change_password(self, name: str, password: str) -> None:
        self._run(self._aio.user_change_password(name, password))

    def user_grant_role(self, user: str, role: str) -> None:
        self._run(self._aio.user_grant_role(user, role))

    def user_revoke_role(self, user: str, role: str) -> None:
        self._run(self._aio.user_revoke_role(user, role))

    def role_add(self, name: str) -> None:
        self._run(self._aio.role_add(name))

    def role_delete(self, name: str) -> None:
        self._run(self._aio.role_delete(name))

    def role_get(self, name: str) -> tuple[Permission, ...]:
        return self._run(self._aio.role_get(name))

    def role_list(self) -> tuple[str, ...]:
        return self._run(self._aio.role_list())

    def role_grant_permission(self, name: str, key: Bytes, range_end: Bytes = b"", *,
                              prefix: bool = False,
                              perm_type: PermissionType = PermissionType.READWRITE) -> None:
        self._run(self._aio.role_grant_permission(name, key, range_end, prefix=prefix,
                                                  perm_type=perm_type))

    def role_revoke_permission(self, name: str, key: Bytes, range_end: Bytes = b"", *,
                               prefix: bool = False) -> None:
        self._run(self._aio.role_revoke_permission(name, key, range_end, prefix=prefix))


__all__ = ["AsyncAuthAdmin", "AuthAdmin", "permission"]
