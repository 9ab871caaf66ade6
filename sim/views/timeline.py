"""A timeline picture of one simulator trace: client ops per lane, partitions
shaded, leader per term.

The trace is the simulator's list of records (one JSON object per line in its
file), each with "t" (simulated ms) and "ev" (its kind): run, call, return,
timeout, fault, role, phase and verdict are drawn, other kinds skipped. A
`TraceData` (sim/tracedata.py) or a `TracedRun` is accepted too: the records
this picture reads are rebuilt from its arrays (`_records_of`).

Three stacked axes share one x axis, simulated time in seconds:

- clients: a lane per client; each operation is a thin bar from its call to
  its end: green if it returned, red if it returned {"error": ...} (a
  definite failure), orange if its outcome is unknown (a timeout record, or
  no end record at all: the bar then runs to the end of the trace);
- nodes: a lane per node: crashed and paused intervals, a skewed clock
  (shaded, labelled with its rate) and time outside the membership (hatched);
- leader: the leader of each term, coloured by node (the node labels carry
  the same colours) and labelled with the term where there is room. A term's
  bar ends when its leader steps down or crashes, or when a leader of a later
  term appears; no bar means no leader.

Partitions are shaded across all three axes and named above the client
lanes; phase boundaries are dashed vertical lines, named above the figure.
The figure is a plain `matplotlib.figure.Figure` on its own Agg canvas: no
pyplot, no global figure registry, no change to the process-wide backend.
Bars are one PolyCollection per colour, so thousands of ops draw quickly.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.transforms import blended_transform_factory

from sim.tracedata import TraceData, TracedRun

Record = Mapping[str, Any]

OUTCOMES = ("ok", "failed", "indeterminate")
OUTCOME_COLORS = {"ok": "#43a047", "failed": "#e53935", "indeterminate": "#fb8c00"}
NODE_STATES = ("non-member", "skew", "down", "paused")  # drawing order, back to front
NODE_STATE_STYLE: dict[str, dict[str, Any]] = {
    "non-member": {"facecolor": "#f5f5f5", "edgecolor": "#bdbdbd", "hatch": "////",
                   "linewidth": 0.0, "label": "not a member"},
    "skew": {"facecolor": "#e1bee7", "edgecolor": "none", "label": "clock skewed (rate)"},
    "down": {"facecolor": "#263238", "edgecolor": "none", "label": "node crashed"},
    "paused": {"facecolor": "#8d6e63", "edgecolor": "none", "label": "node paused"},
}
# Leader colours per node, in lane order; none close to the outcome or node-state colours.
NODE_COLORS = ("#1f77b4", "#d81b60", "#00897b", "#7b1fa2", "#827717", "#3949ab", "#00838f",
               "#ec407a", "#4527a0", "#546e7a")
PARTITION_COLOR, PARTITION_TEXT_COLOR = "#1e88e5", "#0d47a1"
PHASE_COLOR, NO_LEADER_COLOR, SKEW_TEXT_COLOR = "#455a64", "#eeeeee", "#6a1b9a"

DPI = 100
WIDTH_IN, LEFT_IN, RIGHT_IN = 14.0, 0.95, 2.35  # right: room for the legend
LANE_IN, HEADROOM_IN, LEADER_IN, GAP_IN, BOTTOM_IN = 0.26, 0.3, 0.3, 0.1, 0.5
TITLE_LINE_IN, PHASE_LABEL_IN, LEGEND_ENTRY_IN = 0.22, 0.22, 0.19
TITLE_LINES_MAX, TITLE_WIDTH_CHARS = 3, 150
FONT_SMALL, FONT_TINY = 8.0, 7.0
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Span:
    """A time interval on one lane: a client's op, a node's state, a term."""

    row: int
    start_ms: float
    end_ms: float
    label: str = ""
    detail: str = ""
    value: float = 0.0

    def __post_init__(self) -> None:
        assert self.start_ms <= self.end_ms, self


class _Spans:
    """Intervals keyed by lane, each opened at one time and closed at a later one."""

    def __init__(self) -> None:
        self._open: dict[int, _Span] = {}
        self.closed: list[_Span] = []

    def held(self, row: int) -> _Span | None:
        return self._open.get(row)

    def open(self, row: int, t_ms: float, *, label: str = "", detail: str = "",
             value: float = 0.0) -> None:
        if row not in self._open:
            self._open[row] = _Span(row=row, start_ms=t_ms, end_ms=t_ms, label=label,
                                    detail=detail, value=value)

    def close(self, row: int, t_ms: float) -> None:
        span = self._open.pop(row, None)
        if span is not None:
            self.closed.append(replace(span, end_ms=t_ms))

    def close_all(self, t_ms: float) -> None:
        for row in sorted(self._open):
            self.close(row, t_ms)


@dataclass(slots=True, kw_only=True)
class _Trace:
    """What the picture needs, read from the records."""

    start_ms: float
    end_ms: float
    run: Record
    verdict: Record | None
    clients: list[int]
    nodes: list[int]
    ops: dict[str, list[_Span]]  # outcome -> bars, row = client
    states: dict[str, list[_Span]]  # NODE_STATES -> intervals, row = node
    partitions: list[_Span]  # row 0, label = name, detail = groups
    leaders: list[_Span]  # row = node, value = term; clipped to the next term's start
    phases: list[tuple[float, str]]


def _check(records: Sequence[Record]) -> None:
    if not records:
        raise ValueError("empty trace: no records")
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or not isinstance(record.get("ev"), str):
            raise ValueError(f"record {index}: not an object with a string 'ev': {record!r}")
        if not isinstance(record.get("t"), int | float) or not math.isfinite(record["t"]):
            raise ValueError(f"record {index}: 't' is not a finite number: {record!r}")


class _Reader:
    """Feeds records in time order and keeps the open intervals."""

    def __init__(self, *, start_ms: float, members: set[int], nodes: list[int]) -> None:
        self.pending: dict[tuple[int, int], tuple[int, float]] = {}
        self.ops: dict[str, list[_Span]] = {outcome: [] for outcome in OUTCOMES}
        self.spans = {name: _Spans() for name in (*NODE_STATES, "partition", "leader")}
        self.phases: list[tuple[float, str]] = []
        for node in nodes:
            if node not in members:
                self.spans["non-member"].open(node, start_ms)

    def feed(self, record: Record) -> None:
        t_ms = float(record["t"])
        match record["ev"]:
            case "call":
                key = (int(record["client"]), int(record["op"]))
                self.pending[key] = (int(record["client"]), t_ms)
            case "return":
                output = record.get("output")
                failed = isinstance(output, Mapping) and "error" in output
                self._end(record, "failed" if failed else "ok")
            case "timeout":
                self._end(record, "indeterminate")
            case "fault":
                self._fault(record, t_ms)
            case "role":
                self._role(record, t_ms)
            case "phase":
                name = str(record.get("phase", "?"))
                if self.phases and self.phases[-1][0] == t_ms:  # one line, one label
                    name = f"{self.phases[-1][1]} + {name}"
                    self.phases.pop()
                self.phases.append((t_ms, name))

    def _end(self, record: Record, outcome: str) -> None:
        begun = self.pending.pop((int(record["client"]), int(record["op"])), None)
        if begun is not None:  # an end without its call: nothing to draw
            client, start_ms = begun
            self.ops[outcome].append(_Span(row=client, start_ms=start_ms,
                                           end_ms=float(record["t"])))

    def _fault(self, record: Record, t_ms: float) -> None:
        spans, kind = self.spans, record.get("kind")
        node = int(record.get("node", -1))
        match kind:
            case "partition":
                spans["partition"].close(0, t_ms)
                spans["partition"].open(0, t_ms, label=str(record.get("name", "partition")),
                                        detail=_groups_text(record.get("groups")))
            case "heal":
                spans["partition"].close(0, t_ms)
            case "crash":
                spans["down"].open(node, t_ms)
                spans["paused"].close(node, t_ms)
                spans["leader"].close(node, t_ms)
            case "restart":
                spans["down"].close(node, t_ms)
            case "pause" | "resume":
                (spans["paused"].open if kind == "pause" else spans["paused"].close)(node, t_ms)
            case "clock":
                rate = float(record["rate"])
                spans["skew"].close(node, t_ms)
                if rate != 1.0:
                    spans["skew"].open(node, t_ms, label=f"{TIMES}{rate:g}", value=rate)
            case "member_add":
                spans["non-member"].close(node, t_ms)
            case "member_remove":
                spans["non-member"].open(node, t_ms)

    def _role(self, record: Record, t_ms: float) -> None:
        node, term, role = int(record["node"]), int(record["term"]), record["role"]
        leader = self.spans["leader"]
        held = leader.held(node)
        if held is not None and (role != "leader" or term != held.value):
            leader.close(node, t_ms)
        if role == "leader":
            leader.open(node, t_ms, value=term)

    def finish(self, end_ms: float) -> tuple[dict[str, list[_Span]], list[_Span]]:
        for client, start_ms in self.pending.values():
            self.ops["indeterminate"].append(_Span(row=client, start_ms=start_ms, end_ms=end_ms))
        self.pending.clear()
        for spans in self.spans.values():
            spans.close_all(end_ms)
        states = {name: self.spans[name].closed for name in NODE_STATES}
        return states, _leader_strip(self.spans["leader"].closed)


def _groups_text(groups: Any) -> str:
    if not isinstance(groups, Sequence):
        return ""
    return " | ".join(",".join(str(node) for node in group) for group in groups)


def _leader_strip(terms: list[_Span]) -> list[_Span]:
    """Each term's bar, cut where a leader of a later term takes over."""
    ordered = sorted(terms, key=lambda span: (span.start_ms, span.value))
    strip = []
    for index, span in enumerate(ordered):
        later = next((s for s in ordered[index + 1:] if s.value > span.value), None)
        end_ms = span.end_ms if later is None else min(span.end_ms, later.start_ms)
        strip.append(replace(span, end_ms=max(end_ms, span.start_ms)))
    return strip


