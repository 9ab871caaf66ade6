"""sim.views.timeline: the trace timeline (client ops, node faults, leader per term) as a PNG."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from sim.views.timeline import timeline_figure, write_timeline_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_trace() -> list[dict[str, Any]]:
    """Three clients, five nodes, every op outcome, a partition, a crash, three terms."""
    put = {"f": "put", "key": "k", "value": "v"}
    return [
        {"t": 0, "ev": "run", "seed": 7, "options": {"clients": 3, "partitions": True},
         "nodes": [1, 2, 3, 4, 5]},
        {"t": 0, "ev": "phase", "phase": "safety"},
        {"t": 5, "ev": "role", "node": 1, "role": "leader", "term": 2},
        {"t": 10, "ev": "call", "client": 1, "op": 1, "node": 1, "input": put},
        {"t": 12, "ev": "call", "client": 2, "op": 2, "node": 2, "input": put},
        {"t": 14, "ev": "call", "client": 3, "op": 3, "node": 3, "input": put},
        {"t": 300, "ev": "return", "client": 1, "op": 1, "output": {"revision": 2}},
        {"t": 320, "ev": "return", "client": 2, "op": 2, "output": {"error": "not_leader"}},
        {"t": 400, "ev": "call", "client": 1, "op": 4, "node": 1, "input": put},
        {"t": 500, "ev": "fault", "kind": "partition", "name": "halves",
         "groups": [[1, 2], [3, 4, 5]]},
        {"t": 900, "ev": "timeout", "client": 3, "op": 3},
        {"t": 1000, "ev": "role", "node": 3, "role": "candidate", "term": 3},
        {"t": 1100, "ev": "role", "node": 3, "role": "leader", "term": 3},
        {"t": 1200, "ev": "fault", "kind": "clock", "node": 4, "rate": 1.3},
        {"t": 1500, "ev": "fault", "kind": "crash", "node": 2},
        {"t": 1600, "ev": "return", "client": 1, "op": 4, "output": {"revision": 3}},
        {"t": 1700, "ev": "call", "client": 2, "op": 5, "node": 3, "input": put},
        {"t": 2000, "ev": "fault", "kind": "heal"},
        {"t": 2000, "ev": "phase", "phase": "heal"},
        {"t": 2050, "ev": "role", "node": 1, "role": "follower", "term": 3},
        {"t": 2100, "ev": "fault", "kind": "restart", "node": 2},
        {"t": 2200, "ev": "fault", "kind": "pause", "node": 5},
        {"t": 2400, "ev": "fault", "kind": "resume", "node": 5},
        {"t": 2500, "ev": "phase", "phase": "liveness"},
        {"t": 2600, "ev": "fault", "kind": "member_add", "node": 6},
        {"t": 2700, "ev": "fault", "kind": "crash", "node": 3},
        {"t": 2900, "ev": "role", "node": 5, "role": "leader", "term": 4},
        {"t": 2950, "ev": "message", "from": 5, "to": 1},  # an unknown kind: skipped
        {"t": 3000, "ev": "verdict", "ok": True, "failed": []},
    ]  # client 2's op 5 never ends: indeterminate, up to t = 3 s


def big_trace(*, seed: int, clients: int = 10, ops: int = 2000,
              duration_ms: float = 60_000.0) -> list[dict[str, Any]]:
    """`ops` ops spread over `clients` lanes, with partitions, crashes and elections."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = [
        {"t": 0, "ev": "run", "seed": seed, "nodes": [1, 2, 3, 4, 5],
         "options": {"clients": clients, "ops": ops, "duration_ms": duration_ms,
                     "net_delay_ms": [1, 20], "drop_rate": 0.01, "partition_rate_hz": 0.1,
                     "crash_rate_hz": 0.05, "clock_drift_max": 0.4, "heal_after_ms": 40_000}},
        {"t": 0, "ev": "phase", "phase": "safety"},
        {"t": 40_000, "ev": "phase", "phase": "heal"}, {"t": 45_000, "ev": "phase",
                                                         "phase": "liveness"}]
    per_lane, op_id = ops // clients, 0
    slot_ms = duration_ms / per_lane  # an op and the pause after it, on average
    for client in range(1, clients + 1):
        t = rng.uniform(0, 50)
        for _ in range(per_lane):
            op_id += 1
            end = t + rng.expovariate(1 / (0.6 * slot_ms))
            records.append({"t": t, "ev": "call", "client": client, "op": op_id, "node": 1,
                            "input": {"f": "put", "key": "k", "value": "v"}})
            roll = rng.random()
            if roll < 0.05:
                records.append({"t": end, "ev": "timeout", "client": client, "op": op_id})
            elif roll < 0.15:
                records.append({"t": end, "ev": "return", "client": client, "op": op_id,
                                "output": {"error": "not_leader"}})
            else:
                records.append({"t": end, "ev": "return", "client": client, "op": op_id,
                                "output": {"revision": op_id}})
            t = end + rng.uniform(0, 0.8 * slot_ms)
    t, term = 0.0, 1
    while t < duration_ms:
        t += rng.uniform(1500, 6000)
        term += 1
        records.append({"t": t, "ev": "role", "node": rng.randint(1, 5), "role": "leader",
                        "term": term})
        if rng.random() < 0.4:
            records.append({"t": t + 200, "ev": "fault", "kind": "partition",
                            "name": rng.choice(["halves", "bridge", "isolate-leader"]),
                            "groups": [[1, 2], [3, 4, 5]]})
            records.append({"t": t + rng.uniform(800, 4000), "ev": "fault", "kind": "heal"})
        if rng.random() < 0.3:
            node = rng.randint(1, 5)
            records.append({"t": t + 100, "ev": "fault", "kind": "crash", "node": node})
            records.append({"t": t + rng.uniform(500, 3000), "ev": "fault", "kind": "restart",
                            "node": node})
        if rng.random() < 0.2:
            records.append({"t": t + 50, "ev": "fault", "kind": "clock",
                            "node": rng.randint(1, 5), "rate": rng.choice([0.7, 1.3, 1.0])})
    records.sort(key=lambda record: record["t"])
    records.append({"t": duration_ms + 500, "ev": "verdict", "ok": True, "failed": []})
    return records


