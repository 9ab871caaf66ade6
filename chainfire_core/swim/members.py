"""The member table: what one member believes about every other one.

Theory of operation
-------------------
Each known member has a state (alive, suspect, dead, left) at an
incarnation number. Only the member itself raises its incarnation (to
refute a suspicion, or when it leaves), so a higher incarnation is newer
news. `overrides(update, current)` is SWIM's precedence table (section 4.2
of the paper), extended with `Left`:

    update            applies when the current record is ...
    Alive(i)          unknown, or any state at an incarnation < i
    Suspect(i)        alive at <= i, or suspect at < i
    Dead(i)           alive or suspect at <= i
    Left(i)           alive, suspect or dead at <= i

A `Suspect` at the same incarnation as a current suspicion is not an
override but a confirmation (Lifeguard counts those; suspicion.py). News
about an unknown member only counts if it is an `Alive`: a rumour of the
death of someone never met adds nothing.

Dead and departed members stay in the table (bounded by `max_members`) so
that a stale `Alive` from before the death cannot resurrect them; a member
that really comes back does so with a higher incarnation.

The table also keeps the probe order: SWIM's randomized round-robin. Each
pass visits every live member once in a freshly shuffled order, and a member
that joins mid-pass is inserted at a random place among those not yet
visited; this bounds the time until a given member probes a failed one to
2n - 1 periods (SWIM section 4.3) instead of leaving it to chance.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainfire_core.swim.messages import (
    Alive,
    Dead,
    Incarnation,
    Left,
    MemberState,
    Suspect,
    Update,
)
from chainfire_core.swim.rng import RandomSource, shuffle
from chainfire_core.types import NodeId

LIVE_STATES = (MemberState.ALIVE, MemberState.SUSPECT)


@dataclass(slots=True)
class Member:
    id: NodeId
    state: MemberState
    incarnation: Incarnation
    address: str
    since_ms: int


def overrides(update: Update, current: Member | None) -> bool:
    """Does `update` replace what is known (`current`)? The table above."""
    if current is None:
        return isinstance(update, Alive)
    state, known = current.state, current.incarnation
    match update:
        case Alive(incarnation=incarnation):
            return incarnation > known
        case Suspect(incarnation=incarnation):
            if state == MemberState.ALIVE:
                return incarnation >= known
            return state == MemberState.SUSPECT and incarnation > known
        case Dead(incarnation=incarnation):
            return state in LIVE_STATES and incarnation >= known
        case Left(incarnation=incarnation):
            return state != MemberState.LEFT and incarnation >= known


def state_of(update: Update) -> MemberState:
    match update:
        case Alive():
            return MemberState.ALIVE
        case Suspect():
            return MemberState.SUSPECT
        case Dead():
            return MemberState.DEAD
        case Left():
            return MemberState.LEFT


class MemberTable:
    """Every member but oneself, and the probe order over the live ones."""

    def __init__(self, self_id: NodeId, rng: RandomSource, max_members: int) -> None:
        self.self_id = self_id
        self.rng = rng
        self.max_members = max_members
        self._members: dict[NodeId, Member] = {}
        self._live = 0
        self._order: list[NodeId] = []
        self._cursor = 0

    def __len__(self) -> int:
        return len(self._members)

    def get(self, member: NodeId) -> Member | None:
        return self._members.get(member)

    @property
    def live_count(self) -> int:
        """Alive or suspect members, oneself included: the group size n."""
        return self._live + 1

    @property
    def full(self) -> bool:
        return len(self._members) >= self.max_members

    def ids(self) -> list[NodeId]:
        return sorted(self._members)

    def ids_in(self, *states: MemberState) -> list[NodeId]:
        return [m for m in sorted(self._members) if self._members[m].state in states]

    def apply(self, update: Update, now_ms: int) -> tuple[Member | None, Member]:
        """Record `update` (which must override); the previous record (a
        copy, None if new) and the new one."""
        assert update.member != self.self_id, "the table never holds oneself"
        current = self._members.get(update.member)
        assert overrides(update, current), f"{update} does not override {current}"
        previous = None
        if current is None:
            assert not self.full, "the caller checks the member bound"
            current = Member(id=update.member, state=MemberState.ALIVE,
                             incarnation=update.incarnation, address="", since_ms=now_ms)
            self._members[update.member] = current
            self._insert_in_order(update.member)
        else:
            previous = Member(id=current.id, state=current.state,
                              incarnation=current.incarnation, address=current.address,
                              since_ms=current.since_ms)
            if current.state in LIVE_STATES:
                self._live -= 1
        new_state = state_of(update)
        if previous is None or previous.state != new_state:
            current.since_ms = now_ms
        current.state = new_state
        current.incarnation = update.incarnation
        if isinstance(update, Alive):
            current.address = update.address
            if previous is not None and previous.state not in LIVE_STATES:
                self._insert_in_order(update.member)
        if new_state in LIVE_STATES:
            self._live += 1
        return previous, current

    # -- probe order ---------------------------------------------------------------

    def next_probe_target(self) -> NodeId | None:
        """The next live member in the randomized round-robin, None if none."""
        for _ in range(len(self._order) + 2):
            if self._cursor >= len(self._order):
                self._order = self.ids_in(*LIVE_STATES)
                shuffle(self.rng, self._order)
                self._cursor = 0
                if not self._order:
                    return None
            member = self._order[self._cursor]
            self._cursor += 1
            record = self._members.get(member)
            if record is not None and record.state in LIVE_STATES:
                return member
        return None

    def _insert_in_order(self, member: NodeId) -> None:
        if member in self._order[self._cursor:]:
            return
        position = self.rng.randrange(self._cursor, len(self._order) + 1)
        self._order.insert(position, member)

    def check_invariants(self) -> None:
        live = sum(1 for m in self._members.values() if m.state in LIVE_STATES)
        assert live == self._live, (live, self._live)
        assert self.self_id not in self._members
        assert len(self._members) <= self.max_members
        assert 0 <= self._cursor <= len(self._order)
        for member_id, member in self._members.items():
            assert member.id == member_id and member.incarnation >= 0


__all__ = ["LIVE_STATES", "Member", "MemberTable", "overrides", "state_of"]
