"""Histories: what clients asked, what they were told, and when.

Theory of operation
-------------------
A history is a list of `Operation`s. Each has a client, an input, a call
time and, when the client learned the outcome, an output and a return time.
Times are any numbers that order events (simulated milliseconds, positions
in a log file); only their order matters. An operation whose outcome is
unknown (the client timed out or crashed) has `unknown=True`: it may or may
not have taken effect, at any point after its call. Its return time is
`UNKNOWN_RETURN` (after everything), which is how Porcupine treats it.

Inputs and outputs are whatever the model understands. A file holds them as
JSON values; `parse_jsonl` keeps them as read, and the CLI hands them to the
model's `parse_input` / `parse_output` to get the model's own (hashable)
form. `freeze` makes a JSON value hashable for models that take it as is.

Porcupine also describes histories as events (call i, return i, in order):
`operations_from_events` turns such a list into operations, using each
event's position as its time.

The JSON Lines file form (one object per line):

    {"kind": "op", "client": 3, "input": {...}, "call": 10, "output": {...}, "return": 12}
    {"kind": "op", "client": 4, "input": {...}, "call": 11, "unknown": true}
    {"kind": "call", "id": 7, "client": 1, "input": {...}}
    {"kind": "return", "id": 7, "output": {...}}              (events form)

A file may mix nothing: it is either all "op" lines or all call/return
lines. Blank lines and lines starting with "#" are skipped. A malformed
line raises `HistoryError` naming the line number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNKNOWN_RETURN = math.inf


class HistoryError(ValueError):
    """A history file or event list that cannot be read; names the line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


def freeze(value: Any) -> Any:
    """A hashable, order-independent copy of a JSON-like value."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    id: int
    client: int
    input: Any
    call: float
    output: Any = None
    return_time: float = UNKNOWN_RETURN
    unknown: bool = False

    def __post_init__(self) -> None:
        if self.unknown:
            if self.return_time != UNKNOWN_RETURN:
                raise HistoryError(f"operation {self.id}: unknown outcome with a return time")
        elif not self.call <= self.return_time < UNKNOWN_RETURN:
            raise HistoryError(f"operation {self.id}: return before call or missing")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Porcupine's event form: a call or a return, matched by `id`."""

    is_call: bool
    id: int
    client: int = 0
    value: Any = None
    unknown: bool = False


def operations_from_events(events: Sequence[Event]) -> list[Operation]:
    """Operations from a call/return event list; times are event positions.
    A call never returned is an unknown-outcome operation."""
    calls: dict[int, tuple[int, Event]] = {}
    done: dict[int, Operation] = {}
    for position, event in enumerate(events):
        if event.is_call:
            if event.id in calls or event.id in done:
                raise HistoryError(f"event {position}: call id {event.id} used twice")
            calls[event.id] = (position, event)
            continue
        found = calls.pop(event.id, None)
        if found is None:
            raise HistoryError(f"event {position}: return id {event.id} without a call")
        call_position, call = found
        done[event.id] = Operation(
            id=event.id, client=call.client, input=call.value, call=call_position,
            output=None if event.unknown else event.value,
            return_time=UNKNOWN_RETURN if event.unknown else position, unknown=event.unknown)
    for event_id, (call_position, call) in calls.items():
        done[event_id] = Operation(id=event_id, client=call.client, input=call.value,
                                   call=call_position, unknown=True)
    return sorted(done.values(), key=lambda op: (op.call, op.id))


def _require(record: dict[str, Any], key: str, line: int) -> Any:
    if key not in record:
        raise HistoryError(f"missing field {key!r}", line)
    return record[key]


def _number(value: Any, name: str, line: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HistoryError(f"{name} must be a number", line)
    return float(value)


def _operation(record: dict[str, Any], line: int, default_id: int) -> Operation:
    unknown = record.get("unknown", False)
    if not isinstance(unknown, bool):
        raise HistoryError("unknown must be true or false", line)
    client = _require(record, "client", line)
    if isinstance(client, bool) or not isinstance(client, int):
        raise HistoryError("client must be an integer", line)
    call = _number(_require(record, "call", line), "call", line)
    op_id = record.get("id", default_id)
    try:
        if unknown:
            return Operation(id=op_id, client=client, input=_require(record, "input", line),
                             call=call, unknown=True)
        return Operation(id=op_id, client=client, input=_require(record, "input", line),
                         call=call, output=record.get("output"),
                         return_time=_number(_require(record, "return", line), "return", line))
    except HistoryError as error:
        raise HistoryError(str(error), line) from error


def _event(record: dict[str, Any], line: int) -> Event:
    event_id = _require(record, "id", line)
    if isinstance(event_id, bool) or not isinstance(event_id, int):
        raise HistoryError("id must be an integer", line)
    if record["kind"] == "call":
        return Event(is_call=True, id=event_id, client=int(record.get("client", 0)),
                     value=_require(record, "input", line))
    return Event(is_call=False, id=event_id, value=record.get("output"),
                 unknown=bool(record.get("unknown", False)))


def parse_jsonl(lines: Iterable[str]) -> list[Operation]:
    """Operations from the JSON Lines form (see the module docstring)."""
    operations: list[Operation] = []
    events: list[Event] = []
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            record = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise HistoryError(f"not JSON: {error.msg}", number) from error
        if not isinstance(record, dict):
            raise HistoryError("each line must be a JSON object", number)
        kind = record.get("kind")
        if kind == "op":
            operations.append(_operation(record, number, len(operations)))
        elif kind in ("call", "return"):
            events.append(_event(record, number))
        else:
            raise HistoryError(f"kind must be op, call or return, not {kind!r}", number)
        if operations and events:
            raise HistoryError("a file holds operations or events, not both", number)
    if events:
        return operations_from_events(events)
    return sorted(operations, key=lambda op: (op.call, op.id))


def read_jsonl(path: Path) -> list[Operation]:
    with path.open(encoding="utf-8") as lines:
        return parse_jsonl(lines)


def to_jsonl(operations: Iterable[Operation]) -> Iterator[str]:
    """The JSON Lines form of operations (inputs and outputs must be JSON values)."""
    for op in operations:
        record: dict[str, Any] = {"kind": "op", "id": op.id, "client": op.client,
                                  "input": op.input, "call": op.call}
        if op.unknown:
            record["unknown"] = True
        else:
            record["output"] = op.output
            record["return"] = op.return_time
        yield json.dumps(record, sort_keys=True, separators=(",", ":"))


__all__ = [
    "UNKNOWN_RETURN",
    "Event",
    "HistoryError",
    "Operation",
    "freeze",
    "operations_from_events",
    "parse_jsonl",
    "read_jsonl",
    "to_jsonl",
]
