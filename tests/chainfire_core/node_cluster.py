"""A test helper: N ChainfireNodes over an in-memory wire, driven by the
Ready contract (persist into MemoryStorage, then send, then advance)."""

from __future__ import annotations

import random
from collections import deque

from chainfire_core.node import ChainfireNode, NodeConfig
from chainfire_core.node_messages import ClientRequest, ClientResponse, ReadConsistency
from chainfire_core.raft.config import RaftConfig
from chainfire_core.raft.messages import ConfState, Message, Snapshot, SnapshotMetadata
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.types import Index, NodeId, Term


class Cluster:
    def __init__(self, size: int, *, seed: int = 0, **node_options: object) -> None:
        self.ids = [NodeId(i) for i in range(1, size + 1)]
        self.rng = random.Random(seed)
        self.storages: dict[NodeId, MemoryStorage] = {}
        self.nodes: dict[NodeId, ChainfireNode] = {}
        self.node_options = node_options
        self.wire: deque[Message] = deque()
        self.cut: set[tuple[NodeId, NodeId]] = set()
        self.responses: dict[int, ClientResponse] = {}
        for node_id in self.ids:
            storage = MemoryStorage()
            storage.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
                index=Index(1), term=Term(1), conf_state=ConfState(voters=tuple(self.ids)))))
            self.storages[node_id] = storage
            self.nodes[node_id] = self._make(node_id)
        self._next_request_id = 1

    def _make(self, node_id: NodeId) -> ChainfireNode:
        raft_options = {k[5:]: v for k, v in self.node_options.items() if k.startswith("raft_")}
        node_options = {k: v for k, v in self.node_options.items() if not k.startswith("raft_")}
        config = NodeConfig(raft=RaftConfig(id=node_id, **raft_options), **node_options)  # type: ignore[arg-type]
        return ChainfireNode(config, self.storages[node_id], random.Random(self.rng.random()))

    def pump(self, rounds: int = 1000) -> None:
        for _ in range(rounds):
            moved = False
            for node_id in self.ids:
                node = self.nodes[node_id]
                if not node.has_ready():
                    continue
                moved = True
                ready = node.ready()
                if ready.raft is not None:
                    storage = self.storages[node_id]
                    if ready.raft.snapshot is not None:
                        storage.apply_snapshot(ready.raft.snapshot)
                    storage.append(ready.raft.entries)
                    if ready.raft.hard_state is not None:
                        storage.set_hard_state(ready.raft.hard_state)
                    self.wire.extend(ready.raft.messages)
                for response in ready.responses:
                    self.responses[response.request_id] = response
                node.advance(ready)
            while self.wire:
                moved = True
                message = self.wire.popleft()
                if (message.sender, message.to) not in self.cut and message.to in self.nodes:
                    self.nodes[message.to].step(message)
            if not moved:
                return

    def tick(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            for node_id in self.ids:
                self.nodes[node_id].tick()
            self.pump()

    def leader(self) -> NodeId | None:
        leaders = [i for i in self.ids if self.nodes[i].is_leader]
        return leaders[0] if len(leaders) == 1 else None

    def elect(self, node_id: NodeId | None = None) -> NodeId:
        self.nodes[node_id or self.ids[0]].campaign()
        self.pump()
        leader = self.leader()
        assert leader is not None
        return leader

    def request(self, node_id: NodeId, request: ClientRequest,
                consistency: ReadConsistency = ReadConsistency.LINEARIZABLE,
                ticks: int = 0) -> ClientResponse | None:
        request_id = self._next_request_id
        self._next_request_id += 1
        self.nodes[node_id].submit(request_id, request, consistency)
        self.pump()
        for _ in range(ticks):
            if request_id in self.responses:
                break
            self.tick()
        return self.responses.get(request_id)

    def partition(self, *groups: list[NodeId]) -> None:
        self.cut = {(a, b) for group in groups for a in group for b in self.ids if b not in group}

    def heal(self) -> None:
        self.cut = set()

    def restart(self, node_id: NodeId) -> None:
        """Crash and restart from storage; the in-memory state machine is
        rebuilt from the log (it is not durable here)."""
        self.nodes[node_id] = self._make(node_id)
