"""A simulator trace as arrays and plain records, for notebooks and plots.

Theory of operation: `load_trace` takes a trace file, a list of records, or
a `TracedRun` (what `run_traced` returns: a run's report and its full trace
kept in memory) and reads it once, in record order, into a `TraceData`:

- `messages`: one row per Raft message sent, with when it was sent and when
  its fate was decided (delivered, dropped and why, or still in flight at
  the end), plus one extra row for each duplicate delivery;
- `ops`: one row per client operation, call to end, with its outcome
  (ok / failed / indeterminate), and `op_records` with its input and output;
- `faults`: the nemesis's records as they are (kind and fields);
- `roles`: every role change (node, role, term);
- `commits`: a node's commit index each time it persisted its hard state;
- `applies`: each applied range of entries per node.

Message records carry no identity, so a delivery or a drop is matched to the
oldest unmatched send with the same source, destination, type and term: for
messages that are equal in all of those the pairing may swap two of them,
which changes no picture drawn from them. The arrays are numpy structured
arrays (field access by name: `data.ops["t_call"]`), sorted by time.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from sim.options import RunOptions
from sim.run import RunReport, simulate
from sim.trace import read_trace

Record = Mapping[str, Any]
Array = npt.NDArray[Any]

OUTCOMES = ("ok", "failed", "indeterminate")
FATES = ("delivered", "duplicate", "partition", "loss", "down", "in_flight")

MESSAGE_DTYPE = np.dtype([("t_send", "f8"), ("t_end", "f8"), ("src", "i4"), ("dst", "i4"),
                          ("type", "U24"), ("term", "i8"), ("fate", "U10")])
OP_DTYPE = np.dtype([("client", "i4"), ("op", "i4"), ("node", "i4"), ("f", "U16"),
                     ("t_call", "f8"), ("t_end", "f8"), ("outcome", "U13")])
ROLE_DTYPE = np.dtype([("t", "f8"), ("node", "i4"), ("role", "U13"), ("term", "i8")])
COMMIT_DTYPE = np.dtype([("t", "f8"), ("node", "i4"), ("commit", "i8")])
APPLY_DTYPE = np.dtype([("t", "f8"), ("node", "i4"), ("first", "i8"), ("last", "i8")])


class TraceDataError(ValueError):
    """The records are not a simulator trace this module can read."""


@dataclass(frozen=True, slots=True)
class TracedRun:
    """One seed's report with its full trace, kept in memory."""

    report: RunReport
    records: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceData:
    seed: int
    options: dict[str, Any]
    params: dict[str, Any]
    nodes: tuple[int, ...]
    end_ms: float
    messages: Array
    ops: Array
    op_records: list[dict[str, Any]]  # one per ops row: client, op, node, input, output
    faults: list[dict[str, Any]]
    roles: Array
    commits: Array
    applies: Array
    phases: list[tuple[float, str]]
    verdict: dict[str, Any] | None
    watch: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool | None:
        """The run's verdict (None when the trace has no verdict record)."""
        return None if self.verdict is None else bool(self.verdict.get("ok"))

    def window(self, start_ms: float, end_ms: float) -> TraceData:
        """The same trace cut to what happened between two times (rows whose
        interval overlaps the window; point events inside it)."""
        def overlapping(rows: Array, lo: str, hi: str) -> Array:
            return rows[(rows[hi] >= start_ms) & (rows[lo] <= end_ms)]

        def inside(rows: Array) -> Array:
            return rows[(rows["t"] >= start_ms) & (rows["t"] <= end_ms)]

        keep = (self.ops["t_end"] >= start_ms) & (self.ops["t_call"] <= end_ms)
        return replace(
            self, messages=overlapping(self.messages, "t_send", "t_end"),
            ops=self.ops[keep],
            op_records=[r for r, k in zip(self.op_records, keep, strict=True) if k],
            faults=[f for f in self.faults if start_ms <= f["t"] <= end_ms],
            roles=inside(self.roles), commits=inside(self.commits),
            applies=inside(self.applies),
            phases=[p for p in self.phases if start_ms <= p[0] <= end_ms],
            watch=[w for w in self.watch if start_ms <= w["t"] <= end_ms])


def run_traced(options: RunOptions) -> TracedRun:
    """Simulate `options` with the full trace and keep it in memory."""
    sink = io.StringIO()
    report = simulate(replace(options, full_trace=True), sink=sink)
    records = [_parse(line) for line in sink.getvalue().splitlines() if line]
    return TracedRun(report=report, records=records)


def _parse(line: str) -> dict[str, Any]:
    record = json.loads(line)
    assert isinstance(record, dict), line
    return record


def load_trace(source: str | os.PathLike[str] | TracedRun | Iterable[Record]) -> TraceData:
    """Read a trace file (path), a `TracedRun`, or records; see the module doc."""
    if isinstance(source, str | os.PathLike):
        try:
            records: Sequence[Record] = read_trace(os.fspath(source))
        except ValueError as error:  # a malformed line, named by read_trace
            raise TraceDataError(str(error)) from None
    elif isinstance(source, TracedRun):
        records = source.records
    else:
        records = list(source)
    return _Loader(records).data()


def _number(record: Record, name: str, index: int) -> float:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TraceDataError(f"record {index} ({record.get('ev')!r}): {name!r} is not a "
                             f"finite number: {value!r}")
    return float(value)


