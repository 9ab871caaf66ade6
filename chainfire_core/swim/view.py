"""GroupView: how one member folds gossip into its view of the group.

Theory of operation
-------------------
This is the dissemination and suspicion half of a SWIM member (node.py is
the failure detector half and drives it). `apply(update)` is the one place
news enters the view:

* News about oneself is answered, not recorded: a `Suspect`, `Dead` or
  `Left` at or above one's incarnation is refuted by raising the
  incarnation past it and gossiping `Alive` (the refutation of SWIM section
  4.2), which also costs a point of local health (Lifeguard). An `Alive`
  above one's own (a previous life of this member) is overtaken the same
  way, without the penalty. The refutation also goes straight to the
  accuser named in the accusation (`refute_to_accuser`): the member whose
  timer started first is the one that most needs it, and gossip alone
  reaches a given member only with high probability. An accusation below
  one's incarnation (already refuted) renews the refutation's gossip.
* News about another member either overrides the record (members.py has
  the precedence table), is a confirmation of a suspicion already held
  (same incarnation, new accuser: Lifeguard shortens the timeout and
  re-gossips it), or is stale and dropped.
* An override is queued for piggybacking, starts or ends a suspicion, and
  becomes one member event for the cluster event handler.

A suspicion's timer (suspicion.py) declares the member `Dead` if it is still
suspected at the same incarnation when the (possibly shortened) timeout
runs out; a refutation (`Alive` at a higher incarnation) ends it first.
"""

from __future__ import annotations

from chainfire_core.swim.broadcast import BroadcastQueue
from chainfire_core.swim.config import SwimConfig
from chainfire_core.swim.members import MemberTable, overrides
from chainfire_core.swim.messages import (
    MAX_INCARNATION,
    Alive,
    Dead,
    Incarnation,
    Left,
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspected,
    SelfRefuted,
    Suspect,
    SwimMessage,
    Update,
)
from chainfire_core.swim.suspicion import Suspicion, suspicion_bounds_ms
from chainfire_core.swim.timers import TimerKind, Timers
from chainfire_core.types import NodeId


