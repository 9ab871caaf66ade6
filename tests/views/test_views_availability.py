"""sim.views.availability and the sweep rows it reads (sim/sweep.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sim.options import RunOptions, parse_faults
from sim.sweep import options_for, run_seed
from sim.views import availability, availability_figure, load_sweep, save_png
from sim.views.availability import fault_classes

BASE = RunOptions(nodes=3, duration_ms=2000, clients=3)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """A tiny real sweep: two seeds with no faults, two with partitions; via a file."""
    results = [run_seed(options_for(replace(BASE, faults=parse_faults(faults)), seed, [3]))
               for faults in ("none", "partition") for seed in (0, 1)]
    path = tmp_path_factory.mktemp("sweep") / "sweep.jsonl"
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in results))
    return load_sweep(path)


def test_sweep_rows_carry_what_availability_needs(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        assert row["ops_ok"] + row["ops_failed"] == row["ops_completed"]  # the old field kept
        assert isinstance(row["faults_applied"], dict)
        assert row["latency_p50_ms"] <= row["latency_p99_ms"]
        assert row["bugs"] == []
    assert [row["faults"] for row in rows] == [[], [], ["partition"], ["partition"]]
    assert all(row["faults_applied"] == {} for row in rows[:2])


def test_availability_is_the_fraction_of_successful_ops() -> None:
    row = {"ops_ok": 6, "ops_failed": 1, "ops_indeterminate": 1}
    assert availability(row) == 0.75
    assert math.isnan(availability({"ops_ok": 0, "ops_failed": 0, "ops_indeterminate": 0}))


def test_fault_classes_applied_or_configured() -> None:
    row = {"faults": ["crash", "membership"],
           "faults_applied": {"member_add": 1, "corrupt": 1, "crash": 2, "pause": 0}}
    assert fault_classes(row, "applied") == ["crash", "membership"]
    assert fault_classes(row, "configured") == ["crash,membership"]
    assert fault_classes({"faults": [], "faults_applied": {}}, "applied") == ["none"]


def test_one_bar_per_fault_class(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    figure = availability_figure(rows, group="configured")
    bars, latency = figure.axes
    figure.canvas.draw()
    names = [t.get_text().split("\n")[0] for t in latency.get_xticklabels()]
    assert names == ["none", "partition"]
    heights = [p.get_height() for p in bars.patches]
    expected = [sum(availability(r) for r in rows[:2]) / 2,
                sum(availability(r) for r in rows[2:]) / 2]
    assert heights == pytest.approx(expected)
    assert "availability" in bars.get_ylabel() and "(simulated ms)" in latency.get_ylabel()
    assert latency.get_xlabel().startswith("fault class")
    assert figure.get_suptitle().startswith("Availability")
    assert figure.legends
    save_png(figure, tmp_path / "availability.png")
    assert (tmp_path / "availability.png").stat().st_size > 0
