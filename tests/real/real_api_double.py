"""Test double for the gRPC API: a `NodeHandle` over one in-process
ChainfireNode (a single-voter cluster), driven synchronously by the Ready
contract (persist into MemoryStorage, send (nothing: no peers), answer,
advance), plus a helper that serves it on a real grpc.aio server on a free
loopback port. Not a production class: the runtime's NodeRuntime is."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from chainfire_core.auth import AuthInfo, PermissionType
from chainfire_core.node import ChainfireNode, NodeConfig
from chainfire_core.node_messages import (
    ClientRequest,
    ClientResponse,
    ReadConsistency,
    StatusResponse,
)
from chainfire_core.raft.config import RaftConfig
from chainfire_core.raft.messages import ConfState, Snapshot, SnapshotMetadata
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.types import Index, NodeId, Term
from real.api.server import start_server
from real.api.servicers import add_services
from real.api.watch_hub import HubSession, WatchHub

CLUSTER_ID = 0xC1A5
MAX_PUMP_ROUNDS = 1000


class SyncNodeHandle:
    """Implements real.api.handle.NodeHandle over one synchronous node."""

    def __init__(self, *, node_id: int = 1, tick_ms: int = 100) -> None:
        self.storage = MemoryStorage()
        self.storage.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
            index=Index(1), term=Term(1), conf_state=ConfState(voters=(NodeId(node_id),)))))
        config = NodeConfig(raft=RaftConfig(id=NodeId(node_id)), tick_ms=tick_ms)
        self.node = ChainfireNode(config, self.storage, random.Random(7))
        self.hub = WatchHub(self.node.sm.watches)
        self._answers: dict[int, ClientResponse] = {}
        self._next_id = 1
        self.requests_seen: list[ClientRequest] = []
        self.node.campaign()
        self.pump()
        assert self.node.is_leader

    # -- NodeHandle ------------------------------------------------------------------

    @property
    def member_id(self) -> int:
        return int(self.node.id)

    @property
    def cluster_id(self) -> int:
        return CLUSTER_ID

    def raft_term(self) -> int:
        return int(self.node.raw.raft.term)

    def revision(self) -> int:
        return int(self.node.sm.revision)

    async def request(self, request: ClientRequest, consistency: ReadConsistency,
                      auth: AuthInfo | None = None) -> object:
        self.requests_seen.append(request)
        request_id = self._next_id
        self._next_id += 1
        self.node.submit(request_id, request, consistency, auth=auth)
        self.pump()
        answer = self._answers.pop(request_id)  # a single voter answers at once
        if answer.error is not None:
            raise answer.error
        return answer.response

    def status(self) -> StatusResponse:
        return self.node.status()

    def auth_enabled(self) -> bool:
        return self.node.sm.auth.enabled

    async def auth_info(self, token: str) -> AuthInfo:
        return self.node.auth_info(token)  # one member: every token is applied here

    def check_admin(self, auth: AuthInfo) -> None:
        self.node.sm.auth.check_admin(auth)

    def check_range(self, auth: AuthInfo, key: bytes, range_end: bytes) -> None:
        self.node.sm.auth.check_range(auth, key, range_end, PermissionType.READ)

    def watch_session(self) -> HubSession:
        return self.hub.session()

    # -- driving -----------------------------------------------------------------------

    def pump(self) -> None:
        for _ in range(MAX_PUMP_ROUNDS):
            if not self.node.has_ready():
                break
            ready = self.node.ready()
            raft = ready.raft
            if raft is not None:
                if raft.snapshot is not None:
                    self.storage.apply_snapshot(raft.snapshot)
                self.storage.append(raft.entries)
                if raft.hard_state is not None:
                    self.storage.set_hard_state(raft.hard_state)
                assert not raft.messages, "a single voter has nobody to talk to"
            for response in ready.responses:
                self._answers[response.request_id] = response
            self.node.advance(ready)
        else:
            raise AssertionError("the node did not settle")
        self.node.check_invariants()
        self.hub.notify()

    def tick(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.node.tick()
            self.pump()


@asynccontextmanager
async def serve(handle: SyncNodeHandle, **options: object) -> AsyncIterator[grpc.aio.Channel]:
    """A grpc.aio server for `handle` on a free loopback port, and a channel to it."""
    if "fragment_bytes" in options:  # a bare server with the servicers' own options
        server = grpc.aio.server()
        add_services(server, handle, **options)  # type: ignore[arg-type]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        stop = server.stop
    else:
        api = await start_server(handle, ["127.0.0.1:0"], **options)  # type: ignore[arg-type]
        (port,) = api.ports
        stop = api.stop
    assert port > 0
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        handle.hub.close()
        await stop(None)


__all__ = ["CLUSTER_ID", "SyncNodeHandle", "serve"]

