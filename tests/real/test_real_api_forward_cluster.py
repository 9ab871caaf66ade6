"""Lease forwarding over Raft: a keepalive stream held open on a follower of
an embedded 3-member cluster keeps renewing, one request after another,
while the leader stops and another is elected."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from real_client_harness import cluster_builders, start_all, wait_leader

from real.embed import EmbeddedNode
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

TTL_S = 30
RENEW_TIMEOUT_S = 15.0


async def renew(call: grpc.aio.StreamStreamCall[rpc_pb2.LeaseKeepAliveRequest,
                                                rpc_pb2.LeaseKeepAliveResponse],
                lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse:
    await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
    response = await asyncio.wait_for(call.read(), RENEW_TIMEOUT_S)
    assert isinstance(response, rpc_pb2.LeaseKeepAliveResponse), response
    return response


def test_keepalive_stream_on_a_follower_survives_a_leader_change(tmp_path: Path) -> None:
    async def body() -> None:
        nodes = await start_all(cluster_builders(tmp_path))
        try:
            await scenario(nodes)
        finally:
            for node in nodes:
                await node.stop()

    async def scenario(nodes: list[EmbeddedNode]) -> None:
        leader = await wait_leader(nodes)
        follower = next(node for node in nodes if node is not leader)
        async with grpc.aio.insecure_channel(follower.endpoint) as channel:
            stub = rpc_pb2_grpc.LeaseStub(channel)
            lease = (await stub.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=TTL_S))).ID
            ttl = await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease))
            assert ttl.grantedTTL == TTL_S and ttl.header.member_id == follower.member_id
            call = stub.LeaseKeepAlive()
            before = [await renew(call, lease) for _ in range(20)]
            stopping = asyncio.create_task(leader.stop())
            during = []
            for _ in range(10):
                during.append(await renew(call, lease))
                await asyncio.sleep(0.1)
            await stopping
            survivors = [node for node in nodes if node is not leader]
            elected = await wait_leader(survivors)
            after = [await renew(call, lease) for _ in range(5)]
            call.cancel()
            assert elected is not leader
            answers = before + during + after
            assert {(a.ID, a.TTL) for a in answers} == {(lease, TTL_S)}, answers
            assert all(a.header.member_id == follower.member_id for a in answers)
            ttl = await stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease))
            assert ttl.TTL > 0

    asyncio.run(asyncio.wait_for(body(), 120))
