"""SwimNode: one SWIM member with Lifeguard, behind a Ready-style API.

Theory of operation
-------------------
Inputs are method calls, each with the driver's current time in integer
milliseconds (never decreasing): `tick(now_ms)` when `next_deadline_ms()`
has come, `step(message, now_ms)` for each message received, and
`join(seeds, now_ms)` / `leave(now_ms)`. Nothing is sent or reported by the
node itself; the driver follows these steps:

1. `ready()` returns a `SwimReady`: the messages to send (best effort, in
   order, each to `message.to`) and the member events for the cluster event
   handler (and metrics). Gossip only informs: the handler may alert an
   operator or suggest a membership change, never make one.
2. Send the messages and hand over the events.
3. `advance(ready)`.
4. Sleep until `next_deadline_ms()` or the next message, whichever first.

The protocol, one period at a time (`protocol_period_ms`, stretched by the
local health multiplier):

* Probe the next member of the randomized round-robin with a `Ping`. No
  `Ack` within `probe_timeout_ms` (stretched too): ask `indirect_probes`
  random alive members to probe it with a `PingReq`; they relay its `Ack`
  or, with Lifeguard's nacks, answer `Nack` after `nack_timeout_ms`.
* No ack by the end of the period: suspect the target (`Suspect` at its
  known incarnation). Whoever holds a suspicion declares the member `Dead`
  when its suspicion timeout (suspicion.py) expires first.
* A member that hears itself suspected or declared dead refutes: it raises
  its incarnation past the accusation and gossips `Alive`.
* Updates ride piggybacked on pings, ping-reqs and acks (broadcast.py).
  A ping to a suspect carries the suspicion first (Lifeguard's buddy
  system); any message to a member believed dead carries its death, so a
  falsely declared member always gets the chance to refute.
* Local health (health.py) rises with failed probes, missed nacks and
  refutations, and falls with acknowledged probes.

Time and randomness are injected: the `RandomSource` handed in (a
`random.Random` child, in practice; rng.py) draws the first probe's phase,
the probe order and the ping-req relays, and nothing else draws entropy.
Iteration is over sorted ids; the same inputs give the same outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

from chainfire_core.errors import InvalidRequest
from chainfire_core.swim.broadcast import BroadcastQueue, retransmit_limit
from chainfire_core.swim.config import SwimConfig
from chainfire_core.swim.health import LocalHealth
from chainfire_core.swim.members import LIVE_STATES, MemberTable
from chainfire_core.swim.messages import (
    Ack,
    Alive,
    Incarnation,
    Join,
    JoinAck,
    Left,
    MemberEvent,
    MemberState,
    Nack,
    Ping,
    PingReq,
    Suspect,
    SwimMessage,
    Update,
)
from chainfire_core.swim.rng import RandomSource, sample
from chainfire_core.swim.timers import TimerKind
from chainfire_core.swim.view import GroupView
from chainfire_core.types import NodeId

MAX_SEQ_MASK = (1 << 32) - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class SwimReady:
    messages: tuple[SwimMessage, ...]
    events: tuple[MemberEvent, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberView:
    member: NodeId
    state: MemberState
    incarnation: Incarnation
    address: str
    since_ms: int


@dataclass(slots=True)
class SwimStats:
    probes: int = 0
    probes_failed: int = 0
    ping_reqs_sent: int = 0
    relays: int = 0
    relays_dropped: int = 0
    nacks_sent: int = 0
    nacks_received: int = 0
    refutations: int = 0


@dataclass(slots=True, kw_only=True)
class _Probe:
    target: NodeId
    seq: int
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True, kw_only=True)
class _Relay:
    requester: NodeId
    requester_seq: int


class SwimNode(GroupView):
    """One SWIM member. See the module docstring."""

    def __init__(self, config: SwimConfig, rng: RandomSource, *, now_ms: int = 0,
                 members: Sequence[tuple[NodeId, str]] = (),
                 first_probe_ms: int | None = None) -> None:
        table = MemberTable(config.member_id, rng, config.max_members)
        super().__init__(config, table, BroadcastQueue(config.max_members), now_ms)
        self.rng = rng
        self.health = LocalHealth(config.local_health_max, enabled=config.local_health)
        self.stats = SwimStats()
        self._seq = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._join_seeds: tuple[NodeId, ...] = ()
        self._join_attempts = 0
        for member, address in sorted(members):
            if member != self.id and not table.full:
                table.apply(Alive(member=member, incarnation=Incarnation(0), address=address),
                            now_ms)
        if first_probe_ms is None:
            first_probe_ms = now_ms + rng.randrange(0, config.protocol_period_ms)
        assert first_probe_ms >= now_ms
        self.timers.add(first_probe_ms, TimerKind.PROBE_START, 0)

    # -- inputs --------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Run every timer due at `now_ms`."""
        self._set_clock(now_ms)
        # Handlers only add timers in the future, so this visits each due one once.
        for _ in range(len(self.timers)):
            due = self.timers.pop_due(now_ms)
            if due is None:
                break
            self._fire(*due)

    def step(self, message: SwimMessage, now_ms: int) -> None:
        """Handle one message received from the network."""
        self._set_clock(now_ms)
        if message.to != self.id:
            return  # misdelivered: not ours to answer
        match message:
            case Ping():
                self.merge(message.updates)
                self._send(Ack(sender=self.id, to=message.sender, seq=message.seq,
                               updates=self._piggyback(message.sender)))
            case PingReq():
                self.merge(message.updates)
                self._relay(message)
            case Ack():
                self.merge(message.updates)
                self._on_ack(message)
            case Nack():
                probe = self._probe
                if probe is not None and probe.seq == message.seq:
                    probe.nacks += 1
                    self.stats.nacks_received += 1
            case Join():
                self.apply(Alive(member=message.sender, incarnation=message.incarnation,
                                 address=message.address))
                self._send(JoinAck(sender=self.id, to=message.sender,
                                   updates=self.snapshot(first=message.sender)))
            case JoinAck():
                self._join_seeds = ()
                self.merge(message.updates)
            case _:
                assert_never(message)

    def join(self, seeds: Sequence[NodeId], now_ms: int) -> None:
        """Contact `seeds` until one answers with its view (retried each period)."""
        self._set_clock(now_ms)
        chosen = tuple(sorted(set(seeds) - {self.id}))
        if not chosen:
            raise InvalidRequest("swim: join needs at least one seed other than oneself")
        self._join_seeds = chosen
        self._join_attempts = 0
        self._send_joins()

    def leave(self, now_ms: int) -> None:
        """Leave the group: stop probing and gossip `Left` (keep answering
        pings for a few periods before stopping, so the news spreads)."""
        self._set_clock(now_ms)
        if self.left:
            return
        self.left = True
        self._probe = None
        self.incarnation = Incarnation(self.incarnation + 1)
        self.broadcasts.enqueue(Left(member=self.id, incarnation=self.incarnation))
        alive = self.table.ids_in(MemberState.ALIVE)
        for member in sample(self.rng, alive, self.config.indirect_probes + 1):
            self._send(Ping(sender=self.id, to=member, seq=self._next_seq(),
                            updates=self._piggyback(member)))

    # -- outputs ---------------------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(self.outbox or self.events)

    def ready(self) -> SwimReady:
        return SwimReady(messages=tuple(self.outbox), events=tuple(self.events))

    def advance(self, ready: SwimReady) -> None:
        """`ready`'s messages were sent and its events handed over."""
        assert tuple(self.outbox[:len(ready.messages)]) == ready.messages
        del self.outbox[:len(ready.messages)]
        del self.events[:len(ready.events)]

    def next_deadline_ms(self) -> int | None:
        """When `tick` must next be called (None: only a message can wake it)."""
        return self.timers.next_deadline_ms()

    # -- inspection ----------------------------------------------------------------------

    @property
    def group_size(self) -> int:
        return self.table.live_count

    def members(self) -> tuple[MemberView, ...]:
        """Every member known but oneself, by id."""
        return tuple(view for view in (self.member(m) for m in self.table.ids())
                     if view is not None)

    def member(self, member: NodeId) -> MemberView | None:
        record = self.table.get(member)
        if record is None:
            return None
        return MemberView(member=record.id, state=record.state, incarnation=record.incarnation,
                          address=record.address, since_ms=record.since_ms)

    def check_invariants(self) -> None:
        super().check_invariants()
        self.health.check_invariants()
        assert len(self._relays) <= self.config.max_pending_relays
        assert self._probe is None or self._probe.target != self.id

    # -- timers ----------------------------------------------------------------------------

    def _fire(self, kind: TimerKind, key: int) -> None:
        match kind:
            case TimerKind.PROBE_START:
                self._start_probe()
            case TimerKind.PROBE_TIMEOUT:
                self._probe_indirectly(key)
            case TimerKind.PROBE_END:
                self._end_probe(key)
            case TimerKind.RELAY_NACK:
                relay = self._relays.get(key)
                if relay is not None:
                    self.stats.nacks_sent += 1
                    self._send(Nack(sender=self.id, to=relay.requester, seq=relay.requester_seq))
            case TimerKind.RELAY_END:
                self._relays.pop(key, None)
            case TimerKind.SUSPICION:
                self.expire_suspicion(NodeId(key))
            case TimerKind.JOIN_RETRY:
                if self._join_seeds:
                    self._send_joins()
            case _:
                assert_never(kind)

    def _start_probe(self) -> None:
        config, now = self.config, self.now_ms
        if self._probe is not None:
            self._end_probe(self._probe.seq)
        period_ms = self.health.scale(config.protocol_period_ms)
        target = None if self.left else self.table.next_probe_target()
        if target is not None:
            seq = self._next_seq()
            self._probe = _Probe(target=target, seq=seq)
            self.stats.probes += 1
            self._send(Ping(sender=self.id, to=target, seq=seq, updates=self._piggyback(target)))
            self.timers.add(now + self.health.scale(config.probe_timeout_ms),
                            TimerKind.PROBE_TIMEOUT, seq)
            self.timers.add(now + period_ms, TimerKind.PROBE_END, seq)
        self.timers.add(now + period_ms, TimerKind.PROBE_START, 0)

    def _probe_indirectly(self, seq: int) -> None:
        probe = self._probe
        if probe is None or probe.seq != seq:
            return
        candidates = [m for m in self.table.ids_in(MemberState.ALIVE) if m != probe.target]
        relays = sample(self.rng, candidates, self.config.indirect_probes)
        for relay in relays:
            self.stats.ping_reqs_sent += 1
            self._send(PingReq(sender=self.id, to=relay, seq=seq, target=probe.target,
                               updates=self._piggyback(relay)))
        probe.expected_nacks = len(relays) if self.config.nacks else 0

    def _end_probe(self, seq: int) -> None:
        probe = self._probe
        if probe is None or probe.seq != seq:
            return
        self._probe = None
        self.stats.probes_failed += 1
        missed_nacks = max(0, probe.expected_nacks - probe.nacks)
        self.health.apply(1 + missed_nacks)
        record = self.table.get(probe.target)
        if record is not None and record.state in LIVE_STATES:
            self.apply(Suspect(member=probe.target, incarnation=record.incarnation,
                               accuser=self.id))

    # -- probing and relaying -------------------------------------------------------------

    def _on_ack(self, ack: Ack) -> None:
        probe = self._probe
        if probe is not None and probe.seq == ack.seq:
            self._probe = None
            self.health.apply(-1)
            return
        relay = self._relays.pop(ack.seq, None)
        if relay is not None:
            self._send(Ack(sender=self.id, to=relay.requester, seq=relay.requester_seq,
                           updates=self._piggyback(relay.requester)))

    def _relay(self, request: PingReq) -> None:
        if len(self._relays) >= self.config.max_pending_relays:
            self.stats.relays_dropped += 1
            return
        self.stats.relays += 1
        seq = self._next_seq()
        self._relays[seq] = _Relay(requester=request.sender, requester_seq=request.seq)
        self._send(Ping(sender=self.id, to=request.target, seq=seq,
                        updates=self._piggyback(request.target)))
        if self.config.nacks:
            self.timers.add(self.now_ms + self.config.nack_timeout_ms, TimerKind.RELAY_NACK, seq)
        self.timers.add(self.now_ms + self.config.probe_timeout_ms, TimerKind.RELAY_END, seq)

    def _send_joins(self) -> None:
        self._join_attempts += 1
        for seed in self._join_seeds:
            self._send(Join(sender=self.id, to=seed, incarnation=self.incarnation,
                            address=self.config.address))
        if self._join_attempts < self.config.join_attempts_max:
            self.timers.add(self.now_ms + self.config.protocol_period_ms,
                            TimerKind.JOIN_RETRY, 0)

    # -- helpers ---------------------------------------------------------------------------

    def _piggyback(self, to: NodeId) -> tuple[Update, ...]:
        """Updates for a message to `to`: news about `to` itself first when it
        is believed dead (always) or suspect (buddy system), then the queue."""
        about = self.tell_directly(to)
        limit = retransmit_limit(self.config.retransmit_mult, self.table.live_count)
        if about is None:
            return self.broadcasts.take(self.config.max_piggyback, limit)
        return (about, *self.broadcasts.take(self.config.max_piggyback - 1, limit, skip=to))

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & MAX_SEQ_MASK
        return self._seq

    def _send(self, message: SwimMessage) -> None:
        self.outbox.append(message)

    def on_refuted(self, *, penalize: bool, accuser: NodeId | None) -> None:
        if penalize:
            self.stats.refutations += 1
            self.health.apply(1)
        if self.config.refute_to_accuser and accuser is not None and accuser != self.id:
            self._send(Ping(sender=self.id, to=accuser, seq=self._next_seq(),
                            updates=self._piggyback(accuser)))


__all__ = ["MemberView", "SwimNode", "SwimReady", "SwimStats"]
