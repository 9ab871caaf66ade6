"""sim.views.illegal: a run with a planted bug that fails linearizability has
its explanation ops drawn red and the window they span shaded."""

from __future__ import annotations

from typing import Any

from matplotlib.collections import PolyCollection

from checker.result import Verdict
from sim.tracedata import TraceData, TracedRun
from sim.views import check_history, history_operations, illegal_figure

RED = (0xC6 / 255, 0x28 / 255, 0x28 / 255)


def red_boxes(axes: Any) -> list[Any]:
    return [path for c in axes.collections if isinstance(c, PolyCollection)
            and tuple(c.get_facecolor()[0][:3]) == RED for path in c.get_paths()]


def test_the_run_fails_linearizability(illegal_run: TracedRun) -> None:
    assert "linearizability" in illegal_run.report.failed_checks


def test_history_operations_match_the_run(illegal_data: TraceData,
                                          illegal_run: TracedRun) -> None:
    operations = history_operations(illegal_data)
    report = illegal_run.report
    assert len(operations) == report.ops_ok + report.ops_failed + report.ops_indeterminate
    assert sum(op.unknown for op in operations) == report.ops_indeterminate


def test_the_recheck_blames_the_ops_the_run_blamed(illegal_data: TraceData,
                                                   illegal_run: TracedRun) -> None:
    result = check_history(illegal_data)
    assert result.verdict == Verdict.ILLEGAL
    blamed = [i for p in result.failing for i in p.explanation]
    message = next(c for c in illegal_run.report.checks if c.name == "linearizability")
    assert f"(operations {blamed})" in " ".join(message.messages)
    assert sorted(blamed) == [61, 63]  # a stale read (63) after a write returned (61)


def test_explanation_ops_are_red_and_the_window_spans_them(illegal_data: TraceData) -> None:
    result = check_history(illegal_data)
    blamed = sorted({i for p in result.failing for i in p.explanation})
    figure = illegal_figure(illegal_data, result=result)
    top, zoom = figure.axes
    assert len(red_boxes(top)) == len(blamed) == len(red_boxes(zoom))
    rows = illegal_data.ops[[int(op) in blamed for op in illegal_data.ops["op"]]]
    lo, hi = float(rows["t_call"].min()), float(rows["t_end"].max())
    (window,) = [p for p in zoom.patches if p.get_gid() == "window"]
    x0, x1 = window.get_x(), window.get_x() + window.get_width()  # type: ignore[attr-defined]
    assert (x0, x1) == (lo, hi)
    left, right = zoom.get_xlim()
    assert left < lo and hi < right  # the zoom shows the window with room around it
    labels = [t.get_text() for t in zoom.texts]
    for op_id in blamed:
        assert any(t.startswith(f"op {op_id} ") for t in labels)
    assert "Illegal" in figure.get_suptitle()
    assert figure.legends


def test_a_linearizable_run_is_drawn_without_a_window(small_data: TraceData) -> None:
    figure = illegal_figure(small_data)
    assert "Ok" in figure.get_suptitle()
    assert not [p for a in figure.axes for p in a.patches if p.get_gid() == "window"]
    assert not red_boxes(figure.axes[0])
