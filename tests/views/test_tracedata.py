"""sim.tracedata: records in, numpy arrays and plain records out."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.tracedata import TraceData, TraceDataError, TracedRun, load_trace


def msg(t: float, ev: str, src: int, dst: int, kind: str = "AppendEntries", *, term: int = 1,
        **extra: Any) -> dict[str, Any]:
    return {"t": t, "ev": ev, "src": src, "dst": dst, "type": kind, "term": term, **extra}


def synthetic() -> list[dict[str, Any]]:
    put = {"f": "put", "key": "k", "value": "v"}
    return [
        {"t": 0, "ev": "run", "seed": 9, "options": {"clients": 3}, "nodes": [1, 2, 3]},
        {"t": 0, "ev": "phase", "phase": "safety"},
        msg(10, "send", 1, 2),
        msg(11, "send", 1, 2),
        msg(12, "deliver", 1, 2),  # the oldest of the two equal sends
        msg(13, "deliver", 1, 2),
        msg(14, "deliver", 1, 2),  # no send left: a duplicate of the one sent at 11
        msg(15, "send", 1, 3),
        msg(15, "drop", 1, 3, reason="partition"),
        msg(16, "send", 2, 1, "AppendResponse"),  # never settled: in flight to the end
        msg(17, "drop", 3, 1, reason="loss"),  # a drop without its send: ignored
        {"t": 18, "ev": "role", "node": 1, "role": "leader", "term": 1},
        {"t": 19, "ev": "persist", "node": 1, "hard": [1, 1, 4]},
        {"t": 19, "ev": "persist", "node": 1, "hard": None},  # no hard state: no commit row
        {"t": 19.5, "ev": "apply", "node": 1, "first": 1, "last": 4},
        {"t": 20, "ev": "call", "client": 1, "op": 1, "node": 1, "input": put},
        {"t": 21, "ev": "call", "client": 2, "op": 2, "node": 1, "input": put},
        {"t": 22, "ev": "call", "client": 3, "op": 3, "node": 2, "input": {"f": "range"}},
        {"t": 30, "ev": "return", "client": 1, "op": 1, "output": {"revision": 2}},
        {"t": 31, "ev": "return", "client": 2, "op": 2, "output": {"error": "not_leader"}},
        {"t": 32, "ev": "return", "client": 7, "op": 99, "output": {}},  # no call: ignored
        {"t": 40, "ev": "timeout", "client": 3, "op": 3},
        {"t": 45, "ev": "fault", "kind": "partition", "name": "halves", "groups": [[1], [2, 3]]},
        {"t": 50, "ev": "call", "client": 1, "op": 4, "node": 1, "input": put},  # never ends
        {"t": 60, "ev": "fault", "kind": "heal"},
        {"t": 100, "ev": "verdict", "ok": True, "failed": []},
    ]


def test_messages_pair_sends_with_deliveries_drops_and_duplicates() -> None:
    data = load_trace(synthetic())
    rows = [(float(r["t_send"]), float(r["t_end"]), int(r["src"]), int(r["dst"]), str(r["fate"]))
            for r in data.messages]
    assert rows == [(10.0, 12.0, 1, 2, "delivered"), (11.0, 13.0, 1, 2, "delivered"),
                    (11.0, 14.0, 1, 2, "duplicate"), (15.0, 15.0, 1, 3, "partition"),
                    (16.0, 100.0, 2, 1, "in_flight")]
    assert list(np.unique(data.messages["type"])) == ["AppendEntries", "AppendResponse"]
    assert np.all(np.diff(data.messages["t_send"]) >= 0)  # sorted by send time


def test_ops_outcomes_and_records() -> None:
    data = load_trace(synthetic())
    assert data.ops["outcome"].tolist() == ["ok", "failed", "indeterminate", "indeterminate"]
    assert data.ops["t_end"].tolist() == [30.0, 31.0, 40.0, 100.0]  # unended: to the end
    assert data.ops["f"].tolist() == ["put", "put", "range", "put"]
    assert [r["output"] for r in data.op_records] == [{"revision": 2}, {"error": "not_leader"},
                                                      None, None]
    assert data.seed == 9 and data.nodes == (1, 2, 3) and data.end_ms == 100.0
    assert data.ok is True
    assert data.roles.tolist() == [(18.0, 1, "leader", 1)]
    assert data.commits.tolist() == [(19.0, 1, 4)]
    assert data.applies.tolist() == [(19.5, 1, 1, 4)]
    assert [f["kind"] for f in data.faults] == ["partition", "heal"]
    assert data.phases == [(0.0, "safety")]


def test_window_keeps_what_overlaps_it() -> None:
    data = load_trace(synthetic())
    cut = data.window(25, 45)
    assert cut.ops["op"].tolist() == [1, 2, 3]  # op 4 starts at 50
    assert [r["op"] for r in cut.op_records] == [1, 2, 3]
    assert [f["kind"] for f in cut.faults] == ["partition"]
    assert cut.messages["fate"].tolist() == ["in_flight"]  # 16 -> end overlaps; others ended
    assert len(cut.roles) == 0 and len(cut.commits) == 0
    empty = data.window(200, 300)
    assert len(empty.ops) == 0 and len(empty.messages) == 0 and empty.faults == []


@pytest.mark.parametrize(("records", "match"), [
    ([], "starts with its 'run' record"),
    ([{"t": 0, "ev": "call"}], "starts with its 'run' record"),
    ([{"t": 0, "ev": "run"}, "not a record"], "record 1: not an object"),
    ([{"t": 0, "ev": "run"}, {"t": "soon", "ev": "phase", "phase": "x"}], "'t' is not a finite"),
    ([{"t": 0, "ev": "run"}, {"t": math.nan, "ev": "phase", "phase": "x"}], "finite"),
    ([{"t": 0, "ev": "run"}, {"t": 1, "ev": "send", "src": 1, "type": "X", "term": 1}],
     r"record 1 \('send'\)"),
    ([{"t": 0, "ev": "run"}, {"t": 1, "ev": "role", "node": "one", "role": "x", "term": 1}],
     r"record 1 \('role'\)"),
])
def test_malformed_records_raise_trace_data_error(records: list[Any], match: str) -> None:
    with pytest.raises(TraceDataError, match=match):
        load_trace(records)


def test_malformed_file_raises_trace_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(synthetic()[0]) + "\n{not json\n")
    with pytest.raises(TraceDataError, match=r"bad\.jsonl:2"):
        load_trace(str(path))


def test_a_real_run_loads_the_same_from_memory_and_file(small_run: TracedRun,
                                                         small_data: TraceData,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in small_run.records))
    from_file = load_trace(path)
    assert np.array_equal(from_file.messages, small_data.messages)
    assert np.array_equal(from_file.ops, small_data.ops)
    report = small_run.report
    outcomes = small_data.ops["outcome"].tolist()
    assert outcomes.count("ok") == report.ops_ok
    assert outcomes.count("failed") == report.ops_failed
    assert outcomes.count("indeterminate") == report.ops_indeterminate
    assert small_data.ok is report.ok
    sent = sum(1 for r in small_run.records if r["ev"] == "send")
    assert np.count_nonzero(small_data.messages["fate"] != "duplicate") == sent
