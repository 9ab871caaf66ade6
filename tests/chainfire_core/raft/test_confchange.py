"""Conf changes: simple changes, joint consensus, learners, restore; and a
Hypothesis state machine against a plain set model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chainfire_core.errors import InvalidRequest
from chainfire_core.raft.confchange import Changer, ConfChangeError, describe, restore
from chainfire_core.raft.messages import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
)
from chainfire_core.raft.tracker import ProgressMap, ProgressTracker, TrackerConfig
from chainfire_core.types import Index, NodeId

KINDS = {"v": ConfChangeType.ADD_NODE, "l": ConfChangeType.ADD_LEARNER,
         "r": ConfChangeType.REMOVE_NODE}


def cc(text: str) -> tuple[ConfChangeSingle, ...]:
    """etcd's datadriven notation: 'v1 l2 r3' = add voter 1, learner 2, remove 3."""
    return tuple(ConfChangeSingle(type=KINDS[word[0]], node_id=NodeId(int(word[1:])))
                 for word in text.split())


def ids(*values: int) -> tuple[NodeId, ...]:
    return tuple(NodeId(v) for v in values)


class Script:
    """Runs changes against a tracker the way Raft would, installing each result."""

    def __init__(self, last_index: int = 0) -> None:
        self.tracker = ProgressTracker(max_inflight_msgs=4)
        self.last_index = Index(last_index)

    def changer(self) -> Changer:
        return Changer(self.tracker, self.last_index)

    def simple(self, text: str) -> str:
        return self._install(self.changer().simple(cc(text)))

    def enter_joint(self, text: str, auto_leave: bool = False) -> str:
        return self._install(self.changer().enter_joint(auto_leave, cc(text)))

    def leave_joint(self) -> str:
        return self._install(self.changer().leave_joint())

    def _install(self, result: tuple[TrackerConfig, ProgressMap]) -> str:
        config, progress = result
        self.tracker.set_config(config, progress)
        self.tracker.check_invariants()
        return str(config)


# -- simple changes -------------------------------------------------------------


def test_simple_bootstrap_and_progress_lines() -> None:
    script = Script(last_index=0)
    with pytest.raises(ConfChangeError, match="removed all voters"):
        script.simple("l1")
    assert script.simple("v1") == "voters=(1)"
    script.last_index = Index(10)
    assert script.simple("v2 l3") == "voters=(1 2) learners=(3)"
    assert describe(script.tracker.config, script.tracker.progress) == (
        "voters=(1 2) learners=(3)\n"
        "1: StateProbe match=0 next=1\n"
        "2: StateProbe match=0 next=11\n"
        "3: StateProbe match=0 next=11 learner")


def test_simple_safety() -> None:
    # etcd's testdata/simple_safety.txt, in spirit.
    script = Script()
    script.simple("v1")
    script.simple("v2 l3")
    for text, message in [
        ("r1 v5", "more than one voter changed"),
        ("r1 r2", "removed all voters"),
        ("v3 v4", "more than one voter changed"),
        ("l1 v5", "more than one voter changed"),
        ("l1 l2", "removed all voters"),
        ("l2 l3 l4 l5 r1", "removed all voters"),
    ]:
        before = describe(script.tracker.config, script.tracker.progress)
        with pytest.raises(ConfChangeError, match=message):
            script.simple(text)
        assert describe(script.tracker.config, script.tracker.progress) == before
    assert script.simple("r2 l2 l1 v1") == "voters=(1) learners=(2 3)"  # net: voter 2 demoted
    assert script.simple("v2 r3") == "voters=(1 2)"  # promote 2, drop learner 3


def test_promote_learner_keeps_progress() -> None:
    script = Script(last_index=5)
    script.simple("v1")
    script.simple("l2")
    assert script.tracker.progress[NodeId(2)].maybe_update(Index(4))
    assert script.simple("v2") == "voters=(1 2)"
    pr = script.tracker.progress[NodeId(2)]
    assert (pr.match, pr.is_learner) == (4, False)
    assert script.simple("l2") == "voters=(1) learners=(2)"  # demote, progress kept
    assert script.tracker.progress[NodeId(2)].match == 4


def test_remove_unknown_and_repeats_are_noops() -> None:
    script = Script()
    script.simple("v1")
    assert script.simple("r7") == "voters=(1)"
    assert script.simple("v1 v1") == "voters=(1)"
    assert script.simple("l2 l2") == "voters=(1) learners=(2)"
    assert script.simple("r2 r2") == "voters=(1)"


def test_new_progress_is_probing_and_active() -> None:
    script = Script(last_index=41)
    script.simple("v1")
    pr = script.tracker.progress[NodeId(1)]
    assert (pr.next, pr.match, pr.recent_active, pr.is_learner) == (42, 0, True, False)


