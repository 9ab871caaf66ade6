"""Client latency percentiles over time, with the fault windows marked.

Theory of operation: the run's time is cut into buckets of `bucket_ms`.
Each op that completed (answered: ok or a definite failure) falls in the
bucket of its end; its latency is end minus call, retries included, in
simulated ms. The top axes draw p50, p90 and p99 of each bucket's
latencies (a bucket with no completed op leaves a gap) on a log scale, so
a 2 ms median and a 900 ms tail both read. The bottom axes count each
bucket's ops by outcome (ok, failed, and indeterminate: timed out, counted
at its timeout), stacked: throughput dropping to zero while timeouts pile
up is unavailability, which the percentiles alone cannot show because a
timed-out op has no latency. Faults are shaded behind both axes and phase
changes dashed; a latency spike inside a partition band is the election
after the leader lost its quorum.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sim.tracedata import OUTCOMES
from sim.views._common import (
    FONT,
    FONT_SMALL,
    OUTCOME_COLORS,
    TraceSource,
    ViewError,
    as_trace_data,
    fault_spans,
    new_figure,
    note,
    run_title,
    shade_faults,
)

PERCENTILES = ((50, "#1565c0", "p50"), (90, "#ef6c00", "p90"), (99, "#c62828", "p99"))
PHASE_COLOR = "#455a64"
MAX_BUCKETS = 5000


def latency_figure(data: TraceSource, *, bucket_ms: float = 1000.0) -> Figure:
    """p50/p90/p99 latency of completed ops per time bucket; ops per bucket below."""
    data = as_trace_data(data)
    if not (math.isfinite(bucket_ms) and bucket_ms > 0):
        raise ViewError(f"bucket_ms must be a positive number of ms, not {bucket_ms!r}")
    buckets = max(1, math.ceil(max(data.end_ms, 1.0) / bucket_ms))
    if buckets > MAX_BUCKETS:
        raise ViewError(f"{buckets} buckets of {bucket_ms:g} ms: more than {MAX_BUCKETS}; "
                        "use a larger bucket_ms")
    figure = new_figure(12.0, 6.5)
    top = figure.add_axes((0.07, 0.40, 0.74, 0.50))
    bottom = figure.add_axes((0.07, 0.09, 0.74, 0.24), sharex=top)
    ops = data.ops
    edges_s = np.arange(buckets + 1) * bucket_ms / 1000.0
    centers_s = (edges_s[:-1] + edges_s[1:]) / 2
    index = np.minimum((ops["t_end"] // bucket_ms).astype(int), buckets - 1)
    done = ops["outcome"] != "indeterminate"
    latency_ms = ops["t_end"] - ops["t_call"]
    handles: list[Any] = []
    for q, color, label in PERCENTILES:
        values = [float(np.percentile(latency_ms[done & (index == b)], q))
                  if np.any(done & (index == b)) else math.nan for b in range(buckets)]
        top.plot(centers_s, values, marker="o", markersize=3, color=color, linewidth=1.4,
                 gid=f"latency-{label}")
        handles.append(Line2D([], [], color=color, marker="o", markersize=3,
                              label=f"{label} latency"))
    if np.any(done):
        top.set_yscale("log")
    else:
        note(top, "no completed ops")
    bottom_counts = np.zeros(buckets)
    for outcome in OUTCOMES:
        counts = np.bincount(index[ops["outcome"] == outcome], minlength=buckets)[:buckets]
        bottom.bar(centers_s, counts, width=bucket_ms / 1000.0 * 0.9, bottom=bottom_counts,
                   color=OUTCOME_COLORS[outcome], linewidth=0, gid=f"count-{outcome}")
        bottom_counts += counts
        handles.append(Patch(facecolor=OUTCOME_COLORS[outcome], label=f"ops {outcome}"))
    spans = fault_spans(data)
    for axes in (top, bottom):
        fault = shade_faults(axes, spans, label_extent_ms=(
            max(data.end_ms, 1.0) if axes is top else None))
        for t_ms, _ in data.phases:
            axes.axvline(t_ms / 1000.0, color=PHASE_COLOR, linestyle="--", linewidth=0.9)
        axes.grid(color="#e0e0e0", linewidth=0.5)
        axes.tick_params(labelsize=FONT_SMALL)
    handles += fault
    if data.phases:
        handles.append(Line2D([], [], color=PHASE_COLOR, linestyle="--", label="phase change"))
    top.set_ylabel("latency, call to answer (ms)", fontsize=FONT)
    top.tick_params(axis="x", labelbottom=False)
    top.set_title(f"latency percentiles of the ops completed in each {bucket_ms:g} ms bucket",
                  fontsize=FONT, loc="left")
    bottom.set_ylabel("ops per bucket", fontsize=FONT)
    bottom.set_xlabel("simulated time (s), bucket of the op's end", fontsize=FONT)
    bottom.set_xlim(0.0, edges_s[-1])
    figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.82, 0.9),
                  fontsize=FONT_SMALL, frameon=False)
    figure.suptitle(run_title(data, "Client latency"), x=0.07, ha="left", fontsize=FONT + 2)
    return figure


__all__ = ["latency_figure"]
