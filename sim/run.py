"""Run one seed: build the world, run its phases, check the history, and
report. This is the API the CLI, the sweeps, the tests and notebooks use.

```python
from sim.options import RunOptions
from sim.run import simulate
report = simulate(RunOptions(seed=7, nodes=3, duration_ms=5_000, clients=3))
print(report.ok, report.summary_line())
```
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from sim.checks import CheckOutcome, run_checks
from sim.options import RunOptions, SimParams
from sim.schedule import FaultEvent
from sim.trace import Trace
from sim.world import World

TRACE_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class RunReport:
    options: RunOptions
    params: SimParams
    checks: tuple[CheckOutcome, ...]
    ops_ok: int
    ops_failed: int
    ops_indeterminate: int
    leader_changes: int
    faults: dict[str, int]
    latency_p50_ms: float
    latency_p99_ms: float
    simulated_ms: float
    wall_s: float
    messages_sent: int
    trace_sha256: str
    trace_lines: int
    summary_records: tuple[dict[str, Any], ...]
    # The faults the nemesis applied, concrete (a schedule can replay them).
    events: tuple[FaultEvent, ...] = ()

    @property
    def ok(self) -> bool:
        return all(check.status == "pass" for check in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        return [check.name for check in self.checks if check.status != "pass"]

    @property
    def ops_completed(self) -> int:
        return self.ops_ok + self.ops_failed

    def replay_command(self) -> str:
        return replay_command(self.options)

    def summary_line(self) -> str:
        verdict = "ok" if self.ok else "FAIL(" + ",".join(self.failed_checks) + ")"
        return (f"seed {self.options.seed}: {verdict}; ops ok {self.ops_ok} failed "
                f"{self.ops_failed} indeterminate {self.ops_indeterminate}")

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.options.seed,
            "ok": self.ok,
            "verdict": "ok" if self.ok else "violation",
            "failed_checks": self.failed_checks,
            "checks": [check.to_json() for check in self.checks],
            "ops": {"ok": self.ops_ok, "failed": self.ops_failed,
                    "indeterminate": self.ops_indeterminate},
            "leader_changes": self.leader_changes,
            "faults": dict(sorted(self.faults.items())),
            "latency_ms": {"p50": round(self.latency_p50_ms, 3),
                           "p99": round(self.latency_p99_ms, 3)},
            "simulated_s": round(self.simulated_ms / 1000, 3),
            "wall_s": round(self.wall_s, 3),
            "messages_sent": self.messages_sent,
            "trace_sha256": self.trace_sha256,
            "replay": self.replay_command(),
            "options": self.options.to_json(),
            "params": self.params.to_json(),
        }


def replay_command(options: RunOptions) -> str:
    parts = ["chainfire-sim", "run", "--seed", str(options.seed), "--nodes", str(options.nodes),
             "--duration", f"{options.duration_ms}ms", "--clients", str(options.clients),
             "--faults", ",".join(options.faults) or "none"]
    defaults = RunOptions()
    if options.liveness_budget_ms != defaults.liveness_budget_ms:
        parts += ["--liveness-budget", f"{options.liveness_budget_ms}ms"]
    if options.think_ms is not None:
        parts += ["--think", f"{options.think_ms:g}ms"]
    if options.bugs:
        parts += ["--bugs", ",".join(options.bugs)]
    if options.read_mode != defaults.read_mode:
        parts += ["--read-mode", options.read_mode]
    if options.pre_vote is not None:
        parts += ["--pre-vote", "on" if options.pre_vote else "off"]
    return shlex.join(parts)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def simulate(options: RunOptions, *, sink: IO[str] | None = None,
             script: Sequence[FaultEvent] | None = None) -> RunReport:
    """Run `options.seed`; write the trace to `sink` when given. With
    `script`, the nemesis applies exactly those fault events instead of
    drawing its own."""
    started = time.perf_counter()  # reporting only: nothing simulated reads it
    trace = Trace(full=options.full_trace, sink=sink)
    world = World(options, trace, script)
    trace.emit(0.0, "run", version=TRACE_VERSION, seed=options.seed,
               options=options.to_json(), params=world.params.to_json(),
               nodes=list(range(1, options.nodes + 1)))
    world.run()
    checks = tuple(run_checks(world))
    ok = all(check.status == "pass" for check in checks)
    trace.emit(world.env.now, "verdict", ok=ok,
               failed=[c.name for c in checks if c.status != "pass"],
               checks=[c.to_json() for c in checks])
    history = world.history
    faults = dict(world.nemesis.counts)
    for kind, rate in (("loss", world.params.loss), ("dup", world.params.duplicate),
                       ("reorder", world.params.reorder)):
        if rate:
            faults[kind] = 1
    return RunReport(
        options=options, params=world.params, checks=checks, ops_ok=history.ok,
        ops_failed=history.failed, ops_indeterminate=history.unknown,
        leader_changes=world.leader_changes, faults=faults,
        latency_p50_ms=_percentile(history.latencies_ms, 0.5),
        latency_p99_ms=_percentile(history.latencies_ms, 0.99),
        simulated_ms=world.env.now, wall_s=time.perf_counter() - started,
        messages_sent=world.network.sent, trace_sha256=trace.sha256(),
        trace_lines=trace.lines, summary_records=tuple(trace.summary),
        events=tuple(world.nemesis.recorded))


__all__ = ["TRACE_VERSION", "RunReport", "replay_command", "simulate"]