class GroupView:
    def __init__(self, config: SwimConfig, table: MemberTable, broadcasts: BroadcastQueue,
                 now_ms: int) -> None:
        self.config = config
        self.id = config.member_id
        self.table = table
        self.broadcasts = broadcasts
        self.now_ms = now_ms
        self.incarnation = Incarnation(0)
        self.left = False
        self.suspicions: dict[NodeId, Suspicion] = {}
        self.timers = Timers()
        self.outbox: list[SwimMessage] = []
        self.events: list[MemberEvent] = []

    def _set_clock(self, now_ms: int) -> None:
        assert now_ms >= self.now_ms, f"time went backwards: {now_ms} < {self.now_ms}"
        self.now_ms = now_ms

    # -- news in -----------------------------------------------------------------

    def merge(self, updates: tuple[Update, ...]) -> None:
        for update in updates:
            self.apply(update)

    def apply(self, update: Update) -> None:
        if update.member == self.id:
            self._about_self(update)
            return
        current = self.table.get(update.member)
        if isinstance(update, Suspect) and current is not None and (
                current.state == MemberState.SUSPECT
                and current.incarnation == update.incarnation):
            self._confirm(update)
            return
        if not overrides(update, current) or (current is None and self.table.full):
            return
        previous, record = self.table.apply(update, self.now_ms)
        self.broadcasts.enqueue(update)
        self.suspicions.pop(update.member, None)
        now = self.now_ms
        match update:
            case Alive():
                if previous is None:
                    self.events.append(MemberJoined(member=update.member,
                                                    incarnation=update.incarnation,
                                                    address=update.address, at_ms=now))
                elif previous.state != MemberState.ALIVE:
                    self.events.append(MemberAlive(member=update.member,
                                                   incarnation=update.incarnation, at_ms=now))
            case Suspect():
                self._start_suspicion(update)
                self.events.append(MemberSuspected(member=update.member,
                                                   incarnation=update.incarnation,
                                                   accuser=update.accuser, at_ms=now))
            case Dead():
                self.events.append(MemberDead(member=update.member, incarnation=update.incarnation,
                                              accuser=update.accuser, at_ms=now))
            case Left():
                self.events.append(MemberLeft(member=update.member, incarnation=update.incarnation,
                                              at_ms=now))
        assert record.incarnation == update.incarnation

    def _about_self(self, update: Update) -> None:
        if self.left:
            return
        match update:
            case Alive(incarnation=incarnation):
                if incarnation > self.incarnation:
                    self._refute(incarnation, penalize=False, accuser=None)
            case Suspect(incarnation=incarnation, accuser=accuser) | Dead(
                    incarnation=incarnation, accuser=accuser):
                if incarnation >= self.incarnation:
                    self._refute(incarnation, penalize=True, accuser=accuser)
                else:
                    self._repeat_refutation()
            case Left(incarnation=incarnation):
                if incarnation >= self.incarnation:
                    self._refute(incarnation, penalize=False, accuser=None)
                else:
                    self._repeat_refutation()

    def _repeat_refutation(self) -> None:
        """Someone still holds an accusation this member already refuted
        (the refutation's gossip ran out before reaching it). Gossip the
        current incarnation again: it rides first on the answer to that
        very message, and stale views heal instead of lasting forever."""
        self.broadcasts.enqueue(Alive(member=self.id, incarnation=self.incarnation,
                                      address=self.config.address))

    def _refute(self, incarnation: int, *, penalize: bool, accuser: NodeId | None) -> None:
        if incarnation >= MAX_INCARNATION:
            return  # cannot be overtaken (only a forged message gets here)
        self.incarnation = Incarnation(incarnation + 1)
        self.broadcasts.enqueue(Alive(member=self.id, incarnation=self.incarnation,
                                      address=self.config.address))
        self.events.append(SelfRefuted(incarnation=self.incarnation, at_ms=self.now_ms))
        self.on_refuted(penalize=penalize, accuser=accuser)

    def on_refuted(self, *, penalize: bool, accuser: NodeId | None) -> None:
        """Hook: this member refuted an accusation made by `accuser` (node.py
        charges local health and answers the accuser directly)."""

    # -- suspicion -------------------------------------------------------------------

    def _start_suspicion(self, update: Suspect) -> None:
        low, high = suspicion_bounds_ms(self.config, self.table.live_count)
        suspicion = Suspicion(member=update.member, incarnation=update.incarnation,
                              started_ms=self.now_ms, low_ms=low, high_ms=high,
                              expected=self.config.suspicion_confirmations,
                              accusers=[update.accuser])
        self.suspicions[update.member] = suspicion
        self.timers.add(suspicion.deadline_ms, TimerKind.SUSPICION, update.member)

    def _confirm(self, update: Suspect) -> None:
        suspicion = self.suspicions[update.member]
        if not suspicion.confirm(update.accuser):
            return
        self.timers.add(max(self.now_ms, suspicion.deadline_ms), TimerKind.SUSPICION,
                        update.member)
        if self.config.dynamic_suspicion:
            # Lifeguard: pass independent confirmations on, so others shorten theirs.
            self.broadcasts.enqueue(update)

    def expire_suspicion(self, member: NodeId) -> None:
        """A suspicion timer went off: declare `member` dead if it is due."""
        suspicion = self.suspicions.get(member)
        if suspicion is None or suspicion.deadline_ms > self.now_ms:
            return
        self.apply(Dead(member=member, incarnation=suspicion.incarnation, accuser=self.id))

    # -- news out -----------------------------------------------------------------------

    def tell_directly(self, to: NodeId) -> Update | None:
        """What `to` must hear about itself: that it is believed dead, or
        (buddy system) suspected, so it can refute at once."""
        record = self.table.get(to)
        if record is None:
            return None
        if record.state == MemberState.DEAD:
            return Dead(member=to, incarnation=record.incarnation, accuser=self.id)
        if record.state == MemberState.SUSPECT and self.config.buddy_system:
            return Suspect(member=to, incarnation=record.incarnation, accuser=self.id)
        return None

    def snapshot(self, *, first: NodeId) -> tuple[Update, ...]:
        """This member's whole view as updates (for a join answer): what is
        known of `first` (the joiner) first, then oneself, then by id."""
        own: Update = (Left(member=self.id, incarnation=self.incarnation) if self.left else
                       Alive(member=self.id, incarnation=self.incarnation,
                             address=self.config.address))
        others = [first, *(m for m in self.table.ids() if m != first)]
        updates = [u for u in (self._record_update(m) for m in others) if u is not None]
        if updates and updates[0].member == first:
            updates.insert(1, own)
        else:
            updates.insert(0, own)
        return tuple(updates[:self.config.max_join_ack_members])

    def _record_update(self, member: NodeId) -> Update | None:
        record = self.table.get(member)
        if record is None:
            return None
        incarnation = record.incarnation
        match record.state:
            case MemberState.ALIVE:
                return Alive(member=member, incarnation=incarnation, address=record.address)
            case MemberState.SUSPECT:
                return Suspect(member=member, incarnation=incarnation, accuser=self.id)
            case MemberState.DEAD:
                return Dead(member=member, incarnation=incarnation, accuser=self.id)
            case MemberState.LEFT:
                return Left(member=member, incarnation=incarnation)

    def check_invariants(self) -> None:
        self.table.check_invariants()
        self.broadcasts.check_invariants()
        assert self.incarnation >= 0
        for member, suspicion in self.suspicions.items():
            record = self.table.get(member)
            assert record is not None and record.state == MemberState.SUSPECT, member
            assert record.incarnation == suspicion.incarnation
            suspicion.check_invariants()
        for member in self.table.ids_in(MemberState.SUSPECT):
            assert member in self.suspicions, member


__all__ = ["GroupView"]
