"""MemberUpdate on real members: an embedded 3-member cluster moves one
member's peer URL (real.client's `member_update`), that member restarts
listening on its new address, and the others reach it there: their peer
transports follow the member table, both when the update applies and when
they restart themselves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from real_client_harness import POLICY, builder, wait_leader
from test_real_runtime_server import free_ports

from real.client import AsyncClient
from real.client import errors as E
from real.embed import EmbeddedNode

CATCH_UP_TIMEOUT_S = 20.0


async def sees(node: EmbeddedNode, key: str, value: str) -> None:
    """Wait until `node` itself (a serializable read) holds key = value."""
    async with AsyncClient([node.endpoint], POLICY) as client:
        deadline = asyncio.get_running_loop().time() + CATCH_UP_TIMEOUT_S
        while True:
            got = await client.get(key, serializable=True)
            if got is not None and got.value == value.encode():
                return
            assert asyncio.get_running_loop().time() < deadline, f"{key} never reached it"
            await asyncio.sleep(0.1)


async def put(client: AsyncClient, key: str, value: str) -> None:
    """A put, repeated while its outcome is unknown (a leader change)."""
    while True:
        try:
            await client.put(key, value)
            return
        except E.ClientError as error:
            assert error.outcome_unknown(), error


def test_member_update_moves_a_member_to_its_new_peer_url(tmp_path: Path) -> None:
    ports = free_ports(7)  # peers n1..n3, n3's new peer port, clients n1..n3
    peers = {f"n{i + 1}": f"http://127.0.0.1:{port}" for i, port in enumerate(ports[:3])}
    moved_url = f"http://127.0.0.1:{ports[3]}"
    client_ports = {name: ports[4 + i] for i, name in enumerate(peers)}

    def member(name: str, peer_port: int = 0) -> EmbeddedNode:
        b = builder(name, tmp_path).initial_cluster(peers).client_port(client_ports[name])
        return (b.peer_port(peer_port) if peer_port else b).build()

    async def body() -> None:
        nodes = {name: member(name) for name in peers}
        for node in nodes.values():
            await node.start()
        try:
            await scenario(nodes)
        finally:
            for node in nodes.values():
                await node.stop()

    async def scenario(nodes: dict[str, EmbeddedNode]) -> None:
        await wait_leader(list(nodes.values()))
        n3 = nodes["n3"]
        async with AsyncClient([nodes["n1"].endpoint, nodes["n2"].endpoint], POLICY) as client:
            members = await client.member_update(n3.member_id, [moved_url])
            assert {m.id: m.peer_urls for m in members}[n3.member_id] == (moved_url,)
            with pytest.raises(E.ClientError) as bad:
                await client.member_update(n3.member_id, ["not a url"])
            assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert bad.value.details == "etcdserver: given member URLs are invalid"
            # n3 moves: same data directory and --initial-cluster (they name its
            # id), a new --listen-peer-urls. Nobody listens at its old address.
            # (Until it restarts the others already dial the new one: if n3
            # leads, it loses its quorum and another member is elected.)
            await n3.stop()
            nodes["n3"] = n3 = member("n3", peer_port=ports[3])
            await n3.start()
            # n3 learns the leader only if the leader reaches it at its new URL.
            await wait_leader(list(nodes.values()))
            await put(client, "moved/1", "a")
            await sees(n3, "moved/1", "a")  # the others reached it at the new URL
            # Members that restart find n3's address in their table, not in their
            # --initial-cluster (which still names the old one): with n1 and n2
            # both restarted, n3 can follow a leader (or lead) only if they
            # dial it at its new URL.
            for name in ("n1", "n2"):
                await nodes[name].stop()
            for name in ("n1", "n2"):
                nodes[name] = member(name)
                await nodes[name].start()
            await wait_leader(list(nodes.values()))
            await put(client, "moved/2", "b")
            for node in nodes.values():
                await sees(node, "moved/2", "b")
            listed = {m.id: m for m in await client.member_list()}
            assert listed[n3.member_id].peer_urls == (moved_url,)

    asyncio.run(asyncio.wait_for(body(), 180))