def test_changer_does_not_mutate_its_tracker() -> None:
    script = Script()
    script.simple("v1")
    script.simple("l2")
    old_config, old_progress = script.tracker.config, script.tracker.progress
    before = describe(old_config, old_progress)
    script.changer().simple(cc("v2"))
    script.changer().enter_joint(True, cc("v3 r1"))
    assert describe(script.tracker.config, script.tracker.progress) == before
    assert script.tracker.progress[NodeId(2)].is_learner
    _, new_progress = script.changer().simple(cc("v2"))
    assert new_progress[NodeId(1)] is not old_progress[NodeId(1)]
    assert new_progress[NodeId(1)].inflights is not old_progress[NodeId(1)].inflights


# -- joint consensus ------------------------------------------------------------


def test_enter_and_leave_joint() -> None:
    script = Script()
    script.simple("v1")
    assert script.enter_joint("v2 v3", auto_leave=True) == "voters=(1 2 3)&&(1) autoleave"
    with pytest.raises(ConfChangeError, match="already joint"):
        script.enter_joint("v4")
    with pytest.raises(ConfChangeError, match="simple config change in joint"):
        script.simple("v4")
    assert script.leave_joint() == "voters=(1 2 3)"
    with pytest.raises(ConfChangeError, match="leave a non-joint"):
        script.leave_joint()


def test_enter_joint_from_zero_voters_is_refused() -> None:
    with pytest.raises(ConfChangeError, match="zero-voter"):
        Script().enter_joint("v1")


def test_joint_replace_all_voters() -> None:
    script = Script()
    for text in ("v1", "v2", "v3"):
        script.simple(text)
    assert script.enter_joint("r1 r2 r3 v4 v5 v6") == "voters=(4 5 6)&&(1 2 3)"
    assert sorted(script.tracker.progress) == [1, 2, 3, 4, 5, 6]  # outgoing kept
    assert script.leave_joint() == "voters=(4 5 6)"
    assert sorted(script.tracker.progress) == [4, 5, 6]
    with pytest.raises(ConfChangeError, match="removed all voters"):
        script.enter_joint("r4 r5 r6")


def test_demoting_a_voter_in_joint_goes_to_learners_next() -> None:
    script = Script()
    script.simple("v1")
    script.simple("v2")
    script.simple("v3")
    assert script.enter_joint("l3 v4") == "voters=(1 2 4)&&(1 2 3) learners_next=(3)"
    pr = script.tracker.progress[NodeId(3)]
    assert not pr.is_learner  # still votes in the outgoing half
    assert script.leave_joint() == "voters=(1 2 4) learners=(3)"
    assert script.tracker.progress[NodeId(3)] .is_learner


def test_learners_next_can_be_undone_within_the_change() -> None:
    script = Script()
    script.simple("v1")
    script.simple("v2")
    assert script.enter_joint("l2 v2") == "voters=(1 2)&&(1 2)"
    script.leave_joint()
    assert script.enter_joint("l2 r2") == "voters=(1)&&(1 2)"
    assert script.leave_joint() == "voters=(1)"
    assert NodeId(2) not in script.tracker.progress


def test_learner_promoted_in_joint() -> None:
    script = Script()
    script.simple("v1")
    script.simple("l2")
    assert script.enter_joint("v2 l1", auto_leave=True) == (
        "voters=(2)&&(1) learners_next=(1) autoleave")
    assert script.leave_joint() == "voters=(2) learners=(1)"


def test_enter_joint_without_changes() -> None:
    script = Script()
    script.simple("v1")
    assert script.enter_joint("") == "voters=(1)&&(1)"
    assert script.leave_joint() == "voters=(1)"


def test_apply_dispatches_like_etcd() -> None:
    script = Script()
    script.simple("v1")
    changer = script.changer()
    config, _ = changer.apply(ConfChange(changes=cc("v2")))
    assert str(config) == "voters=(1 2)"
    config, _ = changer.apply(ConfChange(changes=cc("v2 v3")))
    assert str(config) == "voters=(1 2 3)&&(1) autoleave"
    config, _ = changer.apply(ConfChange(changes=cc("v2"),
                                         transition=ConfChangeTransition.EXPLICIT))
    assert str(config) == "voters=(1 2)&&(1)"
    config, _ = changer.apply(ConfChange(transition=ConfChangeTransition.IMPLICIT))
    assert str(config) == "voters=(1)&&(1) autoleave"
    script.tracker.set_config(*changer.apply(ConfChange(changes=cc("v2 v3"))))
    config, _ = script.changer().apply(ConfChange())
    assert str(config) == "voters=(1 2 3)"


def test_error_is_an_invalid_request() -> None:
    assert issubclass(ConfChangeError, InvalidRequest)


