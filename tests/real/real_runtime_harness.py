"""Test helpers for NodeRuntime: in-memory storage, an in-process loopback
transport (tests only), and an independent persist-before-send spy."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from chainfire_core.node import ChainfireNode, NodeConfig
from chainfire_core.node_messages import Member
from chainfire_core.raft.config import RaftConfig
from chainfire_core.raft.messages import (
    AppendResponse,
    Entry,
    HardState,
    Message,
    RequestVote,
    Snapshot,
    VoteResponse,
)
from chainfire_core.types import Index, NodeId
from real.bootstrap import bootstrap
from real.memstore import MemStore
from real.runtime import NodeRuntime, RuntimeConfig

TICK_MS = 10


class SpyStore(MemStore):
    """A MemStore that tracks, on its own, what its syncs made durable, and
    records every save's entry count."""

    def __init__(self, *, sync_delay_s: float = 0.0) -> None:
        super().__init__(sync_delay_s=sync_delay_s)
        self.durable_hard = HardState()
        self.durable_last = Index(0)
        self._pending_hard = HardState()
        self._pending_last = Index(0)
        self.entries_per_save: list[int] = []

    def save(self, hard_state: HardState | None, entries: Sequence[Entry],
             snapshot: Snapshot | None) -> None:
        super().save(hard_state, entries, snapshot)
        self.entries_per_save.append(len(entries))
        if hard_state is not None:
            self._pending_hard = hard_state
        self._pending_last = self.last_index()

    def sync(self) -> None:
        super().sync()
        self.durable_hard = self._pending_hard
        self.durable_last = self._pending_last


class LoopbackNet:
    """Delivers messages between runtimes of one event loop, on a later loop
    turn (never inside `send`), unless the link is cut."""

    def __init__(self) -> None:
        self.runtimes: dict[NodeId, NodeRuntime] = {}
        self.stores: dict[NodeId, SpyStore] = {}
        self.isolated: set[NodeId] = set()
        self.delivered = 0

    def transport(self, node_id: NodeId) -> LoopbackTransport:
        return LoopbackTransport(self, node_id)


class LoopbackTransport:
    def __init__(self, net: LoopbackNet, node_id: NodeId) -> None:
        self.net = net
        self.node_id = node_id

    def send(self, messages: Sequence[Message]) -> None:
        store = self.net.stores.get(self.node_id)
        loop = asyncio.get_running_loop()
        for message in messages:
            assert message.sender == self.node_id and message.to != self.node_id
            if store is not None:
                assert_durable(store, message)
            if {message.sender, message.to} & self.net.isolated:
                continue
            target = self.net.runtimes.get(message.to)
            if target is not None:
                loop.call_soon(self._deliver, target, message)

    def _deliver(self, target: NodeRuntime, message: Message) -> None:
        self.net.delivered += 1
        target.deliver(message)


def assert_durable(store: SpyStore, message: Message) -> None:
    """sim/host.py's rule, checked against the store's own record of its syncs."""
    if isinstance(message, RequestVote | VoteResponse) and message.pre_vote:
        return
    hard = store.durable_hard
    assert hard.term >= message.term, (message, hard)
    if isinstance(message, VoteResponse) and message.granted:
        assert hard.term > message.term or hard.vote == message.to, (message, hard)
    if isinstance(message, AppendResponse) and not message.reject:
        assert store.durable_last >= message.index, (message, store.durable_last)


def make_node(node_id: NodeId, voters: tuple[NodeId, ...], store: SpyStore,
              seed: int) -> ChainfireNode:
    bootstrap(store, tuple(Member(id=voter, name=f"n{voter}") for voter in voters))
    raft = RaftConfig(id=node_id, election_ticks=10, heartbeat_ticks=1)
    config = NodeConfig(raft=raft, tick_ms=TICK_MS, request_timeout_ticks=300)
    return ChainfireNode(config, store, random.Random(seed))


def runtime_config() -> RuntimeConfig:
    return RuntimeConfig(tick_ms=TICK_MS, check_invariants_every_ticks=5)


def single_node(*, sync_delay_s: float = 0.0) -> tuple[NodeRuntime, SpyStore]:
    store = SpyStore(sync_delay_s=sync_delay_s)
    node = make_node(NodeId(1), (NodeId(1),), store, seed=1)
    return NodeRuntime(node, store, runtime_config()), store


def cluster(size: int = 3) -> LoopbackNet:
    net = LoopbackNet()
    voters = tuple(NodeId(i) for i in range(1, size + 1))
    for node_id in voters:
        store = SpyStore()
        net.stores[node_id] = store
        net.runtimes[node_id] = NodeRuntime(make_node(node_id, voters, store, seed=node_id),
                                            store, runtime_config())
    return net


def start_all(net: LoopbackNet) -> None:
    for node_id in sorted(net.runtimes):
        net.runtimes[node_id].start(net.transport(node_id))


async def stop_all(net: LoopbackNet) -> None:
    for node_id in sorted(net.runtimes):
        await net.runtimes[node_id].stop(drain_timeout_s=1.0)


async def wait_leader(net: LoopbackNet, timeout_s: float = 10.0,
                      among: Sequence[NodeId] | None = None) -> NodeId:
    """The leader every runtime in `among` agrees on (waits for one)."""
    ids = sorted(among if among is not None else net.runtimes)

    def agreed() -> bool:
        leaders = {net.runtimes[node_id].status().leader for node_id in ids}
        return len(leaders) == 1 and 0 not in leaders and leaders <= set(ids)

    # Conditions are re-checked on every tick of that runtime, so this sees
    # the others' progress too.
    await net.runtimes[ids[0]].wait_until(agreed, timeout_s)
    return net.runtimes[ids[0]].status().leader
