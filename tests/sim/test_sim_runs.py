"""Whole simulated runs: determinism, the CI share of the seed sweep, replay,
and the command line's contract."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pytest

from sim.cli import main
from sim.options import FAULT_KINDS, RunOptions
from sim.run import simulate
from sim.sweep import options_for, summary_table, sweep

# The CI share: at least 200 seeds of mixed faults on 3- and 5-node clusters.
CI_SEEDS = range(200)
CI_OPTIONS = RunOptions(duration_ms=8_000, clients=5, faults=FAULT_KINDS)


def _trace_bytes(options: RunOptions) -> bytes:
    sink = io.StringIO()
    simulate(options, sink=sink)
    return sink.getvalue().encode()


def test_the_same_seed_gives_a_byte_identical_trace() -> None:
    options = RunOptions(seed=11, nodes=5, duration_ms=6_000, clients=6)
    first, second = _trace_bytes(options), _trace_bytes(options)
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()
    assert first.count(b"\n") > 1000, "a full trace records every message"
    other = _trace_bytes(RunOptions(seed=12, nodes=5, duration_ms=6_000, clients=6))
    assert hashlib.sha256(other).hexdigest() != hashlib.sha256(first).hexdigest()


def test_a_report_counts_what_the_trace_shows() -> None:
    report = simulate(RunOptions(seed=5, nodes=3, duration_ms=8_000, clients=4))
    calls = [r for r in report.summary_records if r["ev"] == "call"]
    ends = [r for r in report.summary_records if r["ev"] in ("return", "timeout")]
    assert len(calls) == len(ends) == report.ops_ok + report.ops_failed + report.ops_indeterminate
    assert report.ops_ok > 50
    assert report.summary_records[0]["ev"] == "run"
    assert report.summary_records[-1]["ev"] == "verdict"
    assert [c.name for c in report.checks] == ["invariant", "linearizability", "watch", "lease",
                                               "liveness", "stability"]


def test_ci_share_of_the_seed_sweep_finds_no_violation() -> None:
    runs = [options_for(CI_OPTIONS, seed, (3, 5)) for seed in CI_SEEDS]
    results = sweep(runs, jobs=min(2, os.cpu_count() or 1))
    assert len(results) == len(CI_SEEDS)
    assert {r.nodes for r in results} == {3, 5}
    assert sum(r.ops_completed for r in results) > 100 * len(results)
    failing = [r for r in results if not r.ok]
    assert not failing, "\n".join(summary_table(results))


@pytest.mark.slow
def test_long_sweep_finds_no_violation() -> None:
    base = RunOptions(duration_ms=60_000, clients=10)
    runs = [options_for(base, seed, (3, 5)) for seed in range(1000, 1300)]
    results = sweep(runs, jobs=os.cpu_count() or 1)
    assert all(r.ok for r in results), "\n".join(summary_table(results))


def test_run_command_prints_json_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--seed", "3", "--nodes", "3", "--duration", "4s", "--clients", "3",
                 "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["ok"] is True and out["seed"] == 3
    assert out["replay"].startswith("chainfire-sim run --seed 3 --nodes 3 --duration 4000ms")
    assert set(out["ops"]) == {"ok", "failed", "indeterminate"}


def test_run_prints_the_seed_and_drawn_options_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--seed", "4", "--nodes", "3", "--duration", "2s", "--clients", "2",
                 "--faults", "partition,crash"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "seed 4"
    assert lines[1].startswith("options: ") and '"faults":["partition","crash"]' in lines[1]
    assert lines[2].startswith("drawn: ") and '"tick_ms"' in lines[2]
    assert lines[-1] == "verdict: OK"


def test_replay_confirms_a_trace_and_detects_a_changed_one(
        tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]) -> None:
    trace = os.path.join(tmp_path, "run.jsonl")
    plot = os.path.join(tmp_path, "run.png")
    assert main(["run", "--seed", "9", "--nodes", "3", "--duration", "3s", "--clients", "3",
                 "--trace", trace, "--plot", plot]) == 0
    with open(plot, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["replay", trace]) == 0
    assert capsys.readouterr().out.startswith("reproduced: ")
    with open(trace, encoding="utf-8") as handle:
        lines = handle.readlines()
    lines[5] = lines[5].replace('"t":', '"t":1', 1)
    with open(trace, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    assert main(["replay", trace]) == 1
    assert "line 6" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["run", "--faults", "partition,meteor"],
    ["run", "--nodes", "0"],
    ["run", "--duration", "soon"],
    ["sweep", "--seeds", "5:2"],
])
def test_bad_options_are_refused_with_exit_3(argv: list[str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 3
    assert capsys.readouterr().err.startswith("chainfire-sim: ")


def test_replay_of_a_malformed_trace_is_bad_input(tmp_path: os.PathLike[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = os.path.join(tmp_path, "bad.jsonl")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"t": 0, "ev": "run", "options": {"seed": 1, "warp": 9}}\n')
    assert main(["replay", path]) == 3
    assert "warp" in capsys.readouterr().err
