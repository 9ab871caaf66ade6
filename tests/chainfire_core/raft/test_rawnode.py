"""The Ready contract of RawNode (rawnode.py's header): what a Ready holds,
when it must be synced, that it is handed out once, what `advance` records,
`has_ready`, refused proposals and `status()`."""

from __future__ import annotations

import random

import pytest
from network import Network

from chainfire_core.errors import ProposalDropped
from chainfire_core.raft.config import RaftConfig
from chainfire_core.raft.messages import (
    AppendEntries,
    AppendResponse,
    ConfState,
    HardState,
    Heartbeat,
    RequestVote,
    Snapshot,
    SnapshotMetadata,
    VoteResponse,
)
from chainfire_core.raft.progress import ProgressState
from chainfire_core.raft.raft import Role
from chainfire_core.raft.rawnode import RawNode, Ready
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.types import Index, NodeId, Term


def single_node(**options: object) -> tuple[RawNode, MemoryStorage]:
    storage = MemoryStorage()
    storage.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
        index=Index(1), term=Term(1), conf_state=ConfState(voters=(NodeId(1),)))))
    storage.set_hard_state(HardState(term=Term(1), commit=Index(1)))
    config = RaftConfig(id=NodeId(1), **options)  # type: ignore[arg-type]
    return RawNode(config, storage, random.Random(1)), storage


def persist(storage: MemoryStorage, ready: Ready) -> None:
    if ready.snapshot is not None:
        storage.apply_snapshot(ready.snapshot)
    storage.append(ready.entries)
    if ready.hard_state is not None:
        storage.set_hard_state(ready.hard_state)


def test_fresh_node_has_no_ready() -> None:
    node, _ = single_node()
    assert not node.has_ready()


def test_campaign_changes_hard_state_and_must_sync() -> None:
    """A new term and vote are in the Ready's hard state, which must be synced
    before the vote requests in the same Ready leave."""
    net = Network(3, pre_vote=False)
    node = net.node(1)
    node.campaign()
    assert node.has_ready()
    ready = node.ready()
    assert ready.hard_state == HardState(term=Term(2), vote=NodeId(1), commit=Index(1))
    assert ready.must_sync
    assert ready.soft_state is not None and ready.soft_state.role == Role.CANDIDATE
    assert sorted(m.to for m in ready.messages if isinstance(m, RequestVote)) == [2, 3]
    assert all(m.term == 2 and not m.pre_vote for m in ready.messages
               if isinstance(m, RequestVote))


def test_pre_vote_campaign_changes_no_hard_state() -> None:
    """A pre-vote bumps neither term nor vote: nothing to sync."""
    net = Network(3, pre_vote=True)
    node = net.node(1)
    node.campaign()
    ready = node.ready()
    assert ready.hard_state is None
    assert not ready.must_sync
    assert ready.soft_state is not None and ready.soft_state.role == Role.PRE_CANDIDATE
    votes = [m for m in ready.messages if isinstance(m, RequestVote)]
    assert [m.pre_vote for m in votes] == [True, True]
    assert all(m.term == 2 for m in votes)  # the term it would campaign in


def test_commit_only_change_needs_no_sync() -> None:
    """A hard state that only moves the commit index need not be fsynced
    (etcd's MustSync): losing it only means re-learning the commit index."""
    net = Network(3)
    net.elect(1)
    net.propose(1, b"x")
    net.process(1)
    net.deliver_all(lambda m: isinstance(m, AppendEntries) and m.to == 2)
    first = net.node(2).ready()
    assert [e.data for e in first.entries] == [b"x"]
    assert first.must_sync
    assert not first.committed_entries
    net.handle_ready(NodeId(2), net.node(2), first)
    net.stabilize()
    # By now node 2 learnt the commit index from a later append or heartbeat.
    assert net.applied_data(2) == [b"x"]
    net.record_readys = True
    net.propose(1, b"y")
    net.process(1)
    net.deliver_all(lambda m: m.to == 2)
    net.process(2)
    net.deliver_all(lambda m: m.to == 1)
    net.process(1)
    net.deliver_all(lambda m: m.to == 2)  # the append carrying the new commit index
    net.process(2)
    commit_only = [r for r in net.readys[NodeId(2)] if r.committed_entries]
    assert len(commit_only) == 1
    ready = commit_only[0]
    assert ready.hard_state is not None
    assert ready.hard_state.commit == ready.committed_entries[-1].index
    assert not ready.entries and not ready.must_sync


