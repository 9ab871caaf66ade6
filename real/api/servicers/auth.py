"""etcd's Auth service: enable/disable, authenticate, users, roles, permissions.

Every method is one core request (chainfire_core/auth) asked of the node
with the caller's credentials (the `token` metadata etcd clients send;
`HandleServicer.ask` resolves it): the node checks permissions (root role
for changes and lists, the user itself or a role holder for gets), hashes
new passwords and checks Authenticate's password itself, so passwords never
enter the log. Errors carry etcd's codes and texts (chainfire_core/errors.py):
etcdctl prints them as etcd's.

Failures that matter to an operator (a wrong password, a refused permission,
a stale or unknown token) are logged by `HandleServicer.ask` with the method
and the user.
"""

from __future__ import annotations

from chainfire_core.auth import (
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateRequest,
    AuthenticateResponse,
    AuthResponse,
    Permission,
    PermissionType,
    RoleAddRequest,
    RoleDeleteRequest,
    RoleGetRequest,
    RoleGetResponse,
    RoleGrantPermissionRequest,
    RoleListRequest,
    RoleListResponse,
    RoleRevokePermissionRequest,
    UserAddRequest,
    UserChangePasswordRequest,
    UserDeleteRequest,
    UserGetRequest,
    UserGetResponse,
    UserGrantRoleRequest,
    UserListRequest,
    UserListResponse,
    UserRevokeRoleRequest,
)
from chainfire_core.errors import InvalidRequest
from chainfire_core.node_messages import ClientRequest
from real.api.convert import header_to_pb
from real.api.servicers.common import Context, HandleServicer, decode
from real.etcdpb import auth_pb2, rpc_pb2, rpc_pb2_grpc


def _perm_type(value: int) -> PermissionType:
    try:
        return PermissionType(value)
    except ValueError:
        raise InvalidRequest(f"etcdserver: unknown permission type {value}") from None


def _grant_from_pb(pb: rpc_pb2.AuthRoleGrantPermissionRequest) -> RoleGrantPermissionRequest:
    return RoleGrantPermissionRequest(name=pb.name, perm=Permission(
        perm_type=_perm_type(pb.perm.permType), key=pb.perm.key, range_end=pb.perm.range_end))


def _perm_to_pb(perm: Permission) -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=int(perm.perm_type),  # type: ignore[arg-type]
                               key=perm.key, range_end=perm.range_end)