def _read(records: Sequence[Record]) -> _Trace:
    _check(records)
    ordered = sorted(records, key=lambda record: float(record["t"]))  # stable: ties keep order
    run = next((r for r in ordered if r["ev"] == "run"), {})
    verdict = next((r for r in reversed(ordered) if r["ev"] == "verdict"), None)
    members = {int(node) for node in run.get("nodes", [])}
    mentioned = {int(r["node"]) for r in ordered
                 if r["ev"] in ("fault", "role") and isinstance(r.get("node"), int)}
    nodes = sorted(members | mentioned)
    start_ms, end_ms = float(ordered[0]["t"]), float(ordered[-1]["t"])
    reader = _Reader(start_ms=start_ms, members=members, nodes=nodes)
    for record in ordered:
        reader.feed(record)
    states, leaders = reader.finish(end_ms)
    clients = sorted({int(r["client"]) for r in ordered if r["ev"] == "call"})
    return _Trace(start_ms=start_ms, end_ms=end_ms, run=run, verdict=verdict, clients=clients,
                  nodes=nodes, ops=reader.ops, states=states,
                  partitions=reader.spans["partition"].closed, leaders=leaders,
                  phases=reader.phases)


def _default_title(trace: _Trace) -> str:
    ops = sum(len(bars) for bars in trace.ops.values())
    seconds = (trace.end_ms - trace.start_ms) / 1000.0
    verdict = "no verdict" if trace.verdict is None else "verdict ok"
    if trace.verdict is not None and not trace.verdict.get("ok"):
        verdict = f"verdict FAILED {list(trace.verdict.get('failed', []))}"
    head = (f"Chainfire simulation — seed {trace.run.get('seed', '?')} — "
            f"{len(trace.nodes)} nodes, {len(trace.clients)} clients, {ops} ops, "
            f"{seconds:.1f} s simulated — {verdict}")
    options = trace.run.get("options")
    lines = textwrap.wrap(head, TITLE_WIDTH_CHARS, max_lines=TITLE_LINES_MAX)
    if isinstance(options, Mapping) and options and len(lines) < TITLE_LINES_MAX:
        text = "options: " + ", ".join(f"{key}={value}" for key, value in options.items())
        lines += textwrap.wrap(text, TITLE_WIDTH_CHARS, max_lines=TITLE_LINES_MAX - len(lines))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Layout:
    """Sizes in inches; axes rectangles as figure fractions."""

    height_in: float
    top_in: float
    ops_in: float
    nodes_in: float
    span_s: float

    @classmethod
    def of(cls, trace: _Trace, title_lines: int, legend_entries: int) -> _Layout:
        top_in = TITLE_LINE_IN * title_lines + PHASE_LABEL_IN + 0.1
        ops_in = LANE_IN * max(len(trace.clients), 2) + HEADROOM_IN
        nodes_in = LANE_IN * max(len(trace.nodes), 1)
        height_in = top_in + ops_in + nodes_in + LEADER_IN + 2 * GAP_IN + BOTTOM_IN
        legend_in = top_in + LEGEND_ENTRY_IN * legend_entries + 0.2
        ops_in += max(0.0, legend_in - height_in)  # the legend must fit: give the ops room
        span_s = max((trace.end_ms - trace.start_ms) / 1000.0, 1e-3)
        return cls(height_in=max(height_in, legend_in), top_in=top_in, ops_in=ops_in,
                   nodes_in=nodes_in, span_s=span_s)

    def rect(self, part: str) -> tuple[float, float, float, float]:
        """[left, bottom, width, height] of "ops", "nodes" or "leader" in figure fractions."""
        bottoms = {"leader": BOTTOM_IN, "nodes": BOTTOM_IN + LEADER_IN + GAP_IN,
                   "ops": BOTTOM_IN + LEADER_IN + self.nodes_in + 2 * GAP_IN}
        heights = {"leader": LEADER_IN, "nodes": self.nodes_in, "ops": self.ops_in}
        return (LEFT_IN / WIDTH_IN, bottoms[part] / self.height_in,
                (WIDTH_IN - LEFT_IN - RIGHT_IN) / WIDTH_IN, heights[part] / self.height_in)

    def pick(self, span: _Span, *texts: str, fontsize: float = FONT_TINY) -> str | None:
        """The first of `texts` that fits inside `span` on the time axis, if any."""
        points_per_s = (WIDTH_IN - LEFT_IN - RIGHT_IN) * 72.0 / self.span_s
        room_pt = (span.end_ms - span.start_ms) / 1000.0 * points_per_s
        return next((text for text in texts if room_pt >= len(text) * fontsize * 0.6 + 4), None)

    @property
    def min_bar_s(self) -> float:
        """One pixel of the time axis, so that instant ops stay visible."""
        return self.span_s / ((WIDTH_IN - LEFT_IN - RIGHT_IN) * DPI)


