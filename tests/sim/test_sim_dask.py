"""Sweeps on a Dask distributed cluster: the same results as the process
pool, seed for seed; the command line passes `--scheduler` through and
writes one JSON line per seed; without Dask, a clear option error."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import fields, replace

import pytest

from sim.cli import main
from sim.options import OptionError, RunOptions
from sim.sweep import SeedResult, options_for, sweep

SEEDS = range(10)
SMALL = RunOptions(duration_ms=3_000, clients=3, nodes=3)


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[str]:
    """A two-worker local cluster. processes=True: each worker is its own
    process, as on real machines, so tasks and results really are pickled."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _without_wall_time(results: list[SeedResult]) -> list[SeedResult]:
    return [replace(result, wall_s=0.0) for result in results]


def test_a_dask_sweep_equals_the_process_pool_seed_for_seed(scheduler_address: str) -> None:
    runs = [options_for(SMALL, seed, (3,)) for seed in SEEDS]
    seen: list[tuple[int, int, int]] = []
    on_dask = sweep(runs, jobs=1, scheduler=scheduler_address,
                    progress=lambda *counts: seen.append(counts))
    in_pool = sweep(runs, jobs=2)
    assert [r.seed for r in on_dask] == list(SEEDS)
    assert _without_wall_time(on_dask) == _without_wall_time(in_pool)
    assert [done for done, _, _ in seen] == list(range(1, len(SEEDS) + 1))
    assert {total for _, total, _ in seen} == {len(SEEDS)}


def test_the_command_line_sweeps_on_dask_and_writes_jsonl(
        scheduler_address: str, tmp_path: os.PathLike[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    out = os.path.join(tmp_path, "results.jsonl")
    assert main(["sweep", "--seeds", "0:4", "--nodes", "3", "--duration", "3s",
                 "--clients", "3", "--scheduler", scheduler_address, "--out", out]) == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["ok", "4"] in table and ["total", "4"] in table
    with open(out, encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert [line["seed"] for line in lines] == [0, 1, 2, 3]
    assert all(set(line) == {f.name for f in fields(SeedResult)} for line in lines)
    assert all(line["replay"].startswith(f"chainfire-sim run --seed {line['seed']} ")
               for line in lines)


def test_without_dask_a_scheduler_is_a_clear_option_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A None entry in sys.modules makes `import distributed` raise ImportError.
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(OptionError, match=r"pip install chainfire\[dask\]"):
        sweep([SMALL], jobs=1, scheduler="tcp://127.0.0.1:8786")
    assert main(["sweep", "--seeds", "0:2", "--scheduler", "tcp://127.0.0.1:8786"]) == 3
    assert "pip install chainfire[dask]" in capsys.readouterr().err


def test_a_scheduler_address_must_be_tcp() -> None:
    with pytest.raises(OptionError, match="tcp://HOST:8786"):
        sweep([SMALL], jobs=1, scheduler="127.0.0.1:8786")