def collection(figure: Figure, gid: str) -> PolyCollection:
    found = [c for axes in figure.axes for c in axes.collections if c.get_gid() == gid]
    assert len(found) == 1, gid
    assert isinstance(found[0], PolyCollection)
    return found[0]


def texts(figure: Figure, gid: str) -> list[str]:
    return [t.get_text() for axes in figure.axes for t in axes.texts
            if isinstance(t, Text) and t.get_gid() == gid]


def bar_spans(bars: PolyCollection) -> list[tuple[float, float]]:
    """(start, end) in seconds of each rectangle, rounded to the millisecond."""
    spans = []
    for path in bars.get_paths():
        xs = path.vertices[:, 0]
        spans.append((round(float(xs.min()), 3), round(float(xs.max()), 3)))
    return sorted(spans)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_write_png_is_a_valid_png_of_sensible_size(tmp_path: Path) -> None:
    path = tmp_path / "timeline.png"
    write_timeline_png(small_trace(), path)
    width, height = png_size(path)
    assert 1000 <= width <= 2000
    assert 300 <= height <= 1200
    assert path.stat().st_size > 10_000


def test_ops_are_counted_and_drawn_by_outcome() -> None:
    figure = timeline_figure(small_trace())
    assert len(collection(figure, "ops-ok").get_paths()) == 2
    assert len(collection(figure, "ops-failed").get_paths()) == 1
    indeterminate = collection(figure, "ops-indeterminate")
    assert bar_spans(indeterminate) == [(0.014, 0.9), (1.7, 3.0)]  # timeout; no end record


def test_partition_is_shaded_on_every_axes_and_named() -> None:
    figure = timeline_figure(small_trace())
    assert len(figure.axes) == 3
    for axes in figure.axes:
        bands = [p for p in axes.patches if p.get_gid() == "partition"]
        assert len(bands) == 1
        assert isinstance(bands[0], Rectangle)
        assert (bands[0].get_x(), bands[0].get_width()) == pytest.approx((0.5, 1.5))
    assert texts(figure, "partition-label") == ["halves: 1,2 | 3,4,5"]


