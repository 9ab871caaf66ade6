"""The inflights ring: adding, freeing, wrapping around, byte limits; and a
Hypothesis state machine against a plain list model."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chainfire_core.raft.inflights import Inflight, Inflights
from chainfire_core.types import Index


def indexes(ring: Inflights) -> list[int]:
    return [item.index for item in ring.entries()]


def filled(capacity: int, count: int, *, max_bytes: int | None = None,
           size_bytes: int = 1) -> Inflights:
    ring = Inflights(capacity, max_bytes)
    for i in range(count):
        ring.add(Index(i), size_bytes)
    return ring


def test_add_until_full() -> None:
    ring = filled(10, 5)
    assert ring.count == 5 and ring.bytes == 5 and not ring.full()
    for i in range(5, 10):
        ring.add(Index(i), 1)
    assert ring.full() and indexes(ring) == list(range(10))
    with pytest.raises(AssertionError):
        ring.add(Index(10), 1)
    ring.check_invariants()


def test_free_le() -> None:
    ring = filled(10, 10)
    ring.free_le(Index(0))
    assert indexes(ring) == list(range(1, 10)) and not ring.full()
    ring.free_le(Index(4))
    assert indexes(ring) == list(range(5, 10)) and ring.bytes == 5
    ring.free_le(Index(3))  # already freed: no-op
    assert ring.count == 5
    ring.free_le(Index(8))
    assert indexes(ring) == [9]
    ring.free_le(Index(100))
    assert ring.count == 0 and ring.bytes == 0
    ring.free_le(Index(100))  # on empty: no-op
    ring.check_invariants()


def test_wraparound() -> None:
    ring = filled(10, 10)
    ring.free_le(Index(6))  # start moves to slot 7
    for i in range(10, 17):
        ring.add(Index(i), 2)  # slots 7, 8, 9, then 0..3
    assert ring.full() and indexes(ring) == list(range(7, 17))
    assert ring.bytes == 3 + 7 * 2
    ring.check_invariants()
    ring.free_le(Index(11))  # frees across the wrap point
    assert indexes(ring) == list(range(12, 17)) and ring.bytes == 5 * 2
    ring.check_invariants()


def test_gaps_between_indexes() -> None:
    ring = Inflights(4)
    for i in (3, 7, 20):
        ring.add(Index(i), 1)
    ring.free_le(Index(6))
    assert indexes(ring) == [7, 20]
    ring.free_le(Index(19))
    assert indexes(ring) == [20]


def test_byte_limit() -> None:
    ring = Inflights(10, max_bytes=100)
    ring.add(Index(1), 60)
    assert not ring.full()
    ring.add(Index(2), 60)  # one append may overshoot the limit
    assert ring.full() and ring.bytes == 120 and ring.count == 2
    with pytest.raises(AssertionError):
        ring.add(Index(3), 1)
    ring.free_le(Index(1))
    assert not ring.full() and ring.bytes == 60
    ring.add(Index(3), 40)
    assert ring.full()  # exactly at the limit is full


def test_count_limit_with_bytes_unlimited() -> None:
    ring = filled(3, 3, size_bytes=10**9)
    assert ring.full() and ring.bytes == 3 * 10**9


def test_reset() -> None:
    ring = filled(5, 5)
    ring.free_le(Index(2))
    ring.reset()
    assert ring.count == 0 and ring.bytes == 0 and not ring.full()
    ring.add(Index(0), 1)  # after reset, indexes may start over
    assert ring.entries() == (Inflight(index=Index(0), size_bytes=1),)
    ring.check_invariants()


def test_indexes_must_increase() -> None:
    ring = filled(5, 2)
    with pytest.raises(AssertionError):
        ring.add(Index(1), 1)


def test_bad_limits_refused() -> None:
    with pytest.raises(AssertionError):
        Inflights(0)
    with pytest.raises(AssertionError):
        Inflights(1, max_bytes=0)


def test_clone_is_independent_and_equal() -> None:
    ring = filled(4, 4)
    ring.free_le(Index(1))
    twin = ring.clone()
    assert twin == ring
    twin.free_le(Index(3))
    assert ring.count == 2 and twin.count == 0 and twin != ring
    # Equality is by content, not by where in the ring items sit.
    other = Inflights(4)
    other.add(Index(2), 1)
    other.add(Index(3), 1)
    assert other == ring
    assert "2:1 3:1" in repr(ring)


class InflightsMachine(RuleBasedStateMachine):
    """The ring against a list of (index, bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = 5
        self.max_bytes = 12
        self.ring = Inflights(self.capacity, self.max_bytes)
        self.model: list[tuple[int, int]] = []
        self.next_index = 1

    def model_full(self) -> bool:
        return (len(self.model) == self.capacity
                or sum(b for _, b in self.model) >= self.max_bytes)

    @precondition(lambda self: not self.model_full())
    @rule(gap=st.integers(0, 3), size_bytes=st.integers(0, 6))
    def add(self, gap: int, size_bytes: int) -> None:
        self.next_index += gap
        self.ring.add(Index(self.next_index), size_bytes)
        self.model.append((self.next_index, size_bytes))
        self.next_index += 1

    @rule(back=st.integers(0, 12))
    def free_le(self, back: int) -> None:
        to = self.next_index - back
        self.ring.free_le(Index(to))
        self.model = [(i, b) for i, b in self.model if i > to]

    @rule()
    def reset(self) -> None:
        self.ring.reset()
        self.model = []

    @invariant()
    def agrees(self) -> None:
        self.ring.check_invariants()
        assert [(x.index, x.size_bytes) for x in self.ring.entries()] == self.model
        assert self.ring.count == len(self.model)
        assert self.ring.bytes == sum(b for _, b in self.model)
        assert self.ring.full() == self.model_full()


InflightsMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                              deadline=None)
TestInflightsMachine = InflightsMachine.TestCase
