"""Hunting planted bugs: how many seeds, and how much wall time, until the
checks catch a bug the core was told to reintroduce (chainfire_core/bugs.py).

Each bug has a profile: the run options that give it a chance (its fault
classes, cluster size, read mode). `hunt` runs the profile's seeds in order,
a chunk of them in parallel at a time, and stops at the first seed whose
run fails a check; the result says which check caught it and how to replay
it. `baseline` runs the same profile and seeds with the bug off: those must
all pass, or the "finding" proves nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from chainfire_core.bugs import BUGS
from sim.options import FAULT_KINDS, RunOptions, parse_faults
from sim.sweep import SeedResult, sweep

# Per-bug run options (over RunOptions' defaults). Kept small so a hunt over
# hundreds of seeds takes minutes: 20 simulated seconds, 5 nodes.
_BASE = RunOptions(nodes=5, duration_ms=20_000, clients=8, faults=FAULT_KINDS, full_trace=False)


def _with(faults: str, **options: object) -> RunOptions:
    return replace(_BASE, faults=parse_faults(faults), **options)  # type: ignore[arg-type]


PROFILES: dict[str, RunOptions] = {
    "figure8_commit": _with("partition,crash"),
    "single_server_change_no_fix": _with("partition,crash,membership", nodes=3),
    # Pre-vote off: with it, a restarted voter hears the winner's term before
    # it can act on the term it forgot, and the lost vote leaves no trace.
    "unpersisted_vote": _with("partition,crash", nodes=3, clients=4, think_ms=500.0,
                              liveness_budget_ms=30_000, pre_vote=False),
    "ack_before_fsync": _with("crash", nodes=3),
    "stale_local_reads": _with("partition"),
    "lease_reads_no_check_quorum": _with("partition", nodes=3, clients=12, read_mode="lease"),
    "truncate_committed": _with("dup,reorder"),
    "no_prevote_checkquorum": _with("partition", nodes=3),
    "watch_catchup_loss": _with("crash", clients=4),
    "lease_reset_on_leader_change": _with("crash,pause", duration_ms=60_000, think_ms=200.0),
    "follower_lease_expiry": _with("clock"),
    "stale_snapshot_on_restart": _with("crash", clients=4),
}
assert set(PROFILES) == set(BUGS), "every planted bug needs a profile"


def profile(bug: str) -> RunOptions:
    return replace(PROFILES[bug], bugs=(bug,))


@dataclass(frozen=True, slots=True, kw_only=True)
class HuntResult:
    bug: str
    found: bool
    seeds_run: int
    first_seed: int | None
    wall_s: float
    checks: tuple[str, ...]
    messages: tuple[str, ...]
    replay: str | None
    options: RunOptions

    def to_json(self) -> dict[str, Any]:
        return {"bug": self.bug, "found": self.found, "seeds_run": self.seeds_run,
                "first_seed": self.first_seed, "wall_s": round(self.wall_s, 2),
                "checks": list(self.checks), "messages": list(self.messages),
                "replay": self.replay}


def _chunks(seeds: range, size: int) -> Iterator[range]:
    for start in range(seeds.start, seeds.stop, size):
        yield range(start, min(start + size, seeds.stop))


def hunt(bug: str, seeds: range, *, jobs: int, options: RunOptions | None = None) -> HuntResult:
    """Run seeds in order until one fails; see the module docstring."""
    base = replace(options or profile(bug), bugs=(bug,), full_trace=False)
    started = time.perf_counter()
    run = 0
    for chunk in _chunks(seeds, max(1, jobs) * 2):
        results = sweep([replace(base, seed=seed) for seed in chunk], jobs=jobs)
        failing = [r for r in results if not r.ok]
        if failing:
            first = min(failing, key=lambda r: r.seed)
            return HuntResult(bug=bug, found=True, seeds_run=first.seed - seeds.start + 1,
                              first_seed=first.seed, wall_s=time.perf_counter() - started,
                              checks=first.failed_checks, messages=first.messages,
                              replay=first.replay, options=base)
        run += len(chunk)
    return HuntResult(bug=bug, found=False, seeds_run=run, first_seed=None,
                      wall_s=time.perf_counter() - started, checks=(), messages=(),
                      replay=None, options=base)


def baseline(bug: str, seeds: range, *, jobs: int,
             options: RunOptions | None = None) -> list[SeedResult]:
    """The failing runs of the same profile and seeds with every bug off."""
    base = replace(options or profile(bug), bugs=(), full_trace=False)
    results = sweep([replace(base, seed=seed) for seed in seeds], jobs=jobs)
    return [r for r in results if not r.ok]


def table(rows: Sequence[tuple[HuntResult, int | None]], seeds: range) -> str:
    """The docs table: one row per bug (hunt result, false findings with it off)."""
    lines = [
        f"Seeds {seeds.start}:{seeds.stop} per bug; regenerate with "
        f"`chainfire-sim hunt --table docs/bugs.md --seeds {seeds.start}:{seeds.stop}`.",
        "",
        "| bug | found | seeds to first detection | wall s | caught by | "
        "findings with the bug off (same seeds) |",
        "| --- | --- | ---: | ---: | --- | ---: |",
    ]
    for result, false_findings in rows:
        lines.append(
            f"| `{result.bug}` | {'yes' if result.found else '**no**'} | "
            f"{result.first_seed - seeds.start + 1 if result.first_seed is not None else '-'} | "
            f"{result.wall_s:.1f} | {', '.join(result.checks) or '-'} | "
            f"{'-' if false_findings is None else false_findings} |")
    found = [r.seeds_run for r, _ in rows if r.found]
    if found:
        ordered = sorted(found)
        median = ordered[len(ordered) // 2] if len(ordered) % 2 else \
            (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2
        lines += ["", f"{len(found)} of {len(rows)} bugs found; median seeds to first "
                      f"detection {median:g}, worst {max(found)}."]
    return "\n".join(lines) + "\n"


__all__ = ["PROFILES", "HuntResult", "baseline", "hunt", "profile", "table"]
