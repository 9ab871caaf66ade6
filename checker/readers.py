"""Readers for Porcupine's test history formats (../shared/porcupine/FORMATS.md).

Both formats are read as Porcupine reads them: a list of call and return
events in file order, a return matched to the open call of its process,
and every call still open at the end of the file given an unknown return
after everything else. Times are event positions (0, 1, 2, ...), so only
their order means anything.

- `read_porcupine_jepsen`: Jepsen etcd register logs. Inputs ("read",),
  ("write", v), ("cas", a, b); outputs ("value", v | None), ("ok",),
  ("fail",) as `checker.models.RegisterModel` expects. A `:fail :read
  :timed-out` line is a return at that position with output None (any state
  allowed); an `:info` line leaves its call open (an unknown outcome).
- `read_porcupine_kv`: the EDN-like kv maps. Inputs ("get", k), ("put", k,
  v), ("append", k, v); outputs ("value", v) for a get, ("ok",) otherwise.
  A call without a completion is an unknown outcome.

Malformed input raises `checker.history.HistoryError` naming the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checker.history import UNKNOWN_RETURN, HistoryError, Operation

_PREFIX = r"^INFO\s+jepsen\.util\s+-\s+(\d+)\s+"
_JEPSEN = [
    ("call", re.compile(_PREFIX + r":invoke\s+:(read)\s+nil$")),
    ("call", re.compile(_PREFIX + r":invoke\s+:(write)\s+(\d+)$")),
    ("call", re.compile(_PREFIX + r":invoke\s+:(cas)\s+\[(\d+)\s+(\d+)\]$")),
    ("ok", re.compile(_PREFIX + r":ok\s+:(read)\s+(nil|\d+)$")),
    ("ok", re.compile(_PREFIX + r":ok\s+:(write)\s+(\d+)$")),
    ("ok", re.compile(_PREFIX + r":ok\s+:(cas)\s+\[(\d+)\s+(\d+)\]$")),
    ("fail", re.compile(_PREFIX + r":fail\s+:(cas)\s+\[(\d+)\s+(\d+)\]$")),
    ("timeout", re.compile(_PREFIX + r":fail\s+:(read)\s+:timed-out$")),
    ("info", re.compile(_PREFIX + r":info\s+:(read|write|cas)\s+\S.*$")),
]
_KV = re.compile(r'^\{:process (\d+), :type :(invoke|ok), :f :(get|put|append), '
                 r':key "([^"]*)", :value (nil|"[^"]*")\}$')

OK = ("ok",)
FAIL = ("fail",)


@dataclass(slots=True)
class _Open:
    id: int
    client: int
    input: tuple[Any, ...]
    call: int
    line: int


class _Events:
    """Open calls per process, and the operations completed so far."""

    def __init__(self) -> None:
        self.position = 0
        self.open: dict[int, _Open] = {}
        self.done: list[Operation] = []
        self.count = 0

    def call(self, process: int, input: tuple[Any, ...], line: int) -> None:
        if process in self.open:
            raise HistoryError(f"process {process} invokes while its call from line "
                               f"{self.open[process].line} is still open", line)
        self.open[process] = _Open(id=self.count, client=process, input=input,
                                   call=self.position, line=line)
        self.count += 1
        self.position += 1

    def pending(self, process: int, line: int) -> _Open:
        found = self.open.get(process)
        if found is None:
            raise HistoryError(f"process {process} completes a call it never invoked", line)
        return found

    def finish(self, process: int, output: Any, line: int) -> None:
        call = self.open.pop(process)
        self.done.append(Operation(id=call.id, client=call.client, input=call.input,
                                   call=call.call, output=output, return_time=self.position))
        self.position += 1

    def abandon(self, process: int) -> None:
        """An outcome the client never learned: the call stays open to the end."""
        call = self.open.pop(process)
        self.done.append(Operation(id=call.id, client=call.client, input=call.input,
                                   call=call.call, return_time=UNKNOWN_RETURN, unknown=True))

    def operations(self) -> list[Operation]:
        for process in sorted(self.open, key=lambda p: self.open[p].id):
            self.abandon(process)
        return sorted(self.done, key=lambda op: (op.call, op.id))


def _jepsen_input(f: str, values: tuple[str, ...]) -> tuple[Any, ...]:
    if f == "read":
        return ("read",)
    if f == "write":
        return ("write", int(values[0]))
    return ("cas", int(values[0]), int(values[1]))


def _jepsen_line(events: _Events, kind: str, groups: tuple[str, ...], line: int) -> None:
    process, f, values = int(groups[0]), groups[1], groups[2:]
    if kind == "call":
        events.call(process, _jepsen_input(f, values), line)
        return
    call = events.pending(process, line)
    if call.input[0] != f:
        raise HistoryError(f"process {process} completes :{f} but invoked :{call.input[0]}", line)
    if kind == "info":
        events.abandon(process)
        return
    if kind == "timeout":
        events.finish(process, None, line)
        return
    if f != "read" and _jepsen_input(f, values) != call.input:
        raise HistoryError(f"completion {values} does not match the invoke on line "
                           f"{call.line}", line)
    if f == "read":
        events.finish(process, ("value", None if values[0] == "nil" else int(values[0])), line)
    else:
        events.finish(process, FAIL if kind == "fail" else OK, line)


def parse_porcupine_jepsen(text: str) -> list[Operation]:
    events = _Events()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        for kind, pattern in _JEPSEN:
            match = pattern.match(stripped)
            if match:
                _jepsen_line(events, kind, match.groups(), number)
                break
        else:
            raise HistoryError(f"not a Jepsen register line: {stripped[:80]!r}", number)
    return events.operations()


def parse_porcupine_kv(text: str) -> list[Operation]:
    events = _Events()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _KV.match(line.strip())
        if match is None:
            raise HistoryError(f"not a kv line: {line.strip()[:80]!r}", number)
        process, kind, f, key, raw = match.groups()
        value = None if raw == "nil" else raw[1:-1]
        if kind == "invoke":
            if (f == "get") != (value is None):
                raise HistoryError(f":{f} invoke with value {raw}", number)
            events.call(int(process), (f, key) if f == "get" else (f, key, value), number)
            continue
        call = events.pending(int(process), number)
        if call.input[0] != f or call.input[1] != key:
            raise HistoryError(f"completion :{f} {key!r} does not match the invoke on line "
                               f"{call.line}", number)
        if value is None:
            raise HistoryError(f":ok :{f} needs a value", number)
        if f != "get" and value != call.input[2]:
            raise HistoryError(f"completion value {value!r} does not echo the invoke on line "
                               f"{call.line}", number)
        events.finish(int(process), ("value", value) if f == "get" else OK, number)
    return events.operations()


def _ascii(path: Path | str) -> str:
    data = Path(path).read_bytes()
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise HistoryError("not ASCII text", line) from error


def read_porcupine_jepsen(path: Path | str) -> list[Operation]:
    """Operations of a Jepsen etcd register log (FORMATS.md section 1)."""
    return parse_porcupine_jepsen(_ascii(path))


def read_porcupine_kv(path: Path | str) -> list[Operation]:
    """Operations of a Porcupine kv history (FORMATS.md section 2)."""
    return parse_porcupine_kv(_ascii(path))


__all__ = ["parse_porcupine_jepsen", "parse_porcupine_kv", "read_porcupine_jepsen",
           "read_porcupine_kv"]
