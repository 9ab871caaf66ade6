"""The run's trace: one JSON object per line, in simulated-time order.

Every record has `t` (simulated milliseconds, rounded to the microsecond) and
`ev` (its kind); docs/sim-trace.md lists the kinds and their fields. Records
are encoded the moment they happen with a fixed, compact JSON form, so the
same seed and code give the same bytes; the SHA-256 of those bytes is kept
as they go (the determinism test compares it).

Two levels: `full` records every message, persistence and apply (what a
researcher replays and plots); otherwise only the run's shape (client calls
and returns, faults, role changes, phases, the verdict) is kept, which is
what summaries and plots need, and the hot path skips message records.
The summary records are always kept in memory (`summary`).
"""

from __future__ import annotations

import hashlib
import json
from typing import IO, Any

# Record kinds always kept in memory for the summary and the plot.
SUMMARY_KINDS = frozenset({"run", "call", "return", "timeout", "fault", "role", "phase",
                           "verdict", "watch"})

FLUSH_LINES = 4096
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, sort_keys=False).encode


class Trace:
    def __init__(self, *, full: bool, sink: IO[str] | None = None) -> None:
        self.full = full
        self.sink = sink
        self.summary: list[dict[str, Any]] = []
        self._hash = hashlib.sha256()
        self._pending: list[str] = []
        self.lines = 0

    def emit(self, t: float, ev: str, **fields: Any) -> None:
        record: dict[str, Any] = {"t": round(t, 3), "ev": ev}
        record.update(fields)
        if ev in SUMMARY_KINDS:
            self.summary.append(record)
        elif not self.full:
            return
        self._line(_encode(record) + "\n")

    def message(self, t: float, ev: str, src: int, dst: int, kind: str, term: int,  # noqa: PLR0917
                reason: str | None = None) -> None:
        """A message record (send, deliver, dup, drop): the hot path, formatted
        directly; the bytes are what `emit` would write for the same fields."""
        if not self.full:
            return
        if reason is None:
            self._line(f'{{"t":{round(t, 3)!r},"ev":"{ev}","src":{src},"dst":{dst},'
                       f'"type":"{kind}","term":{term}}}\n')
        else:
            self._line(f'{{"t":{round(t, 3)!r},"ev":"{ev}","src":{src},"dst":{dst},'
                       f'"type":"{kind}","term":{term},"reason":"{reason}"}}\n')

    def _line(self, line: str) -> None:
        self.lines += 1
        self._pending.append(line)
        if len(self._pending) >= FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        """Hash and write what is pending (in batches: one call per many lines)."""
        if not self._pending:
            return
        data = "".join(self._pending)
        self._pending.clear()
        self._hash.update(data.encode())
        if self.sink is not None:
            self.sink.write(data)

    def sha256(self) -> str:
        self.flush()
        return self._hash.hexdigest()


def read_trace(path: str) -> list[dict[str, Any]]:
    """The records of a trace file; a malformed line raises ValueError naming it."""
    records: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON: {error.msg}") from None
            if not isinstance(record, dict) or "ev" not in record or "t" not in record:
                raise ValueError(f"{path}:{number}: a trace record needs 't' and 'ev'")
            records.append(record)
    if not records or records[0]["ev"] != "run":
        raise ValueError(f"{path}: the first record must be the 'run' record")
    return records


__all__ = ["SUMMARY_KINDS", "Trace", "read_trace"]
