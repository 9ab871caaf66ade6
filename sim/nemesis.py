"""The nemesis: a fault schedule drawn from the seed, or given as a script.

During the safety phase, every exponential(`fault_every_ms`) it picks one of
the enabled fault classes and *draws* a `FaultEvent` (sim/schedule.py) with
every choice made concrete — which node, which partition sides, how long —
then *applies* it; a fault is undone after its hold time. Every applied
event is recorded (`recorded`), so a run's schedule can be written out,
shrunk and replayed: with `script` given, the nemesis applies exactly those
events at their times and draws nothing.

- partition: a shape from sim/partitions.py over the current members
  (isolate_leader targets the current leader); one at a time;
- crash: kill a node (the leader half of the time), restart it later (half
  the time within 300 ms, as a supervisor would); its unsynced writes are
  lost (and with torn writes, a half-written tail); sometimes a durable
  record is corrupted and the node refuses to start until replaced;
- pause: freeze a node (the leader half of the time), resume it later;
- clock: set a node's clock rate in [1/max_rate, max_rate], reset it later;
- membership: add a learner and promote it, remove a voter, or replace one
  (add, promote, then remove), through the same client API an operator
  would use, following NotLeader hints;
- loss, dup, reorder: not events but the network's rates during the phase.

At most half the nodes are crashed or paused at once, and the voter count
stays between 3 (or the initial size, if smaller) and the initial size + 1;
a scripted event that is no longer possible (its node is down or gone) is
skipped. `heal_all` undoes everything at the end of the safety phase; a
generation counter turns the pending undo timers into no-ops.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import simpy

from chainfire_core.errors import NotLeader
from chainfire_core.node_messages import (
    ClientRequest,
    ClientResponse,
    MemberAddRequest,
    MemberPromoteRequest,
    MemberRemoveRequest,
    MemberResponse,
    ReadConsistency,
)
from chainfire_core.types import NodeId
from sim import partitions
from sim.clock import draw_fault_rate
from sim.schedule import FaultEvent, round_ms
from sim.workload import TIMED_OUT

if TYPE_CHECKING:
    from sim.world import World

EVENT_KINDS = ("partition", "crash", "pause", "clock", "membership")
ADMIN_TIMEOUT_MS = 2000.0
# Half the crashes are restarted at once by a supervisor (systemd, kubelet):
# the node is back while the election it left is still going on.
QUICK_RESTART = 0.5
QUICK_RESTART_MS = (20.0, 300.0)


class Nemesis:
    def __init__(self, world: World, rng: random.Random,
                 script: Sequence[FaultEvent] | None = None) -> None:
        self.world = world
        self.env = world.env
        self.rng = rng
        # The operator's own choices (which node to ask), apart from the
        # schedule's draws, so a scripted replay makes the same ones.
        self.admin_rng = world.rngs.child("nemesis/admin")
        self.script = None if script is None else sorted(script, key=lambda e: e.at_ms)
        self.kinds = [k for k in EVENT_KINDS if world.options.has(k)]
        self.generation = 0
        self.down: set[NodeId] = set()  # crashed or paused, by us
        self.paused: set[NodeId] = set()
        self.clock_faulted: set[NodeId] = set()
        # Nodes whose disk we corrupted: they refuse to start until replaced.
        self.corrupted: set[NodeId] = set()
        self.membership_busy = False
        self.counts: dict[str, int] = {}
        self.recorded: list[FaultEvent] = []
        self.min_voters = min(3, world.options.nodes)
        self.max_voters = world.options.nodes + 1

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def run(self) -> Generator[simpy.Event, Any, None]:
        if self.script is not None:
            for event in self.script:
                if event.at_ms >= self.world.options.duration_ms:
                    return
                yield self.env.timeout(max(0.0, event.at_ms - self.env.now))
                self.apply(event)
            return
        params = self.world.params
        while self.kinds:
            at = round_ms(self.env.now + self.rng.expovariate(1.0 / params.fault_every_ms))
            yield self.env.timeout(at - self.env.now)
            if self.world.safety_over:
                return
            kind = self.rng.choice(self.kinds)
            hold = round_ms(self.rng.uniform(*params.fault_hold_ms))
            drawn = self.draw(kind, at, hold)
            if drawn is not None:
                self.apply(drawn)

    # -- drawing: every choice made concrete ----------------------------------------------

    def draw(self, kind: str, at: float, hold: float) -> FaultEvent | None:
        world = self.world
        members = world.endpoints()
        if kind == "partition":
            if len(members) < 2:
                return None
            shape = self.rng.choice(partitions.shapes_for(len(members)))
            spec = partitions.draw(shape, members, world.leader(), self.rng)
            return FaultEvent(at_ms=at, kind=kind, hold_ms=hold, partition=spec)
        if kind in ("crash", "pause"):
            candidates = [n for n in members if n not in self.down
                          and world.hosts[n].state == "up"]
            if not candidates:
                return None
            leader = world.leader()
            victim = leader if leader in candidates and self.rng.random() < 0.5 \
                else self.rng.choice(candidates)
            corrupt = False
            if kind == "crash":
                params = world.params
                corrupt = bool(params.corrupt_on_crash and len(members) >= 3
                               and self.rng.random() < params.corrupt_on_crash)
                if self.rng.random() < QUICK_RESTART:
                    hold = round_ms(self.rng.uniform(*QUICK_RESTART_MS))
            return FaultEvent(at_ms=at, kind=kind, hold_ms=hold, node=victim, corrupt=corrupt)
        if kind == "clock":
            candidates = [n for n in members if n not in self.clock_faulted]
            if not candidates:
                return None
            rate = round(draw_fault_rate(self.rng, world.params), 4)
            return FaultEvent(at_ms=at, kind=kind, hold_ms=hold,
                              node=self.rng.choice(candidates), rate=rate)
        if kind == "membership" and not self.membership_busy:
            return self._draw_membership(at)
        return None

    def _draw_membership(self, at: float) -> FaultEvent | None:
        voters = self.world.voters()
        choices = []
        if len(voters) < self.max_voters:
            choices.append("add")
        if len(voters) > self.min_voters:
            choices.append("remove")
        if len(voters) >= self.min_voters:
            choices.append("replace")
        if self.failed() and len(voters) < self.max_voters:
            choices = ["replace"]
        if not choices:
            return None
        action = self.rng.choice(choices)
        if action == "add":
            return FaultEvent(at_ms=at, kind="member", action=action)
        # A member whose disk is corrupt is the one to replace.
        victims = [v for v in voters if v in self.failed()] or [
            v for v in voters if v not in self.down]
        if not victims:
            return None
        return FaultEvent(at_ms=at, kind="member", action=action,
                          node=self.rng.choice(victims))

    # -- applying -----------------------------------------------------------------------

    def apply(self, event: FaultEvent) -> None:
        if self.world.safety_over:
            return
        applied = False
        match event.kind:
            case "partition":
                applied = self.partition(event)
            case "crash" | "pause":
                applied = self.process_fault(event)
            case "clock":
                applied = self.clock(event)
            case "member":
                if not self.membership_busy:
                    self.env.process(self.membership(event))
                    applied = True
        if applied:
            self.recorded.append(event)

    def _later(self, delay_ms: float, undo: Any, *args: Any) -> None:
        generation = self.generation

        def fire(_event: simpy.Event) -> None:
            if generation == self.generation:
                undo(*args)

        timer = self.env.timeout(delay_ms)
        timer.callbacks.append(fire)

    def _emit(self, kind: str, **fields: Any) -> None:
        self.world.trace.emit(self.env.now, "fault", kind=kind, **fields)

    def partition(self, event: FaultEvent) -> bool:
        spec = event.partition
        assert spec is not None
        members = self.world.endpoints()
        self.world.network.partition(partitions.allowed_pairs(partitions.graph(spec)),
                                     frozenset(members))
        self._count("partition")
        self._emit("partition", name=spec.shape, groups=[list(g) for g in spec.groups],
                   hold_ms=event.hold_ms)
        self._later(event.hold_ms, self.heal_partition)
        return True

    def heal_partition(self) -> None:
        if self.world.network.partitioned:
            self.world.network.heal()
            self._emit("heal")

    def process_fault(self, event: FaultEvent) -> bool:
        world = self.world
        victim = event.node
        assert victim is not None
        if not world.has_node(victim) or victim in self.down \
                or world.hosts[victim].state != "up":
            return False
        unavailable = len(self.down) + len(self.failed())
        if unavailable + 1 > max(1, len(world.endpoints()) // 2):
            return False
        self.down.add(victim)
        self._count(event.kind)
        host = world.hosts[victim]
        was_leader = victim == world.leader()
        if event.kind == "crash":
            self._emit("crash", node=victim, leader=was_leader)
            host.crash()
            if event.corrupt and not self.failed():
                self.corrupted.add(victim)
                record = host.disk.corrupt_random_record()
                self._count("corrupt")
                self._emit("corrupt", node=victim, record=record)
            self._later(event.hold_ms, self.restart, victim)
        else:
            self._emit("pause", node=victim, leader=was_leader)
            host.pause()
            self.paused.add(victim)
            self._later(event.hold_ms, self.resume, victim)
        return True

    def failed(self) -> list[NodeId]:
        """Members whose disk is corrupt (found or not yet): down until replaced."""
        return [n for n in self.world.endpoints()
                if n in self.corrupted or self.world.hosts[n].state == "failed"]

    def restart(self, node: NodeId) -> None:
        self.down.discard(node)
        host = self.world.hosts[node]
        if host.state == "down" and not host.removed:
            self._emit("restart", node=node)
            host.restart()

    def resume(self, node: NodeId) -> None:
        self.down.discard(node)
        self.paused.discard(node)
        if self.world.hosts[node].state == "paused":
            self._emit("resume", node=node)
            self.world.hosts[node].resume()

    def clock(self, event: FaultEvent) -> bool:
        world = self.world
        node = event.node
        assert node is not None
        if not world.has_node(node) or node in self.clock_faulted:
            return False
        self.clock_faulted.add(node)
        self._count("clock")
        world.hosts[node].set_rate(event.rate * world.base_rates[node])
        self._emit("clock", node=node, rate=event.rate)
        self._later(event.hold_ms, self.reset_clock, node)
        return True

    def reset_clock(self, node: NodeId) -> None:
        self.clock_faulted.discard(node)
        if node in self.world.hosts:
            self.world.hosts[node].set_rate(self.world.base_rates[node])
            self._emit("clock", node=node, rate=1.0)

    # -- membership --------------------------------------------------------------------

    def membership(self, event: FaultEvent) -> Generator[simpy.Event, Any, None]:
        self.membership_busy = True
        try:
            if event.action in ("add", "replace"):
                added = yield from self.add_member()
                if added is None or event.action == "add":
                    return
            victim = event.node
            assert victim is not None
            if not self.world.has_node(victim) or len(self.world.voters()) <= self.min_voters:
                return
            yield from self.remove_member(victim)
        finally:
            self.membership_busy = False

    def add_member(self) -> Generator[simpy.Event, Any, NodeId | None]:
        world = self.world
        new_id = world.next_node_id()
        request = MemberAddRequest(peer_urls=(f"sim://n{new_id}",), is_learner=True,
                                   name=f"n{new_id}", id=new_id)
        response = yield from self.admin(request)
        if not isinstance(response, MemberResponse):
            return None
        self._count("member_add")
        self._emit("member_add", node=new_id)
        world.add_host(new_id)
        for _attempt in range(10):
            yield self.env.timeout(500.0)
            if world.safety_over:
                return new_id
            promoted = yield from self.admin(MemberPromoteRequest(id=new_id))
            if isinstance(promoted, MemberResponse):
                self._emit("member_promote", node=new_id)
                return new_id
        return new_id

    def remove_member(self, node: NodeId) -> Generator[simpy.Event, Any, None]:
        response = yield from self.admin(MemberRemoveRequest(id=node))
        if isinstance(response, MemberResponse):
            self._count("member_remove")
            self._emit("member_remove", node=node)
            self.world.remove_host(node)

    def admin(self, request: ClientRequest) -> Generator[simpy.Event, Any, object]:
        """An operator's call: to the leader it knows, following hints, a few tries."""
        world = self.world
        target = world.leader() or self.admin_rng.choice(world.endpoints())
        for _attempt in range(5):
            answer = yield from world.call(target, request, ReadConsistency.LINEARIZABLE,
                                           ADMIN_TIMEOUT_MS)
            if isinstance(answer, ClientResponse):
                if answer.error is None:
                    return answer.response
                if isinstance(answer.error, NotLeader) and answer.error.leader_hint:
                    target = NodeId(answer.error.leader_hint)
                    continue
                return answer.error
            if answer == TIMED_OUT:
                return None  # unknown outcome: leave it
            yield self.env.timeout(200.0)
            target = world.leader() or self.admin_rng.choice(world.endpoints())
        return None

    # -- the end of the safety phase -------------------------------------------------------

    def heal_all(self) -> None:
        self.generation += 1
        world = self.world
        self.heal_partition()
        world.network.quiet()
        for node in sorted(self.down):
            host = world.hosts[node]
            if host.state == "paused":
                self._emit("resume", node=node)
                host.resume()
            elif host.state == "down" and not host.removed:
                self._emit("restart", node=node)
                host.restart()
        self.down.clear()
        self.paused.clear()
        for node in sorted(self.clock_faulted):
            self.reset_clock(node)


__all__ = ["EVENT_KINDS", "Nemesis"]
