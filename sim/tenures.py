"""When a lease's keys must be gone: leader tenures and the revoke deadline.

Only a leader expires leases, by its own clock, and each new leader restarts
every lease from its last checkpoint plus a handover extension. So a lease
that is due while no leader holds office for long may outlive its TTL by
any amount: the keys may stay as long as leaders come and go. What a correct
store does promise is that a leader that stays in office long enough revokes
it. This module turns a run's role records and faults into leader *tenures*:
intervals in which one node led without crashing or pausing, cut to the
times when it could commit anything at all (the network whole, a majority
of the members running: a leader cut off from its quorum, or one without
check-quorum whose followers crashed, leads in name only). It gives the
deadline the lease check uses (`revoke_deadline`): the lease's clock runs
only in those tenures, a new leader restarts it from what it had left (the
last checkpoint: whole seconds, a little stale) plus an extension, and the
first tenure that outlasts that expiry by the time to commit a revoke must
have revoked it. Until such a tenure the keys may rightly stay, for any time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Tenure:
    node: int
    term: int
    start_ms: float
    end_ms: float


def leader_tenures(records: Sequence[dict[str, Any]], end_ms: float) -> list[Tenure]:
    """Tenures from `role` and `fault` records (pause/crash end one; a leader
    resumed from a pause starts a new one), cut to `quorum_windows`, sorted
    by start."""
    windows = quorum_windows(records, end_ms)
    return sorted((piece for tenure in _raw_tenures(records, end_ms)
                   for piece in _clip(tenure, windows)),
                  key=lambda tenure: (tenure.start_ms, tenure.node))


def quorum_windows(records: Sequence[dict[str, Any]], end_ms: float) -> list[tuple[float, float]]:
    """Intervals with no partition in force and a majority of the members
    neither crashed nor paused."""
    run = records[0] if records and records[0]["ev"] == "run" else {}
    members = {int(node) for node in run.get("nodes", [])}
    down: set[int] = set()
    partitioned = False
    windows: list[tuple[float, float]] = []
    opened: float | None = 0.0 if members else None
    for record in records:
        if record["ev"] != "fault":
            continue
        t, kind = float(record["t"]), record.get("kind")
        node = int(record.get("node") or 0)  # 0: a fault of no one node
        match kind:
            case "partition":
                partitioned = True
            case "heal":
                partitioned = False
            case "crash" | "pause" | "corrupt_detected":
                down.add(node)
            case "restart" | "resume":
                down.discard(node)
            case "member_add":
                members.add(node)
            case "member_remove":
                members.discard(node)
                down.discard(node)
        healthy = not partitioned and len(members - down) > len(members) // 2
        if healthy and opened is None:
            opened = t
        elif not healthy and opened is not None:
            if t > opened:
                windows.append((opened, t))
            opened = None
    if opened is not None and end_ms > opened:
        windows.append((opened, end_ms))
    return windows


def _clip(tenure: Tenure, windows: Sequence[tuple[float, float]]) -> list[Tenure]:
    pieces = []
    for start, end in windows:
        lo, hi = max(start, tenure.start_ms), min(end, tenure.end_ms)
        if hi > lo:
            pieces.append(Tenure(tenure.node, tenure.term, lo, hi))
    return pieces


def _raw_tenures(records: Sequence[dict[str, Any]], end_ms: float) -> list[Tenure]:
    open_: dict[int, tuple[int, float]] = {}  # node -> (term, start)
    leading: dict[int, int] = {}  # node -> term it leads, paused or not
    tenures: list[Tenure] = []

    def close(node: int, t: float) -> None:
        held = open_.pop(node, None)
        if held is not None and t > held[1]:
            tenures.append(Tenure(node, held[0], held[1], t))

    for record in records:
        t, ev = float(record["t"]), record["ev"]
        if ev == "role":
            node = int(record["node"])
            close(node, t)
            leading.pop(node, None)
            if record["role"] == "leader":
                open_[node] = (int(record["term"]), t)
                leading[node] = int(record["term"])
        elif ev == "fault" and record.get("kind") in ("pause", "crash"):
            node = int(record["node"])
            close(node, t)
            if record["kind"] == "crash":
                leading.pop(node, None)
        elif ev == "fault" and record.get("kind") == "resume":
            node = int(record["node"])
            if node in leading:
                open_[node] = (leading[node], t)
    for node in sorted(open_):
        close(node, end_ms)
    return tenures


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTiming:
    """How the store's lease handover can stretch a lease, in ms of the leader's
    clock (stretched by `max_clock_rate` in real time)."""

    extension_ms: float  # promote adds one election timeout
    rounding_ms: float  # a checkpoint is whole seconds, rounded up
    staleness_ms: float  # the last committed checkpoint lags this much
    commit_ms: float  # proposing and committing the revoke
    max_clock_rate: float


def revoke_deadline(tenures: Sequence[Tenure], timing: LeaseTiming
                    ) -> Callable[[float, float], float]:
    """`deadline(renewed_ms, ttl_ms)`: when a lease renewed at `renewed_ms`
    for `ttl_ms` must be gone. The lease's clock runs only while a leader
    with a quorum holds office (checkpoints reach the others then, at most
    `staleness_ms` late); each tenure starts it from what it had left (at
    least the rounding) plus the extension; the first tenure that lasts
    until that expiry plus the commit time gives the deadline."""
    rate = timing.max_clock_rate

    def deadline(renewed_ms: float, ttl_ms: float) -> float:
        used_ms = 0.0
        for tenure in tenures:
            if tenure.end_ms <= renewed_ms:
                continue
            if tenure.start_ms <= renewed_ms:
                # Renewed under this leader (or just before it took over).
                expiry_ms = renewed_ms + (ttl_ms + timing.extension_ms) * rate
            else:
                left_ms = max(timing.rounding_ms, ttl_ms - used_ms) + timing.rounding_ms
                expiry_ms = tenure.start_ms + (left_ms + timing.extension_ms) * rate
            if expiry_ms + timing.commit_ms <= tenure.end_ms:
                return expiry_ms + timing.commit_ms
            start_ms = max(tenure.start_ms, renewed_ms)
            used_ms += max(0.0, tenure.end_ms - start_ms - timing.staleness_ms) / rate
        return math.inf
    return deadline


def lease_timing(*, tick_ms: float, election_ticks: int, checkpoint_ticks: int,
                 max_clock_rate: float, commit_ms: float) -> LeaseTiming:
    """The simulator's timing: checkpoints every `checkpoint_ticks` (a due
    lease waits up to two intervals, then one more to commit)."""
    return LeaseTiming(extension_ms=election_ticks * tick_ms, rounding_ms=1000.0,
                       staleness_ms=3 * checkpoint_ticks * tick_ms, commit_ms=commit_ms,
                       max_clock_rate=max_clock_rate)


__all__ = ["LeaseTiming", "Tenure", "lease_timing", "leader_tenures", "quorum_windows",
           "revoke_deadline"]