class _Loader:
    def __init__(self, records: Sequence[Record]) -> None:
        if not records or not isinstance(records[0], Mapping) or records[0].get("ev") != "run":
            raise TraceDataError("a trace starts with its 'run' record")
        self.records = records
        self.messages: list[tuple[Any, ...]] = []
        self.in_flight: defaultdict[tuple[int, int, str, int], deque[int]] = defaultdict(deque)
        self.last_matched: dict[tuple[int, int, str, int], int] = {}
        self.ops: dict[tuple[int, int], int] = {}
        self.op_rows: list[list[Any]] = []
        self.op_records: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.roles: list[tuple[Any, ...]] = []
        self.commits: list[tuple[Any, ...]] = []
        self.applies: list[tuple[Any, ...]] = []
        self.phases: list[tuple[float, str]] = []
        self.watch: list[dict[str, Any]] = []
        self.verdict: dict[str, Any] | None = None

    def data(self) -> TraceData:
        end_ms = 0.0
        for index, record in enumerate(self.records):
            if not isinstance(record, Mapping) or not isinstance(record.get("ev"), str):
                raise TraceDataError(f"record {index}: not an object with a string 'ev'")
            t = _number(record, "t", index)
            end_ms = max(end_ms, t)
            try:
                self._feed(record, t)
            except (KeyError, TypeError, ValueError) as error:
                raise TraceDataError(f"record {index} ({record['ev']!r}): {error!r}") from None
        for row in self.op_rows:
            if math.isnan(row[5]):  # never ended: unknown outcome, open to the end
                row[5] = end_ms
        run = self.records[0]
        messages = np.array(self.messages, dtype=MESSAGE_DTYPE)
        messages["t_end"] = np.where(np.isnan(messages["t_end"]), end_ms, messages["t_end"])
        order = np.argsort(messages["t_send"], kind="stable")
        return TraceData(
            seed=int(run.get("seed", 0)), options=dict(run.get("options", {})),
            params=dict(run.get("params", {})),
            nodes=tuple(int(n) for n in run.get("nodes", [])), end_ms=end_ms,
            messages=messages[order],
            ops=np.array([tuple(row) for row in self.op_rows], dtype=OP_DTYPE),
            op_records=self.op_records, faults=self.faults,
            roles=np.array(self.roles, dtype=ROLE_DTYPE),
            commits=np.array(self.commits, dtype=COMMIT_DTYPE),
            applies=np.array(self.applies, dtype=APPLY_DTYPE),
            phases=self.phases, verdict=self.verdict, watch=self.watch)

    def _feed(self, record: Record, t: float) -> None:
        match record["ev"]:
            case "send":
                message = self._key(record)
                self.in_flight[message].append(len(self.messages))
                self.messages.append((t, math.nan, *message, "in_flight"))
            case "deliver":
                self._settle(record, t, "delivered")
            case "drop":
                self._settle(record, t, str(record["reason"]))
            case "call":
                key = (int(record["client"]), int(record["op"]))
                self.ops[key] = len(self.op_rows)
                self.op_rows.append([key[0], key[1], int(record["node"]),
                                     str(record["input"].get("f", "?")), t, math.nan,
                                     "indeterminate"])
                self.op_records.append({"client": key[0], "op": key[1],
                                        "node": int(record["node"]),
                                        "input": record["input"], "output": None})
            case "return" | "timeout":
                row = self.ops.get((int(record["client"]), int(record["op"])))
                if row is not None:  # an end without its call is not drawable
                    self.op_rows[row][5] = t
                    if record["ev"] == "return":
                        output = record.get("output")
                        failed = isinstance(output, Mapping) and "error" in output
                        self.op_rows[row][6] = "failed" if failed else "ok"
                        self.op_records[row]["output"] = output
            case "fault":
                self.faults.append(dict(record))
            case "role":
                self.roles.append((t, int(record["node"]), str(record["role"]),
                                   int(record["term"])))
            case "persist":
                hard = record.get("hard")
                if hard is not None:
                    self.commits.append((t, int(record["node"]), int(hard[2])))
            case "apply":
                self.applies.append((t, int(record["node"]), int(record["first"]),
                                     int(record["last"])))
            case "phase":
                self.phases.append((t, str(record["phase"])))
            case "watch":
                self.watch.append(dict(record))
            case "verdict":
                self.verdict = dict(record)

    @staticmethod
    def _key(record: Record) -> tuple[int, int, str, int]:
        return (int(record["src"]), int(record["dst"]), str(record["type"]), int(record["term"]))

    def _settle(self, record: Record, t: float, fate: str) -> None:
        key = self._key(record)
        waiting = self.in_flight.get(key)
        if waiting:
            row = waiting.popleft()
            self.last_matched[key] = row
            t_send = self.messages[row][0]
            self.messages[row] = (t_send, t, *key, fate)
        elif fate == "delivered" and key in self.last_matched:
            # The second delivery of a duplicated message: its own row.
            t_send = self.messages[self.last_matched[key]][0]
            self.messages.append((t_send, t, *key, "duplicate"))


__all__ = ["FATES", "OUTCOMES", "TraceData", "TraceDataError", "TracedRun", "load_trace",
           "run_traced"]
