"""Planted bugs in the node, the state machine, the lessor and the watchable
store (chainfire_core/bugs.py): each misbehaves as named when switched on,
changes nothing when off, and the simulator's checks catch it.

Per bug: a core-level test of the misbehaviour itself, and a simulated run
whose seed fails the expected check with the bug and passes without it."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import replace

import pytest

from chainfire_core.config import StateMachineConfig
from chainfire_core.lease.lessor import Lessor
from chainfire_core.lease.messages import (
    LeaseGrantRequest,
    LeaseKeepAliveRequest,
    LeaseTimeToLiveRequest,
)
from chainfire_core.mvcc.messages import PutRequest, RangeRequest
from chainfire_core.mvcc.watch_messages import WatchCreateRequest
from chainfire_core.node import ChainfireNode, NodeConfig
from chainfire_core.node_messages import ClientRequest, ClientResponse, ReadConsistency
from chainfire_core.raft.config import RaftConfig
from chainfire_core.raft.messages import ConfState, Message, Snapshot, SnapshotMetadata
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.state_machine import StateMachine
from chainfire_core.types import Index, LeaseId, NodeId, Term
from sim.options import RunOptions, parse_faults
from sim.run import simulate

N1, N2, N3 = NodeId(1), NodeId(2), NodeId(3)
NO_BUGS: frozenset[str] = frozenset()


# -- a small in-memory cluster driven by the Ready contract ------------------------


class _Cluster:
    def __init__(self, size: int, bugs: frozenset[str] = NO_BUGS, **node_options: int) -> None:
        self.ids = [NodeId(i) for i in range(1, size + 1)]
        self.bugs = bugs
        self.node_options = node_options
        self.rng = random.Random(0)
        self.storages: dict[NodeId, MemoryStorage] = {}
        self.nodes: dict[NodeId, ChainfireNode] = {}
        self.cut: set[tuple[NodeId, NodeId]] = set()
        self.responses: dict[int, ClientResponse] = {}
        self.next_request_id = 1
        for node_id in self.ids:
            storage = MemoryStorage()
            storage.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
                index=Index(1), term=Term(1), conf_state=ConfState(voters=tuple(self.ids)))))
            self.storages[node_id] = storage
            self.restart(node_id)

    def restart(self, node_id: NodeId) -> None:
        """A new incarnation on the same storage (the state machine is rebuilt)."""
        config = NodeConfig(raft=RaftConfig(id=node_id, bugs=self.bugs), bugs=self.bugs,
                            **self.node_options)  # type: ignore[arg-type]
        self.nodes[node_id] = ChainfireNode(config, self.storages[node_id],
                                            random.Random(self.rng.random()))

    def pump(self) -> None:
        wire: deque[Message] = deque()
        for _ in range(1000):
            moved = False
            for node_id in self.ids:
                node = self.nodes[node_id]
                while node.has_ready():
                    moved = True
                    ready = node.ready()
                    if ready.raft is not None:
                        storage = self.storages[node_id]
                        if ready.raft.snapshot is not None:
                            storage.apply_snapshot(ready.raft.snapshot)
                        storage.append(ready.raft.entries)
                        if ready.raft.hard_state is not None:
                            storage.set_hard_state(ready.raft.hard_state)
                        wire.extend(ready.raft.messages)
                    self.responses.update((r.request_id, r) for r in ready.responses)
                    node.advance(ready)
            while wire:
                moved = True
                message = wire.popleft()
                if (message.sender, message.to) not in self.cut:
                    self.nodes[message.to].step(message)
            if not moved:
                return

    def tick(self, ticks: int = 1, only: list[NodeId] | None = None) -> None:
        for _ in range(ticks):
            for node_id in only or self.ids:
                self.nodes[node_id].tick()
            self.pump()

    def elect(self, node_id: NodeId) -> None:
        self.nodes[node_id].campaign()
        self.pump()
        assert self.nodes[node_id].is_leader

    def request(self, node_id: NodeId, request: ClientRequest,
                consistency: ReadConsistency = ReadConsistency.LINEARIZABLE,
                ticks: int = 0) -> ClientResponse | None:
        request_id, self.next_request_id = self.next_request_id, self.next_request_id + 1
        self.nodes[node_id].submit(request_id, request, consistency)
        self.pump()
        for _ in range(ticks):
            if request_id in self.responses:
                break
            self.tick()
        return self.responses.get(request_id)

    def partition(self, *groups: list[NodeId]) -> None:
        self.cut = {(a, b) for group in groups for a in group for b in self.ids
                    if b not in group}


def ok(answer: ClientResponse | None) -> object:
    assert answer is not None and answer.error is None, answer
    return answer.response


def values(answer: ClientResponse | None) -> list[bytes]:
    response = ok(answer)
    assert hasattr(response, "kvs"), response
    return [kv.value for kv in response.kvs]


# -- simulated runs: the seed that catches each bug ----------------------------------

# bug -> (run options, the check that must fail, a word of its message).
# Short runs of seeds found with `chainfire-sim sweep --bugs NAME`.
SIM_CASES: dict[str, tuple[RunOptions, str, str]] = {
    "stale_local_reads": (
        RunOptions(seed=1, nodes=5, duration_ms=3_000, clients=8,
                   faults=parse_faults("partition")), "linearizability", "Illegal"),
    "watch_catchup_loss": (
        RunOptions(seed=2, nodes=5, duration_ms=6_000, clients=4,
                   faults=parse_faults("crash")), "watch", "was not delivered"),
    "lease_reset_on_leader_change": (
        RunOptions(seed=16, nodes=5, duration_ms=60_000, clients=8, think_ms=200.0,
                   faults=parse_faults("crash,pause")), "lease", "late_expiry"),
    "follower_lease_expiry": (
        RunOptions(seed=13, nodes=5, duration_ms=20_000, clients=8,
                   faults=parse_faults("clock")), "lease", "early_expiry"),
    "stale_snapshot_on_restart": (
        RunOptions(seed=1, nodes=5, duration_ms=5_000, clients=4,
                   faults=parse_faults("crash")), "linearizability", "Illegal"),
}


@pytest.mark.parametrize("bug", sorted(SIM_CASES))
def test_the_simulator_catches_the_bug_and_passes_without_it(bug: str) -> None:
    options, check, message = SIM_CASES[bug]
    options = replace(options, full_trace=False)
    with_bug = simulate(replace(options, bugs=(bug,)))
    assert check in with_bug.failed_checks, (bug, with_bug.summary_line())
    [outcome] = [c for c in with_bug.checks if c.name == check]
    assert any(message in line for line in outcome.messages), outcome.messages
    without = simulate(options)
    assert without.ok, without.summary_line()


# -- stale_local_reads ------------------------------------------------------------------


@pytest.mark.parametrize("bugs", [NO_BUGS, frozenset({"stale_local_reads"})])
def test_a_cut_off_follower_serves_stale_linearizable_reads_only_with_the_bug(
        bugs: frozenset[str]) -> None:
    cluster = _Cluster(3, bugs)
    cluster.elect(N1)
    ok(cluster.request(N1, PutRequest(key=b"k", value=b"old")))
    cluster.partition([N1, N2], [N3])
    ok(cluster.request(N1, PutRequest(key=b"k", value=b"new")))
    answer = cluster.request(N3, RangeRequest(key=b"k"), ticks=100)
    if bugs:
        assert values(answer) == [b"old"]  # at once, from local state
    else:
        assert answer is not None and answer.error is not None  # never stale


# -- watch_catchup_loss -------------------------------------------------------------------


def _caught_up_revisions(bugs: frozenset[str]) -> list[int]:
    sm = StateMachine(bugs=bugs)
    for number in range(3):  # revisions 2, 3, 4
        sm.apply(PutRequest(key=b"k%d" % number, value=b"v"), now_ms=0)
    watch_id = sm.watches.watch(WatchCreateRequest(key=b"k", range_end=b"l",
                                                   start_revision=3))
    assert not sm.watches.is_synced(watch_id)
    seen: list[int] = [event.kv.mod_revision for response in sm.watches.poll(10)
                       for event in response.events]
    assert sm.watches.is_synced(watch_id)
    sm.apply(PutRequest(key=b"k9", value=b"v"), now_ms=0)  # revision 5, live
    seen += [event.kv.mod_revision for response in sm.watches.poll(10)
             for event in response.events]
    sm.check_invariants()
    return seen


def test_a_catching_up_watcher_loses_the_boundary_revision_only_with_the_bug() -> None:
    assert _caught_up_revisions(NO_BUGS) == [3, 4, 5]
    assert _caught_up_revisions(frozenset({"watch_catchup_loss"})) == [3, 5]


# -- lease_reset_on_leader_change -------------------------------------------------------


@pytest.mark.parametrize(("full_ttl", "expiry_ms"), [(False, 10_000 + 3_000 + 500),
                                                     (True, 10_000 + 60_000 + 500)])
def test_promotion_uses_the_checkpoint_unless_the_bug_resets_the_ttl(
        full_ttl: bool, expiry_ms: int) -> None:
    lessor = Lessor(StateMachineConfig())
    lessor.grant(LeaseId(1), 60, now_ms=0)
    lessor.apply_checkpoint(LeaseId(1), 3)  # 3 s left when the old leader checkpointed
    lessor.promote(10_000, 500, full_ttl=full_ttl)
    info = lessor.lookup(LeaseId(1))
    assert info is not None and info.expiry_ms == expiry_ms
    lessor.check_invariants()


@pytest.mark.parametrize("bugs", [NO_BUGS, frozenset({"lease_reset_on_leader_change"})])
def test_a_new_leader_resets_leases_to_their_full_ttl_only_with_the_bug(
        bugs: frozenset[str]) -> None:
    cluster = _Cluster(3, bugs, lease_checkpoint_interval_ticks=10)
    cluster.elect(N1)
    grant = ok(cluster.request(N1, LeaseGrantRequest(ttl_s=30)))
    assert hasattr(grant, "id")
    cluster.tick(100)  # 10 s at 100 ms a tick; checkpoints every second
    cluster.nodes[N1].transfer_leader(N2)
    cluster.tick(5)
    assert cluster.nodes[N2].is_leader
    ttl = ok(cluster.request(N2, LeaseTimeToLiveRequest(id=grant.id)))
    assert hasattr(ttl, "ttl_s")
    # Remaining TTL (about 20 s) plus the election grace (1 s), or all 30 s again.
    assert (ttl.ttl_s > 30) == bool(bugs), ttl.ttl_s


# -- follower_lease_expiry ----------------------------------------------------------------


@pytest.mark.parametrize("bugs", [NO_BUGS, frozenset({"follower_lease_expiry"})])
def test_followers_revoke_a_kept_alive_lease_only_with_the_bug(bugs: frozenset[str]) -> None:
    cluster = _Cluster(3, bugs)
    cluster.elect(N1)
    grant = ok(cluster.request(N1, LeaseGrantRequest(ttl_s=2)))
    assert hasattr(grant, "id")
    ok(cluster.request(N1, PutRequest(key=b"eph", value=b"x", lease=grant.id)))
    for _ in range(5):  # 5 s, kept alive every second at the leader
        cluster.tick(10)
        keepalive = cluster.request(N1, LeaseKeepAliveRequest(id=grant.id))
        assert keepalive is not None
    alive = [node.sm.lessor.exists(grant.id) for node in cluster.nodes.values()]
    assert alive == [not bugs] * 3
    assert values(cluster.request(N1, RangeRequest(key=b"eph"))) == ([] if bugs else [b"x"])
    for node in cluster.nodes.values():
        node.check_invariants()


# -- stale_snapshot_on_restart ------------------------------------------------------------


@pytest.mark.parametrize("bugs", [NO_BUGS, frozenset({"stale_snapshot_on_restart"})])
def test_a_restarted_node_serves_its_old_snapshot_only_with_the_bug(
        bugs: frozenset[str]) -> None:
    cluster = _Cluster(3, bugs, snapshot_every_entries=5, snapshot_catchup_entries=0)
    cluster.elect(N1)
    for number in range(7):  # entries 3..9; a snapshot at entry 6 (k=v3)
        ok(cluster.request(N1, PutRequest(key=b"k", value=b"v%d" % number)))
    cluster.restart(N3)
    cluster.tick(3)
    node = cluster.nodes[N3]
    assert node.sm.applied_index == cluster.nodes[N1].sm.applied_index
    local = values(cluster.request(N3, RangeRequest(key=b"k"), ReadConsistency.SERIALIZABLE))
    assert local == ([b"v3"] if bugs else [b"v6"])
    # With the bug the node diverged for good: the next write gets another revision.
    ok(cluster.request(N1, PutRequest(key=b"k", value=b"v7")))
    assert (node.sm.revision == cluster.nodes[N1].sm.revision) == (not bugs)

