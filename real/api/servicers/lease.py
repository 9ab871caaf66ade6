"""etcd's Lease service: grant, revoke, the keepalive stream, time-to-live, list.

Keepalive follows etcd's server: requests on one stream are answered in
order, one response each; a lease that does not exist (never granted,
revoked, expired) is answered with TTL 0 rather than an error, so the
client's keepalive loop sees it end; any other error (no leader, timeout)
ends the stream with etcd's status and the client reconnects. Time-to-live
of a missing lease answers TTL -1, as etcd does. Keepalives and TTL queries
need the leader; a follower's handle either forwards them or raises
`NotLeader` (FAILED_PRECONDITION "etcdserver: not leader").
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from chainfire_core.errors import ChainfireError, LeaseNotFound
from chainfire_core.lease.messages import (
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesRequest,
    LeaseLeasesResponse,
    LeaseRevokeResponse,
    LeaseTimeToLiveResponse,
)
from chainfire_core.mvcc.messages import ResponseHeader
from chainfire_core.node_messages import ReadConsistency
from chainfire_core.types import LeaseId, Revision
from real.api import convert_admin as convert
from real.api.convert import header_to_pb
from real.api.errors import abort
from real.api.servicers.common import Context, HandleServicer, decode
from real.etcdpb import rpc_pb2, rpc_pb2_grpc


class LeaseServicer(HandleServicer, rpc_pb2_grpc.LeaseServicer):
    async def LeaseGrant(self, request: rpc_pb2.LeaseGrantRequest,
                         context: Context) -> rpc_pb2.LeaseGrantResponse:
        core = await decode(context, convert.lease_grant_from_pb, request)
        response = await self.ask(context, core, LeaseGrantResponse)
        return convert.lease_grant_response_to_pb(response, self.fields())

    async def LeaseRevoke(self, request: rpc_pb2.LeaseRevokeRequest,
                          context: Context) -> rpc_pb2.LeaseRevokeResponse:
        if request.ID <= 0:
            await abort(context, LeaseNotFound(request.ID))
        core = await decode(context, convert.lease_revoke_from_pb, request)
        response = await self.ask(context, core, LeaseRevokeResponse)
        return convert.lease_revoke_response_to_pb(response, self.fields())

    async def LeaseKeepAlive(self, request_iterator: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest],
                             context: Context) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        async for request in request_iterator:
            yield await self._keepalive(request.ID, context)

    async def _keepalive(self, lease_id: int, context: Context) -> rpc_pb2.LeaseKeepAliveResponse:
        if lease_id > 0:
            core = LeaseKeepAliveRequest(id=LeaseId(lease_id))
            try:
                response = await self.handle.request(core, ReadConsistency.LINEARIZABLE)
            except LeaseNotFound:
                pass
            except ChainfireError as error:
                await abort(context, error)
            else:
                assert isinstance(response, LeaseKeepAliveResponse), response
                return convert.keepalive_response_to_pb(response, self.fields())
        header = ResponseHeader(revision=Revision(self.handle.revision()))
        return rpc_pb2.LeaseKeepAliveResponse(header=header_to_pb(header, self.fields()),
                                              ID=lease_id, TTL=0)

    async def LeaseTimeToLive(self, request: rpc_pb2.LeaseTimeToLiveRequest,
                              context: Context) -> rpc_pb2.LeaseTimeToLiveResponse:
        if request.ID > 0:
            core = await decode(context, convert.ttl_from_pb, request)
            try:
                response = await self.ask(context, core, LeaseTimeToLiveResponse)
            except LeaseNotFound:
                pass
            else:
                return convert.ttl_response_to_pb(response, self.fields())
        header = ResponseHeader(revision=Revision(self.handle.revision()))
        return rpc_pb2.LeaseTimeToLiveResponse(header=header_to_pb(header, self.fields()),
                                               ID=request.ID, TTL=-1)

    async def LeaseLeases(self, request: rpc_pb2.LeaseLeasesRequest,
                          context: Context) -> rpc_pb2.LeaseLeasesResponse:
        response = await self.ask(context, LeaseLeasesRequest(), LeaseLeasesResponse)
        return convert.leases_response_to_pb(response, self.fields())


__all__ = ["LeaseServicer"]
