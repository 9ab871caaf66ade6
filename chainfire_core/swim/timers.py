"""The SWIM core's timers: a min-heap of deadlines in the driver's milliseconds.

Theory of operation
-------------------
The core never reads a clock. It keeps what it is waiting for as
(deadline, insertion number, kind, key) entries; the driver asks for
`next_deadline_ms()`, sleeps until then (or until a message arrives) and
calls `tick(now_ms)`, which pops every due entry in deadline order, ties
broken by insertion order. Entries are never cancelled in place: a handler
checks whether what it was set for still holds (the probe with that seq is
still pending, the suspect is still suspected with that deadline) and does
nothing otherwise. Stale entries are cheap and bounded: each live probe,
relay and suspicion owns at most a few.
"""

from __future__ import annotations

import heapq
from enum import IntEnum


class TimerKind(IntEnum):
    PROBE_START = 0    # key: 0 (the next protocol period)
    PROBE_TIMEOUT = 1  # key: the probe's seq (send ping-reqs)
    PROBE_END = 2      # key: the probe's seq (suspect if unanswered)
    RELAY_NACK = 3     # key: the relay's own seq (tell the requester: no ack yet)
    RELAY_END = 4      # key: the relay's own seq (forget it)
    SUSPICION = 5      # key: the suspect's id (declare dead if still due)
    JOIN_RETRY = 6     # key: 0


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, TimerKind, int]] = []
        self._order = 0

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, at_ms: int, kind: TimerKind, key: int) -> None:
        self._order += 1
        heapq.heappush(self._heap, (at_ms, self._order, kind, key))

    def next_deadline_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> tuple[TimerKind, int] | None:
        """The earliest entry due at `now_ms`, removed; None if none is due."""
        if not self._heap or self._heap[0][0] > now_ms:
            return None
        _, _, kind, key = heapq.heappop(self._heap)
        return kind, key


__all__ = ["TimerKind", "Timers"]
