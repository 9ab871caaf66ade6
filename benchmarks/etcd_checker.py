"""How the witness-based etcd checker scales with history length.

Usage (from the repository root):

    .venv/bin/python benchmarks/etcd_checker.py --quick     # 10^3, 10^4, 10^5; < 1 minute
    .venv/bin/python benchmarks/etcd_checker.py             # + 3*10^5, unbounded delays, 3 runs
    .venv/bin/python benchmarks/etcd_checker.py --json-only

What is measured
----------------
Histories come from `checker.etcd_model.simulate_history` (a correct
reference server; requests at increasing linearization points, each with a
call up to `window` = 10 time units before its point and a return up to 10
after, so about 20 operations overlap any one), over 10 keys with puts,
ranges (single key, whole keyspace, limits, historical), deletes, CAS and
multi-key txns, lease grant / revoke / keepalive / ttl. Scenarios:

* witness: every outcome known (only lease expiries, 1% per step, leave
  revisions no response names): a replay in revision order.
* faulty: 5% of outcomes unknown (half of them took effect), 1% of puts and
  reads recorded without a revision, 1% lease expiries; unknown-outcome
  writes take effect at most `window` after their call (`unknown_delay`),
  as the simulator knows from its request timeout.
* faulty-unbounded (full mode only): the same with no bound on the delay
  (Porcupine's assumption), so every unknown-outcome write stays a
  candidate for every later gap.

The figure is the wall time of `check_etcd_history` (parsing, classification,
replay and search; the generation is not timed), median of the runs. Every
history must check Ok. "us/op" divides by the operation count: flat means
linear.

The last stdout line is JSON: ops_<N>_s (the faulty scenario, the one the
issue asks about), per-scenario figures, machine and code identity.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    emit_json,
    format_number,
    format_table,
    git_revision,
    machine_info,
    say,
    source_digest,
)
from checker.etcd_model import simulate_history
from checker.result import Verdict
from checker.revision_check import check_etcd_history

WINDOW = 10.0
SCENARIOS: dict[str, dict[str, Any]] = {
    "witness": {"unknown_rate": 0.0, "revisionless_rate": 0.0, "expiry_rate": 0.01,
                "unknown_delay": None},
    "faulty": {"unknown_rate": 0.05, "revisionless_rate": 0.01, "expiry_rate": 0.01,
               "unknown_delay": WINDOW},
    "faulty-unbounded": {"unknown_rate": 0.05, "revisionless_rate": 0.01,
                         "expiry_rate": 0.01, "unknown_delay": None},
}


def measure(size: int, scenario: str, runs: int, seed: int) -> dict[str, Any]:
    options = dict(SCENARIOS[scenario])
    delay = options.pop("unknown_delay")
    history = simulate_history(random.Random(seed * 1_000_003 + size), operations=size, keys=10,
                               window=WINDOW, **options)
    seconds = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = check_etcd_history(history, unknown_delay=delay)
        seconds.append(time.perf_counter() - started)
    assert result is not None
    if result.verdict != Verdict.OK:
        raise SystemExit(f"{scenario} {size}: {result.verdict.value}: "
                         f"{result.partitions[0].reason}")
    median = statistics.median(seconds)
    return {"ops": size, "scenario": scenario, "seconds": round(median, 3),
            "run_seconds": [round(s, 3) for s in seconds],
            "us_per_op": round(median / size * 1e6, 1),
            "steps": result.partitions[0].states_explored}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^3..10^5, one run (< 1 min)")
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sizes", type=str, default=None, help="comma-separated sizes")
    args = parser.parse_args(argv)
    quiet = args.json_only
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else \
        ([1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 300_000])
    runs = args.runs or (1 if args.quick else 3)
    scenarios = ["witness", "faulty"] if args.quick else list(SCENARIOS)
    say("etcd checker scaling (checker/revision_check.py)", quiet=quiet)
    say(f"sizes {sizes}, runs {runs}, seed {args.seed}, window {WINDOW}", quiet=quiet)
    rows = []
    figures: dict[str, list[dict[str, Any]]] = {}
    for scenario in scenarios:
        for size in sizes:
            if scenario == "faulty-unbounded" and size > 100_000:
                continue
            figure = measure(size, scenario, runs, args.seed)
            figures.setdefault(scenario, []).append(figure)
            rows.append([scenario, format_number(size), f"{figure['seconds']:.3f}",
                         f"{figure['us_per_op']:.1f}", format_number(figure["steps"])])
            say(f"  {scenario:17} {size:>8,} ops  {figure['seconds']:8.3f} s", quiet=quiet)
    say("", quiet=quiet)
    say(format_table(["scenario", "operations", "seconds", "us/op", "steps"], rows), quiet=quiet)
    result: dict[str, Any] = {
        f"ops_{f['ops']}_s": f["seconds"] for f in figures.get("faulty", [])}
    result.update({
        "benchmark": "etcd_checker", "quick": args.quick, "runs": runs, "seed": args.seed,
        "window": WINDOW, "scenarios": figures, "machine": machine_info(),
        "git": git_revision(), "source": source_digest("checker")})
    emit_json(result)


if __name__ == "__main__":
    main()
