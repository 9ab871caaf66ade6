"""A message-sequence (Lamport) diagram of a trace window.

Theory of operation: time runs down the page (simulated ms), one vertical
lane per node. The trace is cut to the window (`TraceData.window`); each
Raft message that overlaps it is a line from its sender's lane at the send
time to its receiver's lane at the delivery time, coloured by message type,
with a triangle at the receiving end:

- delivered: a solid line; a duplicate delivery: a dashed line;
- dropped: a line that stops part way across (half the distance, at most
  0.7 of a lane, so it never reaches another lane) at the drop time, ending
  in an x with the reason and the addressee written beside it
  ("partition →n3"; reasons: partition, loss, down);
- still in flight when the trace ends: a dotted line to the window's end.

On the lanes: a role change is a dot in the node's colour with its new role
and term ("leader t3"); a crashed or paused node's lane is drawn as a thick
grey bar for as long as it is down; a clock fault is a purple bar; a
partition is a blue band across every lane, named (vertically) left of the
first lane.

Many messages make a diagram unreadable: `types` keeps only the listed
message types and `nodes` only messages between listed nodes; more than
`MAX_MESSAGES` in the window raise `ViewError` with a hint to narrow it.
Lines are one LineCollection per (type, style), so drawing stays quick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sim.tracedata import TraceData
from sim.views._common import (
    FAULT_STYLE,
    FONT,
    FONT_SMALL,
    FaultSpan,
    TraceSource,
    ViewError,
    as_trace_data,
    fault_handles,
    fault_spans,
    new_figure,
    node_color,
    note,
)

MAX_MESSAGES = 600
MAX_DROP_LABELS = 60
DROP_REACH_LANES = 0.7  # a dropped message's line stops before the next lane
TYPE_COLORS = ("#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037",
               "#ad1457", "#9e9d24", "#37474f", "#0277bd", "#558b2f")
DROP_COLOR = "#b71c1c"
LANE_COLOR = "#9e9e9e"
ROLE_SHORT = {"leader": "leader", "candidate": "cand.", "pre_candidate": "pre-cand.",
              "follower": "follower", "learner": "learner"}


def sequence_figure(data: TraceSource, start_ms: float, end_ms: float, *,
                    types: Sequence[str] | None = None,
                    nodes: Sequence[int] | None = None) -> Figure:
    """The message-sequence diagram of `data` between two simulated times (ms)."""
    data = as_trace_data(data)
    if not end_ms > start_ms:
        raise ViewError(f"empty window: start {start_ms} ms is not before end {end_ms} ms")
    cut = data.window(start_ms, end_ms)
    lanes = sorted(nodes) if nodes is not None else sorted(
        set(data.nodes) | set(cut.roles["node"].tolist()) | set(cut.messages["src"].tolist())
        | set(cut.messages["dst"].tolist()))
    messages = _select(cut.messages, types, lanes)
    if len(messages) > MAX_MESSAGES:
        raise ViewError(f"{len(messages)} messages between {start_ms:g} and {end_ms:g} ms: "
                        f"more than {MAX_MESSAGES} do not read; narrow the window or pick "
                        f"types= (seen: {sorted(set(messages['type'].tolist()))})")
    height_in = 7.5 if (end_ms - start_ms) > 20 else 6.0
    figure = new_figure(3.2 + 1.35 * max(len(lanes), 2), height_in)
    axes = figure.add_axes((0.11, 0.08, 0.62, 0.82))
    x_of = {node: index for index, node in enumerate(lanes)}
    spans = [s for s in fault_spans(data) if s.end_ms >= start_ms and s.start_ms <= end_ms]
    _draw_lanes(axes, data, lanes, spans, (start_ms, end_ms))
    handles = _draw_messages(axes, messages, x_of, end_ms)
    _draw_roles(axes, cut, x_of, data)
    axes.set_ylim(end_ms, start_ms)  # time runs down
    axes.set_xlim(-0.65, len(lanes) - 0.4)
    axes.set_xticks(range(len(lanes)), [f"node {n}" for n in lanes], fontsize=FONT)
    for label, node in zip(axes.get_xticklabels(), lanes, strict=True):
        label.set_color(node_color(data, node))
        label.set_fontweight("bold")
    axes.xaxis.tick_top()
    axes.set_ylabel("simulated time (ms)", fontsize=FONT)
    axes.tick_params(axis="y", labelsize=FONT_SMALL)
    axes.set_xlabel("nodes (one lane each)", fontsize=FONT)
    if not len(messages):
        note(axes, "no messages in this window")
    kinds = {s.kind for s in spans}
    handles += fault_handles(kinds & {"partition"})
    handles += [Line2D([], [], color=FAULT_STYLE[k]["color"], linewidth=6, alpha=0.45,
                       label=FAULT_STYLE[k]["label"]) for k in ("crash", "pause", "clock")
                if k in kinds]
    handles.append(Line2D([], [], marker="o", linestyle="none", color="#424242",
                          label="role change (role, term)"))
    figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.745, 0.9),
                  fontsize=FONT_SMALL, frameon=False)
    figure.suptitle(f"Message sequence — seed {data.seed}, {start_ms:g} to {end_ms:g} ms "
                    f"({len(messages)} messages)", fontsize=FONT + 2, x=0.11, ha="left")
    return figure


def _select(messages: Any, types: Sequence[str] | None, lanes: Sequence[int]) -> Any:
    keep = np.isin(messages["src"], lanes) & np.isin(messages["dst"], lanes)
    if types is not None:
        keep &= np.isin(messages["type"], list(types))
    return messages[keep]


def _draw_lanes(axes: Axes, data: TraceData, lanes: Sequence[int], spans: Sequence[FaultSpan],
                window: tuple[float, float]) -> None:
    start_ms, end_ms = window
    for x in range(len(lanes)):
        axes.axvline(x, color=LANE_COLOR, linewidth=1.0, zorder=1)
    for span in spans:
        lo, hi = max(span.start_ms, start_ms), min(span.end_ms, end_ms)
        style = FAULT_STYLE[span.kind]
        if span.kind == "partition":
            axes.axhspan(lo, hi, color=style["color"], alpha=style["alpha"], linewidth=0,
                         zorder=0, gid="fault-partition")
            axes.text(-0.5, lo, span.label + " ", fontsize=FONT_SMALL - 1, color="#0d47a1",
                      ha="center", va="top", rotation=90, zorder=5, clip_on=True)
        elif span.node in lanes:
            x = lanes.index(span.node)
            axes.plot([x, x], [lo, hi], color=style["color"], linewidth=7, alpha=0.45,
                      solid_capstyle="butt", zorder=1, gid=f"fault-{span.kind}")
            axes.text(x + 0.06, lo, span.label.removeprefix(f"node {span.node} "),
                      fontsize=FONT_SMALL - 1, color=style["color"], va="top", zorder=5)


def _draw_messages(axes: Axes, messages: Any, x_of: dict[int, int],
                   end_ms: float) -> list[Any]:
    type_names = sorted(set(messages["type"].tolist()))
    colors = {name: TYPE_COLORS[i % len(TYPE_COLORS)] for i, name in enumerate(type_names)}
    handles: list[Any] = [Line2D([], [], color=colors[n], label=n) for n in type_names]
    segments: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}
    heads: dict[str, list[tuple[float, float, str]]] = {n: [] for n in type_names}
    drops: list[tuple[float, float, str, int, int, bool]] = []
    for row in messages:
        x0, x1 = x_of[int(row["src"])], x_of[int(row["dst"])]
        t0, t1, fate = float(row["t_send"]), float(row["t_end"]), str(row["fate"])
        name = str(row["type"])
        if fate in ("delivered", "duplicate", "in_flight"):
            style = {"delivered": "solid", "duplicate": "dashed", "in_flight": "dotted"}[fate]
            t1 = min(t1, end_ms) if fate == "in_flight" else t1
            segments.setdefault((name, style), []).append([(x0, t0), (x1, t1)])
            if fate != "in_flight":
                heads[name].append((x1, t1, ">" if x1 > x0 else "<"))
        else:
            reach = min(abs(x1 - x0) * 0.45, DROP_REACH_LANES)
            xm = x0 + (reach if x1 > x0 else -reach)
            segments.setdefault((name, "solid"), []).append([(x0, t0), (xm, t1)])
            drops.append((xm, t1, fate, int(row["src"]), int(row["dst"]), x1 > x0))
    for (name, style), lines in sorted(segments.items()):
        axes.add_collection(LineCollection(lines, colors=colors[name], linestyles=style,
                                           linewidths=1.0, alpha=0.85, zorder=3,
                                           gid=f"msg-{name}-{style}"))
    for name, points in heads.items():
        for marker in (">", "<"):
            chosen = [(x, t) for x, t, m in points if m == marker]
            if chosen:
                xs, ts = zip(*chosen, strict=True)
                axes.scatter(xs, ts, marker=marker, s=14, color=colors[name], zorder=4,
                             linewidths=0)
    if drops:
        axes.scatter([d[0] for d in drops], [d[1] for d in drops], marker="x", s=30,
                     color=DROP_COLOR, zorder=5, gid="drops", linewidths=1.3)
        if len(drops) <= MAX_DROP_LABELS:
            _label_drops(axes, drops)
        handles.append(Line2D([], [], color=DROP_COLOR, marker="x", linestyle="none",
                              label="dropped (reason)"))
    if any(style == "dashed" for _, style in segments):
        handles.append(Line2D([], [], color="#424242", linestyle="dashed", label="duplicate"))
    if any(style == "dotted" for _, style in segments):
        handles.append(Line2D([], [], color="#424242", linestyle="dotted",
                              label="in flight at the end"))
    if not type_names:
        handles.append(Line2D([], [], color="#424242", label="message (send → delivery)"))
    return handles


def _label_drops(axes: Axes, drops: Sequence[tuple[float, float, str, int, int, bool]]) -> None:
    """One label per sender, time, reason and direction: "partition →n3,n4",
    beyond the farthest x of the group."""
    groups: dict[tuple[int, float, str, bool], list[tuple[float, int]]] = {}
    for x, t, reason, src, dst, rightward in drops:
        groups.setdefault((src, t, reason, rightward), []).append((x, dst))
    for (_, t, reason, rightward), members in groups.items():
        xs = [x for x, _ in members]
        to = ",".join(f"n{dst}" for dst in sorted({d for _, d in members}))
        axes.text(max(xs) + 0.05 if rightward else min(xs) - 0.05, t,
                  f"{reason} \N{RIGHTWARDS ARROW}{to}", fontsize=FONT_SMALL - 1,
                  color=DROP_COLOR, va="center", ha="left" if rightward else "right", zorder=5,
                  bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.6, "pad": 0.3})


def _draw_roles(axes: Axes, cut: TraceData, x_of: dict[int, int], data: TraceData) -> None:
    for row in cut.roles:
        node = int(row["node"])
        if node not in x_of:
            continue
        x, t = x_of[node], float(row["t"])
        role = str(row["role"])
        axes.plot([x], [t], marker="o", markersize=6, color=node_color(data, node),
                  markeredgecolor="white", zorder=6, gid="role")
        axes.text(x - 0.06, t, f"{ROLE_SHORT.get(role, role)} t{int(row['term'])}",
                  fontsize=FONT_SMALL - 1, ha="right", va="center", zorder=6,
                  fontweight="bold" if role == "leader" else "normal",
                  color=node_color(data, node),
                  bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})


__all__ = ["MAX_MESSAGES", "sequence_figure"]
