"""Speed and memory of the linearizability checker, beside Go Porcupine's figures.

Histories (from ../shared, next to the repository):

* porcupine/jepsen/etcd_000..059: Porcupine's Jepsen etcd register tests;
  figure: the total of the 60 check times (Porcupine: 0.36 s).
* porcupine/kv/c01, c10, c50 (ok and bad): the kv model partitioned by key
  (Porcupine: c50-ok 0.195 s, c50-bad 7-29 ms, median 28.7 ms).
* etcd-histories/*: 23 histories recorded from etcd 3.4 and Illegal
  variants; figures: each file's time, their total and maximum. Porcupine
  cannot decide four of them in 60 s (shown as >= 60 s, ratio against 60 s).

A check time is `check_operations` on operations already read (Porcupine's
figures also leave parsing out), the median of --runs runs (1 in --quick
mode), with a full collection before each; wall and CPU time are both
kept, and the speedups in the tables are against CPU time, since
Porcupine's figures are one-core times on an idle machine and ours are
often taken on a busy one (wall > CPU means the check waited for a core).
A check includes partitioning, the search, replaying every Ok against the
model, and the explanation of an Illegal. Peak memory is measured in a
separate pass under tracemalloc (which slows the check, so it is not
timed): the largest traced peak of any one check, plus the process's
maximum resident set size at the end.

    .venv/bin/python benchmarks/checker.py --quick    # < 1 minute
    .venv/bin/python benchmarks/checker.py            # 5 runs per figure
"""

from __future__ import annotations

import argparse
import csv
import gc
import re
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    REPO_ROOT,
    emit_json,
    format_number,
    format_table,
    git_revision,
    machine_info,
    say,
    source_digest,
)

from checker.history import Operation
from checker.linearizability import check_operations
from checker.models import KVModel, RegisterModel
from checker.readers import read_porcupine_jepsen, read_porcupine_kv

SHARED = REPO_ROOT.parent / "shared"
PORCUPINE_JEPSEN_TOTAL_S = 0.36
PORCUPINE_TIMEOUT_S = 60.0
TIMEOUT_S = 60.0

Case = tuple[str, list[Operation], Any, str, float | None]  # name, ops, model, expected, Go s


def _rows(table: Path) -> list[dict[str, str]]:
    with table.open(encoding="utf-8") as rows:
        return list(csv.DictReader(rows, delimiter="\t"))


def _load(path: Path) -> tuple[list[Operation], Any]:
    if path.suffix == ".log":
        return read_porcupine_jepsen(path), RegisterModel()
    return read_porcupine_kv(path), KVModel()


def porcupine_cases() -> list[Case]:
    """Porcupine's histories with its own 1-core check time (from the notes)."""
    cases = []
    for row in _rows(SHARED / "porcupine" / "EXPECTED.tsv"):
        found = re.search(r"Go 1-core check(?: \([^)]*\))? ([\d.]+) ms", row["notes"])
        go_s = float(found.group(1)) / 1000 if found else None
        ops, model = _load(SHARED / "porcupine" / row["file"])
        cases.append((row["file"], ops, model, row["expected_verdict"], go_s))
    return cases


def etcd_cases() -> list[Case]:
    cases = []
    for row in _rows(SHARED / "etcd-histories" / "EXPECTED.tsv"):
        ops, model = _load(SHARED / "etcd-histories" / row["file"])
        decided = row["porcupine_verdict"] in ("Ok", "Illegal")
        go_s = float(row["porcupine_check_ms_median"]) / 1000 if decided else None
        cases.append((row["file"], ops, model, row["verdict"], go_s))
    return cases


def time_check(case: Case, runs: int) -> tuple[float, float, str]:
    """Median wall and CPU seconds of `runs` checks, and the verdict (the
    same every run). On a shared machine wall > CPU means the check waited
    for a core."""
    name, ops, model, _, _ = case
    walls, cpus, verdicts = [], [], set()
    for _ in range(runs):
        gc.collect()
        cpu_start, start = time.process_time(), time.perf_counter()
        result = check_operations(ops, model, timeout_s=TIMEOUT_S)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu_start)
        verdicts.add(result.verdict.value)
    assert len(verdicts) == 1, f"{name}: verdict changed between runs: {verdicts}"
    return statistics.median(walls), statistics.median(cpus), verdicts.pop()


def peak_mb(case: Case) -> float:
    """Traced peak of one check, in MB."""
    gc.collect()
    tracemalloc.start()
    try:
        check_operations(case[1], case[2], timeout_s=TIMEOUT_S)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def ratio(ours: float, go: float | None) -> str:
    return "-" if go is None else f"{go / ours:.1f}x" if ours > 0 else "inf"