def test_ack_travels_with_the_entries_it_acknowledges() -> None:
    """A follower's acknowledgement comes in the same Ready as the entries it
    acknowledges, so the driver's order (persist, then send) makes it true."""
    net = Network(3)
    net.elect(1)
    net.propose(1, b"x")
    net.process(1)
    net.deliver_all(lambda m: m.to == 2)
    ready = net.node(2).ready()
    acks = [m for m in ready.messages if isinstance(m, AppendResponse)]
    assert len(acks) == 1 and not acks[0].reject
    assert acks[0].index == ready.entries[-1].index
    assert ready.must_sync


def test_vote_travels_with_its_hard_state() -> None:
    net = Network(3, pre_vote=False)
    net.campaign(1)
    net.process(1)
    net.deliver_all(lambda m: m.to == 2)
    ready = net.node(2).ready()
    granted = [m for m in ready.messages if isinstance(m, VoteResponse) and m.granted]
    assert len(granted) == 1
    assert ready.hard_state == HardState(term=Term(2), vote=NodeId(1), commit=Index(1))
    assert ready.must_sync


def test_crash_before_persisting_loses_the_vote_and_its_message() -> None:
    """A vote given but not persisted is forgotten on a crash, and since its
    message was in the same Ready it never left: nobody counted it."""
    net = Network(3, pre_vote=False)
    net.campaign(1)
    net.process(1)
    net.deliver_all(lambda m: m.to == 2)
    assert net.node(2).status().vote == 1
    net.restart(2)
    assert net.node(2).status().vote == 0
    assert net.node(2).status().term == 1
    assert not any(isinstance(m, VoteResponse) and m.sender == 2 for m in net.sent)
    # Having voted for nobody (durably) in term 2, it may still vote for 3 there.
    net.cut(1, 2)
    net.node(3).campaign()  # term 2 as well
    net.process(3)
    net.deliver_all(lambda m: m.to == 2)
    net.process(2)
    assert any(isinstance(m, VoteResponse) and m.granted and m.to == 3 and m.term == 2
               for m in net.sent)


def test_ready_is_handed_out_once() -> None:
    """Calling ready() again before advance returns only what is new since."""
    node, _ = single_node()
    node.campaign()
    first = node.ready()
    assert first.messages == () and first.hard_state is not None
    assert not node.has_ready()
    second = node.ready()
    assert second.entries == () and second.committed_entries == ()
    assert second.hard_state is None and second.soft_state is None


def test_single_node_ready_commits_unpersisted_entries() -> None:
    """One voter commits its entries at once: the same Ready holds them to
    persist and to apply, which the driver's order makes safe."""
    node, storage = single_node()
    node.campaign()
    ready = node.ready()
    assert [e.index for e in ready.entries] == [2]
    assert [e.index for e in ready.committed_entries] == [2]
    assert ready.hard_state == HardState(term=Term(2), vote=NodeId(1), commit=Index(2))
    persist(storage, ready)
    node.advance(ready)
    node.propose(b"x")
    ready = node.ready()
    assert [e.data for e in ready.entries] == [b"x"] == [e.data for e in ready.committed_entries]


def test_advance_records_persisted_and_applied() -> None:
    node, storage = single_node()
    node.campaign()
    ready = node.ready()
    assert node.status().applied == 1
    persist(storage, ready)
    node.advance(ready)
    assert node.status().applied == 2
    assert storage.last_index() == 2
    assert not node.raft.log.unstable.entries
    assert not node.has_ready()
    node.check_invariants()


def test_committed_entries_wait_for_advance_when_over_the_apply_budget() -> None:
    """Entries handed out to apply count against the apply budget until
    advance reports them applied."""
    node, storage = single_node(max_committed_size_per_ready_bytes=4)
    node.campaign()
    ready = node.ready()
    persist(storage, ready)
    node.advance(ready)
    for k in range(3):
        node.propose(b"abcd%d" % k)  # 5 bytes each: over the budget alone
    ready = node.ready()
    assert len(ready.entries) == 3
    assert [e.data for e in ready.committed_entries] == [b"abcd0"]
    assert not node.ready().committed_entries  # nothing more until advance
    persist(storage, ready)
    node.advance(ready)
    assert [e.data for e in node.ready().committed_entries] == [b"abcd1"]


