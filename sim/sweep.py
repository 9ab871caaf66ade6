"""Many seeds in parallel processes, with a progress bar.

Each seed is an independent `simulate` call in a worker process (the
standard library's process pool), or a task on a Dask distributed cluster
when a scheduler address is given (the optional `chainfire[dask]` extra,
imported only then); results come back as `SeedResult`s in completion order
and are reported sorted by seed, so the printed table does not depend on
scheduling.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import IO, Any

from sim.options import OptionError, RunOptions
from sim.run import replay_command, simulate


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedResult:
    seed: int
    nodes: int
    ok: bool
    failed_checks: tuple[str, ...]
    messages: tuple[str, ...]
    ops_completed: int
    ops_indeterminate: int
    simulated_s: float
    wall_s: float
    replay: str
    # For availability and latency per fault class (sim/views/availability.py):
    # the fault classes the run was given, the faults it applied (kind ->
    # count), the planted bugs, and ops ok / failed and latency percentiles.
    faults: tuple[str, ...] = ()
    faults_applied: tuple[tuple[str, int], ...] = ()
    bugs: tuple[str, ...] = ()
    ops_ok: int = 0
    ops_failed: int = 0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "nodes": self.nodes, "ok": self.ok,
                "failed_checks": list(self.failed_checks), "messages": list(self.messages),
                "ops_completed": self.ops_completed,
                "ops_indeterminate": self.ops_indeterminate,
                "simulated_s": self.simulated_s, "wall_s": self.wall_s, "replay": self.replay,
                "faults": list(self.faults), "faults_applied": dict(self.faults_applied),
                "bugs": list(self.bugs), "ops_ok": self.ops_ok, "ops_failed": self.ops_failed,
                "latency_p50_ms": self.latency_p50_ms, "latency_p99_ms": self.latency_p99_ms}


def parse_seeds(text: str) -> range:
    """`0:1000` (start inclusive, end exclusive) or a single seed `7`."""
    try:
        if ":" in text:
            start, end = (int(part) for part in text.split(":", 1))
        else:
            start = int(text)
            end = start + 1
    except ValueError:
        raise OptionError(f"bad seed range {text!r}: use START:END, e.g. 0:1000") from None
    if end <= start:
        raise OptionError(f"empty seed range {text!r}")
    return range(start, end)


def options_for(base: RunOptions, seed: int, node_counts: Sequence[int]) -> RunOptions:
    return replace(base, seed=seed, nodes=node_counts[seed % len(node_counts)], full_trace=False)


def run_seed(options: RunOptions) -> SeedResult:
    report = simulate(options)
    messages = tuple(m for c in report.checks if c.status != "pass" for m in c.messages)
    return SeedResult(seed=options.seed, nodes=options.nodes, ok=report.ok,
                      failed_checks=tuple(report.failed_checks), messages=messages[:5],
                      ops_completed=report.ops_completed,
                      ops_indeterminate=report.ops_indeterminate,
                      simulated_s=round(report.simulated_ms / 1000, 3),
                      wall_s=round(report.wall_s, 3), replay=replay_command(options),
                      faults=tuple(options.faults),
                      faults_applied=tuple(sorted(report.faults.items())),
                      bugs=tuple(options.bugs), ops_ok=report.ops_ok,
                      ops_failed=report.ops_failed,
                      latency_p50_ms=round(report.latency_p50_ms, 3),
                      latency_p99_ms=round(report.latency_p99_ms, 3))


def sweep(runs: Iterable[RunOptions], *, jobs: int,
          progress: Callable[[int, int, int], None] | None = None,
          scheduler: str | None = None) -> list[SeedResult]:
    """Run every option set; `progress(done, total, failures)` after each.

    With `scheduler` (a Dask scheduler's `tcp://HOST:PORT`) the seeds run on
    that cluster's workers and `jobs` is not used.
    """
    runs = list(runs)
    results: list[SeedResult] = []
    failures = 0

    def record(result: SeedResult) -> None:
        nonlocal failures
        results.append(result)
        failures += not result.ok
        if progress is not None:
            progress(len(results), len(runs), failures)

    if scheduler is not None:
        _sweep_on_dask(runs, scheduler, record)
    elif jobs <= 1:
        for options in runs:
            record(run_seed(options))
    else:
        # forkserver, not fork: a process with gRPC's threads running (an
        # embedded node, a client) must never fork — the child can hang.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["sim.run"])
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(run_seed, options) for options in runs]
            for future in as_completed(futures):
                record(future.result())
    return sorted(results, key=lambda r: r.seed)


def _sweep_on_dask(runs: Sequence[RunOptions], scheduler: str,
                   record: Callable[[SeedResult], None]) -> None:
    """Submit one `run_seed` task per option set; record each as it completes."""
    if not scheduler.startswith("tcp://"):
        raise OptionError(f"bad --scheduler {scheduler!r}: a Dask scheduler address "
                          "like tcp://HOST:8786")
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise OptionError("--scheduler needs Dask distributed, which is not installed: "
                          "pip install chainfire[dask]") from None
    try:
        client = Client(scheduler)
    except OSError as error:
        raise OptionError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    with client:
        # pure=False: every submission is its own task, even for equal options.
        futures = [client.submit(run_seed, options, pure=False) for options in runs]
        for future in dask_completed(futures):
            result = future.result()
            assert isinstance(result, SeedResult), type(result)
            record(result)


class ProgressBar:
    """A one-line progress bar on a terminal stream (plain lines elsewhere)."""

    def __init__(self, stream: IO[str] = sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.started = time.perf_counter()
        self.tty = stream.isatty()
        self._last_line = -1.0

    def __call__(self, done: int, total: int, failures: int) -> None:
        elapsed = time.perf_counter() - self.started
        filled = self.width * done // total
        bar = "#" * filled + "-" * (self.width - filled)
        line = (f"[{bar}] {done}/{total} seeds, {failures} failing, {elapsed:.0f}s"
                f" ({done / elapsed if elapsed else 0:.1f} seeds/s)")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        elif done == total or elapsed - self._last_line >= 10:
            self._last_line = elapsed
            self.stream.write(line + "\n")
        self.stream.flush()


def summary_table(results: Sequence[SeedResult]) -> Iterator[str]:
    total = len(results)
    passed = sum(r.ok for r in results)
    counts: dict[str, int] = {}
    for result in results:
        for name in result.failed_checks:
            counts[name] = counts.get(name, 0) + 1
    yield f"{'verdict':<18} {'seeds':>7}"
    yield f"{'ok':<18} {passed:>7}"
    for name in sorted(counts):
        yield f"{'failed: ' + name:<18} {counts[name]:>7}"
    yield f"{'total':<18} {total:>7}"
    ops = sum(r.ops_completed for r in results)
    wall = sum(r.wall_s for r in results)
    yield f"client ops completed: {ops}; worker wall time {wall:.1f}s"
    failing = [r for r in results if not r.ok]
    if failing:
        yield ""
        yield "failing seeds (replay with the command shown):"
        for result in failing:
            yield f"  seed {result.seed}: {', '.join(result.failed_checks)}"
            for message in result.messages[:2]:
                yield f"    {message}"
            yield f"    {result.replay}"


__all__ = ["ProgressBar", "SeedResult", "options_for", "parse_seeds", "run_seed", "summary_table",
           "sweep"]
