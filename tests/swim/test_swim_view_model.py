"""GroupView against a plain model: any sequence of gossip (updates about
others and about oneself, in any order, stale or not) and ticks keeps the
invariants, and the view agrees with a reference model of SWIM's precedence
rules after every step."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chainfire_core.swim import (
    Alive,
    Dead,
    Incarnation,
    Left,
    MemberState,
    Ping,
    Suspect,
    SwimConfig,
    SwimNode,
    Update,
)
from chainfire_core.types import NodeId

ME, OTHERS = NodeId(1), (2, 3, 4)
RANK = {MemberState.ALIVE: 0, MemberState.SUSPECT: 1, MemberState.DEAD: 2, MemberState.LEFT: 3}


def model_wins(update: Update, state: MemberState, known: int) -> bool:
    """SWIM's precedence, written independently of members.py: a higher
    incarnation always wins unless the record is final at a newer one; at
    the same incarnation a 'worse' state wins (suspect > alive, dead >
    suspect, left > dead); Alive needs a strictly higher incarnation."""
    new = {Alive: MemberState.ALIVE, Suspect: MemberState.SUSPECT, Dead: MemberState.DEAD,
           Left: MemberState.LEFT}[type(update)]
    if isinstance(update, Alive):
        return update.incarnation > known
    if state == MemberState.LEFT or (state == MemberState.DEAD and new != MemberState.LEFT):
        return False
    if update.incarnation > known:
        return True
    return update.incarnation == known and RANK[new] > RANK[state]


class ViewMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        config = SwimConfig(member_id=ME)
        self.node = SwimNode(config, random.Random(0), first_probe_ms=10**9,
                             members=[(NodeId(m), "") for m in OTHERS])
        self.now_ms = 0
        self.model = dict.fromkeys(OTHERS, (MemberState.ALIVE, 0))
        self.own = 0

    def _deliver(self, update: Update) -> None:
        self.now_ms += 1
        self.node.step(Ping(sender=NodeId(2), to=ME, seq=1, updates=(update,)), self.now_ms)
        self.node.advance(self.node.ready())

    @rule(member=st.sampled_from(OTHERS), kind=st.sampled_from("asdl"),
          incarnation=st.integers(0, 4), accuser=st.sampled_from((2, 3, 4)))
    def gossip_about_another(self, member: int, kind: str, incarnation: int,
                             accuser: int) -> None:
        update = self._update(member, kind, incarnation, accuser)
        state, known = self.model[member]
        if model_wins(update, state, known):
            self.model[member] = ({"a": MemberState.ALIVE, "s": MemberState.SUSPECT,
                                   "d": MemberState.DEAD, "l": MemberState.LEFT}[kind],
                                  incarnation)
        self._deliver(update)

    @rule(kind=st.sampled_from("asdl"), incarnation=st.integers(0, 6))
    def gossip_about_me(self, kind: str, incarnation: int) -> None:
        update = self._update(ME, kind, incarnation, 3)
        accusation = kind in "sdl" and incarnation >= self.own
        overtaken = kind == "a" and incarnation > self.own
        if accusation or overtaken:
            self.own = incarnation + 1
        self._deliver(update)

    @rule(step_ms=st.integers(1, 60_000))
    def time_passes(self, step_ms: int) -> None:
        # Suspicions may expire into Dead: the model follows the view there.
        self.now_ms += step_ms
        self.node.tick(self.now_ms)
        self.node.advance(self.node.ready())
        for member in OTHERS:
            view = self.node.member(NodeId(member))
            assert view is not None
            state, known = self.model[member]
            if state == MemberState.SUSPECT and view.state == MemberState.DEAD:
                assert view.incarnation == known
                self.model[member] = (MemberState.DEAD, known)

    @staticmethod
    def _update(member: int, kind: str, incarnation: int, accuser: int) -> Update:
        inc, who = Incarnation(incarnation), NodeId(member)
        if kind == "a":
            return Alive(member=who, incarnation=inc)
        if kind == "s":
            return Suspect(member=who, incarnation=inc, accuser=NodeId(accuser))
        if kind == "d":
            return Dead(member=who, incarnation=inc, accuser=NodeId(accuser))
        return Left(member=who, incarnation=inc)

    @invariant()
    def agrees_with_the_model(self) -> None:
        self.node.check_invariants()
        assert self.node.incarnation == self.own
        for member in OTHERS:
            view = self.node.member(NodeId(member))
            assert view is not None
            assert (view.state, view.incarnation) == self.model[member], member


ViewMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                         deadline=None)
test_view_matches_the_model = ViewMachine.TestCase
