"""Speed of the simulator: completed client operations per wall-clock second.

The main figure (`client_ops_per_wall_s`, target >= 5,000/s on one core):
5 nodes, 10 clients issuing operations back to back (think time 0), every
fault class on, no trace file. "Completed" means answered (ok or a definite
error); indeterminate operations are not counted. The time is the world's
run only; checking the history is reported separately (`check_s`).

Also measured: simulated seconds per wall second for the default drawn
workload, the cost of writing the full trace, and how the cost grows with
nodes (3, 5, 7, 9; 10 clients) and clients (1, 10, 100; 5 nodes).
Each case runs one fixed seed `--runs` times (the same work each time) and
reports the median.

    python benchmarks/sim.py            # full
    python benchmarks/sim.py --quick    # < 1 minute
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    check_target,
    emit_json,
    format_number,
    format_table,
    git_revision,
    machine_info,
    measure,
    say,
    source_digest,
)

from sim.checks import run_checks
from sim.options import FAULT_KINDS, RunOptions
from sim.trace import Trace
from sim.world import World

TARGETS = {"client_ops_per_wall_s": 5_000.0}
SEED = 3


def run_world(options: RunOptions, *, full_trace: bool = False,
              unit: str = "ops") -> tuple[int, float, float]:
    """One run; returns (completed ops or simulated ms, wall s, cpu s)."""
    sink = io.StringIO() if full_trace else None
    world = World(options, Trace(full=full_trace, sink=sink))
    start, cpu_start = time.perf_counter(), time.process_time()
    world.run()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    done = world.history.ok + world.history.failed
    return (done if unit == "ops" else int(world.env.now)), elapsed, cpu


def check_seconds(options: RunOptions) -> tuple[float, int]:
    world = World(options, Trace(full=False))
    world.run()
    start = time.perf_counter()
    outcomes = run_checks(world)
    assert all(o.status == "pass" for o in outcomes), outcomes
    return time.perf_counter() - start, len(world.history.operations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer cases (< 1 min)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    quiet = args.json_only
    duration_ms = 3_000 if args.quick else 20_000
    runs = 1 if args.quick else args.runs
    saturated = RunOptions(seed=SEED, nodes=5, clients=10, duration_ms=duration_ms,
                           faults=FAULT_KINDS, think_ms=0, full_trace=False)
    results: dict[str, object] = {}
    rows = []

    main_case = measure(partial(run_world, saturated), runs)
    results["client_ops_per_wall_s"] = round(main_case.rate, 1)
    results["client_ops_per_cpu_s"] = round(main_case.cpu_rate, 1)
    results["main_detail"] = main_case.as_json()
    rows.append(["5 nodes, 10 clients, think 0, all faults", format_number(main_case.rate),
                 format_number(main_case.cpu_rate)])

    traced = measure(partial(run_world, saturated, full_trace=True), runs)
    results["client_ops_per_wall_s_full_trace"] = round(traced.rate, 1)
    rows.append(["  same, full trace encoded", format_number(traced.rate),
                 format_number(traced.cpu_rate)])

    default_load = RunOptions(seed=SEED, nodes=5, clients=10, duration_ms=duration_ms * 3,
                              faults=FAULT_KINDS, full_trace=False)
    simulated = measure(partial(run_world, default_load, unit="sim_ms"), runs)
    results["simulated_s_per_wall_s"] = round(simulated.rate / 1000, 2)
    rows.append(["default workload: simulated s per wall s",
                 format_number(simulated.rate / 1000, 1), "-"])

    seconds, operations = check_seconds(saturated)
    results["check_s"] = round(seconds, 3)
    results["check_operations"] = operations

    scaling: dict[str, float] = {}
    node_counts = (3, 5, 9) if args.quick else (3, 5, 7, 9)
    client_counts = (1, 10, 100)
    for nodes in node_counts:
        options = RunOptions(seed=SEED, nodes=nodes, clients=10, duration_ms=duration_ms,
                             faults=FAULT_KINDS, think_ms=0, full_trace=False)
        measured = measure(partial(run_world, options), runs)
        scaling[f"nodes_{nodes}"] = round(measured.rate, 1)
        rows.append([f"{nodes} nodes, 10 clients", format_number(measured.rate),
                     format_number(measured.cpu_rate)])
    for clients in client_counts:
        options = RunOptions(seed=SEED, nodes=5, clients=clients,
                             duration_ms=duration_ms if clients < 100 else duration_ms // 2,
                             faults=FAULT_KINDS, think_ms=0, full_trace=False)
        measured = measure(partial(run_world, options), runs)
        scaling[f"clients_{clients}"] = round(measured.rate, 1)
        rows.append([f"5 nodes, {clients} clients", format_number(measured.rate),
                     format_number(measured.cpu_rate)])
    results["ops_per_wall_s_by_case"] = scaling
    say(format_table(["case", "ops/s (wall)", "ops/cpu-s"], rows), quiet=quiet)
    say(f"checking the main case's history ({operations} ops): {seconds:.2f} s", quiet=quiet)
    meets = {key: check_target(float(str(results[key])), target, at_least=True)
             for key, target in TARGETS.items()}
    emit_json({"benchmark": "sim", "mode": "quick" if args.quick else "full", **results,
               "targets": TARGETS, "meets_targets": meets, "machine": machine_info(),
               "git": git_revision(), "source_digest": source_digest("chainfire_core", "sim")})


if __name__ == "__main__":
    main()
