"""SwimNode: the protocol steps of the SWIM and Lifeguard papers, one by one."""

from __future__ import annotations

import random

import pytest
from swim_helpers import Wire

from chainfire_core.errors import InvalidRequest
from chainfire_core.swim import (
    Ack,
    Alive,
    Dead,
    Incarnation,
    Join,
    JoinAck,
    Left,
    MemberAlive,
    MemberDead,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspected,
    Nack,
    Ping,
    PingReq,
    SelfRefuted,
    Suspect,
    SwimConfig,
    SwimNode,
    suspicion_bounds_ms,
)
from chainfire_core.types import NodeId

N = NodeId


def lone(member: int = 1, *, members: int = 5, **settings: object) -> SwimNode:
    config = SwimConfig(member_id=N(member), **settings)  # type: ignore[arg-type]
    node = SwimNode(config, random.Random(3), first_probe_ms=0,
                    members=[(N(m), "") for m in range(1, members + 1)])
    node.tick(0)  # the first period starts: one ping goes out
    return node


def take(node: SwimNode) -> list[object]:
    ready = node.ready()
    node.advance(ready)
    return [*ready.messages, *ready.events]


def test_a_ping_is_answered_with_an_ack_of_the_same_seq() -> None:
    node = lone()
    take(node)
    node.step(Ping(sender=N(2), to=N(1), seq=42), now_ms=1)
    (ack,) = [m for m in take(node) if isinstance(m, Ack)]
    assert (ack.to, ack.seq) == (2, 42)


def test_each_period_probes_one_member_in_round_robin_order() -> None:
    node = lone(members=5)
    targets = []
    for period in range(8):
        node.tick(period * 1000)
        for message in take(node):
            if isinstance(message, Ping):
                targets.append(message.to)
                node.step(Ack(sender=message.to, to=N(1), seq=message.seq), period * 1000 + 1)
    # Two full passes: each of the 4 others exactly once per pass.
    assert sorted(targets[:4]) == [2, 3, 4, 5] and sorted(targets[4:]) == [2, 3, 4, 5]


def test_no_ack_in_time_sends_k_ping_reqs_then_suspects_at_period_end() -> None:
    node = lone(members=6, indirect_probes=3)
    (ping,) = [m for m in take(node) if isinstance(m, Ping)]
    node.tick(499)
    assert not take(node)
    node.tick(500)
    reqs = [m for m in take(node) if isinstance(m, PingReq)]
    assert len(reqs) == 3 and {r.target for r in reqs} == {ping.to}
    assert len({r.to for r in reqs}) == 3 and ping.to not in {r.to for r in reqs}
    node.tick(1000)
    suspected = [e for e in take(node) if isinstance(e, MemberSuspected)]
    assert [(e.member, e.accuser) for e in suspected] == [(ping.to, 1)]
    view = node.member(ping.to)
    assert view is not None and view.state == MemberState.SUSPECT


def test_a_relayed_ack_counts_and_the_relay_forwards_it() -> None:
    prober, relay = lone(1), lone(2)
    (ping,) = [m for m in take(prober) if isinstance(m, Ping)]
    take(relay)
    prober.tick(500)
    req = next(m for m in take(prober) if isinstance(m, PingReq) and m.to == 2)
    relay.step(req, 510)
    relay_ping = next(m for m in take(relay) if isinstance(m, Ping) and m.to == ping.to)
    relay.step(Ack(sender=ping.to, to=N(2), seq=relay_ping.seq), 515)
    forwarded = next(m for m in take(relay) if isinstance(m, Ack))
    assert (forwarded.to, forwarded.seq) == (1, ping.seq)
    prober.step(forwarded, 520)
    prober.tick(1000)
    assert not [e for e in take(prober) if isinstance(e, MemberSuspected)]


