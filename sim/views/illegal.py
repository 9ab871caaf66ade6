"""The client ops of a run that failed its linearizability check, with the
operations that cannot be ordered in red and the window they span shaded.

Theory of operation: the trace's client ops (`TraceData.op_records` and
`ops`) are turned back into the checker's `Operation`s (a timed-out or
unfinished op has an unknown outcome) and checked again with the etcd
model (`checker.revision_check.analyze_etcd_history`), unless a
`CheckResult` for the same ops is handed in. For an Illegal result the
explanation ops (every failing partition's) are red, the ops of the longest
linearizable prefix green, the rest grey; an op whose outcome is unknown is
drawn faded. The non-linearizable window runs from the earliest call to
the latest end among the explanation ops (without an explanation: from the
last call in the prefix to the end of the first op after it).

Two axes: the whole run on top (a lane per client, simulated s) with the
window shaded in red and its place named, and below it a zoom on the
window (simulated ms, padded on both sides) where each explanation op is
labelled with its id, client and what it did ("op 63 c5: range k3 -> r27
[...]"), and the checker's reason is printed under the title. A history
that is linearizable, or that the checker could not decide, is drawn the
same way with nothing shaded and the verdict in the title.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from checker.etcd_model import describe_operation
from checker.history import Operation
from checker.result import CheckResult, Verdict
from checker.revision_check import analyze_etcd_history
from sim.tracedata import TraceData
from sim.views._common import FONT, FONT_SMALL, TraceSource, as_trace_data, new_figure, note

GREEN, RED, GREY, WINDOW = "#43a047", "#c62828", "#b0bec5", "#ef5350"
CHECK_TIMEOUT_S = 60.0
LABEL_CHARS = 90
ZOOM_PAD_MIN_MS = 2.0
HEAD_IN, GAP_IN, FOOT_IN = 1.15, 0.95, 0.55  # title and reason; between the axes; x label


def history_operations(data: TraceData) -> list[Operation]:
    """The trace's client ops as the checker's operations."""
    operations = []
    for row, op in zip(data.ops, data.op_records, strict=True):
        unknown = row["outcome"] == "indeterminate"
        operations.append(Operation(
            id=int(op["op"]), client=int(op["client"]), input=op["input"],
            call=float(row["t_call"]), output=None if unknown else op["output"],
            **({"unknown": True} if unknown else {"return_time": float(row["t_end"])})))
    return sorted(operations, key=lambda o: o.id)


def check_history(data: TraceData, *, timeout_s: float = CHECK_TIMEOUT_S) -> CheckResult:
    """Check the trace's client history for linearizability (etcd model)."""
    return analyze_etcd_history(history_operations(data), timeout_s=timeout_s).result


@dataclass(frozen=True, slots=True, kw_only=True)
class _Verdict:
    result: CheckResult
    prefix: frozenset[int]
    blamed: tuple[int, ...]
    window_ms: tuple[float, float] | None
    reason: str


def _verdict(data: TraceData, result: CheckResult) -> _Verdict:
    prefix = frozenset(i for p in result.partitions for i in p.linearization)
    blamed = tuple(sorted({i for p in result.failing for i in p.explanation}))
    reasons = [p.reason for p in result.failing if p.reason]
    window = None
    ids = data.ops["op"]
    if result.verdict == Verdict.ILLEGAL:
        chosen = np.isin(ids, blamed)
        if not chosen.any():  # no explanation: where the prefix stops
            in_prefix = np.isin(ids, list(prefix))
            after = data.ops[~in_prefix]
            start = float(data.ops["t_call"][in_prefix].max()) if in_prefix.any() else 0.0
            end = float(after["t_end"][np.argmin(after["t_call"])]) if len(after) else start
            window = (min(start, end), max(start, end))
        else:
            window = (float(data.ops["t_call"][chosen].min()),
                      float(data.ops["t_end"][chosen].max()))
    return _Verdict(result=result, prefix=prefix, blamed=blamed, window_ms=window,
                    reason="; ".join(reasons))


def illegal_figure(data: TraceSource, *, result: CheckResult | None = None,
                   title: str | None = None) -> Figure:
    """The run's client ops with the non-linearizable window highlighted."""
    data = as_trace_data(data)
    if result is None:
        result = check_history(data)
    verdict = _verdict(data, result)
    clients = sorted(set(data.ops["client"].tolist()))
    lanes_in = 0.22 * max(len(clients), 2)
    zoom_in = lanes_in + 0.3
    height = HEAD_IN + lanes_in + GAP_IN + zoom_in + FOOT_IN
    figure = new_figure(13.0, height)
    top = figure.add_axes((0.08, (FOOT_IN + zoom_in + GAP_IN) / height, 0.7, lanes_in / height))
    zoom = figure.add_axes((0.08, FOOT_IN / height, 0.7, zoom_in / height))
    _draw_ops(top, data, clients, verdict, scale=1e-3)
    top.set_xlim(0.0, max(data.end_ms, 1.0) / 1000.0)
    top.set_xlabel("simulated time (s) — the whole run", fontsize=FONT)
    if verdict.window_ms is None:
        zoom.set_xlim(0.0, max(data.end_ms, 1.0))
        _draw_ops(zoom, data, clients, verdict, scale=1.0)
        note(zoom, f"verdict {result.verdict.value}: no non-linearizable window")
        zoom.set_xlabel("simulated time (ms)", fontsize=FONT)
    else:
        _draw_window(top, zoom, data, clients, verdict)
    _legend(figure)
    head = title or (f"Linearizability — seed {data.seed}: {result.verdict.value}"
                     + (f", {len(verdict.blamed)} ops cannot be ordered" if verdict.blamed
                        else ""))
    figure.suptitle(head, x=0.08, y=1.0 - 0.12 / height, ha="left", va="top",
                    fontsize=FONT + 2)
    if verdict.reason:
        figure.text(0.08, 1.0 - 0.45 / height, textwrap.fill(verdict.reason, 150,
                                                                 max_lines=3),
                    fontsize=FONT_SMALL, va="top", color="#424242")
    return figure