# -- restore --------------------------------------------------------------------


RESTORE_CASES = [
    ConfState(),
    ConfState(voters=ids(1, 2, 3)),
    ConfState(voters=ids(1, 2, 3), learners=ids(4, 5)),
    ConfState(voters=ids(1, 2, 3), voters_outgoing=ids(1, 2, 4, 6), learners=ids(5),
              learners_next=ids(4)),
    ConfState(voters=ids(1, 2, 3), voters_outgoing=ids(1, 2, 3), auto_leave=True),
    ConfState(voters=ids(7), voters_outgoing=ids(8, 9), learners_next=ids(9)),
]


@pytest.mark.parametrize("conf_state", RESTORE_CASES, ids=str)
def test_restore_round_trips(conf_state: ConfState) -> None:
    tracker = ProgressTracker(max_inflight_msgs=4, max_inflight_bytes=100)
    config, progress = restore(conf_state, tracker=tracker, last_index=Index(10))
    tracker.set_config(config, progress)
    tracker.check_invariants()
    assert tracker.conf_state() == conf_state
    assert all(pr.next == 11 for pr in progress.values())


def test_restore_example_rendering() -> None:
    conf_state = RESTORE_CASES[3]
    config, progress = restore(conf_state, tracker=ProgressTracker(4), last_index=Index(0))
    assert describe(config, progress) == (
        "voters=(1 2 3)&&(1 2 4 6) learners=(5) learners_next=(4)\n"
        "1: StateProbe match=0 next=1\n"
        "2: StateProbe match=0 next=1\n"
        "3: StateProbe match=0 next=1\n"
        "4: StateProbe match=0 next=1\n"
        "5: StateProbe match=0 next=1 learner\n"
        "6: StateProbe match=0 next=1")


@pytest.mark.parametrize("conf_state", [
    ConfState(learners=ids(1)),  # learners without voters
    ConfState(voters=ids(1), auto_leave=True),  # auto-leave without a joint config
    ConfState(voters=ids(1), learners_next=ids(2)),  # learner-to-be that is no voter
    ConfState(voters=ids(1), voters_outgoing=ids(2), learners=ids(2)),  # learner and voter
    ConfState(voters_outgoing=ids(1)),  # joint with no incoming voters
])
def test_restore_refuses_invalid_conf_states(conf_state: ConfState) -> None:
    tracker = ProgressTracker(4)
    with pytest.raises(ConfChangeError):
        restore(conf_state, tracker=tracker, last_index=Index(0))
    assert tracker.conf_state() == ConfState()


@st.composite
def conf_states(draw: st.DrawFn) -> ConfState:
    """Valid conf states, drawn the way etcd's restore test draws them."""
    pool = draw(st.permutations(range(1, 13)))
    voters = set(pool[:draw(st.integers(1, 4))])
    rest = pool[len(voters):]
    learners = set(rest[:draw(st.integers(0, 3))])
    rest = rest[len(learners):]
    joint = draw(st.booleans())
    outgoing: set[int] = set()
    learners_next: set[int] = set()
    if joint:
        outgoing = set(draw(st.sets(st.sampled_from(sorted(voters)))))
        removed = set(rest[:draw(st.integers(0, 3))])
        learners_next = set(draw(st.sets(st.sampled_from(sorted(removed))))) if removed else set()
        outgoing |= removed
        joint = bool(outgoing)
    return ConfState(voters=ids(*sorted(voters)), learners=ids(*sorted(learners)),
                     voters_outgoing=ids(*sorted(outgoing)),
                     learners_next=ids(*sorted(learners_next)),
                     auto_leave=joint and draw(st.booleans()))


@given(conf_states())
def test_restore_round_trips_random(conf_state: ConfState) -> None:
    tracker = ProgressTracker(4)
    tracker.set_config(*restore(conf_state, tracker=tracker, last_index=Index(3)))
    tracker.check_invariants()
    assert tracker.conf_state() == conf_state


# -- random change sequences against a model -------------------------------------