def test_snapshot_ready() -> None:
    """A follower given a snapshot: the Ready holds it (to persist, then to
    apply), commit moves to it, and no entries are applied before it."""
    net = Network(3)
    net.elect(1)
    net.isolate(3)
    for k in range(3):
        net.propose(1, b"x%d" % k)
    net.stabilize()
    assert net.compact(1)
    net.heal()
    net.record_readys = True
    net.run(3)
    snapshots = [r for r in net.readys[NodeId(3)] if r.snapshot is not None]
    assert len(snapshots) == 1
    ready = snapshots[0]
    assert ready.snapshot is not None
    assert ready.must_sync  # its acknowledgement is in this same Ready
    assert ready.committed_entries == ()
    assert ready.hard_state is not None
    assert ready.hard_state.commit == ready.snapshot.metadata.index
    assert net.node(3).status().applied >= ready.snapshot.metadata.index
    assert net.applied_data(3) == [b"x0", b"x1", b"x2"]


def test_soft_state_only_when_it_changes() -> None:
    net = Network(3)
    net.record_readys = True
    net.elect(1)
    roles = [r.soft_state.role for r in net.readys[NodeId(1)] if r.soft_state is not None]
    assert roles == [Role.PRE_CANDIDATE, Role.CANDIDATE, Role.LEADER]
    net.run(5)
    roles = [r.soft_state.role for r in net.readys[NodeId(1)] if r.soft_state is not None]
    assert roles == [Role.PRE_CANDIDATE, Role.CANDIDATE, Role.LEADER]
    follower = [r.soft_state for r in net.readys[NodeId(2)] if r.soft_state is not None]
    assert [(s.role, s.lead) for s in follower] == [(Role.FOLLOWER, 1)]


def test_has_ready_after_election_timeout() -> None:
    net = Network(3)
    node = net.node(2)
    for _ in range(2 * node.raft.config.election_ticks):
        if node.has_ready():
            break
        node.tick()
    assert node.has_ready()
    net.process(2)
    assert not node.has_ready()


def test_propose_without_leader_is_dropped() -> None:
    net = Network(3)
    with pytest.raises(ProposalDropped):
        net.node(2).propose(b"x")


def test_propose_during_election_is_dropped() -> None:
    net = Network(3)
    net.campaign(2)
    assert net.node(2).status().role == Role.PRE_CANDIDATE
    with pytest.raises(ProposalDropped):
        net.node(2).propose(b"x")


def test_propose_without_forwarding_is_dropped() -> None:
    net = Network(3, disable_proposal_forwarding=True)
    net.elect(1)
    with pytest.raises(ProposalDropped):
        net.node(2).propose(b"x")
    net.node(1).propose(b"x")


def test_read_index_needs_a_context_and_a_leader() -> None:
    net = Network(3)
    with pytest.raises(ProposalDropped):
        net.node(1).read_index(b"")
    with pytest.raises(ProposalDropped):
        net.node(2).read_index(b"ctx")


def test_status_of_leader_and_follower() -> None:
    net = Network(3)
    net.elect(1)
    net.propose(1, b"x")
    net.stabilize()
    leader = net.node(1).status()
    assert (leader.id, leader.role, leader.lead, leader.term, leader.vote) == (
        1, Role.LEADER, 1, 2, 1)
    assert leader.commit == leader.applied == 3
    assert leader.conf_state == ConfState(voters=(NodeId(1), NodeId(2), NodeId(3)))
    progress = dict(leader.progress)
    assert sorted(progress) == [1, 2, 3]
    for peer in progress.values():
        assert (peer.match, peer.next, peer.state) == (3, 4, ProgressState.REPLICATE)
        assert not peer.is_learner
    follower = net.node(2).status()
    assert (follower.role, follower.lead, follower.term, follower.vote) == (
        Role.FOLLOWER, 1, 2, 1)
    assert follower.commit == follower.applied == 3
    assert follower.progress == ()
    assert follower.lead_transferee == 0


def test_heartbeat_commit_is_capped_by_match() -> None:
    """The leader never tells a follower to commit past what it holds."""
    net = Network(3)
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"x")
    net.stabilize()
    net.heal()
    net.tick(1)
    net.process(1)
    beats = [e.message for e in net.wire if isinstance(e.message, Heartbeat)]
    assert {m.to: m.commit for m in beats} == {2: 3, 3: 2}
