"""What every view shares: its error, a figure on its own canvas, the input
it accepts, fault intervals and how they are shaded, and the colours.

Theory of operation: a view takes a `TraceData` (or anything `load_trace`
reads: a path, a `TracedRun`, records, via `as_trace_data`) and returns a
plain `matplotlib.figure.Figure` attached to its own Agg canvas, so nothing
touches pyplot or the process-wide backend. Faults are read from the
trace's fault records into `FaultSpan`s (a partition until the heal or the
next partition; a node crashed until its restart, paused until its resume,
clocked off 1.0 until its rate is reset; anything still open ends with the
trace) and shaded as vertical bands in one colour per kind, with one legend
entry per kind drawn. A figure with nothing to draw still gets its title,
axis labels and a legend, plus a note saying what was missing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from sim.tracedata import TraceData, TracedRun, load_trace

DPI = 100
FONT = 9.0
FONT_SMALL = 8.0
LABEL_ROWS = 4
TIMES = "\N{MULTIPLICATION SIGN}"
NODE_COLORS = ("#1f77b4", "#d81b60", "#00897b", "#7b1fa2", "#827717", "#3949ab", "#00838f",
               "#ec407a", "#4527a0", "#546e7a")
OUTCOME_COLORS = {"ok": "#43a047", "failed": "#e53935", "indeterminate": "#fb8c00"}
FAULT_KINDS = ("partition", "crash", "pause", "clock")
FAULT_STYLE: dict[str, dict[str, Any]] = {
    "partition": {"color": "#1e88e5", "alpha": 0.13, "label": "partition", "text": "#0d47a1"},
    "crash": {"color": "#263238", "alpha": 0.12, "label": "node crashed", "text": "#263238"},
    "pause": {"color": "#8d6e63", "alpha": 0.16, "label": "node paused", "text": "#4e342e"},
    "clock": {"color": "#ab47bc", "alpha": 0.10, "label": "clock skewed", "text": "#6a1b9a"},
}


class ViewError(ValueError):
    """The input cannot be drawn (an empty window, a malformed sweep file, ...)."""


def new_figure(width_in: float, height_in: float) -> Figure:
    """A Figure on its own Agg canvas: no pyplot, no global figure registry."""
    figure = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: str | os.PathLike[str]) -> None:
    """Write `figure` as a PNG at `path` (at the views' resolution)."""
    figure.savefig(os.fspath(path), format="png", dpi=DPI)


TraceSource = TraceData | TracedRun | str | os.PathLike[str] | Iterable[Mapping[str, Any]]


def as_trace_data(source: TraceSource) -> TraceData:
    """`source` itself when it is a TraceData, else what `load_trace` makes of it."""
    if isinstance(source, TraceData):
        return source
    return load_trace(source)


def all_nodes(data: TraceData) -> list[int]:
    """The first members and every node a fault or role record names, sorted
    (the timeline's node lanes, so colours agree across views)."""
    named = {f["node"] for f in data.faults if isinstance(f.get("node"), int)}
    return sorted(set(data.nodes) | named | set(data.roles["node"].tolist()))


def node_color(data: TraceData, node: int) -> str:
    nodes = sorted(set(all_nodes(data)) | {node})
    return NODE_COLORS[nodes.index(node) % len(NODE_COLORS)]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSpan:
    kind: str  # one of FAULT_KINDS
    start_ms: float
    end_ms: float
    node: int | None = None  # None for a partition
    label: str = ""


_CLOSES = {"restart": "crash", "resume": "pause"}


def fault_spans(data: TraceData) -> list[FaultSpan]:
    """The trace's faults as intervals, sorted by start (see the module doc)."""
    open_: dict[tuple[str, int | None], tuple[float, str]] = {}
    spans: list[FaultSpan] = []

    def close(key: tuple[str, int | None], t_ms: float) -> None:
        begun = open_.pop(key, None)
        if begun is not None:
            spans.append(FaultSpan(kind=key[0], start_ms=begun[0], end_ms=max(t_ms, begun[0]),
                                   node=key[1], label=begun[1]))

    for fault in data.faults:
        kind, t_ms = fault.get("kind"), float(fault["t"])
        node = fault.get("node") if isinstance(fault.get("node"), int) else None
        if kind in ("partition", "heal"):
            close(("partition", None), t_ms)
            if kind == "partition":
                open_[("partition", None)] = (t_ms, _partition_label(fault))
        elif kind in ("crash", "pause"):
            open_.setdefault((str(kind), node), (t_ms, f"node {node} {kind}"))
        elif kind in _CLOSES:
            close((_CLOSES[str(kind)], node), t_ms)
        elif kind == "clock":
            close(("clock", node), t_ms)
            rate = float(fault.get("rate", 1.0))
            if rate != 1.0:
                open_[("clock", node)] = (t_ms, f"node {node} clock {TIMES}{rate:g}")
    for key in sorted(open_, key=lambda k: (k[0], -1 if k[1] is None else k[1])):
        close(key, data.end_ms)
    return sorted(spans, key=lambda s: (s.start_ms, s.kind, -1 if s.node is None else s.node))


def _partition_label(fault: Mapping[str, Any]) -> str:
    groups = fault.get("groups")
    name = str(fault.get("name", "partition"))
    if not isinstance(groups, Sequence):
        return name
    return name + " " + " | ".join(",".join(str(n) for n in g) for g in groups)


def shade_faults(axes: Axes, spans: Sequence[FaultSpan], *, scale: float = 1e-3,
                 kinds: Sequence[str] = FAULT_KINDS, label_extent_ms: float | None = None,
                 ) -> list[Patch]:
    """Vertical bands for `spans` on `axes` (x = ms * scale); legend handles
    for the kinds drawn, in FAULT_KINDS order. With `label_extent_ms` (the
    time the x axis will show), each band is named at its top left
    ("halves 1,2 | 3,4,5"), on the highest of `LABEL_ROWS` rows where it
    overlaps no earlier name; a name with no free row is left out."""
    drawn: set[str] = set()
    band = blended_transform_factory(axes.transData, axes.transAxes)
    row_free_ms = [-math.inf] * LABEL_ROWS
    width_pt = axes.get_position().width * axes.get_figure().get_figwidth() * 72.0  # type: ignore[union-attr]
    for span in spans:
        if span.kind not in kinds:
            continue
        style = FAULT_STYLE[span.kind]
        axes.axvspan(span.start_ms * scale, max(span.end_ms, span.start_ms) * scale,
                     color=style["color"], alpha=style["alpha"], linewidth=0, zorder=0,
                     gid=f"fault-{span.kind}")
        drawn.add(span.kind)
        if label_extent_ms is None:
            continue
        text = " " + span.label
        text_ms = len(text) * (FONT_SMALL - 1) * 0.6 / width_pt * label_extent_ms
        row = next((r for r, free in enumerate(row_free_ms) if free <= span.start_ms), None)
        if row is not None:
            row_free_ms[row] = span.start_ms + text_ms
            axes.text(span.start_ms * scale, 0.985 - row * 0.055, text, transform=band,
                      fontsize=FONT_SMALL - 1, color=style["text"], ha="left", va="top",
                      clip_on=True, zorder=1, gid=f"fault-label-{span.kind}")
    return fault_handles(drawn)


def fault_handles(kinds: Iterable[str]) -> list[Patch]:
    wanted = set(kinds)
    return [Patch(facecolor=FAULT_STYLE[k]["color"], alpha=min(1.0, FAULT_STYLE[k]["alpha"] * 2.5),
                  label=FAULT_STYLE[k]["label"]) for k in FAULT_KINDS if k in wanted]


def note(axes: Axes, text: str) -> None:
    """A grey note in the middle of `axes` (why it is empty)."""
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center",
              fontsize=FONT, color="#757575", style="italic", gid="empty-note")


def run_title(data: TraceData, view: str) -> str:
    verdict = "no verdict" if data.ok is None else ("verdict ok" if data.ok else
                                                    "verdict FAILED " + ", ".join(
                                                        map(str, (data.verdict or {}).get(
                                                            "failed", []))))
    return (f"{view} — seed {data.seed}, {len(data.nodes)} nodes, "
            f"{data.end_ms / 1000.0:.1f} s simulated — {verdict}")


__all__ = ["DPI", "FAULT_KINDS", "FAULT_STYLE", "NODE_COLORS", "OUTCOME_COLORS", "FaultSpan",
           "TraceSource", "ViewError", "all_nodes", "as_trace_data", "fault_handles", "fault_spans",
           "new_figure", "node_color", "note", "run_title", "save_png", "shade_faults"]
