"""A deadline queue of leases: a binary heap with lazy deletion.

Theory of operation
-------------------
The lessor needs "which leases are due at `now_ms`?" in time proportional to
the answer, not to the number of leases. A heap ordered by
`(deadline_ms, lease_id, generation)` answers it, but moving or removing one
lease inside a heap is costly, so neither is done in place: every `push`
gets a fresh generation and is recorded in `_live` (lease id -> (deadline,
generation)); the older heap entries of that lease become *stale* and are
skipped when they reach the top. `remove` only forgets the live record.

Stale entries must not pile up (a lease renewed every second would otherwise
add one per second forever), so after each push or remove the heap is rebuilt
from the live records when the stale entries exceed `stale_factor` times the
live ones plus `stale_slack` (the slack keeps tiny queues from rebuilding on
every call). A rebuild costs O(live), and at least `stale_factor * live`
operations happen between two rebuilds, so the cost is amortised O(1) per
operation and the heap never holds more than
`(stale_factor + 1) * live + stale_slack` entries. The check also runs after
`pop_due` takes a live entry, since fewer live entries lower the bound.

Ties on the deadline are broken by lease id, so the order of due leases never
depends on hash order or on the history of pushes.
"""

from __future__ import annotations

import heapq

from chainfire_core.types import LeaseId

# Rebuild the heap when stale entries > STALE_FACTOR * live + STALE_SLACK.
STALE_FACTOR = 2
STALE_SLACK = 64


class ExpiryQueue:
    """Lease ids keyed by an integer deadline in milliseconds."""

    __slots__ = ("_generation", "_heap", "_live", "_stale_factor", "_stale_slack")

    def __init__(self, *, stale_factor: int = STALE_FACTOR, stale_slack: int = STALE_SLACK) -> None:
        assert stale_factor >= 1, stale_factor
        assert stale_slack >= 0, stale_slack
        self._stale_factor = stale_factor
        self._stale_slack = stale_slack
        self._heap: list[tuple[int, LeaseId, int]] = []
        self._live: dict[LeaseId, tuple[int, int]] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._live

    @property
    def heap_size(self) -> int:
        """Entries in the heap, live and stale (for tests and metrics)."""
        return len(self._heap)

    def deadline_ms(self, lease_id: LeaseId) -> int | None:
        """The live deadline of `lease_id`, or None if it is not queued."""
        record = self._live.get(lease_id)
        return None if record is None else record[0]

    def ids(self) -> tuple[LeaseId, ...]:
        """Every queued lease id, sorted."""
        return tuple(sorted(self._live))

    def push(self, lease_id: LeaseId, deadline_ms: int) -> None:
        """Queue `lease_id` at `deadline_ms`, replacing any earlier deadline."""
        self._generation += 1
        self._live[lease_id] = (deadline_ms, self._generation)
        heapq.heappush(self._heap, (deadline_ms, lease_id, self._generation))
        self._maybe_compact()

    def remove(self, lease_id: LeaseId) -> None:
        """Forget `lease_id`; a lease that is not queued is ignored."""
        if self._live.pop(lease_id, None) is not None:
            self._maybe_compact()

    def clear(self) -> None:
        self._heap.clear()
        self._live.clear()

    def reset(self, deadlines_ms: dict[LeaseId, int]) -> None:
        """Replace the whole content by `deadlines_ms` in one O(n) build."""
        self.clear()
        for lease_id in sorted(deadlines_ms):
            self._generation += 1
            self._live[lease_id] = (deadlines_ms[lease_id], self._generation)
        self._rebuild()

    def pop_due(self, now_ms: int) -> LeaseId | None:
        """Remove and return the live lease with the earliest deadline
        <= `now_ms` (ties by id), or None when nothing is due.

        Stale entries met on the way are dropped for good; there are at most
        `heap_size` of them, which bounds the loop."""
        for _ in range(len(self._heap)):
            deadline_ms, lease_id, generation = self._heap[0]
            if deadline_ms > now_ms:
                return None
            heapq.heappop(self._heap)
            if self._live.get(lease_id) == (deadline_ms, generation):
                del self._live[lease_id]
                self._maybe_compact()
                return lease_id
        return None

    def _maybe_compact(self) -> None:
        stale = len(self._heap) - len(self._live)
        if stale > self._stale_factor * len(self._live) + self._stale_slack:
            self._rebuild()

    def _rebuild(self) -> None:
        self._heap = [
            (deadline_ms, lease_id, generation)
            for lease_id, (deadline_ms, generation) in sorted(self._live.items())
        ]
        heapq.heapify(self._heap)

    def check_invariants(self) -> None:
        live_in_heap = {
            lease_id
            for deadline_ms, lease_id, generation in self._heap
            if self._live.get(lease_id) == (deadline_ms, generation)
        }
        assert live_in_heap == set(self._live), "every live record has its heap entry"
        stale = len(self._heap) - len(self._live)
        assert stale <= self._stale_factor * len(self._live) + self._stale_slack, stale
        for index in range(1, len(self._heap)):
            assert self._heap[(index - 1) // 2] <= self._heap[index], "heap order"
        for _deadline_ms, generation in self._live.values():
            assert 0 < generation <= self._generation


__all__ = ["STALE_FACTOR", "STALE_SLACK", "ExpiryQueue"]
