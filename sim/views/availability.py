"""Availability and latency per fault class across a sweep.

Theory of operation: `chainfire-sim sweep --out FILE.jsonl` writes one
JSON object per seed (sim/sweep.py `SeedResult.to_json`); `load_sweep`
reads them back, refusing a line that is not a JSON object with a clear
`ViewError` naming the line. A row's availability is the fraction of its
client ops that succeeded: ops_ok / (ops_ok + ops_failed +
ops_indeterminate); a row with no ops has none and is left out.

Rows are grouped by fault class. With `group="applied"` (the default) a
row counts towards every class of fault its run actually applied
(`faults_applied`: partition, crash, pause, clock, membership, loss, dup,
reorder; a run that applied none is "none"), so one sweep over all faults
gives a bar per class, and sweeps run one profile at a time give the same
bars. With `group="configured"` a row counts once, under its `--faults`
profile ("partition", "crash,pause", "none"). A run that applied several
classes sits in several bars: the bars say "runs in which X happened", not
"the effect of X alone"; sweep one class at a time for that.

The top axes draw one bar per class (the mean availability of its runs,
written at its foot) with each run as a dot (jittered sideways by its seed,
deterministically; red if one of its checks failed) and the number of runs
under the class's name; the bottom axes draw each run's p50 and p99
latency (simulated ms, log scale) in the same columns.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sim.views._common import FONT, FONT_SMALL, ViewError, new_figure, note

REQUIRED = ("seed", "ops_ok", "ops_failed", "ops_indeterminate", "faults", "faults_applied",
            "latency_p50_ms", "latency_p99_ms")
CLASS_OF = {"member_add": "membership", "member_remove": "membership",
            "member_promote": "membership", "corrupt": "crash"}
CLASS_ORDER = ("none", "partition", "crash", "pause", "clock", "membership", "loss", "dup",
               "reorder")
BAR_COLOR, DOT_COLOR, FAIL_COLOR = "#90caf9", "#0d47a1", "#c62828"
P50_COLOR, P99_COLOR = "#1565c0", "#c62828"
WIDTH_MAX_IN = 16.0


def load_sweep(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a sweep's JSON Lines file (blank lines skipped)."""
    rows: list[dict[str, Any]] = []
    with open(os.fspath(path), encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ViewError(f"{os.fspath(path)}:{number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ViewError(f"{os.fspath(path)}:{number}: not a JSON object")
            rows.append(row)
    return rows


def _check(row: Mapping[str, Any], index: int) -> None:
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        raise ViewError(f"sweep row {index} (seed {row.get('seed', '?')}) lacks {missing}: "
                        "written by an older chainfire-sim? run the sweep again")
    for name in ("ops_ok", "ops_failed", "ops_indeterminate"):
        value = row[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ViewError(f"sweep row {index}: {name} is not a count: {value!r}")


def availability(row: Mapping[str, Any]) -> float:
    """The fraction of a row's ops that succeeded (NaN when it has none)."""
    total = row["ops_ok"] + row["ops_failed"] + row["ops_indeterminate"]
    return row["ops_ok"] / total if total else math.nan


def fault_classes(row: Mapping[str, Any], group: str) -> list[str]:
    if group == "configured":
        return [",".join(row["faults"]) or "none"]
    applied = {CLASS_OF.get(kind, kind) for kind, count in row["faults_applied"].items() if count}
    return sorted(applied, key=_class_rank) or ["none"]


def _class_rank(name: str) -> tuple[int, str]:
    return (CLASS_ORDER.index(name) if name in CLASS_ORDER else len(CLASS_ORDER), name)


def availability_figure(rows: Sequence[Mapping[str, Any]], *,
                        group: Literal["applied", "configured"] = "applied",
                        title: str | None = None) -> Figure:
    """One bar per fault class: mean availability, each run a dot; latency beside it."""
    if group not in ("applied", "configured"):
        raise ViewError(f"group must be 'applied' or 'configured', not {group!r}")
    for index, row in enumerate(rows):
        _check(row, index)
    classes: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if not math.isnan(availability(row)):
            for name in fault_classes(row, group):
                classes.setdefault(name, []).append(row)
    names = sorted(classes, key=_class_rank)
    width_in = min(WIDTH_MAX_IN, max(9.0, 4.0 + 0.95 * len(names)))
    figure = new_figure(width_in, 7.0)
    plot_w = (width_in - 3.2) / width_in
    left = figure.add_axes((0.8 / width_in, 0.47, plot_w, 0.42))
    right = figure.add_axes((0.8 / width_in, 0.13, plot_w, 0.27), sharex=left)
    for x, name in enumerate(names):
        _draw_class(left, right, x, classes[name])
    for axes in (left, right):
        axes.set_xticks(range(len(names)),
                        [f"{n}\n({len(classes[n])} runs)" for n in names], fontsize=FONT_SMALL)
        axes.set_xlim(-0.6, max(len(names), 1) - 0.4)
        axes.grid(axis="y", color="#e0e0e0", linewidth=0.5)
        axes.tick_params(axis="y", labelsize=FONT_SMALL)
        if not names:
            note(axes, "no runs with ops")
    left.tick_params(axis="x", labelbottom=False)
    right.set_xlabel("fault class " + ("applied in the run" if group == "applied"
                                       else "configured (--faults)"), fontsize=FONT)
    left.set_ylim(0.0, 1.05)
    left.set_ylabel("availability (fraction of ops that succeeded)", fontsize=FONT)
    right.set_ylabel("latency per run (simulated ms)", fontsize=FONT)
    if names:
        right.set_yscale("log")
    handles = [Patch(facecolor=BAR_COLOR, label="mean availability"),
               Line2D([], [], color=DOT_COLOR, marker="o", linestyle="none", label="one run (ok)"),
               Line2D([], [], color=FAIL_COLOR, marker="o", linestyle="none",
                      label="one run (check failed)"),
               Line2D([], [], color=P50_COLOR, marker="_", linestyle="none", markersize=10,
                      label="p50 latency"),
               Line2D([], [], color=P99_COLOR, marker="^", linestyle="none", label="p99 latency")]
    figure.legend(handles=handles, loc="upper left",
                  bbox_to_anchor=((width_in - 2.3) / width_in, 0.89),
                  fontsize=FONT_SMALL, frameon=False)
    seeds = sorted({int(row["seed"]) for row in rows})
    figure.suptitle(title or f"Availability and latency per fault class — {len(rows)} runs"
                    + (f", seeds {seeds[0]} to {seeds[-1]}" if seeds else ""),
                    x=0.8 / width_in, ha="left", fontsize=FONT + 2)
    return figure


def _jitter(seed: int) -> float:
    return ((seed * 2654435761) % 1000 / 1000.0 - 0.5) * 0.5  # deterministic, in +-0.25


def _draw_class(left: Any, right: Any, x: int, rows: Sequence[Mapping[str, Any]]) -> None:
    values = np.array([availability(r) for r in rows])
    left.bar([x], [float(values.mean())], width=0.7, color=BAR_COLOR, zorder=1)
    left.text(x, 0.03, f"{values.mean():.1%}", ha="center", va="bottom", fontsize=FONT_SMALL,
              color="#0d47a1")
    xs = [x + _jitter(int(r["seed"])) for r in rows]
    colors = [DOT_COLOR if r.get("ok", True) else FAIL_COLOR for r in rows]
    left.scatter(xs, values, s=12, c=colors, zorder=2, linewidths=0)
    p50 = [max(float(r["latency_p50_ms"]), 1e-3) for r in rows]
    p99 = [max(float(r["latency_p99_ms"]), 1e-3) for r in rows]
    right.scatter([v - 0.12 for v in xs], p50, marker="_", s=40, color=P50_COLOR, zorder=2)
    right.scatter([v + 0.12 for v in xs], p99, marker="^", s=14, color=P99_COLOR, zorder=2,
                  linewidths=0)


__all__ = ["availability", "availability_figure", "fault_classes", "load_sweep"]
