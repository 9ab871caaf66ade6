"""Commit index and applied index per node over time.

Theory of operation: two stacked axes share the time axis (simulated s).
The top one steps through each node's commit index, taken from the hard
state it persisted (`TraceData.commits`); the bottom one steps through its
applied index, the last entry of each applied range (`TraceData.applies`).
A node's line is drawn in its colour in both (the same colours as the
timeline; earlier nodes wider, so coinciding lines show as bands of
colour) and holds its last value until its next record, so a flat stretch
is a node that learnt nothing new: crashed, paused, partitioned away, or a
cluster with no leader. Faults are shaded behind both (see `_common`), and
phase changes are dashed lines. A healthy run shows the lines climbing
together; a lagging node's line sits below the others and catches up in a
jump (a snapshot, or a burst of appends) when it rejoins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from sim.tracedata import TraceData
from sim.views._common import (
    FONT,
    FONT_SMALL,
    TraceSource,
    as_trace_data,
    fault_spans,
    new_figure,
    node_color,
    note,
    run_title,
    shade_faults,
)

PHASE_COLOR = "#455a64"


def progress_figure(data: TraceSource) -> Figure:
    """Commit and applied index per node over time, faults shaded."""
    data = as_trace_data(data)
    figure = new_figure(12.0, 6.5)
    top = figure.add_axes((0.07, 0.53, 0.74, 0.37))
    bottom = figure.add_axes((0.07, 0.09, 0.74, 0.37), sharex=top)
    nodes = sorted(set(data.nodes) | set(data.commits["node"].tolist())
                   | set(data.applies["node"].tolist()))
    spans = fault_spans(data)
    handles: list[Any] = []
    for axes, rows, field, what in ((top, data.commits, "commit", "commit index"),
                                    (bottom, data.applies, "last", "applied index")):
        drawn = _steps(axes, data, rows, field, nodes)
        handles = shade_faults(axes, spans, label_extent_ms=max(data.end_ms, 1.0))
        for t_ms, _ in data.phases:
            axes.axvline(t_ms / 1000.0, color=PHASE_COLOR, linestyle="--", linewidth=0.9)
        axes.set_ylabel(f"{what} (entries)", fontsize=FONT)
        axes.grid(color="#e0e0e0", linewidth=0.5)
        axes.tick_params(labelsize=FONT_SMALL)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        if not drawn:
            note(axes, f"no {what} records in this trace")
    top.tick_params(axis="x", labelbottom=False)
    top.set_title("commit index (from each node's persisted hard state)", fontsize=FONT,
                  loc="left")
    bottom.set_title("applied index (last entry applied to the state machine)", fontsize=FONT,
                     loc="left")
    bottom.set_xlabel("simulated time (s)", fontsize=FONT)
    bottom.set_xlim(0.0, max(data.end_ms, 1.0) / 1000.0)
    node_handles = [Line2D([], [], color=node_color(data, n), label=f"node {n}",
                           linewidth=1.0 + 0.75 * (len(nodes) - 1 - order))
                    for order, n in enumerate(nodes)]
    phase = [Line2D([], [], color=PHASE_COLOR, linestyle="--", label="phase change")]
    figure.legend(handles=node_handles + handles + (phase if data.phases else []),
                  loc="upper left", bbox_to_anchor=(0.82, 0.9), fontsize=FONT_SMALL,
                  frameon=False)
    figure.suptitle(run_title(data, "Raft progress"), x=0.07, ha="left", fontsize=FONT + 2)
    return figure


def _steps(axes: Axes, data: TraceData, rows: Any, field: str, nodes: list[int]) -> bool:
    drawn = False
    for order, node in enumerate(nodes):
        mine = rows[rows["node"] == node]
        if not len(mine):
            continue
        t_s = np.append(mine["t"], data.end_ms) / 1000.0
        values = np.append(mine[field], mine[field][-1])
        # Earlier nodes drawn wider, so lines that coincide still show every colour.
        axes.step(t_s, values, where="post", color=node_color(data, node),
                  linewidth=1.0 + 0.75 * (len(nodes) - 1 - order), alpha=0.9,
                  gid=f"node-{node}", solid_joinstyle="miter")
        drawn = True
    return drawn


__all__ = ["progress_figure"]
