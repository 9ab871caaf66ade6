"""Lease forwarding (real/api/forward.py): a follower's Lease service sends
keepalives and TTL queries to the leader it finds in its member table.

The members here are real grpc.aio servers (start_server, as `chainfire
serve` uses) over single-node test doubles (real_api_double.py) wrapped in
`ScriptedHandle`, whose idea of the leader a test sets: while `leader` is
set, the handle answers lease keepalives and TTL queries `NotLeader(leader)`
as a follower's core does, and its member list is `members`. That makes
leader changes, missing leaders and unreachable leaders exact and fast; the
cluster test in test_real_api_forward_cluster.py runs the same over Raft.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from real_api_double import SyncNodeHandle
from test_real_runtime_server import free_ports

from chainfire_core.errors import NotLeader
from chainfire_core.lease.messages import (
    LeaseGrantRequest,
    LeaseKeepAliveRequest,
    LeaseTimeToLiveRequest,
)
from chainfire_core.mvcc.messages import ResponseHeader
from chainfire_core.node_messages import (
    ClientRequest,
    Member,
    MemberListRequest,
    MemberResponse,
    ReadConsistency,
    StatusResponse,
)
from chainfire_core.types import LeaseId, NodeId, Revision
from real.api.forward import (
    FORWARDED_METADATA,
    ForwardConfig,
    Forwarder,
    ForwarderClosed,
    Target,
    client_target,
)
from real.api.handle import WatchSession
from real.api.server import ApiServer, start_server
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

LEASE = 0x1234
FAST = ForwardConfig(request_timeout_s=1.0, leader_poll_s=0.02, retry_pause_s=0.01)


class ScriptedHandle:
    """A NodeHandle over a SyncNodeHandle whose leader a test decides."""

    def __init__(self, node_id: int) -> None:
        self.inner = SyncNodeHandle(node_id=node_id)
        self.leader: int | None = None  # None: this member leads
        self.members: tuple[Member, ...] = ()
        self.member_lists = 0

    @property
    def member_id(self) -> int:
        return self.inner.member_id

    @property
    def cluster_id(self) -> int:
        return self.inner.cluster_id

    def raft_term(self) -> int:
        return self.inner.raft_term()

    def revision(self) -> int:
        return self.inner.revision()

    async def request(self, request: ClientRequest, consistency: ReadConsistency) -> object:
        if isinstance(request, MemberListRequest):
            self.member_lists += 1
            return MemberResponse(header=ResponseHeader(revision=Revision(self.revision())),
                                  member=None, members=self.members)
        if isinstance(request, LeaseKeepAliveRequest | LeaseTimeToLiveRequest) and \
                self.leader is not None:
            raise NotLeader(self.leader)
        return await self.inner.request(request, consistency)

    def status(self) -> StatusResponse:
        return self.inner.status()

    def watch_session(self) -> WatchSession:
        return self.inner.watch_session()


@dataclass
class Served:
    handle: ScriptedHandle
    api: ApiServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api.ports[0]}"

    def record(self) -> Member:
        return Member(id=NodeId(self.handle.member_id), client_urls=(self.url,))

    async def grant(self, ttl_s: int = 60) -> None:
        await self.handle.inner.request(LeaseGrantRequest(ttl_s=ttl_s, id=LeaseId(LEASE)),
                                        ReadConsistency.LINEARIZABLE)


@asynccontextmanager
async def members(count: int, config: ForwardConfig = FAST) -> AsyncIterator[list[Served]]:
    """`count` members with ids 1..count, all serving; none follows yet."""
    async with AsyncExitStack() as stack:
        started = []
        for node_id in range(1, count + 1):
            handle = ScriptedHandle(node_id)
            api = await start_server(handle, ["127.0.0.1:0"], forward=config)
            stack.push_async_callback(api.stop, None)
            started.append(Served(handle, api))
        yield started


@asynccontextmanager
async def lease_stub(member: Served) -> AsyncIterator[rpc_pb2_grpc.LeaseAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{member.api.ports[0]}") as channel:
        yield rpc_pb2_grpc.LeaseStub(channel)


def follow(follower: Served, leader: Served | None, *known: Served) -> None:
    follower.handle.leader = 0 if leader is None else leader.handle.member_id
    follower.handle.members = tuple(m.record() for m in known)


def run(body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(body(), timeout=60)
    asyncio.run(main())


class KeepAliveClient:
    """One client keepalive stream: send an id, read its answer."""

    def __init__(self, stub: rpc_pb2_grpc.LeaseAsyncStub) -> None:
        self.call = stub.LeaseKeepAlive()

    async def renew(self, lease_id: int = LEASE) -> rpc_pb2.LeaseKeepAliveResponse:
        await self.call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
        response = await self.call.read()
        assert isinstance(response, rpc_pb2.LeaseKeepAliveResponse), response
        return response


# -- forwarding ---------------------------------------------------------------------------


def test_time_to_live_on_a_follower_is_answered_by_the_leader() -> None:
    async def body() -> None:
        async with members(2) as (leader, follower):
            await leader.grant()
            follow(follower, leader, leader, follower)
            async with lease_stub(follower) as stub:
                got = await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE))
                missing = await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=77))
            assert (got.ID, got.grantedTTL) == (LEASE, 60) and 59 <= got.TTL <= 60
            assert got.header.member_id == 2  # the follower's own header, as etcd fills it
            assert (missing.ID, missing.TTL) == (77, -1)  # the leader's answer, passed on
            assert follower.api.forwarder.forwarded == 2
            assert follower.handle.member_lists == 1  # the leader's URLs are cached
    run(body)


def test_keepalive_stream_on_a_follower_serves_many_requests_over_one_forwarded_stream() -> None:
    async def body() -> None:
        async with members(2) as (leader, follower):
            await leader.grant(ttl_s=30)
            follow(follower, leader, leader, follower)
            async with lease_stub(follower) as stub:
                client = KeepAliveClient(stub)
                answers = [await client.renew() for _ in range(25)]
                unknown = await client.renew(999)  # ended lease: TTL 0, stream lives on
                again = await client.renew()
                client.call.cancel()
            assert all((a.ID, a.TTL) == (LEASE, 30) for a in [*answers, again])
            assert all(a.header.member_id == 2 for a in answers)
            assert (unknown.ID, unknown.TTL) == (999, 0)
            assert follower.api.forwarder.forwarded == 27
            assert follower.api.forwarder.streams_opened == 1
    run(body)


def test_keepalive_stream_follows_a_leader_change() -> None:
    async def body() -> None:
        async with members(3) as (first, follower, second):
            await first.grant()
            await second.grant()  # (the doubles share no state: the new leader has it too)
            follow(follower, first, first, follower, second)
            async with lease_stub(follower) as stub:
                client = KeepAliveClient(stub)
                before = [await client.renew() for _ in range(3)]
                # The old leader steps down; the follower still believes in it for a
                # while and is told "not leader" until it learns the new one.
                follow(first, second, first, follower, second)

                async def learn_later() -> None:
                    await asyncio.sleep(0.2)
                    follow(follower, second, first, follower, second)
                learning = asyncio.create_task(learn_later())
                after = [await client.renew() for _ in range(3)]
                await learning
                client.call.cancel()
            assert all(a.TTL == 60 for a in before + after)
            forwarder = follower.api.forwarder
            assert forwarder.streams_opened >= 2  # a new stream to the new leader
            assert first.api.forwarder.forwarded == 0  # forwarded requests are never re-forwarded
    run(body)


def test_follower_that_becomes_leader_answers_keepalives_itself() -> None:
    async def body() -> None:
        async with members(2) as (leader, follower):
            await leader.grant()
            await follower.grant()
            follow(follower, leader, leader, follower)
            async with lease_stub(follower) as stub:
                client = KeepAliveClient(stub)
                await client.renew()
                follower.handle.leader = None
                await client.renew()
                client.call.cancel()
            assert follower.api.forwarder.forwarded == 1
    run(body)


# -- no leader, unreachable leader, refusals ---------------------------------------------------


def test_no_leader_answers_etcds_no_leader_after_the_wait() -> None:
    async def body() -> None:
        async with members(1) as (follower,):
            follow(follower, None)
            async with lease_stub(follower) as stub:
                with pytest.raises(grpc.aio.AioRpcError) as ttl:
                    await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE))
                client = KeepAliveClient(stub)
                with pytest.raises(grpc.aio.AioRpcError) as alive:
                    await client.renew()
            for raised in (ttl.value, alive.value):
                assert raised.code() == grpc.StatusCode.UNAVAILABLE
                assert raised.details() == "etcdserver: no leader"
    run(body)


def test_a_leader_elected_during_the_wait_answers() -> None:
    async def body() -> None:
        async with members(2) as (leader, follower):
            await leader.grant()
            follow(follower, None)

            async def elect() -> None:
                await asyncio.sleep(0.3)
                follow(follower, leader, leader, follower)
            electing = asyncio.create_task(elect())
            async with lease_stub(follower) as stub:
                got = await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE))
            await electing
            assert got.grantedTTL == 60
    run(body)


def test_a_leader_without_client_urls_counts_as_no_leader() -> None:
    async def body() -> None:
        async with members(1) as (follower,):
            follower.handle.leader = 9
            follower.handle.members = (Member(id=NodeId(9)),)  # not published yet
            async with lease_stub(follower) as stub:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE))
            assert raised.value.details() == "etcdserver: no leader"
    run(body)


def test_an_unreachable_leader_times_out_like_etcd() -> None:
    async def body() -> None:
        (dead_port,) = free_ports(1)
        async with members(1) as (follower,):
            follower.handle.leader = 9
            follower.handle.members = (Member(id=NodeId(9),
                                              client_urls=(f"http://127.0.0.1:{dead_port}",)),)
            async with lease_stub(follower) as stub:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE))
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert raised.value.details() == "etcdserver: request timed out"
            assert follower.handle.member_lists > 1  # looked up again after failures
    run(body)


def test_the_clients_deadline_bounds_the_forwarding() -> None:
    async def body() -> None:
        slow = ForwardConfig(request_timeout_s=30.0, leader_poll_s=0.02)
        async with members(1, slow) as (follower,):
            follow(follower, None)
            async with lease_stub(follower) as stub:
                started = asyncio.get_running_loop().time()
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE),
                                               timeout=0.5)
                assert asyncio.get_running_loop().time() - started < 5
    run(body)


def test_a_forwarded_request_to_a_non_leader_is_refused_not_forwarded_again() -> None:
    async def body() -> None:
        async with members(2) as (one, two):
            follow(one, two, one, two)
            follow(two, one, one, two)  # they disagree: each names the other
            async with lease_stub(one) as stub:
                with pytest.raises(grpc.aio.AioRpcError) as direct:
                    await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE),
                                               metadata=FORWARDED_METADATA)
                with pytest.raises(grpc.aio.AioRpcError) as looped:
                    await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE))
            assert direct.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert direct.value.details() == "etcdserver: not leader"
            assert looped.value.details() == "etcdserver: request timed out"
            assert two.api.forwarder.forwarded == 0
    run(body)


class RefusingLease(rpc_pb2_grpc.LeaseServicer):
    """A leader whose every Lease call ends with PERMISSION_DENIED."""

    async def _refuse(self, context: Any) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")

    async def LeaseGrant(self, request: Any, context: Any) -> Any:
        return await self._refuse(context)

    async def LeaseRevoke(self, request: Any, context: Any) -> Any:
        return await self._refuse(context)

    def LeaseKeepAlive(self, request_iterator: Any, context: Any) -> Any:
        return self._refuse(context)

    async def LeaseTimeToLive(self, request: Any, context: Any) -> Any:
        return await self._refuse(context)

    async def LeaseLeases(self, request: Any, context: Any) -> Any:
        return await self._refuse(context)


def test_a_status_the_leader_answers_is_passed_on_verbatim() -> None:
    async def body() -> None:
        server = grpc.aio.server()
        rpc_pb2_grpc.add_LeaseServicer_to_server(RefusingLease(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with members(1) as (follower,):
                follower.handle.leader = 9
                follower.handle.members = (Member(
                    id=NodeId(9), client_urls=(f"http://127.0.0.1:{port}",)),)
                async with lease_stub(follower) as stub:
                    with pytest.raises(grpc.aio.AioRpcError) as raised:
                        await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE))
                assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert raised.value.details() == "etcdserver: permission denied"
                assert follower.api.forwarder.forwarded == 1  # not retried
        finally:
            await server.stop(None)
    run(body)


def test_a_closed_forwarder_refuses() -> None:
    async def body() -> None:
        handle = ScriptedHandle(1)
        handle.leader = 2
        handle.members = (Member(id=NodeId(2), client_urls=("http://127.0.0.1:1",)),)
        forwarder = Forwarder(handle, FAST)
        await forwarder.close()

        async def local() -> int:
            raise NotLeader(2)

        async def remote(channel: grpc.aio.Channel, timeout_s: float) -> int:
            raise AssertionError("forwarded after close")
        with pytest.raises(ForwarderClosed):
            await forwarder.call(local, remote)
    run(body)


def test_client_targets() -> None:
    assert client_target("http://127.0.0.1:2379") == Target("127.0.0.1:2379")
    assert client_target("http://[::1]:2379") == Target("[::1]:2379")
    assert client_target("http://localhost:1") == Target("localhost:1")
    assert client_target("unix://sock") is None and client_target("nonsense") is None


def test_https_leader_urls_need_credentials() -> None:
    async def body() -> None:
        handle = ScriptedHandle(1)
        handle.leader = 2
        handle.members = (Member(id=NodeId(2), client_urls=("https://127.0.0.1:1",)),)
        forwarder = Forwarder(handle, ForwardConfig(request_timeout_s=0.2, leader_poll_s=0.02))

        async def local() -> int:
            raise NotLeader(2)

        async def remote(channel: grpc.aio.Channel, timeout_s: float) -> int:
            raise AssertionError("an https URL dialled without credentials")
        with pytest.raises(NotLeader):  # no URL it can dial: "no leader"
            await forwarder.call(local, remote)
        assert forwarder.forwarded == 0
    run(body)
