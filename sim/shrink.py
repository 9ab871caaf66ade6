"""Shrinking a failing run to a small replay script.

A failing seed's run is re-expressed as a `Schedule` (its options and the
fault events the nemesis applied, sim/schedule.py); replaying that script
reproduces the run exactly. Then a delta-debugging pass makes it smaller
while the same check keeps failing:

1. fewer fault events (ddmin: drop halves, then quarters, ..., then single
   events, keeping any removal after which the check still fails);
2. fewer clients, then (from 5 or more) 3 nodes, dropping events about the
   nodes that no longer exist;
3. a shorter safety phase: just past the last fault, if that still fails;
4. shorter faults: each hold time halved while the check still fails;
5. ddmin and the shorter safety phase once more.

Every candidate is one deterministic simulated run; the pass stops when its
run budget is spent and returns the smallest failing schedule found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from sim.options import RunOptions
from sim.partitions import PartitionSpec
from sim.run import simulate
from sim.schedule import FaultEvent, Schedule, round_ms

Events = tuple[FaultEvent, ...]


@dataclass(slots=True)
class ShrinkStats:
    runs: int = 0
    before: str = ""
    after: str = ""


def failing_check(options: RunOptions, events: Sequence[FaultEvent] | None = None) -> list[str]:
    report = simulate(replace(options, full_trace=False), script=events)
    return [c.name for c in report.checks if c.status == "fail"]


def _describe(schedule: Schedule) -> str:
    o = schedule.options
    return (f"{o.nodes} nodes, {o.clients} clients, {o.duration_ms / 1000:g}s, "
            f"{len(schedule.events)} faults")


class Shrinker:
    def __init__(self, check: str, *, budget_runs: int,
                 log: Callable[[str], None] | None = None) -> None:
        self.check = check
        self.budget_runs = budget_runs
        self.log = log or (lambda _line: None)
        self.stats = ShrinkStats()

    def fails(self, options: RunOptions, events: Events) -> bool:
        if self.stats.runs >= self.budget_runs:
            return False
        self.stats.runs += 1
        return self.check in failing_check(options, events)

    def shrink(self, schedule: Schedule) -> Schedule:
        self.stats.before = _describe(schedule)
        options, events = schedule.options, schedule.events
        if not self.fails(options, events):
            raise ValueError(f"the schedule does not fail {self.check!r}: nothing to shrink")
        events = self._ddmin(options, events)
        options, events = self._fewer_clients(options, events)
        options, events = self._fewer_nodes(options, events)
        options = self._shorter_run(options, events)
        events = self._shorter_holds(options, events)
        events = self._ddmin(options, events)
        options = self._shorter_run(options, events)
        result = Schedule(options=options, events=events, expect=self.check)
        self.stats.after = _describe(result)
        return result

    def _ddmin(self, options: RunOptions, events: Events) -> Events:
        chunks = 2
        while len(events) >= 1:
            size = max(1, len(events) // chunks)
            reduced = False
            for start in range(0, len(events), size):
                candidate = events[:start] + events[start + size:]
                if self.fails(options, candidate):
                    self.log(f"  {len(candidate)} faults still fail")
                    events, reduced = candidate, True
                    chunks = max(chunks - 1, 2)
                    break
            if not reduced:
                if size == 1:
                    return events
                chunks = min(len(events), chunks * 2)
        return events

    def _fewer_clients(self, options: RunOptions, events: Events) -> tuple[RunOptions, Events]:
        for clients in range(1, options.clients):
            candidate = replace(options, clients=clients)
            if self.fails(candidate, events):
                self.log(f"  {clients} client(s) still fail")
                return candidate, events
        return options, events

    def _fewer_nodes(self, options: RunOptions, events: Events) -> tuple[RunOptions, Events]:
        if options.nodes <= 3:
            return options, events
        candidate = replace(options, nodes=3)
        kept = tuple(e for e in (_restrict(e, 3) for e in events) if e is not None)
        if self.fails(candidate, kept):
            self.log("  3 nodes still fail")
            return candidate, kept
        return options, events

    def _shorter_run(self, options: RunOptions, events: Events) -> RunOptions:
        end = max((e.at_ms + e.hold_ms for e in events), default=0.0)
        duration = max(1000, int(end) + 1000)
        if duration < options.duration_ms:
            candidate = replace(options, duration_ms=duration)
            if self.fails(candidate, events):
                self.log(f"  {duration / 1000:g}s still fails")
                return candidate
        return options

    def _shorter_holds(self, options: RunOptions, events: Events) -> Events:
        for index in range(len(events)):
            while events[index].hold_ms >= 100:
                shorter = replace(events[index], hold_ms=round_ms(events[index].hold_ms / 2))
                candidate = (*events[:index], shorter, *events[index + 1:])
                if not self.fails(options, candidate):
                    break
                events = candidate
        return events


def _restrict(event: FaultEvent, nodes: int) -> FaultEvent | None:
    """The event in a cluster of nodes 1..`nodes`, or None if it loses its meaning."""
    if event.node is not None and event.node > nodes:
        return None
    spec = event.partition
    if spec is None:
        return event
    groups = tuple(tuple(n for n in g if n <= nodes) for g in spec.groups)
    groups = tuple(g for g in groups if g)
    if spec.shape == "majority_ring" or len(groups) < 2:
        return None
    return replace(event, partition=PartitionSpec(shape=spec.shape, groups=groups,
                                                  direction=spec.direction))


def shrink_seed(options: RunOptions, *, check: str | None = None, budget_runs: int = 200,
                log: Callable[[str], None] | None = None) -> tuple[Schedule, ShrinkStats]:
    """Run `options` (a failing seed), then shrink it; see the module docstring."""
    report = simulate(replace(options, full_trace=False))
    failed = [c.name for c in report.checks if c.status == "fail"]
    if not failed:
        raise ValueError(f"seed {options.seed} passes every check: nothing to shrink")
    target = check or failed[0]
    if target not in failed:
        raise ValueError(f"seed {options.seed} does not fail {target!r} (it fails {failed})")
    shrinker = Shrinker(target, budget_runs=budget_runs, log=log)
    schedule = shrinker.shrink(Schedule(options=options, events=report.events, expect=target))
    return schedule, shrinker.stats


__all__ = ["ShrinkStats", "Shrinker", "failing_check", "shrink_seed"]
