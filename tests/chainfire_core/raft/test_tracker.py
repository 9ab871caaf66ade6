"""ProgressTracker: committed index, vote tallies, quorum activity, config."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chainfire_core.raft.messages import ConfState
from chainfire_core.raft.progress import Progress
from chainfire_core.raft.quorum import JointConfig, MajorityConfig, VoteResult
from chainfire_core.raft.tracker import ProgressTracker, TrackerConfig, VoteTally
from chainfire_core.types import Index, NodeId


def ids(*values: int) -> tuple[NodeId, ...]:
    return tuple(NodeId(v) for v in values)


def make_tracker(voters: tuple[int, ...], outgoing: tuple[int, ...] = (),
                 learners: tuple[int, ...] = (), learners_next: tuple[int, ...] = (),
                 auto_leave: bool = False) -> ProgressTracker:
    tracker = ProgressTracker(max_inflight_msgs=4)
    config = TrackerConfig(
        voters=JointConfig(incoming=MajorityConfig.of(ids(*voters)),
                           outgoing=MajorityConfig.of(ids(*outgoing))),
        learners=ids(*learners), learners_next=ids(*learners_next), auto_leave=auto_leave)
    progress = {node_id: tracker.make_progress(Index(1), is_learner=node_id in config.learners)
                for node_id in config.ids()}
    tracker.set_config(config, progress)
    tracker.check_invariants()
    return tracker


def set_match(tracker: ProgressTracker, **by_id: int) -> None:
    for key, match in by_id.items():
        assert tracker.progress[NodeId(int(key[1:]))].maybe_update(Index(match))


def test_fresh_tracker_is_empty() -> None:
    tracker = ProgressTracker(max_inflight_msgs=1)
    tracker.check_invariants()
    assert tracker.conf_state() == ConfState()
    assert tracker.voter_nodes() == () and not tracker.is_singleton()
    assert str(tracker.config) == "voters=()"


def test_committed_majority() -> None:
    tracker = make_tracker((1, 2, 3), learners=(4,))
    set_match(tracker, n1=10, n2=7, n4=100)
    assert tracker.committed() == 7  # the learner's match does not count
    set_match(tracker, n3=12)
    assert tracker.committed() == 10


def test_committed_joint() -> None:
    tracker = make_tracker((1, 2, 3), outgoing=(3, 4, 5))
    set_match(tracker, n1=10, n2=10, n3=10, n4=2)
    assert tracker.committed() == 2  # the outgoing half lags
    set_match(tracker, n5=9)
    assert tracker.committed() == 9


def test_vote_tally() -> None:
    tracker = make_tracker((1, 2, 3, 4, 5), learners=(6,))
    tracker.record_vote(NodeId(1), True)
    tracker.record_vote(NodeId(6), True)  # a learner: ignored
    tracker.record_vote(NodeId(9), True)  # a stranger: ignored
    assert tracker.tally_votes() == VoteTally(1, 0, VoteResult.PENDING)
    tracker.record_vote(NodeId(2), False)
    tracker.record_vote(NodeId(2), True)  # the first vote stands
    tracker.record_vote(NodeId(3), True)
    assert tracker.tally_votes() == (2, 1, VoteResult.PENDING)
    tracker.record_vote(NodeId(4), True)
    assert tracker.tally_votes() == (3, 1, VoteResult.WON)
    tracker.reset_votes()
    assert tracker.tally_votes() == (0, 0, VoteResult.PENDING)
    for node_id in (1, 2, 3):
        tracker.record_vote(NodeId(node_id), False)
    assert tracker.tally_votes().result == VoteResult.LOST


def test_vote_tally_joint_counts_both_halves() -> None:
    tracker = make_tracker((1, 2, 3), outgoing=(1, 4, 5), learners_next=(4,))
    for node_id in (1, 2, 3):
        tracker.record_vote(NodeId(node_id), True)
    assert tracker.tally_votes() == (3, 0, VoteResult.PENDING)
    tracker.record_vote(NodeId(4), True)  # a learner-to-be still votes in the outgoing half
    assert tracker.tally_votes() == (4, 0, VoteResult.WON)


def test_quorum_active() -> None:
    tracker = make_tracker((1, 2, 3), learners=(4,))
    tracker.reset_recent_active(NodeId(1))
    assert tracker.progress[NodeId(1)].recent_active
    assert not tracker.progress[NodeId(4)].recent_active
    assert not tracker.quorum_active()
    tracker.progress[NodeId(4)].recent_active = True  # learners do not count
    assert not tracker.quorum_active()
    tracker.progress[NodeId(3)].recent_active = True
    assert tracker.quorum_active()
    assert tracker.quorum_active()  # asking does not reset


def test_quorum_active_joint() -> None:
    tracker = make_tracker((1, 2, 3), outgoing=(4, 5, 6))
    tracker.reset_recent_active(NodeId(1))
    tracker.progress[NodeId(2)].recent_active = True
    assert not tracker.quorum_active()
    tracker.progress[NodeId(4)].recent_active = True
    tracker.progress[NodeId(5)].recent_active = True
    assert tracker.quorum_active()


def test_membership_queries() -> None:
    tracker = make_tracker((1, 2, 3), outgoing=(1, 2, 5), learners=(4,), learners_next=(5,),
                           auto_leave=True)
    assert tracker.voter_nodes() == (1, 2, 3, 5)
    assert tracker.learner_nodes() == (4,)
    assert not tracker.is_singleton()
    assert tracker.conf_state() == ConfState(
        voters=ids(1, 2, 3), learners=ids(4), voters_outgoing=ids(1, 2, 5),
        learners_next=ids(5), auto_leave=True)
    assert str(tracker.config) == ("voters=(1 2 3)&&(1 2 5) learners=(4) learners_next=(5)"
                                   " autoleave")
    assert make_tracker((7,), learners=(8,)).is_singleton()
    assert not make_tracker((7,), outgoing=(7, 8)).is_singleton()


def test_visit_in_id_order() -> None:
    tracker = make_tracker((5, 1, 3), learners=(2,))
    seen: list[NodeId] = []

    def record(node_id: NodeId, pr: Progress) -> None:
        seen.append(node_id)

    tracker.visit(record)
    assert seen == [1, 2, 3, 5]


def test_make_progress() -> None:
    tracker = ProgressTracker(max_inflight_msgs=3, max_inflight_bytes=99)
    pr = tracker.make_progress(Index(8), is_learner=True)
    assert (pr.next, pr.match, pr.is_learner, pr.recent_active) == (8, 0, True, True)
    assert (pr.inflights.capacity, pr.inflights.max_bytes) == (3, 99)


def test_set_config_checks_progress() -> None:
    tracker = make_tracker((1, 2))
    with pytest.raises(AssertionError):  # progress missing for 2
        tracker.set_config(tracker.config, {NodeId(1): tracker.progress[NodeId(1)]})
    config = TrackerConfig(voters=JointConfig(incoming=MajorityConfig.of(ids(1))),
                           learners=ids(2))
    with pytest.raises(AssertionError):  # 2 is a learner but not flagged as one
        tracker.set_config(config, dict(tracker.progress))


@pytest.mark.parametrize("bad", [
    lambda: TrackerConfig(voters=JointConfig(incoming=MajorityConfig.of(ids(1))),
                          learners=ids(1)),
    lambda: TrackerConfig(voters=JointConfig(incoming=MajorityConfig.of(ids(1))),
                          learners_next=ids(2)),
    lambda: TrackerConfig(voters=JointConfig(incoming=MajorityConfig.of(ids(1))),
                          auto_leave=True),
    lambda: TrackerConfig(voters=JointConfig(incoming=MajorityConfig.of(ids(1)),
                                             outgoing=MajorityConfig.of(ids(1, 2))),
                          learners_next=ids(1)),
])
def test_config_rules(bad: Callable[[], object]) -> None:
    with pytest.raises(AssertionError):
        bad()