def test_a_relay_nacks_when_the_target_is_silent_and_missing_nacks_cost_health() -> None:
    relay = lone(2)
    take(relay)
    relay.step(PingReq(sender=N(1), to=N(2), seq=9, target=N(3)), 100)
    take(relay)
    relay.tick(100 + 400)
    (nack,) = [m for m in take(relay) if isinstance(m, Nack)]
    assert (nack.to, nack.seq) == (1, 9)
    # The prober: one nack of three arrives; the failed probe and two missed nacks cost 3.
    prober = lone(1, members=6)
    (ping,) = [m for m in take(prober) if isinstance(m, Ping)]
    prober.tick(500)
    take(prober)
    prober.step(Nack(sender=N(2) if ping.to != 2 else N(3), to=N(1), seq=ping.seq), 900)
    prober.tick(1000)
    assert prober.health.score == 3


def test_local_health_stretches_the_period_and_an_ack_lowers_it() -> None:
    node = lone(members=3, nacks=False)
    take(node)
    node.tick(1000)  # probe 1 failed: LHM 1, the next period is 2 s long
    assert node.health.score == 1
    pings = [m for m in take(node) if isinstance(m, Ping)]
    assert len(pings) == 1
    node.tick(1000 + 1999)
    assert not [m for m in take(node) if isinstance(m, Ping)]
    node.step(Ack(sender=pings[0].to, to=N(1), seq=pings[0].seq), 3000)
    assert node.health.score == 0


def test_swim_only_keeps_local_health_at_zero() -> None:
    node = SwimNode(SwimConfig(member_id=N(1)).swim_only(), random.Random(1), first_probe_ms=0,
                    members=[(N(2), ""), (N(3), "")])
    for period in range(1, 6):
        node.tick(period * 1000)
        take(node)
    assert node.health.score == 0


def test_a_suspect_is_declared_dead_when_the_suspicion_timeout_runs_out() -> None:
    node = lone(members=5, dynamic_suspicion=False)
    take(node)
    node.step(Ping(sender=N(2), to=N(1), seq=1,
                   updates=(Suspect(member=N(3), incarnation=Incarnation(0), accuser=N(2)),)), 10)
    low, high = suspicion_bounds_ms(node.config, 5)
    assert low == high == 4_000  # 4 * max(1, log10 5) periods
    node.step(Ping(sender=N(2), to=N(1), seq=2), 10 + low - 1)  # no clock jump past it yet
    node.tick(10 + low - 1)
    assert not [e for e in take(node) if isinstance(e, MemberDead)]
    node.tick(10 + low)
    (dead,) = [e for e in take(node) if isinstance(e, MemberDead)]
    assert (dead.member, dead.accuser) == (3, 1)


def test_lifeguard_suspicion_starts_long_and_shrinks_with_confirmations() -> None:
    node = lone(members=5)
    take(node)
    low, high = suspicion_bounds_ms(node.config, 5)
    assert high == 6 * low
    suspect = Suspect(member=N(3), incarnation=Incarnation(0), accuser=N(2))
    node.step(Ping(sender=N(2), to=N(1), seq=1, updates=(suspect,)), 0)
    assert node.suspicions[N(3)].deadline_ms == high
    for accuser in (4, 5):
        confirm = Suspect(member=N(3), incarnation=Incarnation(0), accuser=N(accuser))
        node.step(Ping(sender=N(accuser), to=N(1), seq=2, updates=(confirm,)), 0)
    two = node.suspicions[N(3)].deadline_ms
    assert low < two < high
    node.step(Ping(sender=N(2), to=N(1), seq=3, updates=(suspect,)), 0)  # not independent
    assert node.suspicions[N(3)].deadline_ms == two


def test_a_suspected_member_refutes_with_a_higher_incarnation() -> None:
    node = lone(1)
    take(node)
    node.step(Ping(sender=N(2), to=N(1), seq=5, updates=(
        Suspect(member=N(1), incarnation=Incarnation(0), accuser=N(2)),)), 10)
    out = take(node)
    assert node.incarnation == 1
    assert any(isinstance(e, SelfRefuted) and e.incarnation == 1 for e in out)
    ack = next(m for m in out if isinstance(m, Ack))
    assert Alive(member=N(1), incarnation=Incarnation(1), address="") in ack.updates
    assert node.health.score == 1
    # A stale accusation (below the current incarnation) changes nothing.
    node.step(Ping(sender=N(2), to=N(1), seq=6, updates=(
        Dead(member=N(1), incarnation=Incarnation(0), accuser=N(2)),)), 20)
    assert node.incarnation == 1