def _boxes(spans: Sequence[_Span], rows: Mapping[int, int], height: float,
           min_width_s: float) -> list[list[tuple[float, float]]]:
    """Rectangle vertices for a PolyCollection: x in seconds, lane y +- height / 2."""
    boxes = []
    for span in spans:
        x0 = span.start_ms / 1000.0
        x1 = max(span.end_ms / 1000.0, x0 + min_width_s)
        y0, y1 = rows[span.row] - height / 2, rows[span.row] + height / 2
        boxes.append([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    return boxes


def _lanes(axes: Axes, labels: Sequence[str], headroom: float = 0.0) -> None:
    axes.set_yticks(range(len(labels)), labels, fontsize=FONT_SMALL)
    axes.set_ylim(max(len(labels), 1) - 0.5, -0.5 - headroom)  # first lane on top
    axes.tick_params(axis="y", length=0)
    axes.grid(axis="x", color="#e0e0e0", linewidth=0.5)
    axes.set_axisbelow(True)


def _draw_ops(axes: Axes, trace: _Trace, layout: _Layout) -> None:
    rows = {client: index for index, client in enumerate(trace.clients)}
    _lanes(axes, [f"client {client}" for client in trace.clients], headroom=1.0)
    for outcome in OUTCOMES:
        boxes = _boxes(trace.ops[outcome], rows, 0.62, layout.min_bar_s)
        axes.add_collection(PolyCollection(
            boxes, facecolors=OUTCOME_COLORS[outcome], edgecolors="white", linewidths=0.3,
            gid=f"ops-{outcome}", zorder=2))


def _draw_nodes(axes: Axes, trace: _Trace, layout: _Layout, colors: Mapping[int, Any]) -> None:
    rows = {node: index for index, node in enumerate(trace.nodes)}
    _lanes(axes, [f"node {node}" for node in trace.nodes])
    for label, node in zip(axes.get_yticklabels(), trace.nodes, strict=True):
        label.set_color(colors[node])
        label.set_fontweight("bold")
    for state in NODE_STATES:
        style = {key: value for key, value in NODE_STATE_STYLE[state].items() if key != "label"}
        height = 0.5 if state in ("down", "paused") else 0.84
        boxes = _boxes(trace.states[state], rows, height, layout.min_bar_s)
        axes.add_collection(PolyCollection(boxes, gid=f"nodes-{state}", zorder=2, **style))
    for span in trace.states["skew"]:
        if layout.pick(span, span.label):
            axes.text(span.start_ms / 1000.0 + layout.min_bar_s * 3, rows[span.row] + 0.3,
                      span.label, fontsize=FONT_TINY, color=SKEW_TEXT_COLOR, va="bottom",
                      ha="left", zorder=3, clip_on=True)


def _draw_leaders(axes: Axes, trace: _Trace, layout: _Layout, colors: Mapping[int, Any]) -> None:
    _lanes(axes, ["leader"])
    axes.set_facecolor(NO_LEADER_COLOR)
    axes.grid(visible=False)
    boxes = _boxes(trace.leaders, dict.fromkeys(trace.nodes, 0), 1.0, layout.min_bar_s)
    axes.add_collection(PolyCollection(
        boxes, facecolors=[colors[span.row] for span in trace.leaders], edgecolors="white",
        linewidths=0.5, gid="leaders", zorder=2))
    for span in trace.leaders:
        text = layout.pick(span, f"n{span.row} t{span.value:g}", f"t{span.value:g}")
        if text is not None:
            axes.text((span.start_ms + span.end_ms) / 2000.0, 0.0, text, fontsize=FONT_TINY,
                      color=_ink(colors[span.row]), ha="center", va="center", zorder=3,
                      gid="term-label")


def _ink(background: Any) -> str:
    """Black or white text, whichever reads better on `background`."""
    red, green, blue = to_rgb(background)
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.6 else "white"


def _draw_partitions(all_axes: Sequence[Axes], trace: _Trace, layout: _Layout) -> None:
    for axes in all_axes:
        band = blended_transform_factory(axes.transData, axes.transAxes)
        for span in trace.partitions:
            width_s = max((span.end_ms - span.start_ms) / 1000.0, layout.min_bar_s)
            axes.add_patch(Rectangle((span.start_ms / 1000.0, 0.0), width_s, 1.0,
                                     transform=band, facecolor=PARTITION_COLOR, alpha=0.12,
                                     edgecolor="none", zorder=0, gid="partition"))
    top = all_axes[0]
    for span in trace.partitions:
        full = f"{span.label}: {span.detail}" if span.detail else span.label
        text = layout.pick(span, full, span.label)
        if text is not None:
            top.text((span.start_ms + span.end_ms) / 2000.0, -1.05, text, fontsize=FONT_TINY,
                     color=PARTITION_TEXT_COLOR, ha="center", va="center", zorder=3,
                     gid="partition-label", clip_on=True)


def _draw_phases(all_axes: Sequence[Axes], trace: _Trace) -> None:
    for axes in all_axes:
        for t_ms, _ in trace.phases:
            axes.axvline(t_ms / 1000.0, color=PHASE_COLOR, linestyle="--", linewidth=1.0,
                         zorder=4, gid="phase")
    top = all_axes[0]
    label_at = blended_transform_factory(top.transData, top.transAxes)
    for t_ms, name in trace.phases:
        top.text(t_ms / 1000.0, 1.02, f" {name}", transform=label_at, fontsize=FONT_SMALL,
                 color=PHASE_COLOR, ha="left", va="bottom", style="italic", gid="phase-label")


def _legend_handles(trace: _Trace, colors: Mapping[int, Any]) -> list[Any]:
    handles: list[Any] = [Patch(facecolor=OUTCOME_COLORS[outcome],
                                label=f"op {outcome}: {len(trace.ops[outcome])}")
                          for outcome in OUTCOMES]
    if trace.partitions:
        handles.append(Patch(facecolor=PARTITION_COLOR, alpha=0.25, label="partition"))
    if trace.phases:
        handles.append(Line2D([], [], color=PHASE_COLOR, linestyle="--", label="phase start"))
    for state in NODE_STATES:
        if trace.states[state]:
            handles.append(Patch(**NODE_STATE_STYLE[state]))
    handles.append(Patch(facecolor=NO_LEADER_COLOR, edgecolor="#9e9e9e", linewidth=0.5,
                         label="no leader"))
    handles.extend(Patch(facecolor=colors[node], label=f"leader: node {node}")
                   for node in trace.nodes)
    return handles


Source = TraceData | TracedRun | Sequence[Mapping[str, Any]]


def _records_of(source: Source) -> Sequence[Record]:
    """The records to draw: as given, a TracedRun's, or rebuilt from a TraceData."""
    if isinstance(source, TracedRun):
        return source.records
    if not isinstance(source, TraceData):
        return source
    data = source
    records: list[Record] = [{"t": 0.0, "ev": "run", "seed": data.seed, "options": data.options,
                              "params": data.params, "nodes": list(data.nodes)}]
    records += [{"t": t, "ev": "phase", "phase": name} for t, name in data.phases]
    records += data.faults
    records += [{"t": float(row["t"]), "ev": "role", "node": int(row["node"]),
                 "role": str(row["role"]), "term": int(row["term"])} for row in data.roles]
    for row, op in zip(data.ops, data.op_records, strict=True):
        records.append({"t": float(row["t_call"]), "ev": "call", "client": op["client"],
                        "op": op["op"], "node": op["node"], "input": op["input"]})
        end = {"t": float(row["t_end"]), "client": op["client"], "op": op["op"]}
        if row["outcome"] == "indeterminate":
            records.append({**end, "ev": "timeout"})
        else:
            records.append({**end, "ev": "return", "output": op["output"]})
    if data.verdict is not None:
        records.append({**data.verdict, "t": data.end_ms})
    return records


def timeline_figure(records: Source, *, title: str | None = None) -> Figure:
    """The timeline of a trace (records, a TraceData or a TracedRun) as a
    Figure on its own Agg canvas (see the module doc)."""
    trace = _read(_records_of(records))
    title_text = _default_title(trace) if title is None else title
    colors = {node: NODE_COLORS[index % len(NODE_COLORS)]
              for index, node in enumerate(trace.nodes)}
    handles = _legend_handles(trace, colors)
    layout = _Layout.of(trace, title_text.count("\n") + 1, len(handles))
    figure = Figure(figsize=(WIDTH_IN, layout.height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    ops_axes = figure.add_axes(layout.rect("ops"))
    nodes_axes = figure.add_axes(layout.rect("nodes"), sharex=ops_axes)
    leader_axes = figure.add_axes(layout.rect("leader"), sharex=ops_axes)
    all_axes = (ops_axes, nodes_axes, leader_axes)
    _draw_ops(ops_axes, trace, layout)
    _draw_nodes(nodes_axes, trace, layout, colors)
    _draw_leaders(leader_axes, trace, layout, colors)
    _draw_partitions(all_axes, trace, layout)
    _draw_phases(all_axes, trace)
    ops_axes.set_xlim(trace.start_ms / 1000.0, trace.start_ms / 1000.0 + layout.span_s)
    for axes in all_axes[:-1]:
        axes.tick_params(axis="x", labelbottom=False)
    leader_axes.tick_params(axis="x", labelsize=FONT_SMALL)
    leader_axes.set_xlabel("simulated time (s)", fontsize=FONT_SMALL + 1)
    figure.suptitle(title_text, x=LEFT_IN / WIDTH_IN, y=1.0 - 0.06 / layout.height_in,
                    ha="left", va="top", fontsize=FONT_SMALL + 2)
    figure.legend(handles=handles, loc="upper left", fontsize=FONT_SMALL, frameon=False,
                  bbox_to_anchor=(1.0 - (RIGHT_IN - 0.15) / WIDTH_IN,
                                  1.0 - layout.top_in / layout.height_in))
    return figure


def write_timeline_png(records: Source, path: str | os.PathLike[str], *,
                       title: str | None = None) -> None:
    """Draw the timeline of a trace and save it as a PNG at `path`."""
    timeline_figure(records, title=title).savefig(os.fspath(path), format="png", dpi=DPI)


__all__ = ["timeline_figure", "write_timeline_png"]
