"""real.client against 3-member clusters: in-process (embedded members in the
test's event loop) and as `chainfire serve` processes. A watch survives the
stop of the member serving it without gaps or duplicates; keepalives find
the leader; reads and writes fail over from a killed member."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

from real_client_harness import POLICY, cluster_builders, start_all, wait_leader
from test_real_runtime_server import STARTUP_TIMEOUT_S, cluster  # noqa: F401  (fixture)

from chainfire_core.mvcc.messages import Event
from real.client import AsyncClient, AsyncWatch, Client, RetryPolicy
from real.client import errors as E

WRITES = 60


async def _write_all(client: AsyncClient, half: asyncio.Event) -> None:
    """WRITES puts; one whose outcome is unknown is simply repeated (the
    history, not this list, is what the watch is checked against)."""
    for i in range(WRITES):
        while True:
            try:
                await client.put(f"seq/{i:04d}", str(i))
                break
            except E.ClientError as error:
                assert error.outcome_unknown(), error
        if i == WRITES // 2:
            half.set()


async def _collect(watch: AsyncWatch, until_key: bytes) -> list[Event]:
    events: list[Event] = []
    async for event in watch:
        events.append(event)
        if event.kv.key == until_key:
            break
    return events


def test_real_client_watch_resumes_after_serving_member_stops(tmp_path: Path) -> None:
    async def body() -> None:
        nodes = await start_all(cluster_builders(tmp_path))
        try:
            serving = await wait_leader(nodes)  # the hardest member to lose
            others = [node for node in nodes if node is not serving]
            endpoints = [serving.endpoint] + [node.endpoint for node in others]
            async with AsyncClient(endpoints, POLICY) as watcher, \
                    AsyncClient([node.endpoint for node in others], POLICY) as writer:
                start = (await writer.put("seq/start", "-")).header.revision
                watch = await watcher.watch_prefix("seq/", start_revision=start + 1)
                assert watch.endpoint == serving.endpoint
                collecting = asyncio.create_task(_collect(watch, b"seq/end"))
                half = asyncio.Event()
                writing = asyncio.create_task(_write_all(writer, half))
                await half.wait()
                await serving.stop()
                await asyncio.wait_for(writing, 60)
                await writer.put("seq/end", "-")
                events = await asyncio.wait_for(collecting, 60)
                assert watch.reconnects >= 1 and watch.endpoint != serving.endpoint
                await watch.aclose()
                # The truth: the history as a surviving member replays it.
                replay = await writer.watch_prefix("seq/", start_revision=start + 1)
                truth = await asyncio.wait_for(_collect(replay, b"seq/end"), 60)
                await replay.aclose()
            got = [(e.kv.mod_revision, e.kv.key, e.kv.value) for e in events]
            want = [(e.kv.mod_revision, e.kv.key, e.kv.value) for e in truth]
            assert got == want
            assert len({e.kv.key for e in truth}) == WRITES + 1
        finally:
            for node in nodes:
                await node.stop()
    asyncio.run(body())


def test_real_client_lease_keepalive_finds_the_leader(tmp_path: Path) -> None:
    """Keepalives and TTL queries need the leader: from the followers' endpoints
    the client moves on ("not leader") until it reaches it."""
    async def body() -> None:
        nodes = await start_all(cluster_builders(tmp_path))
        try:
            leader = await wait_leader(nodes)
            followers = [node for node in nodes if node is not leader]
            endpoints = [node.endpoint for node in followers] + [leader.endpoint]
            async with AsyncClient(endpoints, POLICY) as client:
                assert client.pool.current == followers[0].endpoint
                async with client.lease(1) as lease:
                    await client.put("held", "x", lease=lease.id)
                    await asyncio.sleep(2.5)  # past the TTL: what is under test
                    assert lease.renewals >= 3 and not lease.expired.is_set()
                    # (Followers answer "not leader" today, so the client is on the
                    # leader now; were they to forward, it could stay put.)
                    client.pool.use(followers[1].endpoint)
                    ttl = await lease.time_to_live()
                    assert 0 <= ttl.ttl_s <= 1
                    kv = await client.get("held")
                    assert kv is not None and kv.lease == lease.id
                assert await client.get("held") is None
                members = await client.member_list()
                assert sorted(m.name for m in members) == ["n1", "n2", "n3"]
                for node in nodes:
                    status = await client.status(node.endpoint)
                    assert status.member_id == node.member_id
                    assert status.leader == leader.member_id
        finally:
            for node in nodes:
                await node.stop()
    asyncio.run(body())


def test_real_client_sync_failover_from_killed_process(
        cluster: list[tuple[subprocess.Popen[bytes], int]]) -> None:  # noqa: F811
    """Three `chainfire serve` processes; the one the client uses is killed
    (SIGKILL); reads and writes go on through the others."""
    endpoints = [f"127.0.0.1:{port}" for _, port in cluster]
    policy = RetryPolicy(request_timeout_s=3.0, connect_timeout_s=1.0,
                         retry_timeout_s=STARTUP_TIMEOUT_S)
    with Client(endpoints, policy) as client:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:  # the cluster elects a leader; "no leader" is retried by the pool
            try:
                client.put("k", "1")
                break
            except E.ClientError:
                assert time.monotonic() < deadline
        current = client.pool.current
        victim = next(proc for proc, port in cluster if current.endswith(f":{port}"))
        victim.kill()
        victim.wait()
        kv = client.get("k")
        assert kv is not None and kv.value == b"1"
        assert client.pool.current != current
        client.put("k", "2")
        after = client.get("k")
        assert after is not None and after.value == b"2" and after.version == 2
