"""The small pure parts: precedence, probe order, piggyback queue, suspicion
timeouts and local health."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainfire_core.swim import (
    Alive,
    Dead,
    Incarnation,
    Left,
    MemberState,
    Suspect,
    SwimConfig,
    Update,
    retransmit_limit,
    suspicion_bounds_ms,
    suspicion_timeout_ms,
)
from chainfire_core.swim.broadcast import BroadcastQueue
from chainfire_core.swim.health import LocalHealth
from chainfire_core.swim.members import Member, MemberTable, overrides
from chainfire_core.types import NodeId

N, Inc = NodeId, Incarnation


def record(state: MemberState, incarnation: int) -> Member:
    return Member(id=N(2), state=state, incarnation=Inc(incarnation), address="", since_ms=0)


@pytest.mark.parametrize(("update", "state", "known", "wins"), [
    # SWIM section 4.2, extended with Left.
    (Alive(member=N(2), incarnation=Inc(1)), MemberState.SUSPECT, 0, True),
    (Alive(member=N(2), incarnation=Inc(1)), MemberState.SUSPECT, 1, False),
    (Alive(member=N(2), incarnation=Inc(2)), MemberState.DEAD, 1, True),
    (Suspect(member=N(2), incarnation=Inc(1), accuser=N(3)), MemberState.ALIVE, 1, True),
    (Suspect(member=N(2), incarnation=Inc(0), accuser=N(3)), MemberState.ALIVE, 1, False),
    (Suspect(member=N(2), incarnation=Inc(1), accuser=N(3)), MemberState.SUSPECT, 1, False),
    (Suspect(member=N(2), incarnation=Inc(2), accuser=N(3)), MemberState.SUSPECT, 1, True),
    (Suspect(member=N(2), incarnation=Inc(5), accuser=N(3)), MemberState.DEAD, 1, False),
    (Dead(member=N(2), incarnation=Inc(1), accuser=N(3)), MemberState.SUSPECT, 1, True),
    (Dead(member=N(2), incarnation=Inc(0), accuser=N(3)), MemberState.ALIVE, 1, False),
    (Dead(member=N(2), incarnation=Inc(3), accuser=N(3)), MemberState.DEAD, 1, False),
    (Left(member=N(2), incarnation=Inc(1)), MemberState.DEAD, 1, True),
    (Left(member=N(2), incarnation=Inc(2)), MemberState.LEFT, 1, False),
])
def test_precedence(update: Update, state: MemberState, known: int, wins: bool) -> None:
    assert overrides(update, record(state, known)) is wins


def test_only_alive_introduces_an_unknown_member() -> None:
    assert overrides(Alive(member=N(2), incarnation=Inc(0)), None)
    assert not overrides(Suspect(member=N(2), incarnation=Inc(0), accuser=N(3)), None)
    assert not overrides(Dead(member=N(2), incarnation=Inc(0), accuser=N(3)), None)


@given(size=st.integers(min_value=2, max_value=40), seed=st.integers(0, 1000))
def test_round_robin_visits_every_live_member_once_per_pass(size: int, seed: int) -> None:
    table = MemberTable(N(1), random.Random(seed), 100)
    for member in range(2, size + 1):
        table.apply(Alive(member=N(member), incarnation=Inc(0)), 0)
    table.apply(Dead(member=N(2), incarnation=Inc(0), accuser=N(1)), 0)
    live = list(range(3, size + 1))
    for _ in range(3):
        visited = [table.next_probe_target() for _ in live]
        assert sorted(v for v in visited if v is not None) == live
    table.check_invariants()


def test_a_new_member_is_probed_within_the_current_pass() -> None:
    table = MemberTable(N(1), random.Random(5), 100)
    for member in range(2, 12):
        table.apply(Alive(member=N(member), incarnation=Inc(0)), 0)
    first = [table.next_probe_target() for _ in range(3)]
    table.apply(Alive(member=N(50), incarnation=Inc(0)), 0)
    rest = [table.next_probe_target() for _ in range(8)]
    assert 50 in rest and sorted([*first, *rest]) == [*range(2, 12), 50]


def test_piggyback_queue_sends_each_update_a_bounded_number_of_times() -> None:
    queue = BroadcastQueue(16)
    queue.enqueue(Alive(member=N(2), incarnation=Inc(0)))
    queue.enqueue(Alive(member=N(3), incarnation=Inc(0)))
    newer = Suspect(member=N(2), incarnation=Inc(0), accuser=N(1))
    queue.enqueue(newer)  # replaces the news about member 2
    assert queue.take(1, 3) == (newer,)  # the newest, least-sent first
    sent = [u for _ in range(10) for u in queue.take(8, 3)]
    assert sent.count(newer) == 2 and len(queue) == 0
    assert retransmit_limit(4, 20) == 8 and retransmit_limit(4, 200) == 12


def test_suspicion_bounds_scale_with_log_n() -> None:
    config = SwimConfig(member_id=N(1))
    assert suspicion_bounds_ms(config, 5) == (4_000, 24_000)
    low, high = suspicion_bounds_ms(config, 100)
    assert low == 8_000 and high == 48_000
    assert suspicion_bounds_ms(config.swim_only(), 100) == (8_000, 8_000)


@given(low=st.integers(1, 10_000), extra=st.integers(0, 50_000), k=st.integers(1, 10))
def test_suspicion_timeout_shrinks_from_max_to_min(low: int, extra: int, k: int) -> None:
    high = low + extra
    timeouts = [suspicion_timeout_ms(low, high, c, k) for c in range(k + 3)]
    assert timeouts[0] == high and timeouts[k] == low == timeouts[-1]
    assert all(a >= b for a, b in itertools.pairwise(timeouts))
    if k >= 2:
        expected = high - (high - low) * math.log(2) / math.log(k + 1)
        assert timeouts[1] == max(low, math.floor(expected))


def test_local_health_saturates_and_scales() -> None:
    health = LocalHealth(8, enabled=True)
    health.apply(-1)
    assert health.score == 0
    health.apply(20)
    assert health.score == 8 and health.scale(500) == 4_500
    off = LocalHealth(8, enabled=False)
    off.apply(5)
    assert off.score == 0 and off.scale(500) == 500
