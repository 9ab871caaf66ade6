"""Helpers for the client and embedding tests: embedded clusters on free
loopback ports, an event recorder that tests wait on, and a fake etcd KV
server whose answers a test scripts (for the failover rules)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
from test_real_runtime_server import free_ports

from real.client import RetryPolicy
from real.embed import ClusterBuilder, EmbeddedNode
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

HEARTBEAT_MS = 50
ELECTION_MS = 500
POLICY = RetryPolicy(request_timeout_s=3.0, connect_timeout_s=1.0, retry_timeout_s=20.0)

_E = TypeVar("_E")


def builder(name: str, tmp_path: Path) -> ClusterBuilder:
    return ClusterBuilder(name).data_dir(tmp_path / name).timing(
        heartbeat_interval_ms=HEARTBEAT_MS, election_timeout_ms=ELECTION_MS)


def cluster_builders(tmp_path: Path, size: int = 3) -> list[ClusterBuilder]:
    ports = free_ports(size)
    peers = {f"n{i + 1}": f"http://127.0.0.1:{port}" for i, port in enumerate(ports)}
    return [builder(name, tmp_path).initial_cluster(peers) for name in peers]


async def start_all(builders: list[ClusterBuilder]) -> list[EmbeddedNode]:
    nodes = [b.build() for b in builders]
    for node in nodes:
        await node.start()
    return nodes


async def wait_leader(nodes: list[EmbeddedNode], timeout_s: float = 20.0) -> EmbeddedNode:
    """The node every running node agrees is the leader."""
    running = [node for node in nodes if node.runtime is not None and node.runtime.running]
    assert running

    def agreed() -> bool:
        leaders = {node.status().leader for node in running}
        return len(leaders) == 1 and 0 not in leaders and \
            leaders <= {node.member_id for node in running}

    runtime = running[0].runtime
    assert runtime is not None
    await runtime.wait_until(agreed, timeout_s)
    leader = running[0].status().leader
    return next(node for node in running if node.member_id == leader)


class Recorder(Generic[_E]):
    """Collects events (a handler) and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[_E] = []
        self._changed = asyncio.Event()

    def __call__(self, event: _E) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait(self, predicate: Callable[[list[_E]], bool], timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate(self.events):
                self._changed.clear()
                await self._changed.wait()


class ScriptedKV(rpc_pb2_grpc.KVServicer):
    """A KV service that aborts every call with a scripted status and counts calls."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        self.calls: dict[str, int] = {}

    async def _fail(self, method: str, context: Any) -> Any:
        self.calls[method] = self.calls.get(method, 0) + 1
        await context.abort(self.code, self.details)

    async def Put(self, request: Any, context: Any) -> Any:
        return await self._fail("Put", context)

    async def Range(self, request: Any, context: Any) -> Any:
        return await self._fail("Range", context)

    async def Txn(self, request: Any, context: Any) -> Any:
        return await self._fail("Txn", context)

    async def DeleteRange(self, request: Any, context: Any) -> Any:
        return await self._fail("DeleteRange", context)

    async def Compact(self, request: Any, context: Any) -> Any:
        return await self._fail("Compact", context)


async def start_fake(servicer: ScriptedKV) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    rpc_pb2_grpc.add_KVServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


__all__ = ["ELECTION_MS", "HEARTBEAT_MS", "POLICY", "Recorder", "ScriptedKV", "builder",
           "cluster_builders", "free_ports", "rpc_pb2", "start_all", "start_fake",
           "wait_leader"]
