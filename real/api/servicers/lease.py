"""etcd's Lease service: grant, revoke, the keepalive stream, time-to-live, list.

Keepalive follows etcd's server: requests on one stream are answered in
order, one response each; a lease that does not exist (never granted,
revoked, expired) is answered with TTL 0 rather than an error, so the
client's keepalive loop sees it end; any other error (no leader, timeout)
ends the stream with etcd's status and the client reconnects. Time-to-live
of a missing lease answers TTL -1, as etcd does.

Keepalives and TTL queries need the leader. On a follower the core raises
`NotLeader`; with a `Forwarder` (real/api/forward.py) the servicer then
sends the request to the leader and answers with the leader's TTL under
this member's own header, as etcd's server does. A keepalive stream keeps
one forwarded stream to the leader for all its requests. A request that
was itself forwarded, or a servicer without a forwarder, answers
FAILED_PRECONDITION "etcdserver: not leader" instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import NoReturn, TypeVar

import grpc

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
from real.api.forward import (
    FORWARDED_METADATA,
    Forwarder,
    ForwarderClosed,
    KeepAliveForward,
    RemoteStatus,
    is_forwarded,
)
from real.api.handle import NodeHandle
from real.api.servicers.common import Context, HandleServicer, decode
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

_T = TypeVar("_T")


class LeaseServicer(HandleServicer, rpc_pb2_grpc.LeaseServicer):
    def __init__(self, handle: NodeHandle, forwarder: Forwarder | None = None) -> None:
        super().__init__(handle)
        self.forwarder = forwarder

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
        forward = None
        if self.forwarder is not None and not is_forwarded(context):
            forward = self.forwarder.keepalive_stream()
        try:
            async for request in request_iterator:
                yield await self._keepalive(request.ID, context, forward)
        finally:
            if forward is not None:
                forward.close()

    async def _keepalive(self, lease_id: int, context: Context,
                         forward: KeepAliveForward | None) -> rpc_pb2.LeaseKeepAliveResponse:
        ttl_s = 0  # a lease that is not there (or an id <= 0) ends the client's loop
        if lease_id > 0:
            async def local() -> int:
                core = LeaseKeepAliveRequest(id=LeaseId(lease_id))
                try:
                    response = await self.handle.request(core, ReadConsistency.LINEARIZABLE)
                except LeaseNotFound:
                    return 0
                assert isinstance(response, LeaseKeepAliveResponse), response
                return response.ttl_s

            if forward is None:
                ttl_s = await self._guarded(context, local())
            else:
                ttl_s = await self._guarded(context, forward.renew(
                    lease_id, client_timeout_s=context.time_remaining(), local=local,
                    wrap=lambda pb: int(pb.TTL)))
        return rpc_pb2.LeaseKeepAliveResponse(header=self._local_header(), ID=lease_id,
                                              TTL=ttl_s)

    async def LeaseTimeToLive(self, request: rpc_pb2.LeaseTimeToLiveRequest,
                              context: Context) -> rpc_pb2.LeaseTimeToLiveResponse:
        if request.ID <= 0:
            return self._no_lease(request.ID)
        core = await decode(context, convert.ttl_from_pb, request)

        async def local() -> rpc_pb2.LeaseTimeToLiveResponse:
            try:
                response = await self.handle.request(core, ReadConsistency.LINEARIZABLE)
            except LeaseNotFound:
                return self._no_lease(request.ID)
            assert isinstance(response, LeaseTimeToLiveResponse), response
            return convert.ttl_response_to_pb(response, self.fields())

        async def remote(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.LeaseTimeToLiveResponse:
            stub = rpc_pb2_grpc.LeaseStub(channel)
            answer: rpc_pb2.LeaseTimeToLiveResponse = await stub.LeaseTimeToLive(
                request, timeout=timeout_s, metadata=FORWARDED_METADATA)
            answer.header.CopyFrom(self._local_header())  # etcd fills in its own header
            return answer

        if self.forwarder is None or is_forwarded(context):
            return await self._guarded(context, local())
        return await self._guarded(context, self.forwarder.call(
            local, remote, client_timeout_s=context.time_remaining()))

    def _no_lease(self, lease_id: int) -> rpc_pb2.LeaseTimeToLiveResponse:
        return rpc_pb2.LeaseTimeToLiveResponse(header=self._local_header(), ID=lease_id, TTL=-1)

    def _local_header(self) -> rpc_pb2.ResponseHeader:
        header = ResponseHeader(revision=Revision(self.handle.revision()))
        return header_to_pb(header, self.fields())

    async def _guarded(self, context: Context, answer: Awaitable[_T]) -> _T:
        """`answer`, or the RPC ends with etcd's status for its error."""
        try:
            return await answer
        except ChainfireError as error:
            await abort(context, error)
        except RemoteStatus as status:
            await _abort_with(context, status.code, status.details)
        except ForwarderClosed as closed:
            await _abort_with(context, closed.code, closed.details)

    async def LeaseLeases(self, request: rpc_pb2.LeaseLeasesRequest,
                          context: Context) -> rpc_pb2.LeaseLeasesResponse:
        response = await self.ask(context, LeaseLeasesRequest(), LeaseLeasesResponse)
        return convert.leases_response_to_pb(response, self.fields())


async def _abort_with(context: Context, code: grpc.StatusCode, details: str) -> NoReturn:
    await context.abort(code, details)
    raise AssertionError("context.abort returned")  # pragma: no cover


__all__ = ["LeaseServicer"]