def test_node_lanes_show_crashes_pauses_clocks_and_membership() -> None:
    figure = timeline_figure(small_trace())
    nodes_axes = figure.axes[1]
    labels = [label.get_text() for label in nodes_axes.get_yticklabels()]
    assert labels == [f"node {n}" for n in range(1, 7)]
    assert bar_spans(collection(figure, "nodes-down")) == [(1.5, 2.1), (2.7, 3.0)]
    assert bar_spans(collection(figure, "nodes-paused")) == [(2.2, 2.4)]
    assert bar_spans(collection(figure, "nodes-skew")) == [(1.2, 3.0)]
    assert bar_spans(collection(figure, "nodes-non-member")) == [(0.0, 2.6)]  # node 6
    assert "\N{MULTIPLICATION SIGN}1.3" in [t.get_text() for t in nodes_axes.texts]


def test_leader_strip_has_one_bar_per_term() -> None:
    figure = timeline_figure(small_trace())
    # term 2 (node 1) is cut at term 3's start, term 3 ends when node 3 crashes.
    assert bar_spans(collection(figure, "leaders")) == [(0.005, 1.1), (1.1, 2.7), (2.9, 3.0)]
    assert texts(figure, "term-label")[:2] == ["n1 t2", "n3 t3"]


def test_phases_legend_axis_labels_and_title() -> None:
    figure = timeline_figure(small_trace())
    assert texts(figure, "phase-label") == [" safety", " heal", " liveness"]
    assert len([line for axes in figure.axes for line in axes.lines
                if line.get_gid() == "phase"]) == 3 * 3
    assert "(s)" in figure.axes[-1].get_xlabel()
    assert "time" in figure.axes[-1].get_xlabel()
    legend = figure.legends[0]
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels[:3] == ["op ok: 2", "op failed: 1", "op indeterminate: 2"]
    for label in ("partition", "phase start", "node crashed", "node paused",
                  "clock skewed (rate)", "not a member", "no leader", "leader: node 6"):
        assert label in labels
    assert figure.get_suptitle().startswith("Chainfire simulation — seed 7 — 6 nodes, 3 clients")
    assert "partitions=True" in figure.get_suptitle()


def test_title_can_be_given_and_names_a_failed_verdict() -> None:
    assert timeline_figure(small_trace(), title="my run").get_suptitle() == "my run"
    records = small_trace()
    records[-1] = {"t": 3000, "ev": "verdict", "ok": False, "failed": ["linearizable"]}
    assert "verdict FAILED ['linearizable']" in timeline_figure(records).get_suptitle()


def test_bad_records_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        timeline_figure([])
    with pytest.raises(ValueError, match="record 1"):
        timeline_figure([{"t": 0, "ev": "run"}, {"ev": "call"}])


def test_two_thousand_ops_render_quickly(tmp_path: Path) -> None:
    records = big_trace(seed=3)
    path = tmp_path / "big.png"
    begun = time.perf_counter()
    write_timeline_png(records, path)
    elapsed_s = time.perf_counter() - begun
    assert elapsed_s < 5.0
    width, height = png_size(path)
    assert width >= 1000 and height >= 400
    figure = timeline_figure(records)
    drawn = sum(len(collection(figure, f"ops-{outcome}").get_paths())
                for outcome in ("ok", "failed", "indeterminate"))
    assert drawn == 2000
    assert [label.get_text() for label in figure.axes[0].get_yticklabels()] == [
        f"client {c}" for c in range(1, 11)]


def test_no_pyplot_and_no_global_settings_touched(tmp_path: Path) -> None:
    """Drawing leaves matplotlib's process-wide state alone: no pyplot, same rcParams."""
    png = tmp_path / "a.png"
    script = (
        "import sys, matplotlib\n"
        "before = dict(matplotlib.rcParams.copy())  # copy() does not resolve the backend\n"
        "from sim.views.timeline import write_timeline_png\n"
        f"write_timeline_png([{{'t': 0, 'ev': 'run', 'nodes': [1]}}], {str(png)!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert dict(matplotlib.rcParams.copy()) == before\n")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True, timeout=60)
    assert png_size(png)[0] > 0
