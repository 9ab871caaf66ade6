"""etcd's Cluster service: MemberAdd, MemberRemove, MemberUpdate, MemberList,
MemberPromote.

Membership changes go through Raft as configuration changes (the core plans
and applies them); MemberList answers from this member's table. MemberUpdate
replaces a member's peer URLs (checked as MemberAdd's) through the same
path: a conf change that keeps the member's role, after which every member's
transport dials it at the new address.
"""

from __future__ import annotations

from chainfire_core.node_messages import MemberListRequest, MemberResponse, ReadConsistency
from real.api import convert_admin as convert
from real.api.servicers.common import Context, HandleServicer, decode
from real.etcdpb import rpc_pb2, rpc_pb2_grpc


class ClusterServicer(HandleServicer, rpc_pb2_grpc.ClusterServicer):
    async def MemberAdd(self, request: rpc_pb2.MemberAddRequest,
                        context: Context) -> rpc_pb2.MemberAddResponse:
        await self.require_admin(context)
        core = await decode(context, convert.member_add_from_pb, request)
        response = await self.ask(context, core, MemberResponse)
        return convert.member_add_response_to_pb(response, self.fields())

    async def MemberRemove(self, request: rpc_pb2.MemberRemoveRequest,
                           context: Context) -> rpc_pb2.MemberRemoveResponse:
        await self.require_admin(context)
        core = await decode(context, convert.member_remove_from_pb, request)
        response = await self.ask(context, core, MemberResponse)
        return convert.member_remove_response_to_pb(response, self.fields())

    async def MemberUpdate(self, request: rpc_pb2.MemberUpdateRequest,
                           context: Context) -> rpc_pb2.MemberUpdateResponse:
        await self.require_admin(context)
        core = await decode(context, convert.member_update_from_pb, request)
        response = await self.ask(context, core, MemberResponse)
        return convert.member_update_response_to_pb(response, self.fields())

    async def MemberList(self, request: rpc_pb2.MemberListRequest,
                         context: Context) -> rpc_pb2.MemberListResponse:
        response = await self.ask(context, MemberListRequest(), MemberResponse,
                                  ReadConsistency.SERIALIZABLE)
        return convert.member_list_response_to_pb(response, self.fields())

    async def MemberPromote(self, request: rpc_pb2.MemberPromoteRequest,
                            context: Context) -> rpc_pb2.MemberPromoteResponse:
        await self.require_admin(context)
        core = await decode(context, convert.member_promote_from_pb, request)
        response = await self.ask(context, core, MemberResponse)
        return convert.member_promote_response_to_pb(response, self.fields())


__all__ = ["ClusterServicer"]
