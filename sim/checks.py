"""The verdict of a run: every check, which failed, and why.

Checks, in order:
- invariant: no assertion fired in the world (node invariants, the
  persistence rule) and the Raft safety monitor saw no violation;
- linearizability: the history is linearizable on the etcd model
  (checker.revision_check; indeterminate operations may or may not have
  happened, at any time after their call);
- watch: every watch stream is ordered, gap-free, duplicate-free, atomic per
  revision, valid against the history and resumed exactly
  (checker.watch_check);
- lease: no leased key vanished before its TTL (minus the clock bound) and
  none outlived it once a leader stayed in office long enough to revoke it
  (checker.lease_check; the deadline from sim/tenures.py);
- liveness: after the heal, a leader was elected and every client completed
  one more write within the liveness budget;
- stability: with check-quorum configured, while a partial partition
  (bridge, majority ring, one-way) held alone, a leader linked with a
  quorum stayed in office once the cluster had settled (sim/stability.py).

A check that could not decide (the linearizability search ran out of time)
is `unknown`, which is not a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from checker.lease_check import check_leases
from checker.result import Verdict
from checker.revision_check import analyze_etcd_history
from checker.watch_check import check_watch_streams, stream_from_json, stream_hints
from sim import stability
from sim.clock import lease_clock_bound_ms
from sim.host import LEASE_CHECKPOINT_TICKS
from sim.tenures import leader_tenures, lease_timing, revoke_deadline
from sim.world import World

CHECKS = ("invariant", "linearizability", "watch", "lease", "liveness", "stability")
CHECK_TIMEOUT_S = 60.0
MAX_MESSAGES = 5


@dataclass(slots=True)
class CheckOutcome:
    name: str
    status: str  # "pass" | "fail" | "unknown"
    messages: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "messages": self.messages}


def _revoke_deadline(world: World) -> Callable[[float, float], float]:
    """Leases are revoked only by a leader that stays in office: see sim/tenures.py."""
    params = world.params
    timing = lease_timing(tick_ms=params.tick_ms, election_ticks=params.election_ticks,
                          checkpoint_ticks=LEASE_CHECKPOINT_TICKS,
                          max_clock_rate=params.max_clock_rate,
                          commit_ms=params.client_timeout_ms)
    return revoke_deadline(leader_tenures(world.trace.summary, world.env.now), timing)


def run_checks(world: World) -> list[CheckOutcome]:
    outcomes = [_invariants(world)]
    operations = world.history.sorted_operations()
    streams = [stream_from_json(s.to_json()) for w in world.watchers for s in w.streams]
    # The watch events name the changes of revisions that only timed-out
    # writes could have made; they guide the reconstruction, never the verdict.
    analysis = analyze_etcd_history(operations, timeout_s=CHECK_TIMEOUT_S,
                                    hints=stream_hints(streams))
    result = analysis.result
    if result.verdict == Verdict.OK:
        outcomes.append(CheckOutcome("linearizability", "pass"))
    else:
        status = "fail" if result.verdict == Verdict.ILLEGAL else "unknown"
        messages = [f"{p.verdict.value}: {p.reason} (operations {list(p.explanation)})"
                    for p in result.partitions if p.verdict != Verdict.OK]
        outcomes.append(CheckOutcome("linearizability", status, messages[:MAX_MESSAGES]))
    watch_violations = check_watch_streams(streams, analysis=analysis)
    outcomes.append(CheckOutcome(
        "watch", "fail" if watch_violations else "pass",
        [f"{v.stream} {v.kind} at revision {v.revision}: {v.message}"
         for v in watch_violations[:MAX_MESSAGES]]))
    lease_violations = check_leases(operations, clock_bound_ms=lease_clock_bound_ms(world.params),
                                    unknown_renewal_ms=None,
                                    revoke_deadline=_revoke_deadline(world))
    outcomes.append(CheckOutcome(
        "lease", "fail" if lease_violations else "pass",
        [f"{v.kind}: lease {v.lease} key {v.key}: {v.message}"
         for v in lease_violations[:MAX_MESSAGES]]))
    outcomes.append(_liveness(world))
    outcomes.append(_stability(world))
    return outcomes


def _invariants(world: World) -> CheckOutcome:
    messages = list(world.monitor.violations)
    if world.aborted is not None:
        messages.insert(0, world.aborted)
    return CheckOutcome("invariant", "fail" if messages else "pass", messages[:MAX_MESSAGES])


def _liveness(world: World) -> CheckOutcome:
    if world.aborted is not None:
        return CheckOutcome("liveness", "unknown", ["the run was aborted"])
    budget = world.options.liveness_budget_ms
    late = [c.id for c in world.clients if c.liveness_done_ms is None
            or c.liveness_done_ms > world.liveness_deadline_ms]
    messages = []
    if world.leader() is None:
        messages.append(f"no leader {budget / 1000:g}s after the heal")
    if late:
        messages.append(f"clients {late} did not complete a write within "
                        f"{budget / 1000:g}s of the heal")
    return CheckOutcome("liveness", "fail" if messages else "pass", messages)


def _stability(world: World) -> CheckOutcome:
    params = world.params
    # Without check-quorum nothing protects a leader from a node that sees
    # only part of the cluster: churn is then expected, not a finding.
    if not params.check_quorum:
        return CheckOutcome("stability", "pass")
    # An aborted run is judged on the stretches that ended before the abort.
    safety_end_ms = world.heal_ms if world.safety_over else world.env.now
    churns = stability.violations(
        world.trace.summary, world.nemesis.recorded, safety_end_ms=safety_end_ms,
        grace=stability.grace_ms(params.election_ticks, params.tick_ms, params.drift))
    return CheckOutcome("stability", "fail" if churns else "pass",
                        [c.describe() for c in churns[:MAX_MESSAGES]])


__all__ = ["CHECKS", "CheckOutcome", "run_checks"]
