"""Helpers shared by the benchmark scripts in benchmarks/.

Conventions every script follows (so CI and people can rely on them):

* A readable report goes to stdout, and the very last line of stdout is one
  JSON object (`emit_json`), so `tail -n 1 | python -m json.tool` works.
  `--json-only` prints just that line.
* Timing figures are the median of several runs (`measure`), because the
  machines we run on are small and noisy; the per-run rates are kept in the
  JSON so the spread is visible.
* A run times only the operations under test: requests are built outside
  the timed region, in chunks (`chunked`), so memory stays bounded and the
  figure is the cost of the call, not of the benchmark's own bookkeeping.
* `machine_info()` goes into every JSON result, since a figure means nothing
  without the machine it came from.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent


# -- machine and run description ------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Python version, platform and CPU count (plus what else is cheap to know)."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model() or platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "load_avg_1m": _load_average(),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def git_revision() -> str | None:
    """The checked-out commit (with '-dirty' if the tree has changes), if any."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def source_digest(*packages: str) -> str:
    """A short hash of the .py files under the given repository folders, so two
    results can be checked to come from the same code (the tree is edited
    between commits, so the git revision alone does not say)."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(REPO_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


# -- timing ----------------------------------------------------------------------


@dataclass(slots=True)
class Measurement:
    """Several timed runs of the same operation count.

    `seconds` is wall-clock time (what the figures use); `cpu_seconds` is
    this process's CPU time over the same calls. On a shared machine
    wall > cpu means the run waited for a core, so the wall figure
    understates the code's speed.
    """

    ops: int
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [self.ops / s if s > 0 else float("inf") for s in self.seconds]

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        """Operations per second of the median run."""
        median = self.median_seconds
        return self.ops / median if median > 0 else float("inf")

    @property
    def ns_per_op(self) -> float:
        return self.median_seconds / self.ops * 1e9

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median run time: the noise of this figure."""
        if len(self.seconds) < 2:
            return 0.0
        return (max(self.seconds) - min(self.seconds)) / self.median_seconds

    @property
    def cpu_rate(self) -> float:
        """Operations per CPU second, median over the runs."""
        median = statistics.median(self.cpu_seconds) if self.cpu_seconds else 0.0
        return self.ops / median if median > 0 else float("inf")

    def as_json(self) -> dict[str, Any]:
        return {
            "ops": self.ops,
            "rate_per_s": round(self.rate, 1),
            "ns_per_op": round(self.ns_per_op, 1),
            "run_rates_per_s": [round(r, 1) for r in self.rates],
            "spread": round(self.spread, 3),
            "cpu_rate_per_s": round(self.cpu_rate, 1),
        }


def measure(run: Callable[[], tuple[int, float, float]], runs: int) -> Measurement:
    """Call `run` `runs` times; each call does its own timing and returns
    (operations done, wall seconds, CPU seconds spent on them), as
    `timed_calls` does. All runs must do the same count.

    A full collection before each run keeps one run's garbage from being
    charged to the next; the collector stays enabled during the run, since a
    real server pays for it too.
    """
    result: Measurement | None = None
    for _ in range(runs):
        gc.collect()
        ops, seconds, cpu_seconds = run()
        if result is None:
            result = Measurement(ops=ops)
        assert ops == result.ops, "runs of one measurement must do the same work"
        result.seconds.append(seconds)
        result.cpu_seconds.append(cpu_seconds)
    assert result is not None, "runs must be >= 1"
    return result


def timed_calls(
    call: Callable[[T], object], args: Iterable[Sequence[T]]
) -> tuple[int, float, float]:
    """Call `call(arg)` for every arg of every chunk; time only the calls.

    `args` yields chunks (lists) of arguments, built lazily by the caller,
    so building them is not timed. Returns (calls, wall seconds, CPU seconds).
    """
    clock = time.perf_counter
    cpu_clock = time.process_time
    calls = 0
    elapsed = 0.0
    cpu = 0.0
    for chunk in args:
        cpu_start = cpu_clock()
        start = clock()
        for arg in chunk:
            call(arg)
        elapsed += clock() - start
        cpu += cpu_clock() - cpu_start
        calls += len(chunk)
    return calls, elapsed, cpu


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to `size` consecutive items."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- output ----------------------------------------------------------------------


def format_number(value: float | None, digits: int = 0) -> str:
    """1234567.8 -> '1,234,568' (None -> '-')."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def check_target(value: float, target: float, *, at_least: bool) -> bool:
    """Does `value` meet `target` (a floor when `at_least`, else a ceiling)?"""
    return value >= target if at_least else value <= target


def describe_target(target: float, *, at_least: bool, unit: str = "") -> str:
    return f"{'>=' if at_least else '<='} {format_number(target)}{unit}"


def say(text: str = "", *, quiet: bool = False) -> None:
    """Print a line of the human-readable report (not in --json-only mode)."""
    if not quiet:
        print(text, flush=True)


def emit_json(result: dict[str, Any]) -> None:
    """Print `result` as one JSON line: this must be the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=False, separators=(",", ":")), flush=True)


__all__ = [
    "REPO_ROOT",
    "Measurement",
    "check_target",
    "chunked",
    "describe_target",
    "emit_json",
    "format_number",
    "format_table",
    "git_revision",
    "machine_info",
    "source_digest",
    "measure",
    "say",
    "timed_calls",
]