class Model:
    """Membership as plain sets, with etcd's rules spelled out directly."""

    def __init__(self) -> None:
        self.incoming: set[int] = set()
        self.outgoing: set[int] = set()
        self.learners: set[int] = set()
        self.learners_next: set[int] = set()
        self.auto_leave = False

    def copy(self) -> Model:
        twin = Model()
        twin.incoming, twin.outgoing = set(self.incoming), set(self.outgoing)
        twin.learners, twin.learners_next = set(self.learners), set(self.learners_next)
        twin.auto_leave = self.auto_leave
        return twin

    def members(self) -> set[int]:
        return self.incoming | self.outgoing | self.learners | self.learners_next

    def change(self, kind: ConfChangeType, node_id: int) -> None:
        if kind == ConfChangeType.ADD_NODE:
            self.learners.discard(node_id)
            self.learners_next.discard(node_id)
            self.incoming.add(node_id)
        elif kind == ConfChangeType.REMOVE_NODE:
            for group in (self.incoming, self.learners, self.learners_next):
                group.discard(node_id)
        elif node_id not in self.learners:  # a voter (of either half) or a stranger
            self.incoming.discard(node_id)
            self.learners_next.discard(node_id)
            if node_id in self.outgoing:
                self.learners_next.add(node_id)
            else:
                self.learners.add(node_id)

    def conf_state(self) -> ConfState:
        return ConfState(voters=ids(*sorted(self.incoming)), learners=ids(*sorted(self.learners)),
                         voters_outgoing=ids(*sorted(self.outgoing)),
                         learners_next=ids(*sorted(self.learners_next)),
                         auto_leave=self.auto_leave)


changes_st = st.lists(
    st.builds(lambda kind, node_id: ConfChangeSingle(type=kind, node_id=NodeId(node_id)),
              st.sampled_from(list(ConfChangeType)), st.integers(1, 6)),
    max_size=4).map(tuple)


class ConfChangeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tracker = ProgressTracker(max_inflight_msgs=2)
        self.model = Model()
        self.last_index = Index(0)

    def _attempt(self, op: str, changes: tuple[ConfChangeSingle, ...], auto_leave: bool,
                 expect_error: bool) -> None:
        removed = {c.node_id for c in changes if c.type == ConfChangeType.REMOVE_NODE}
        matches = {node_id: pr.match for node_id, pr in self.tracker.progress.items()
                   if node_id not in removed}
        changer = Changer(self.tracker, self.last_index)
        try:
            if op == "simple":
                result = changer.simple(changes)
            elif op == "enter":
                result = changer.enter_joint(auto_leave, changes)
            else:
                result = changer.leave_joint()
        except ConfChangeError:
            assert expect_error
            return
        assert not expect_error
        self.tracker.set_config(*result)
        for node_id, pr in self.tracker.progress.items():  # survivors keep their progress
            if node_id not in removed:
                assert pr.match == matches.get(node_id, 0)

    @rule(changes=changes_st)
    def simple(self, changes: tuple[ConfChangeSingle, ...]) -> None:
        before = self.model.incoming.copy()
        trial = self.model.copy()
        for change in changes:
            trial.change(change.type, change.node_id)
        bad = (bool(self.model.outgoing) or not trial.incoming
               or len(before ^ trial.incoming) > 1)
        self._attempt("simple", changes, False, bad)
        if not bad:
            self.model = trial

    @rule(changes=changes_st, auto_leave=st.booleans())
    def enter_joint(self, changes: tuple[ConfChangeSingle, ...], auto_leave: bool) -> None:
        bad = bool(self.model.outgoing) or not self.model.incoming
        trial = self.model.copy()
        if not bad:
            trial.outgoing = set(trial.incoming)
            for change in changes:
                trial.change(change.type, change.node_id)
            trial.auto_leave = auto_leave
            bad = not trial.incoming
        self._attempt("enter", changes, auto_leave, bad)
        if not bad:
            self.model = trial

    @rule()
    def leave_joint(self) -> None:
        bad = not self.model.outgoing
        self._attempt("leave", (), False, bad)
        if not bad:
            self.model.learners |= self.model.learners_next
            self.model.learners_next = set()
            self.model.outgoing = set()
            self.model.auto_leave = False

    @rule(node_id=st.integers(1, 6), match=st.integers(1, 20))
    def ack(self, node_id: int, match: int) -> None:
        pr = self.tracker.progress.get(NodeId(node_id))
        if pr is not None:
            pr.maybe_update(Index(match))
        self.last_index = Index(max(self.last_index, match))

    @invariant()
    def agrees_with_model(self) -> None:
        self.tracker.check_invariants()
        conf_state = self.tracker.conf_state()
        assert conf_state == self.model.conf_state()
        assert not set(conf_state.voters) & set(conf_state.learners)
        assert not set(conf_state.voters_outgoing) & set(conf_state.learners)
        assert set(conf_state.learners_next) <= set(conf_state.voters_outgoing)
        assert sorted(self.tracker.progress) == sorted(self.model.members())

    @invariant()
    def restores_to_the_same_config(self) -> None:
        config, progress = restore(self.tracker.conf_state(), tracker=self.tracker,
                                   last_index=self.last_index)
        assert config == self.tracker.config
        assert sorted(progress) == sorted(self.tracker.progress)


ConfChangeMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=30,
                                               deadline=None)
TestConfChangeMachine = ConfChangeMachine.TestCase
