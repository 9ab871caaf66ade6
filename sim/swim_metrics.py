"""Figures from a SWIM run's log: detection, dissemination, false positives, bytes.

Theory of operation
-------------------
Everything is computed from `SwimRunResult.log` after the run, so the
simulator records facts and this module decides what they mean:

* Detection of a crash at `crash_ms`: the first `suspect` record about the
  member at or after the crash (SWIM's "first detection": some member's
  probe of it failed), the first `dead` record (the first declaration), and
  full dissemination: when the last member that stayed up had recorded it
  dead (or left). Times are reported in protocol periods.
* A false positive is a `dead` record whose victim was up when it was
  recorded and had not been down during the preceding `lookback_ms` (so the
  late declaration of a crash, after a restart, does not count). Each one
  is an event a cluster event handler would act on. They are split by
  whether the victim or the observer was a gray member (slow or paused) in
  the run, and normalised per member-hour (members x simulated hours).
* Bytes per member per second: encoded datagram bytes sent, averaged over
  the members that were never down, over the simulated time.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainfire_core.types import NodeId
from sim.swim_world import Pause, Slow, SwimRunResult

MS_PER_HOUR = 3_600_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Detection:
    member: int
    crash_ms: int
    first_suspect_ms: int | None
    first_dead_ms: int | None
    full_dissemination_ms: int | None  # None: some live member never learned it
    period_ms: int

    def periods(self, at_ms: int | None) -> float | None:
        return None if at_ms is None else (at_ms - self.crash_ms) / self.period_ms

    @property
    def first_detection_periods(self) -> float | None:
        return self.periods(self.first_suspect_ms)

    @property
    def first_dead_periods(self) -> float | None:
        return self.periods(self.first_dead_ms)

    @property
    def full_dissemination_periods(self) -> float | None:
        return self.periods(self.full_dissemination_ms)


def _was_down(result: SwimRunResult, member: int, start_ms: int, end_ms: int) -> bool:
    """Was `member` down at any time in [start_ms, end_ms]?"""
    return any(m == member and since <= end_ms and until >= start_ms
               for m, since, until in result.down)


def detection(result: SwimRunResult, member: int, crash_ms: int) -> Detection:
    period_ms = result.options.member_config(NodeId(1)).protocol_period_ms
    about = [r for r in result.log if r[3] == member and r[1] != member and r[0] >= crash_ms]
    suspects = [r[0] for r in about if r[2] == "suspect"]
    deaths = [r for r in about if r[2] in ("dead", "left")]
    observers = [m for m in range(1, result.options.members + 1)
                 if m != member and not _was_down(result, m, crash_ms, result.end_ms)]
    first_death_by: dict[int, int] = {}
    for at_ms, observer, *_ in deaths:
        first_death_by.setdefault(observer, at_ms)
    full = None
    if observers and all(m in first_death_by for m in observers):
        full = max(first_death_by[m] for m in observers)
    return Detection(member=member, crash_ms=crash_ms,
                     first_suspect_ms=min(suspects, default=None),
                     first_dead_ms=min((r[0] for r in deaths), default=None),
                     full_dissemination_ms=full, period_ms=period_ms)


def gray_members(result: SwimRunResult) -> frozenset[int]:
    return frozenset(f.member for f in result.options.faults if isinstance(f, Slow | Pause))


@dataclass(frozen=True, slots=True, kw_only=True)
class FalsePositives:
    total: int
    healthy_victim: int      # the victim was never slow or paused
    healthy_observer: int    # the member that recorded it was never slow or paused
    member_hours: float

    def per_member_hour(self, count: int | None = None) -> float:
        count = self.total if count is None else count
        return count / self.member_hours if self.member_hours else 0.0


def false_positives(result: SwimRunResult, lookback_ms: int = 60_000) -> FalsePositives:
    gray = gray_members(result)
    total = healthy_victim = healthy_observer = 0
    for at_ms, observer, kind, victim, *_ in result.log:
        if kind != "dead" or _was_down(result, victim, at_ms - lookback_ms, at_ms):
            continue
        total += 1
        healthy_victim += victim not in gray
        healthy_observer += observer not in gray
    hours = result.options.members * result.end_ms / MS_PER_HOUR
    return FalsePositives(total=total, healthy_victim=healthy_victim,
                          healthy_observer=healthy_observer, member_hours=hours)


def bytes_per_member_per_s(result: SwimRunResult) -> float:
    up = [m for m in range(1, result.options.members + 1)
          if not _was_down(result, m, 0, result.end_ms)]
    if not up or result.end_ms == 0:
        return 0.0
    sent = sum(result.bytes_sent[m] for m in up)
    return sent / len(up) / (result.end_ms / 1000)


__all__ = ["Detection", "FalsePositives", "bytes_per_member_per_s", "detection",
           "false_positives", "gray_members"]
