"""Lease-based reads hold a real lease: a quorum's acknowledgement of
heartbeats the leader sent within its last `lease_ticks` ticks."""

from __future__ import annotations

import pytest
from network import Network

from chainfire_core.errors import InvalidRequest
from chainfire_core.raft.config import RaftConfig, ReadOnlyOption
from chainfire_core.raft.messages import Heartbeat, HeartbeatResponse
from chainfire_core.raft.raft import ReadState, Role
from chainfire_core.types import Index, NodeId

LEASE = ReadOnlyOption.LEASE_BASED


def _healthy(**options: object) -> Network:
    net = Network(3, read_only_option=LEASE, **options)
    net.elect(1)
    net.run(1)  # one heartbeat round, acknowledged by both followers
    return net


def test_lease_ticks_follow_election_ticks_and_drift() -> None:
    assert RaftConfig(id=NodeId(1), election_ticks=10, max_clock_drift=1.0).lease_ticks == 9
    assert RaftConfig(id=NodeId(1), election_ticks=10, max_clock_drift=1.1).lease_ticks == 7
    assert RaftConfig(id=NodeId(1), election_ticks=10, max_clock_drift=1.25).lease_ticks == 5
    assert RaftConfig(id=NodeId(1), election_ticks=2, max_clock_drift=1.5).lease_ticks == 0
    for bad in (0.9, float("nan"), float("inf")):
        with pytest.raises(InvalidRequest):
            RaftConfig(id=NodeId(1), max_clock_drift=bad)


def test_healthy_leader_serves_lease_reads_without_a_round_trip() -> None:
    net = _healthy()
    net.isolate(1)  # no round trip can complete now
    net.node(1).read_index(b"lease")
    net.process(1)
    assert net.read_states[NodeId(1)] == [ReadState(index=Index(2), context=b"lease")]
    assert not [m for m in net.wire if isinstance(m.message, Heartbeat)
                and m.message.context == b"lease"]


def _ticks_until_lease_lapses(drift: float) -> int:
    net = _healthy(max_clock_drift=drift)
    raft = net.node(1).raft
    net.isolate(1)
    for ticks in range(1, 100):
        net.tick(1)
        net.process(1)
        if not raft.lease_valid():
            return ticks
    raise AssertionError("the lease never lapsed")


def test_leader_cut_off_from_its_quorum_stops_serving_lease_reads() -> None:
    net = _healthy(election_ticks=10, max_clock_drift=1.0)
    raft = net.node(1).raft
    lease_ticks = raft.config.lease_ticks
    sent = raft.tick_count
    net.isolate(1)
    net.tick(1, lease_ticks - 1)
    net.process(1)
    assert raft.role == Role.LEADER
    net.node(1).read_index(b"still-leased")
    net.process(1)
    assert net.read_states[NodeId(1)][-1].context == b"still-leased"
    net.tick(1)  # lease_ticks after the last acknowledged heartbeat went out
    net.process(1)
    assert raft.tick_count - sent == lease_ticks
    assert raft.role == Role.LEADER  # check-quorum has not deposed it yet
    assert not raft.lease_valid()
    net.node(1).read_index(b"stale?")
    net.process(1)
    # Falls back to ReadIndex: queued behind a heartbeat round that cannot finish.
    assert [s.context for s in net.read_states[NodeId(1)]] == [b"still-leased"]
    assert len(raft.read_only) == 1
    assert any(isinstance(m, Heartbeat) and m.context == b"stale?" for m in net.sent)
    net.heal()
    net.run(1)  # the next heartbeat carries the read; the quorum answers it
    assert [s.context for s in net.read_states[NodeId(1)]] == [b"still-leased", b"stale?"]


def test_drift_shortens_the_lease() -> None:
    assert _ticks_until_lease_lapses(1.0) == 9
    assert _ticks_until_lease_lapses(1.1) == 7
    assert _ticks_until_lease_lapses(1.25) == 5


def test_no_lease_before_any_acknowledgement_falls_back_to_read_index() -> None:
    net = Network(3, read_only_option=LEASE)
    net.elect(1)  # elected and committed, but no heartbeat acknowledged yet
    net.isolate(1)
    net.node(1).read_index(b"r")
    net.process(1)
    assert net.read_states[NodeId(1)] == []


def test_acks_for_unknown_contexts_extend_nothing() -> None:
    net = Network(3, read_only_option=LEASE)
    net.elect(1)
    raft = net.node(1).raft
    for peer in (2, 3):
        raft.handle_heartbeat_ack(HeartbeatResponse(
            sender=NodeId(peer), to=NodeId(1), term=raft.term, context=b"\x00never-sent"))
    assert not raft.lease_valid()
    assert len(raft.read_only) == 0


def test_leadership_transfer_ends_the_lease() -> None:
    net = _healthy()
    raft = net.node(1).raft
    assert raft.lease_valid()
    net.isolate(2)
    net.node(1).transfer_leader(NodeId(2))
    net.process(1)
    assert raft.role == Role.LEADER and not raft.lease_valid()


def test_planted_bug_serves_by_role_alone() -> None:
    net = Network(3, read_only_option=LEASE, check_quorum=False,
                  bugs=frozenset({"lease_reads_no_check_quorum"}))
    net.elect(1)
    raft = net.node(1).raft
    net.isolate(1)
    net.tick(1, 5 * raft.config.election_ticks)
    net.process(1)
    assert raft.role == Role.LEADER  # no check-quorum: it never steps down
    net.node(1).read_index(b"by-role")
    net.process(1)
    assert net.read_states[NodeId(1)] == [ReadState(index=Index(2), context=b"by-role")]