def test_alive_at_a_higher_incarnation_clears_a_suspicion() -> None:
    node = lone(1)
    take(node)
    node.step(Ping(sender=N(2), to=N(1), seq=1, updates=(
        Suspect(member=N(3), incarnation=Incarnation(0), accuser=N(2)),)), 0)
    node.step(Ping(sender=N(3), to=N(1), seq=2, updates=(
        Alive(member=N(3), incarnation=Incarnation(1)),)), 5)
    assert node.member(N(3)).state == MemberState.ALIVE  # type: ignore[union-attr]
    assert N(3) not in node.suspicions
    assert [e for e in take(node) if isinstance(e, MemberAlive)]


def test_buddy_system_tells_the_suspect_in_the_ping_itself() -> None:
    for buddy in (True, False):
        node = lone(1, members=2, buddy_system=buddy)
        take(node)
        node.step(Ack(sender=N(2), to=N(1), seq=1), 1)  # the first probe succeeded
        node.step(Ping(sender=N(2), to=N(1), seq=1, updates=()), 2)
        take(node)
        node.apply(Suspect(member=N(2), incarnation=Incarnation(0), accuser=N(1)))
        take(node)
        # Gossip stops after the retransmit limit (4 sends here); the buddy
        # system keeps telling the suspect in every ping to it.
        for seq in range(10):
            node.step(Ping(sender=N(2), to=N(1), seq=100 + seq), 3)
        take(node)
        node.tick(1000)
        (ping,) = [m for m in take(node) if isinstance(m, Ping)]
        assert ping.to == 2
        told = Suspect(member=N(2), incarnation=Incarnation(0), accuser=N(1)) in ping.updates
        assert told == buddy


def test_join_and_join_ack_exchange_views() -> None:
    seed = lone(1, members=3)
    take(seed)
    joiner = SwimNode(SwimConfig(member_id=N(9), address="h:9"), random.Random(1))
    joiner.join([N(1)], now_ms=0)
    (join,) = [m for m in take(joiner) if isinstance(m, Join)]
    seed.step(join, 1)
    out = take(seed)
    assert any(isinstance(e, MemberJoined) and e.member == 9 for e in out)
    answer = next(m for m in out if isinstance(m, JoinAck))
    joiner.step(answer, 2)
    assert [v.member for v in joiner.members()] == [1, 2, 3]
    with pytest.raises(InvalidRequest):
        joiner.join([N(9)], now_ms=3)


def test_a_left_member_is_reported_and_no_longer_probed() -> None:
    node = lone(1, members=3)
    take(node)
    node.step(Ack(sender=N(2), to=N(1), seq=1, updates=(
        Left(member=N(2), incarnation=Incarnation(1)),)), 1)
    assert [e.member for e in take(node) if isinstance(e, MemberLeft)] == [2]
    for period in range(1, 6):
        node.tick(period * 1000)
    assert all(m.to != 2 for m in take(node) if isinstance(m, Ping))


def test_leave_raises_incarnation_and_stops_probing() -> None:
    node = lone(1, members=4)
    take(node)
    node.leave(5)
    out = take(node)
    assert node.left and node.incarnation == 1
    assert any(isinstance(m, Ping) and Left(member=N(1), incarnation=Incarnation(1)) in m.updates
               for m in out)
    node.tick(5000)
    assert not [m for m in take(node) if isinstance(m, Ping | PingReq)]


def test_a_member_believed_dead_is_told_so_and_refutes() -> None:
    wire = Wire(3)
    wire.run_until(2_000)
    wire.node(1).apply(Dead(member=N(2), incarnation=Incarnation(0), accuser=N(1)))
    wire.run_until(10_000)
    view = wire.node(1).member(N(2))
    assert view is not None and view.state == MemberState.ALIVE and view.incarnation >= 1


def test_misdelivered_messages_are_ignored() -> None:
    node = lone(1)
    take(node)
    node.step(Ping(sender=N(2), to=N(3), seq=1), 1)
    assert not take(node)
