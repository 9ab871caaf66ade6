"""One simulated SWIM member: a `SwimNode`, its timers and its gray failures.

Theory of operation
-------------------
The host drives its node by the Ready contract: after every input (a timer
that came due, a datagram processed) it takes `ready()`, sends the messages
through the network, logs the events and calls `advance`. It keeps one
SimPy timeout armed for the node's `next_deadline_ms()`; re-arming when an
earlier deadline appears leaves the older timeout behind, and a token makes
such stale wake-ups no-ops. Everything is a SimPy callback (no process per
member), so a run is a single, insertion-ordered event queue: the same
seed gives the same run.

Faults, each a state of the host rather than of the node:

* crashed: datagrams are dropped, timers ignored. `restart` builds a fresh
  node (incarnation 0, empty view) that joins through seeds, as a restarted
  process would.
* paused (stop-the-world, e.g. a long GC or a frozen VM): nothing runs.
  Datagrams queue up; at the end of the pause the timers that came due fire
  first (the node notices the time first, as a woken process does) and then
  the backlog is processed in arrival order.
* slow (an overloaded member, Lifeguard's "slow message processing"): each
  inbound datagram is handled after an extra delay drawn from
  [0, delay_ms], in arrival order (a FIFO receive queue), while the node's
  own timers still fire on time. Its acks and refutations come late, and
  it sees others' acks late, which is what makes it accuse healthy members.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

import simpy

from chainfire_core.swim import (
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    SelfRefuted,
    SwimMessage,
    SwimNode,
)
from chainfire_core.types import NodeId

# Log records: (at_ms, observer, kind, member, incarnation, accuser); member,
# incarnation and accuser are 0 when they do not apply.
LogRecord = tuple[int, int, str, int, int, int]
# How often (in handled inputs) the node's invariants are checked.
INVARIANT_EVERY = 64


def event_record(observer: NodeId, event: MemberEvent) -> LogRecord:
    match event:
        case MemberJoined():
            return (event.at_ms, observer, "joined", event.member, event.incarnation, 0)
        case MemberSuspected():
            return (event.at_ms, observer, "suspect", event.member, event.incarnation,
                    event.accuser)
        case MemberAlive():
            return (event.at_ms, observer, "alive", event.member, event.incarnation, 0)
        case MemberDead():
            return (event.at_ms, observer, "dead", event.member, event.incarnation, event.accuser)
        case MemberLeft():
            return (event.at_ms, observer, "left", event.member, event.incarnation, 0)
        case SelfRefuted():
            return (event.at_ms, observer, "refute", observer, event.incarnation, 0)


class SwimHost:
    def __init__(self, env: simpy.Environment, node: SwimNode, rng: random.Random, *,
                 send: Callable[[SwimMessage], None], log: Callable[[LogRecord], None],
                 check_invariants: bool) -> None:
        self.env = env
        self.id = node.id
        self.node = node
        self.rng = rng
        self._send = send
        self._log = log
        self._check = check_invariants
        self.crashed = False
        self.paused_until = -1
        self.slow_delay_ms = 0
        self._backlog: list[SwimMessage] = []
        self._last_inbound_ms = 0
        self._token = 0
        self._armed_ms: int | None = None
        self._inputs = 0
        self.max_local_health = 0
        self._arm()

    # -- faults ------------------------------------------------------------------------

    def crash(self) -> None:
        self.crashed = True
        self._backlog.clear()
        self._armed_ms = None
        self._token += 1

    def restart(self, node: SwimNode) -> None:
        assert self.crashed and node.id == self.id
        self.node = node
        self.crashed = False
        self.paused_until = -1
        self._flush()
        self._arm()

    def pause(self, duration_ms: int) -> None:
        if self.crashed:
            return
        until = self.now + duration_ms
        if until > self.paused_until:
            self.paused_until = until
            self.env.timeout(duration_ms).callbacks.append(partial(self._resume, until))

    def _resume(self, until: int, _event: simpy.Event) -> None:
        if self.crashed or until != self.paused_until:
            return
        self.paused_until = -1
        self._run_timers()
        backlog, self._backlog = self._backlog, []
        for message in backlog:
            self._handle(message)

    def leave(self) -> None:
        """The operator asked this member to leave the group."""
        if not self.crashed:
            self.node.leave(self.now)
            self._after_input()

    @property
    def now(self) -> int:
        return int(self.env.now)

    @property
    def paused(self) -> bool:
        return self.now < self.paused_until

    # -- inputs ---------------------------------------------------------------------------

    def receive(self, message: SwimMessage) -> None:
        """A datagram arrived (the network calls this)."""
        if self.crashed:
            return
        if self.slow_delay_ms:
            at = max(self.now + self.rng.randint(0, self.slow_delay_ms), self._last_inbound_ms)
            self._last_inbound_ms = at
            self.env.timeout(at - self.now).callbacks.append(partial(self._late, message))
            return
        self._handle(message)

    def _late(self, message: SwimMessage, _event: simpy.Event) -> None:
        if not self.crashed:
            self._handle(message)

    def _handle(self, message: SwimMessage) -> None:
        if self.paused:
            self._backlog.append(message)
            return
        self.node.step(message, self.now)
        self._after_input()

    def _wake(self, token: int, _event: simpy.Event) -> None:
        if token != self._token or self.crashed:
            return
        self._armed_ms = None
        if self.paused:
            return  # _resume runs the timers
        self._run_timers()

    def _run_timers(self) -> None:
        self.node.tick(self.now)
        self._after_input()

    def _after_input(self) -> None:
        self._flush()
        self._arm()
        self._inputs += 1
        self.max_local_health = max(self.max_local_health, self.node.health.score)
        if self._check and self._inputs % INVARIANT_EVERY == 0:
            self.node.check_invariants()

    # -- outputs ---------------------------------------------------------------------------

    def _flush(self) -> None:
        node = self.node
        if not node.has_ready():
            return
        ready = node.ready()
        for message in ready.messages:
            self._send(message)
        for event in ready.events:
            self._log(event_record(self.id, event))
        node.advance(ready)

    def _arm(self) -> None:
        deadline = self.node.next_deadline_ms()
        if deadline is None or (self._armed_ms is not None and self._armed_ms <= deadline):
            return
        self._token += 1
        self._armed_ms = deadline
        delay = max(0, deadline - self.now)
        self.env.timeout(delay).callbacks.append(partial(self._wake, self._token))


__all__ = ["INVARIANT_EVERY", "LogRecord", "SwimHost", "event_record"]
