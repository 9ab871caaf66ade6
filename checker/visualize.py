"""Pictures of a checked history: a self-contained HTML page and a PNG.

One lane per client; each operation is a bar from its call to its return
(an unknown outcome runs to the end of the picture, drawn faded). Colours
say what the checker concluded:

- green, numbered: in the linearization (Ok), or in the longest
  linearizable prefix (Illegal), numbered in linearization order;
- red: the operations that cannot be ordered (the explanation);
- grey: the rest (not reached by the prefix, or another partition).

The HTML page has no scripts and loads nothing from the network: an inline
SVG with a tooltip (`<title>`) per bar giving the operation, its times and
its place in the order. The PNG uses matplotlib (Agg backend, no display).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checker.history import Operation
from checker.result import CheckResult, Verdict

GREEN, RED, GREY = "#2e7d32", "#c62828", "#9e9e9e"
_LANE_PX, _BAR_PX, _WIDTH_PX, _LEFT_PX, _TOP_PX = 26, 16, 1100, 90, 70


def _order(result: CheckResult) -> tuple[dict[int, int], set[int]]:
    """Linearization position of each op id (1-based) and the explanation ids."""
    position: dict[int, int] = {}
    blamed: set[int] = set()
    for part in result.partitions:
        for number, op_id in enumerate(part.linearization, start=1):
            position[op_id] = number
        blamed.update(part.explanation)
    return position, blamed


def _time_span(operations: Sequence[Operation]) -> tuple[float, float]:
    finite = [t for op in operations for t in (op.call, op.return_time) if math.isfinite(t)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    return low, high + max(1.0, (high - low) * 0.05)


def _describe(model: Any, op: Operation) -> str:
    describe = getattr(model, "describe_operation", None)
    text = describe(op.input, op.output) if describe else f"{op.input!r} -> {op.output!r}"
    return f"{text} (unknown outcome)" if op.unknown else str(text)


def _color(op: Operation, position: dict[int, int], blamed: set[int]) -> str:
    if op.id in blamed:
        return RED
    return GREEN if op.id in position else GREY


def render_html(operations: Sequence[Operation], result: CheckResult, model: Any,
                title: str = "history") -> str:
    position, blamed = _order(result)
    clients = sorted({op.client for op in operations})
    lane = {client: index for index, client in enumerate(clients)}
    low, high = _time_span(operations)
    scale = (_WIDTH_PX - _LEFT_PX - 20) / (high - low)
    height = _TOP_PX + _LANE_PX * len(clients) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH_PX}" height="{height}" '
             'font-family="sans-serif" font-size="11">']
    for client, index in lane.items():
        y = _TOP_PX + index * _LANE_PX
        parts.append(f'<text x="4" y="{y + 12}">client {client}</text>')
        parts.append(f'<line x1="{_LEFT_PX}" y1="{y + _BAR_PX + 4}" x2="{_WIDTH_PX - 10}" '
                     f'y2="{y + _BAR_PX + 4}" stroke="#eee"/>')
    frame = _Frame(lane=lane, low=low, high=high, scale=scale, position=position, blamed=blamed,
                   model=model)
    parts.extend(_svg_bar(op, frame) for op in operations)
    parts.append(f'<text x="{_LEFT_PX}" y="{height - 10}">time →</text></svg>')
    summary = "".join(
        f"<li>{html.escape(p.name)}: <b>{p.verdict.value}</b>, {p.operations} ops"
        + (f", longest linearizable prefix {len(p.linearization)} ops, cannot order "
           f"{html.escape(str(list(p.explanation)))}" if p.verdict == Verdict.ILLEGAL else "")
        + (f" — {html.escape(p.reason)}" if p.reason else "") + "</li>"
        for p in result.partitions)
    legend = (f'<span style="color:{GREEN}">■ linearized (numbered in order)</span> '
              f'<span style="color:{RED}">■ cannot be ordered</span> '
              f'<span style="color:{GREY}">■ other</span>; faded: unknown outcome')
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title></head><body style='font-family:sans-serif'><h2>{html.escape(title)}: "
            f"{result.verdict.value}</h2><ul>{summary}</ul><p>{legend}</p>{''.join(parts)}"
            "</body></html>")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Frame:
    lane: dict[int, int]
    low: float
    high: float
    scale: float
    position: dict[int, int]
    blamed: set[int]
    model: Any


def _svg_bar(op: Operation, frame: _Frame) -> str:
    end = frame.high if op.unknown else op.return_time
    x = _LEFT_PX + (op.call - frame.low) * frame.scale
    width = max(3.0, (end - op.call) * frame.scale)
    y = _TOP_PX + frame.lane[op.client] * _LANE_PX
    color = _color(op, frame.position, frame.blamed)
    order = frame.position.get(op.id)
    tip = html.escape(f"op {op.id}, client {op.client}: {_describe(frame.model, op)}; "
                      f"call {op.call}, "
                      f"return {'?' if op.unknown else op.return_time}"
                      + (f"; #{order} in order" if order else ""))
    opacity = "0.35" if op.unknown else "0.9"
    label = (f'<text x="{x + 2:.1f}" y="{y + 12}" fill="white">{order}</text>'
             if order and width > 18 else "")
    return (f'<g><title>{tip}</title><rect x="{x:.1f}" y="{y}" width="{width:.1f}" '
            f'height="{_BAR_PX}" fill="{color}" opacity="{opacity}" rx="2"/>{label}</g>')


def write_html(path: Path, operations: Sequence[Operation], result: CheckResult,
               model: Any) -> None:
    path.write_text(render_html(operations, result, model, title=path.stem), encoding="utf-8")


def write_png(path: Path, operations: Sequence[Operation], result: CheckResult,
              model: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.patches import Patch

    position, blamed = _order(result)
    clients = sorted({op.client for op in operations})
    lane = {client: index for index, client in enumerate(clients)}
    low, high = _time_span(operations)
    figure, axes = pyplot.subplots(figsize=(12, max(3.0, 0.35 * len(clients) + 1.5)))
    for op in operations:
        end = high if op.unknown else op.return_time
        axes.broken_barh([(op.call, max(end - op.call, (high - low) * 0.002))],
                         (lane[op.client] - 0.35, 0.7), facecolors=_color(op, position, blamed),
                         alpha=0.35 if op.unknown else 0.9)
    axes.set_yticks(range(len(clients)), [f"client {c}" for c in clients])
    axes.set_xlabel("time (history units: simulated ms, or event position)")
    axes.set_ylabel("client")
    axes.set_title(f"{path.stem}: {result.verdict.value} ({result.model})")
    axes.legend(handles=[Patch(color=GREEN, label="linearized / longest prefix"),
                         Patch(color=RED, label="cannot be ordered"),
                         Patch(color=GREY, label="other"),
                         Patch(color=GREY, alpha=0.35, label="unknown outcome (faded)")],
                loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


__all__ = ["render_html", "write_html", "write_png"]