def run_group(cases: list[Case], runs: int, rows: list[list[str]],
              per_file: dict[str, Any], go_default: float | None = None) -> float:
    total = 0.0
    for case in cases:
        name, _, _, expected, go = case
        seconds, cpu_seconds, verdict = time_check(case, runs)
        total += seconds
        go_s = go if go is not None else go_default
        right = "yes" if verdict == expected else "NO"
        per_file[name] = {"s": round(seconds, 6), "cpu_s": round(cpu_seconds, 6),
                          "verdict": verdict, "expected": expected,
                          "right": verdict == expected, "porcupine_s": go}
        shown_go = format_number(go_s * 1000, 2) if go_s is not None else "-"
        if go is None and go_default is not None:
            shown_go = f">= {shown_go}"
        rows.append([name, expected, verdict, right, format_number(seconds * 1000, 2),
                     format_number(cpu_seconds * 1000, 2), shown_go, ratio(cpu_seconds, go_s)])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run per figure (< 1 min)")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (median)")
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="a row per jepsen history too")
    args = parser.parse_args()
    quiet = args.json_only
    runs = args.runs or (1 if args.quick else 5)
    if not SHARED.exists():
        say(f"no shared histories at {SHARED}", quiet=quiet)
        emit_json({"benchmark": "checker", "error": f"no shared histories at {SHARED}"})
        return
    porcupine, etcd = porcupine_cases(), etcd_cases()
    jepsen = [c for c in porcupine if c[0].startswith("jepsen/")]
    kv = {c[0]: c for c in porcupine if c[0].startswith("kv/")}
    headers = ["history", "expected", "ours", "right", "ms", "cpu ms", "Porcupine ms",
               "speedup (cpu)"]
    per_file: dict[str, Any] = {}

    rows: list[list[str]] = []
    jepsen_total = run_group(jepsen, runs, rows, per_file)
    jepsen_cpu = sum(per_file[c[0]]["cpu_s"] for c in jepsen)
    say(f"Porcupine jepsen etcd_000..059 ({len(jepsen)} files): {jepsen_total * 1000:.1f} ms "
        f"(cpu {jepsen_cpu * 1000:.1f} ms; Porcupine {PORCUPINE_JEPSEN_TOTAL_S * 1000:.0f} ms, "
        f"{PORCUPINE_JEPSEN_TOTAL_S / jepsen_total:.1f}x)", quiet=quiet)
    if args.verbose:
        say(format_table(headers, rows), quiet=quiet)
    kv_rows: list[list[str]] = []
    run_group(list(kv.values()), max(runs, 3), kv_rows, per_file)
    say(format_table(headers, kv_rows), quiet=quiet)
    etcd_rows: list[list[str]] = []
    run_group(etcd, runs, etcd_rows, per_file, go_default=PORCUPINE_TIMEOUT_S)
    say("", quiet=quiet)
    say(format_table(headers, etcd_rows), quiet=quiet)
    etcd_times = [per_file[c[0]]["s"] for c in etcd]
    go_etcd_total = sum(c[4] if c[4] is not None else PORCUPINE_TIMEOUT_S for c in etcd)

    everything = [*porcupine, *etcd]
    peaks = {c[0]: peak_mb(c) for c in everything} if not args.quick else {
        c[0]: peak_mb(c) for c in [*etcd, kv["kv/c50-ok.txt"], kv["kv/c50-bad.txt"]]}
    worst = max(peaks, key=peaks.__getitem__)
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say(f"peak traced memory of one check: {peaks[worst]:.1f} MB ({worst}); "
        f"process max RSS {maxrss_mb:.0f} MB", quiet=quiet)
    wrong = sorted(name for name, f in per_file.items() if not f["right"])
    say(f"wrong verdicts: {wrong or 'none'}", quiet=quiet)

    c50_ok, c50_bad = per_file["kv/c50-ok.txt"], per_file["kv/c50-bad.txt"]
    figures: dict[str, Any] = {
        "jepsen_total_s": round(jepsen_total, 4), "jepsen_total_cpu_s": round(jepsen_cpu, 4),
        "porcupine_jepsen_total_s": PORCUPINE_JEPSEN_TOTAL_S,
        "jepsen_speedup": round(PORCUPINE_JEPSEN_TOTAL_S / jepsen_total, 2),
        "jepsen_speedup_cpu": round(PORCUPINE_JEPSEN_TOTAL_S / jepsen_cpu, 2),
        "c50_ok_s": c50_ok["s"], "c50_ok_cpu_s": c50_ok["cpu_s"],
        "porcupine_c50_ok_s": c50_ok["porcupine_s"],
        "c50_ok_speedup": round(c50_ok["porcupine_s"] / c50_ok["s"], 2),
        "c50_ok_speedup_cpu": round(c50_ok["porcupine_s"] / c50_ok["cpu_s"], 2),
        "c50_bad_s": c50_bad["s"], "c50_bad_cpu_s": c50_bad["cpu_s"],
        "porcupine_c50_bad_s": c50_bad["porcupine_s"],
        "c50_bad_speedup": round(c50_bad["porcupine_s"] / c50_bad["s"], 2),
        "c50_bad_speedup_cpu": round(c50_bad["porcupine_s"] / c50_bad["cpu_s"], 2),
        "etcd_histories_total_s": round(sum(etcd_times), 4),
        "etcd_histories_total_cpu_s": round(sum(per_file[c[0]]["cpu_s"] for c in etcd), 4),
        "etcd_histories_max_s": round(max(etcd_times), 4),
        "porcupine_etcd_histories_total_s_at_least": round(go_etcd_total, 3),
        "peak_mb": round(max(peaks.values()), 2), "peak_history": worst,
        "max_rss_mb": round(maxrss_mb, 1),
        "all_right": not wrong, "wrong": wrong,
    }
    emit_json({"benchmark": "checker", "mode": "quick" if args.quick else "full",
               "runs": runs, **figures, "files": per_file, "machine": machine_info(),
               "git": git_revision(), "source_digest": source_digest("checker")})


if __name__ == "__main__":
    main()
