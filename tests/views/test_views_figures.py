"""sim.views: every figure builds from a real small run, with a title, axis
labels with units, and a legend, and saves as a PNG."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from sim.tracedata import TraceData, TracedRun
from sim.views import (
    fault_spans,
    latency_figure,
    progress_figure,
    save_png,
    sequence_figure,
    timeline_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UNITS = ("(s)", "(ms)", "(entries)", "time (s)")


def assert_readable(figure: Figure) -> None:
    """A title, every drawn axes labelled (x with a time unit somewhere), a legend."""
    assert figure.get_suptitle().strip()
    assert figure.legends and figure.legends[0].get_texts()
    assert all(t.get_text() for t in figure.legends[0].get_texts())
    labelled = [a for a in figure.axes if a.get_xlabel() or a.get_ylabel()]
    assert labelled
    assert any("(s)" in a.get_xlabel() or "(ms)" in a.get_xlabel() or "(ms)" in a.get_ylabel()
               for a in figure.axes)


def png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


VIEWS: dict[str, Callable[[TraceData], Figure]] = {
    "timeline": timeline_figure,
    "sequence": lambda d: sequence_figure(d, 495.0, 540.0),
    "progress": progress_figure,
    "latency": lambda d: latency_figure(d, bucket_ms=250.0),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_each_view_is_readable(name: str, small_data: TraceData, tmp_path: Path) -> None:
    figure = VIEWS[name](small_data)
    assert_readable(figure)
    path = tmp_path / f"{name}.png"
    save_png(figure, path)
    assert path.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_views_are_deterministic(name: str, small_data: TraceData) -> None:
    assert png(VIEWS[name](small_data)) == png(VIEWS[name](small_data))


def test_timeline_from_trace_data_matches_the_records(small_run: TracedRun,
                                                      small_data: TraceData) -> None:
    assert png(timeline_figure(small_run.records)) == png(timeline_figure(small_data))
    assert png(timeline_figure(small_run)) == png(timeline_figure(small_data))


def test_views_accept_a_traced_run_or_a_path(small_run: TracedRun, small_data: TraceData,
                                             tmp_path: Path) -> None:
    assert png(progress_figure(small_run)) == png(progress_figure(small_data))
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in small_run.records))
    assert png(latency_figure(str(path))) == png(latency_figure(small_data))


def test_sequence_draws_every_message_of_the_window(small_data: TraceData) -> None:
    figure = sequence_figure(small_data, 495.0, 540.0)
    cut = small_data.window(495.0, 540.0)
    lines = sum(len(c.get_segments()) for c in figure.axes[0].collections
                if str(c.get_gid()).startswith("msg-"))
    assert lines == len(cut.messages) > 0
    assert f"({len(cut.messages)} messages)" in figure.get_suptitle()
    only_votes = sequence_figure(small_data, 495.0, 540.0, types=["RequestVote"])
    votes = int((cut.messages["type"] == "RequestVote").sum())
    assert f"({votes} messages)" in only_votes.get_suptitle()


def test_sequence_marks_drops_with_their_reason(illegal_data: TraceData) -> None:
    # The partition at ~1442.7 ms cuts messages between the halves 3,4 | 1,2,5.
    figure = sequence_figure(illegal_data, 1436.0, 1462.0)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert any(t.startswith("partition →") for t in texts)
    assert any("halves 3,4 | 1,2,5" in t for t in texts)


def test_progress_steps_reach_the_last_commit(small_data: TraceData) -> None:
    figure = progress_figure(small_data)
    commit_axes = figure.axes[0]
    top = max(float(line.get_ydata()[-1]) for line in commit_axes.lines
              if str(line.get_gid()).startswith("node-"))
    assert top == small_data.commits["commit"].max()


def test_latency_percentiles_are_ordered(illegal_data: TraceData) -> None:
    figure = latency_figure(illegal_data, bucket_ms=500.0)
    by_gid = {line.get_gid(): line.get_ydata() for line in figure.axes[0].lines}
    for p50, p90, p99 in zip(by_gid["latency-p50"], by_gid["latency-p90"],
                             by_gid["latency-p99"], strict=True):
        if not math.isnan(p50):  # a bucket with ops
            assert p50 <= p90 <= p99
    shaded = [p for p in figure.axes[0].patches if p.get_gid() == "fault-partition"]
    assert len(shaded) == len([s for s in fault_spans(illegal_data) if s.kind == "partition"])


def test_no_pyplot_state_is_touched() -> None:
    script = (
        "import sys, matplotlib\n"
        "before = dict(matplotlib.rcParams.copy())\n"
        "import sim.views\n"
        "from sim.tracedata import run_traced, load_trace\n"
        "from sim.options import RunOptions\n"
        "d = load_trace(run_traced(RunOptions(seed=3, nodes=3, duration_ms=1000, clients=2)))\n"
        "sim.views.progress_figure(d); sim.views.latency_figure(d)\n"
        "sim.views.sequence_figure(d, 0, 600)\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert dict(matplotlib.rcParams.copy()) == before\n")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], check=True, cwd=root)