def _draw_window(top: Axes, zoom: Axes, data: TraceData, clients: Sequence[int],
                 verdict: _Verdict) -> None:
    assert verdict.window_ms is not None
    lo, hi = verdict.window_ms
    top.axvspan(lo / 1000.0, max(hi, lo + data.end_ms / 2000.0 / 100) / 1000.0, color=WINDOW,
                alpha=0.35, linewidth=0, zorder=0, gid="window")
    top.annotate(f"non-linearizable window {lo:.1f} to {hi:.1f} ms", (lo / 1000.0, 1.0),
                 xycoords=("data", "axes fraction"), xytext=(0, 4),
                 textcoords="offset points", fontsize=FONT_SMALL, color=RED,
                 ha="left" if lo < data.end_ms / 2 else "right", va="bottom")
    pad = max((hi - lo) * 0.6, ZOOM_PAD_MIN_MS)
    zoom.axvspan(lo, hi, color=WINDOW, alpha=0.15, linewidth=0, zorder=0, gid="window")
    for t in (lo, hi):
        zoom.axvline(t, color=RED, linewidth=0.8, linestyle="--", zorder=1)
    _draw_ops(zoom, data, clients, verdict, scale=1.0, labels=True)
    zoom.set_xlim(lo - pad, hi + pad)
    zoom.set_xlabel("simulated time (ms) — zoom on the window", fontsize=FONT)


def _color(op_id: int, verdict: _Verdict) -> str:
    if op_id in verdict.blamed:
        return RED
    return GREEN if op_id in verdict.prefix else GREY


def _draw_ops(axes: Axes, data: TraceData, clients: Sequence[int], verdict: _Verdict, *,
              scale: float, labels: bool = False) -> None:
    lane = {c: i for i, c in enumerate(clients)}
    boxes: dict[tuple[str, bool], list[Any]] = {}
    min_w = max(data.end_ms, 1.0) * scale / 2000.0 if scale < 1 else 0.02
    for row, op in zip(data.ops, data.op_records, strict=True):
        y = lane[int(row["client"])]
        x0, x1 = float(row["t_call"]) * scale, float(row["t_end"]) * scale
        x1 = max(x1, x0 + min_w)
        key = (_color(int(row["op"]), verdict), row["outcome"] == "indeterminate")
        boxes.setdefault(key, []).append([(x0, y - 0.32), (x1, y - 0.32), (x1, y + 0.32),
                                          (x0, y + 0.32)])
        if labels and int(row["op"]) in verdict.blamed:
            text = f"op {op['op']} c{op['client']}: {_describe(op)}"
            axes.text(x0, y - 0.4, text[:LABEL_CHARS], fontsize=FONT_SMALL - 0.5, color=RED,
                      va="bottom", ha="left", zorder=6, clip_on=True,
                      bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8,
                            "pad": 0.4})
    for (color, unknown), polys in sorted(boxes.items()):
        axes.add_collection(PolyCollection(polys, facecolors=color, edgecolors="white",
                                           linewidths=0.3, alpha=0.4 if unknown else 0.95,
                                           zorder=3 if color == RED else 2))
    axes.set_yticks(range(len(clients)), [f"client {c}" for c in clients], fontsize=FONT_SMALL)
    axes.set_ylim(max(len(clients), 1) - 0.5, -0.9)
    axes.tick_params(axis="x", labelsize=FONT_SMALL)
    axes.grid(axis="x", color="#e0e0e0", linewidth=0.5)
    if not clients:
        note(axes, "no client ops in this trace")


def _describe(op: dict[str, Any]) -> str:
    try:
        return describe_operation(op["input"], op["output"])
    except (KeyError, TypeError, ValueError):
        return str(op["input"].get("f", "?"))


def _legend(figure: Figure) -> None:
    handles = [Patch(facecolor=RED, label="cannot be ordered (explanation)"),
               Patch(facecolor=GREEN, label="in the longest linearizable prefix"),
               Patch(facecolor=GREY, label="other ops"),
               Patch(facecolor=GREY, alpha=0.4, label="faded: outcome unknown"),
               Patch(facecolor=WINDOW, alpha=0.35, label="non-linearizable window")]
    figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.8, 0.9),
                  fontsize=FONT_SMALL, frameon=False)


__all__ = ["check_history", "history_operations", "illegal_figure"]