class AuthServicer(HandleServicer, rpc_pb2_grpc.AuthServicer):
    def _header(self, response: AuthResponse | AuthenticateResponse | UserGetResponse
                | UserListResponse | RoleGetResponse | RoleListResponse
                ) -> rpc_pb2.ResponseHeader:
        return header_to_pb(response.header, self.fields())

    async def _done(self, context: Context, request: ClientRequest) -> rpc_pb2.ResponseHeader:
        """Ask a change; its answer carries only a header."""
        return self._header(await self.ask(context, request, AuthResponse))

    async def AuthEnable(self, request: rpc_pb2.AuthEnableRequest,
                         context: Context) -> rpc_pb2.AuthEnableResponse:
        return rpc_pb2.AuthEnableResponse(header=await self._done(context, AuthEnableRequest()))

    async def AuthDisable(self, request: rpc_pb2.AuthDisableRequest,
                          context: Context) -> rpc_pb2.AuthDisableResponse:
        return rpc_pb2.AuthDisableResponse(
            header=await self._done(context, AuthDisableRequest()))

    async def Authenticate(self, request: rpc_pb2.AuthenticateRequest,
                           context: Context) -> rpc_pb2.AuthenticateResponse:
        core = await decode(context, lambda pb: AuthenticateRequest(
            name=pb.name, password=pb.password), request)
        response = await self.ask(context, core, AuthenticateResponse, anonymous=True)
        return rpc_pb2.AuthenticateResponse(header=self._header(response), token=response.token)

    async def UserAdd(self, request: rpc_pb2.AuthUserAddRequest,
                      context: Context) -> rpc_pb2.AuthUserAddResponse:
        core = await decode(context, lambda pb: UserAddRequest(
            name=pb.name, password=pb.password, no_password=pb.options.no_password), request)
        return rpc_pb2.AuthUserAddResponse(header=await self._done(context, core))

    async def UserGet(self, request: rpc_pb2.AuthUserGetRequest,
                      context: Context) -> rpc_pb2.AuthUserGetResponse:
        core = await decode(context, lambda pb: UserGetRequest(name=pb.name), request)
        response = await self.ask(context, core, UserGetResponse)
        return rpc_pb2.AuthUserGetResponse(header=self._header(response),
                                           roles=list(response.roles))

    async def UserList(self, request: rpc_pb2.AuthUserListRequest,
                       context: Context) -> rpc_pb2.AuthUserListResponse:
        response = await self.ask(context, UserListRequest(), UserListResponse)
        return rpc_pb2.AuthUserListResponse(header=self._header(response),
                                            users=list(response.users))

    async def UserDelete(self, request: rpc_pb2.AuthUserDeleteRequest,
                         context: Context) -> rpc_pb2.AuthUserDeleteResponse:
        core = await decode(context, lambda pb: UserDeleteRequest(name=pb.name), request)
        return rpc_pb2.AuthUserDeleteResponse(header=await self._done(context, core))

    async def UserChangePassword(self, request: rpc_pb2.AuthUserChangePasswordRequest,
                                 context: Context) -> rpc_pb2.AuthUserChangePasswordResponse:
        core = await decode(context, lambda pb: UserChangePasswordRequest(
            name=pb.name, password=pb.password), request)
        return rpc_pb2.AuthUserChangePasswordResponse(header=await self._done(context, core))

    async def UserGrantRole(self, request: rpc_pb2.AuthUserGrantRoleRequest,
                            context: Context) -> rpc_pb2.AuthUserGrantRoleResponse:
        core = await decode(context, lambda pb: UserGrantRoleRequest(
            user=pb.user, role=pb.role), request)
        return rpc_pb2.AuthUserGrantRoleResponse(header=await self._done(context, core))

    async def UserRevokeRole(self, request: rpc_pb2.AuthUserRevokeRoleRequest,
                             context: Context) -> rpc_pb2.AuthUserRevokeRoleResponse:
        core = await decode(context, lambda pb: UserRevokeRoleRequest(
            name=pb.name, role=pb.role), request)
        return rpc_pb2.AuthUserRevokeRoleResponse(header=await self._done(context, core))

    async def RoleAdd(self, request: rpc_pb2.AuthRoleAddRequest,
                      context: Context) -> rpc_pb2.AuthRoleAddResponse:
        core = await decode(context, lambda pb: RoleAddRequest(name=pb.name), request)
        return rpc_pb2.AuthRoleAddResponse(header=await self._done(context, core))

    async def RoleGet(self, request: rpc_pb2.AuthRoleGetRequest,
                      context: Context) -> rpc_pb2.AuthRoleGetResponse:
        core = await decode(context, lambda pb: RoleGetRequest(role=pb.role), request)
        response = await self.ask(context, core, RoleGetResponse)
        return rpc_pb2.AuthRoleGetResponse(header=self._header(response),
                                           perm=[_perm_to_pb(perm) for perm in response.perm])

    async def RoleList(self, request: rpc_pb2.AuthRoleListRequest,
                       context: Context) -> rpc_pb2.AuthRoleListResponse:
        response = await self.ask(context, RoleListRequest(), RoleListResponse)
        return rpc_pb2.AuthRoleListResponse(header=self._header(response),
                                            roles=list(response.roles))

    async def RoleDelete(self, request: rpc_pb2.AuthRoleDeleteRequest,
                         context: Context) -> rpc_pb2.AuthRoleDeleteResponse:
        core = await decode(context, lambda pb: RoleDeleteRequest(role=pb.role), request)
        return rpc_pb2.AuthRoleDeleteResponse(header=await self._done(context, core))

    async def RoleGrantPermission(self, request: rpc_pb2.AuthRoleGrantPermissionRequest,
                                  context: Context) -> rpc_pb2.AuthRoleGrantPermissionResponse:
        core = await decode(context, _grant_from_pb, request)
        return rpc_pb2.AuthRoleGrantPermissionResponse(header=await self._done(context, core))

    async def RoleRevokePermission(self, request: rpc_pb2.AuthRoleRevokePermissionRequest,
                                   context: Context) -> rpc_pb2.AuthRoleRevokePermissionResponse:
        core = await decode(context, lambda pb: RoleRevokePermissionRequest(
            role=pb.role, key=pb.key, range_end=pb.range_end), request)
        return rpc_pb2.AuthRoleRevokePermissionResponse(header=await self._done(context, core))


__all__ = ["AuthServicer"]
