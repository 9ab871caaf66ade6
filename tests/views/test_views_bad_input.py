"""sim.views on input with nothing in it or that cannot be drawn: a typed
error naming the problem, or a labelled figure that says it is empty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from sim.tracedata import TraceData, TraceDataError, load_trace
from sim.views import (
    ViewError,
    availability_figure,
    illegal_figure,
    latency_figure,
    load_sweep,
    progress_figure,
    sequence_figure,
    timeline_figure,
)

RUN_ONLY: list[dict[str, Any]] = [{"t": 0, "ev": "run", "seed": 1, "nodes": [1, 2, 3]}]


def empty_notes(figure: Figure) -> list[str]:
    return [t.get_text() for a in figure.axes for t in a.texts if t.get_gid() == "empty-note"]


def assert_labelled(figure: Figure) -> None:
    assert figure.get_suptitle()
    assert figure.legends and figure.legends[0].get_texts()
    assert any(a.get_xlabel() for a in figure.axes)
    figure.canvas.draw()  # renders without error


@pytest.mark.parametrize("view", [progress_figure, latency_figure, illegal_figure])
def test_a_trace_with_nothing_in_it_gives_a_labelled_empty_figure(view: Any) -> None:
    figure = view(load_trace(RUN_ONLY))
    assert_labelled(figure)
    assert empty_notes(figure)


def test_sequence_of_an_empty_window_is_labelled(small_data: TraceData) -> None:
    figure = sequence_figure(small_data, 10_000.0, 10_050.0)  # after the run ended
    assert_labelled(figure)
    assert empty_notes(figure) == ["no messages in this window"]


def test_sequence_refuses_a_backwards_window_and_too_many_messages(
        small_data: TraceData) -> None:
    with pytest.raises(ViewError, match="empty window"):
        sequence_figure(small_data, 500.0, 500.0)
    with pytest.raises(ViewError, match="narrow the window or pick types="):
        sequence_figure(small_data, 0.0, small_data.end_ms)


@pytest.mark.parametrize("bucket_ms", [0.0, -5.0, float("nan"), 0.001])
def test_latency_refuses_a_bad_bucket(small_data: TraceData, bucket_ms: float) -> None:
    with pytest.raises(ViewError, match="bucket"):
        latency_figure(small_data, bucket_ms=bucket_ms)


def test_empty_records_raise_typed_errors() -> None:
    with pytest.raises(TraceDataError):
        progress_figure([])
    with pytest.raises(ValueError, match="empty trace"):
        timeline_figure([])


def test_a_sweep_file_with_a_malformed_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "sweep.jsonl"
    path.write_text('{"seed": 1}\n\n{"seed": 2,\n')
    with pytest.raises(ViewError, match=r"sweep.jsonl:3: not JSON"):
        load_sweep(path)
    path.write_text('{"seed": 1}\n[1, 2]\n')
    with pytest.raises(ViewError, match=r"sweep.jsonl:2: not a JSON object"):
        load_sweep(path)


def test_availability_refuses_rows_without_the_fields_it_needs() -> None:
    old_row = {"seed": 4, "ok": True, "ops_completed": 10, "ops_indeterminate": 0}
    with pytest.raises(ViewError, match=r"lacks .*run the sweep again"):
        availability_figure([old_row])
    with pytest.raises(ViewError, match="group must be"):
        availability_figure([], group="sideways")  # type: ignore[arg-type]


def test_availability_of_no_rows_is_labelled() -> None:
    figure = availability_figure([])
    assert_labelled(figure)
    assert empty_notes(figure)
