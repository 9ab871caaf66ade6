"""Progress: state transitions, acks and rejections, pausing, rendering."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chainfire_core.raft.inflights import Inflights
from chainfire_core.raft.progress import Progress, ProgressState
from chainfire_core.types import Index


def progress(*, match: int = 0, next: int = 1, state: ProgressState = ProgressState.PROBE,
             capacity: int = 256, max_bytes: int | None = None) -> Progress:
    pr = Progress(match=Index(match), next=Index(next),
                  inflights=Inflights(capacity, max_bytes))
    if state == ProgressState.REPLICATE:
        pr.state = state
    elif state == ProgressState.SNAPSHOT:
        pr.become_snapshot(Index(next - 1))
    return pr


def test_match_must_be_below_next() -> None:
    with pytest.raises(AssertionError):
        Progress(match=Index(5), next=Index(5), inflights=Inflights(1))


def test_become_probe_from_replicate() -> None:
    pr = progress(match=1, next=5, state=ProgressState.REPLICATE)
    pr.sent_entries(2, 10)
    pr.become_probe()
    assert (pr.state, pr.match, pr.next) == (ProgressState.PROBE, 1, 2)
    assert pr.inflights.count == 0
    pr.check_invariants()


@pytest.mark.parametrize(("match", "pending", "expected_next"), [
    (1, 10, 11),  # probe just past the snapshot
    (12, 10, 13),  # already past the snapshot
])
def test_become_probe_from_snapshot(match: int, pending: int, expected_next: int) -> None:
    pr = progress(match=1, next=5)
    pr.become_snapshot(Index(pending))
    pr.match = Index(match)
    pr.become_probe()
    assert (pr.state, pr.next, pr.pending_snapshot) == (ProgressState.PROBE, expected_next, 0)
    pr.check_invariants()


def test_become_replicate() -> None:
    pr = progress(match=1, next=5)
    pr.msg_app_flow_paused = True
    pr.become_replicate()
    assert (pr.state, pr.next, pr.msg_app_flow_paused) == (ProgressState.REPLICATE, 2, False)


def test_become_snapshot() -> None:
    pr = progress(match=1, next=5, state=ProgressState.REPLICATE)
    pr.sent_entries(1, 1)
    pr.become_snapshot(Index(10))
    assert (pr.state, pr.pending_snapshot, pr.next, pr.match) == (
        ProgressState.SNAPSHOT, 10, 11, 1)
    assert pr.inflights.count == 0 and pr.is_paused()
    with pytest.raises(AssertionError):
        pr.become_snapshot(Index(0))  # below match


def test_maybe_update() -> None:
    pr = progress(match=3, next=5)
    assert not pr.maybe_update(Index(2))  # stale
    assert not pr.maybe_update(Index(3))
    assert (pr.match, pr.next) == (3, 5)
    assert pr.maybe_update(Index(4))
    assert (pr.match, pr.next) == (4, 5)
    assert pr.maybe_update(Index(7))  # past next: next follows
    assert (pr.match, pr.next) == (7, 8)


# etcd's TestProgressMaybeDecr, minus cases with match >= next.
# (state, match, next, rejected, hint, ok, expected next)
DecrCase = tuple[ProgressState, int, int, int, int, bool, int]


@pytest.mark.parametrize("case", [
    (ProgressState.REPLICATE, 5, 10, 5, 5, False, 10),  # stale: at match
    (ProgressState.REPLICATE, 5, 10, 4, 4, False, 10),  # stale: below match
    (ProgressState.REPLICATE, 5, 10, 9, 9, True, 6),  # back to match + 1
    (ProgressState.PROBE, 0, 10, 5, 5, False, 10),  # not the last probe
    (ProgressState.PROBE, 0, 10, 9, 9, True, 9),  # hint: next = min(rejected, hint + 1)
    (ProgressState.PROBE, 0, 2, 1, 1, True, 1),
    (ProgressState.PROBE, 0, 1, 0, 0, True, 1),  # never to or below match
    (ProgressState.PROBE, 0, 10, 9, 2, True, 3),
    (ProgressState.PROBE, 0, 10, 9, 0, True, 1),
    (ProgressState.PROBE, 4, 10, 9, 1, True, 5),  # hint below match: match + 1
    (ProgressState.SNAPSHOT, 0, 11, 10, 3, True, 4),  # snapshot behaves like probe
    (ProgressState.SNAPSHOT, 0, 11, 9, 3, False, 11),
])
def test_maybe_decr_to(case: DecrCase) -> None:
    state, match, next, rejected, hint, ok, expected_next = case
    pr = progress(match=match, next=next, state=state)
    pr.msg_app_flow_paused = state == ProgressState.PROBE
    assert pr.maybe_decr_to(Index(rejected), Index(hint)) == ok
    assert pr.next == expected_next
    if ok and state == ProgressState.PROBE:
        assert not pr.msg_app_flow_paused  # a fresh probe may go out
    assert pr.match < pr.next


def test_is_paused_per_state() -> None:
    pr = progress()
    assert not pr.is_paused()
    pr.msg_app_flow_paused = True
    assert pr.is_paused()
    pr = progress(match=1, next=2, state=ProgressState.REPLICATE, capacity=2)
    assert not pr.is_paused()
    pr.sent_entries(1, 1)
    pr.sent_entries(1, 1)
    assert pr.is_paused()
    pr.maybe_update(Index(2))
    pr.inflights.free_le(Index(2))
    assert not pr.is_paused()
    assert progress(next=5, state=ProgressState.SNAPSHOT).is_paused()


def test_sent_entries_replicate() -> None:
    pr = progress(match=1, next=2, state=ProgressState.REPLICATE, capacity=8, max_bytes=100)
    pr.sent_entries(3, 30)
    assert pr.next == 5 and [x.index for x in pr.inflights.entries()] == [4]
    pr.sent_entries(0, 0)  # an empty append (commit update) changes nothing
    assert pr.next == 5 and pr.inflights.count == 1
    pr.sent_entries(2, 70)
    assert pr.next == 7 and pr.is_paused()  # bytes limit reached


def test_sent_entries_probe_pauses_until_answer() -> None:
    pr = progress(match=0, next=3)
    pr.sent_entries(0, 0)
    assert not pr.is_paused()
    pr.sent_entries(2, 10)
    assert pr.is_paused() and pr.next == 3  # probe does not advance next
    assert pr.maybe_update(Index(4))
    assert not pr.is_paused()


def test_sent_entries_in_snapshot_is_a_bug() -> None:
    pr = progress(next=5, state=ProgressState.SNAPSHOT)
    with pytest.raises(AssertionError):
        pr.sent_entries(1, 1)


def test_update_on_entries_send_and_optimistic_update() -> None:
    pr = progress(match=1, next=2, state=ProgressState.REPLICATE)
    pr.update_on_entries_send(2, 5, Index(2))
    assert pr.next == 4
    with pytest.raises(AssertionError):
        pr.update_on_entries_send(1, 1, Index(2))  # must send from next
    pr.optimistic_update(Index(9))
    assert pr.next == 10


def test_clone_is_deep() -> None:
    pr = progress(match=1, next=2, state=ProgressState.REPLICATE)
    pr.sent_entries(1, 1)
    twin = pr.clone()
    assert twin == pr
    twin.inflights.free_le(Index(2))
    twin.is_learner = True
    assert pr.inflights.count == 1 and not pr.is_learner


def test_rendering() -> None:
    pr = progress(match=1, next=2, state=ProgressState.REPLICATE, capacity=1)
    assert str(pr) == "StateReplicate match=1 next=2 inactive"
    pr.sent_entries(1, 1)
    pr.recent_active = True
    pr.is_learner = True
    assert str(pr) == "StateReplicate match=1 next=3 learner paused inflight=1[full]"
    pr.become_snapshot(Index(7))
    assert str(pr) == "StateSnapshot match=1 next=8 learner paused pendingSnap=7"


class ProgressMachine(RuleBasedStateMachine):
    """Any sequence of leader-side calls keeps the invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.pr = Progress(next=Index(1), inflights=Inflights(4, 50))
        self.max_match = 0

    @rule()
    def become_probe(self) -> None:
        self.pr.become_probe()

    @rule()
    def become_replicate(self) -> None:
        self.pr.become_replicate()

    @rule(ahead=st.integers(0, 5))
    def become_snapshot(self, ahead: int) -> None:
        self.pr.become_snapshot(Index(self.pr.match + ahead))

    @rule(count=st.integers(0, 3), size_bytes=st.integers(0, 20))
    def send(self, count: int, size_bytes: int) -> None:
        if self.pr.state != ProgressState.SNAPSHOT and not self.pr.is_paused():
            self.pr.sent_entries(count, size_bytes)

    @rule(back=st.integers(0, 4))
    def ack(self, back: int) -> None:
        acked = Index(max(0, self.pr.next - 1 - back))
        if self.pr.maybe_update(acked):
            self.pr.inflights.free_le(acked)

    @rule(hint=st.integers(0, 10), stale=st.booleans())
    def reject(self, hint: int, stale: bool) -> None:
        rejected = Index(self.pr.next - 1 - (1 if stale else 0))
        decreased = rejected >= 0 and self.pr.maybe_decr_to(rejected, Index(hint))
        if decreased and self.pr.state == ProgressState.REPLICATE:
            self.pr.become_probe()

    @invariant()
    def holds(self) -> None:
        self.pr.check_invariants()
        assert self.pr.match >= self.max_match  # match never goes back
        self.max_match = self.pr.match


ProgressMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                             deadline=None)
TestProgressMachine = ProgressMachine.TestCase
