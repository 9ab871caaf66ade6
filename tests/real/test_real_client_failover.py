"""The failover rules: which failures move a call to the next endpoint, and
that a write is never sent twice unless the first failure proves it was not
applied. The first endpoint is a scripted fake etcd KV server (it counts the
calls it got), an unused port, or a member that stops; the next is a real
member."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from real_client_harness import (
    POLICY,
    ScriptedKV,
    builder,
    free_ports,
    start_fake,
)

from real.client import AsyncClient, RetryPolicy, Txn, op_put
from real.client import errors as E

Code = grpc.StatusCode


@pytest.mark.parametrize(("details", "code", "retried", "error"), [
    # Proven not applied: the write moves on to the real member.
    ("etcdserver: no leader", Code.UNAVAILABLE, True, None),
    ("etcdserver: leader changed", Code.UNAVAILABLE, True, None),
    ("raft: proposal dropped: leadership transfer in progress", Code.UNAVAILABLE, True, None),
    ("etcdserver: too many requests", Code.RESOURCE_EXHAUSTED, True, None),
    # Outcome unknown: the write is not repeated; the caller hears why.
    ("etcdserver: request timed out", Code.UNAVAILABLE, False, E.RequestTimeoutError),
    ("etcdserver: server stopped", Code.UNAVAILABLE, False, E.ServerStoppedError),
    ("Socket closed", Code.UNAVAILABLE, False, E.ConnectionLostError),
    # A definitive answer: never retried.
    ("etcdserver: key is not provided", Code.INVALID_ARGUMENT, False, E.EmptyKeyError),
])
def test_real_client_failover_write_rules(tmp_path: Path, details: str, code: Code,
                                          retried: bool, error: type[E.ClientError] | None
                                          ) -> None:
    async def body() -> None:
        fake = ScriptedKV(code, details)
        server, fake_endpoint = await start_fake(fake)
        try:
            async with builder("real", tmp_path).build() as node, \
                    AsyncClient([fake_endpoint, node.endpoint], POLICY) as client:
                if retried:
                    await client.put("k", "v")
                    assert client.pool.current == node.endpoint
                    client.pool.use(fake_endpoint)
                    await client.txn(Txn().then(op_put("t", "v")))
                    assert client.pool.current == node.endpoint
                else:
                    assert error is not None
                    with pytest.raises(error):
                        await client.put("k", "v")
                    assert client.pool.current == fake_endpoint
                    with pytest.raises(error):
                        await client.txn(Txn().then(op_put("t", "v")))
                    client.pool.use(node.endpoint)
                    assert (await client.range(b"\0", b"\0", count_only=True)).count == 0
                assert fake.calls == {"Put": 1, "Txn": 1}  # never sent to the fake twice
                stored = await client.get("k")
                assert (stored is not None) == retried
        finally:
            await server.stop(None)
    asyncio.run(body())


@pytest.mark.parametrize(("details", "code"), [
    ("etcdserver: request timed out", Code.UNAVAILABLE),
    ("etcdserver: server stopped", Code.UNAVAILABLE),
    ("Socket closed", Code.UNAVAILABLE),
    ("etcdserver: no leader", Code.UNAVAILABLE),
])
def test_real_client_failover_reads_retry(tmp_path: Path, details: str, code: Code) -> None:
    """Reads (ranges and read-only txns) move on for every transient error."""
    async def body() -> None:
        fake = ScriptedKV(code, details)
        server, fake_endpoint = await start_fake(fake)
        try:
            async with builder("real", tmp_path).build() as node, \
                    AsyncClient([fake_endpoint, node.endpoint], POLICY) as client:
                assert await client.get("nothing") is None
                client.pool.use(fake_endpoint)
                assert (await client.txn(Txn())).succeeded
                assert fake.calls == {"Range": 1, "Txn": 1}
        finally:
            await server.stop(None)
    asyncio.run(body())


def test_real_client_failover_unreachable_endpoint(tmp_path: Path) -> None:
    """An endpoint nobody listens on: the write was never sent, so it goes to
    the next endpoint; the client then stays there."""
    async def body() -> None:
        (dead_port,) = free_ports(1)
        async with builder("real", tmp_path).build() as node, \
                AsyncClient([f"127.0.0.1:{dead_port}", node.endpoint], POLICY) as client:
            await client.put("k", "v")
            assert client.pool.current == node.endpoint
            assert client.pool.attempts[f"127.0.0.1:{dead_port}"] == 1
            kv = await client.get("k")
            assert kv is not None and kv.value == b"v"
        brief = RetryPolicy(connect_timeout_s=0.2, max_attempts=3)
        async with AsyncClient([f"127.0.0.1:{dead_port}"], brief) as lonely:
            with pytest.raises(E.EndpointUnreachableError):
                await lonely.put("k", "v")
            assert lonely.pool.attempts[f"127.0.0.1:{dead_port}"] == 3
    asyncio.run(body())


def test_real_client_failover_stopped_member(tmp_path: Path) -> None:
    """A member that stops: the next call (a write on a fresh connection
    attempt) finds the dead endpoint unreachable and moves on."""
    async def body() -> None:
        first = await builder("first", tmp_path).build().start()
        second = await builder("second", tmp_path).build().start()
        try:
            async with AsyncClient([first.endpoint, second.endpoint], POLICY) as client:
                await client.put("k", "1")
                assert client.pool.current == first.endpoint
                await first.stop()
                await client.put("k", "2")
                assert client.pool.current == second.endpoint
                kv = await client.get("k")
                assert kv is not None and kv.value == b"2" and kv.version == 1
        finally:
            await first.stop()
            await second.stop()
    asyncio.run(body())
