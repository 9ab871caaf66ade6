"""`chainfire-sim`: run one seed, sweep many, or replay a trace.

    chainfire-sim run --seed 7 --nodes 5 --duration 60s --clients 10 \\
        --faults partition,crash,pause,clock,loss,dup,reorder,membership \\
        [--trace run.jsonl] [--plot run.png] [--json]
    chainfire-sim sweep --seeds 0:1000 --jobs 4 [run options] [--out results.jsonl]
    chainfire-sim replay run.jsonl

Exit status: 0 every check passed (replay: the trace reproduced), 1 a check
failed or could not decide (replay: it diverged), 2 usage error, 3 bad input
(a malformed option or trace file).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

from chainfire_core.errors import ChainfireError
from sim.options import (
    FAULT_HELP,
    OptionError,
    RunOptions,
    parse_bugs,
    parse_duration_ms,
    parse_faults,
)
from sim.run import RunReport, simulate

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_BAD_INPUT = 0, 1, 2, 3


def _add_run_options(parser: argparse.ArgumentParser, *, sweep: bool) -> None:
    if sweep:
        parser.add_argument("--seeds", default="0:100", help="START:END (end exclusive)")
        parser.add_argument("--nodes", default="5",
                            help="cluster size, or a list like 3,5 (seed modulo picks one)")
    else:
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--duration", default="60s",
                        help="safety phase length in simulated time (60s, 1500ms, 2m)")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--faults", default="all", help="comma-separated: " + ", ".join(
        f"{name} ({text})" for name, text in FAULT_HELP.items()) + "; or all / none")
    parser.add_argument("--liveness-budget", default="15s",
                        help="after the heal, time to elect a leader and complete a write")
    parser.add_argument("--think", default=None,
                        help="mean client think time between operations (default: drawn)")
    parser.add_argument("--bugs", default="",
                        help="planted bugs to reintroduce (simulation only; see hunt --list)")
    parser.add_argument("--pre-vote", choices=("on", "off"), default=None,
                        help="Raft pre-vote on or off (default: drawn from the seed)")
    parser.add_argument("--read-mode", choices=("safe", "lease"), default="safe",
                        help="linearizable reads by ReadIndex (safe) or the leader's lease")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainfire-sim", description="Run Chainfire clusters in a deterministic "
        "simulated world under faults, and check every history.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one seed and check it")
    _add_run_options(run, sweep=False)
    run.add_argument("--trace", help="write the full JSON Lines trace here")
    run.add_argument("--plot", help="write a PNG timeline here")
    run.add_argument("--json", action="store_true", help="print one JSON object instead")
    sweep = commands.add_parser("sweep", help="run many seeds in parallel processes")
    _add_run_options(sweep, sweep=True)
    sweep.add_argument("--jobs", type=int, default=0, help="worker processes (0: one per core)")
    sweep.add_argument("--out", help="write one JSON line per seed here")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="run the seeds on this Dask scheduler's workers instead of "
                       "local processes (--jobs unused; needs chainfire[dask])")
    sweep.add_argument("--json", action="store_true", help="print one JSON object at the end")
    hunt = commands.add_parser("hunt", help="find a planted bug: seeds until a check fails")
    hunt.add_argument("--list", action="store_true", help="print every bug: name, description")
    hunt.add_argument("--bug", help="the planted bug to hunt")
    hunt.add_argument("--seeds", default="0:500", help="START:END (end exclusive)")
    hunt.add_argument("--jobs", type=int, default=0, help="worker processes (0: one per core)")
    hunt.add_argument("--table", metavar="FILE",
                      help="hunt every bug and write the results table into FILE")
    hunt.add_argument("--json", action="store_true")
    shrink = commands.add_parser("shrink", help="shrink a failing seed to a small replay script")
    _add_run_options(shrink, sweep=False)
    shrink.add_argument("--check", help="the check that must keep failing (default: the first)")
    shrink.add_argument("--out", help="write the schedule here (default: seed-N.schedule)")
    shrink.add_argument("--budget", type=int, default=200, help="at most this many runs")
    replay = commands.add_parser("replay", help="re-run a trace's seed and confirm it reproduces")
    replay.add_argument("trace", help="a trace (JSON Lines) or a schedule file")
    replay.add_argument("--json", action="store_true")
    return parser


def _base_options(args: argparse.Namespace, seed: int, nodes: int) -> RunOptions:
    return RunOptions(seed=seed, nodes=nodes, duration_ms=parse_duration_ms(args.duration),
                      clients=args.clients, faults=parse_faults(args.faults),
                      liveness_budget_ms=parse_duration_ms(args.liveness_budget),
                      read_mode=args.read_mode,
                      pre_vote=None if args.pre_vote is None else args.pre_vote == "on",
                      think_ms=None if args.think is None else parse_duration_ms(args.think),
                      bugs=parse_bugs(args.bugs))


def _print_header(options: RunOptions) -> None:
    from sim.options import draw_params
    from sim.rng import RngTree

    params = draw_params(options, RngTree(options.seed).child("params"))
    print(f"seed {options.seed}")
    print("options: " + json.dumps(options.to_json(), separators=(",", ":")))
    print("drawn:   " + json.dumps(params.to_json(), separators=(",", ":")))
    sys.stdout.flush()


def _print_report(report: RunReport, trace: str | None, plot: str | None) -> None:
    print(f"simulated {report.simulated_ms / 1000:.1f}s in {report.wall_s:.2f}s wall; "
          f"{report.messages_sent} messages")
    print(f"ops: {report.ops_ok} ok, {report.ops_failed} failed, "
          f"{report.ops_indeterminate} indeterminate")
    print(f"leader changes: {report.leader_changes}")
    faults = ", ".join(f"{k} {v}" for k, v in sorted(report.faults.items())) or "none"
    print(f"faults injected: {faults}")
    print(f"latency (simulated): p50 {report.latency_p50_ms:.1f}ms, "
          f"p99 {report.latency_p99_ms:.1f}ms")
    for check in report.checks:
        print(f"  {check.name:<16} {check.status}")
        for message in check.messages:
            print(f"      {message}")
    if trace:
        print(f"trace: {trace} (sha256 {report.trace_sha256[:16]}…)")
    if plot:
        print(f"plot: {plot}")
    if report.ok:
        print("verdict: OK")
    else:
        print(f"verdict: VIOLATION ({', '.join(report.failed_checks)})")
        print(f"replay: {report.replay_command()}")


def cmd_run(args: argparse.Namespace) -> int:
    options = _base_options(args, args.seed, args.nodes)
    if not args.json:
        _print_header(options)
    if args.trace:
        with open(args.trace, "w", encoding="utf-8", newline="\n") as sink:
            report = simulate(options, sink=sink)
    else:
        report = simulate(options)
    if args.plot:
        from sim.views.timeline import write_timeline_png

        write_timeline_png(list(report.summary_records), args.plot)
    if args.json:
        print(json.dumps(report.to_json(), separators=(",", ":")))
    else:
        _print_report(report, args.trace, args.plot)
    return EXIT_OK if report.ok else EXIT_VIOLATION


def cmd_sweep(args: argparse.Namespace) -> int:
    import os

    from sim.sweep import ProgressBar, options_for, parse_seeds, summary_table, sweep

    seeds = parse_seeds(args.seeds)
    try:
        node_counts = [int(part) for part in str(args.nodes).split(",")]
    except ValueError:
        raise OptionError(f"bad --nodes {args.nodes!r}: a number or a list like 3,5") from None
    base = _base_options(args, 0, node_counts[0])
    runs = [options_for(base, seed, node_counts) for seed in seeds]
    jobs = args.jobs or os.cpu_count() or 1
    results = sweep(runs, jobs=jobs, progress=ProgressBar(), scheduler=args.scheduler)
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="\n") as out:
            for result in results:
                out.write(json.dumps(result.to_json(), separators=(",", ":")) + "\n")
    if args.json:
        print(json.dumps({"seeds": len(results), "ok": sum(r.ok for r in results),
                          "failing": [r.to_json() for r in results if not r.ok]},
                         separators=(",", ":")))
    else:
        for line in summary_table(results):
            print(line)
    return EXIT_OK if all(r.ok for r in results) else EXIT_VIOLATION


def cmd_hunt(args: argparse.Namespace) -> int:
    import os

    from chainfire_core.bugs import BUGS
    from sim.hunt import baseline, hunt, table
    from sim.sweep import parse_seeds

    if args.list:
        for name, description in BUGS.items():
            print(f"{name}  {description}")
        return EXIT_OK
    seeds = parse_seeds(args.seeds)
    jobs = args.jobs or os.cpu_count() or 1
    if args.table:
        rows = []
        for name in BUGS:
            result = hunt(name, seeds, jobs=jobs)
            outcome = f"found at seed {result.first_seed}" if result.found else "not found"
            print(f"{name}: {outcome} ({result.wall_s:.1f}s)", file=sys.stderr)
            # The seeds that found it must find nothing with the bug off.
            tried = range(seeds.start, seeds.start + result.seeds_run)
            false = len(baseline(name, tried, jobs=jobs)) if result.found else None
            rows.append((result, false))
        _write_table(args.table, table(rows, seeds))
        print(f"wrote {args.table}")
        return EXIT_OK if all(r.found and f == 0 for r, f in rows) else EXIT_VIOLATION
    if args.bug is None:
        raise OptionError("hunt needs --bug NAME, --list or --table FILE")
    if args.bug not in BUGS:
        raise OptionError(f"unknown bug {args.bug!r}; see chainfire-sim hunt --list")
    result = hunt(args.bug, seeds, jobs=jobs)
    if args.json:
        print(json.dumps(result.to_json(), separators=(",", ":")))
    elif result.found:
        print(f"{args.bug}: found at seed {result.first_seed} after {result.seeds_run} seed(s), "
              f"{result.wall_s:.1f}s; caught by {', '.join(result.checks)}")
        for message in result.messages[:3]:
            print(f"  {message}")
        print(f"replay: {result.replay}")
        if result.replay:
            shrink = result.replay.replace("chainfire-sim run", "chainfire-sim shrink", 1)
            print(f"shrink: {shrink}")
    else:
        print(f"{args.bug}: not found in seeds {args.seeds} ({result.wall_s:.1f}s)")
    return EXIT_OK if result.found else EXIT_VIOLATION


TABLE_START, TABLE_END = "<!-- bug-table:start -->", "<!-- bug-table:end -->"


def _write_table(path: str, text: str) -> None:
    try:
        with open(path, encoding="utf-8") as handle:
            current = handle.read()
    except FileNotFoundError:
        current = f"# Planted bugs\n\n{TABLE_START}\n{TABLE_END}\n"
    if TABLE_START not in current or TABLE_END not in current:
        raise OptionError(f"{path} has no {TABLE_START} ... {TABLE_END} markers")
    head, rest = current.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"{head}{TABLE_START}\n{text}{TABLE_END}{tail}")


def cmd_shrink(args: argparse.Namespace) -> int:
    from sim.shrink import shrink_seed

    options = _base_options(args, args.seed, args.nodes)
    _print_header(options)
    try:
        schedule, stats = shrink_seed(options, check=args.check, budget_runs=args.budget,
                                      log=print)
    except ValueError as error:
        print(f"chainfire-sim: {error}", file=sys.stderr)
        return EXIT_VIOLATION
    path = args.out or f"seed-{options.seed}.schedule"
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write(schedule.to_text())
    print(f"shrunk in {stats.runs} runs: {stats.before} -> {stats.after}; "
          f"{schedule.expect} still fails")
    print(f"wrote {path}; replay: chainfire-sim replay {path}")
    print(schedule.to_text(), end="")
    return EXIT_OK


def cmd_replay_schedule(path: str, text: str, as_json: bool) -> int:
    from sim.schedule import parse_schedule

    schedule = parse_schedule(text, path)
    report = simulate(schedule.options, script=schedule.events)
    failed = [c.name for c in report.checks if c.status != "pass"]
    held = (not failed) if schedule.expect == "ok" else schedule.expect in failed
    if as_json:
        print(json.dumps({"schedule": path, "expect": schedule.expect, "reproduced": held,
                          "failed_checks": failed}, separators=(",", ":")))
    elif held:
        what = "every check passed" if schedule.expect == "ok" else f"{schedule.expect} failed"
        print(f"reproduced: {path}: {what}, as expected")
    else:
        print(f"NOT REPRODUCED: {path}: expected {schedule.expect}, got "
              f"{', '.join(failed) or 'every check passing'}")
    for check in report.checks:
        for message in check.messages[:2]:
            print(f"  {check.name}: {message}")
    return EXIT_OK if held else EXIT_VIOLATION


def cmd_replay(args: argparse.Namespace) -> int:
    from sim.schedule import HEADER
    from sim.trace import read_trace

    try:
        with open(args.trace, encoding="utf-8") as handle:
            first = handle.readline().strip()
            if first == HEADER:
                return cmd_replay_schedule(args.trace, first + "\n" + handle.read(), args.json)
    except OSError as error:
        raise OptionError(f"cannot read {args.trace}: {error.strerror}") from None

    try:
        records = read_trace(args.trace)
    except OSError as error:
        raise OptionError(f"cannot read {args.trace}: {error.strerror}") from None
    except ValueError as error:
        raise OptionError(str(error)) from None
    options = RunOptions.from_json(records[0].get("options"))
    with open(args.trace, "rb") as handle:
        original = handle.read()
    buffer = io.StringIO()
    report = simulate(options, sink=buffer)
    rerun = buffer.getvalue().encode()
    same = hashlib.sha256(original).hexdigest() == hashlib.sha256(rerun).hexdigest()
    where = _first_difference(original, rerun)
    result: dict[str, Any] = {"trace": args.trace, "reproduced": same, "seed": options.seed,
                              "verdict_ok": report.ok, "lines": original.count(b"\n")}
    if not same:
        result["first_difference_line"] = where
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    elif same:
        print(f"reproduced: {args.trace} (seed {options.seed}, {result['lines']} records, "
              f"verdict {'OK' if report.ok else 'VIOLATION'})")
    else:
        print(f"DIVERGED: {args.trace} differs from the re-run at line {where}")
    return EXIT_OK if same else EXIT_VIOLATION


def _first_difference(a: bytes, b: bytes) -> int:
    for number, (x, y) in enumerate(zip(a.split(b"\n"), b.split(b"\n"), strict=False), 1):
        if x != y:
            return number
    return min(a.count(b"\n"), b.count(b"\n")) + 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "sweep":
            return cmd_sweep(args)
        if args.command == "hunt":
            return cmd_hunt(args)
        if args.command == "shrink":
            return cmd_shrink(args)
        return cmd_replay(args)
    except (OptionError, ChainfireError) as error:
        print(f"chainfire-sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
