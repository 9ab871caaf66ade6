"""A bounded ring of in-flight appends to one follower (flow control).

Theory of operation
-------------------
While a follower is in the replicate state the leader streams appends to it
without waiting for each answer. Every append sent is remembered here as
(index of its last entry, payload bytes); when the follower acks index `i`,
`free_le(i)` forgets every append up to `i`. The leader stops sending while
`full()`: `capacity` appends are in flight, or (when `max_bytes` is set) the
bytes in flight reach `max_bytes`. As in etcd-io/raft, one append may take
the byte total past `max_bytes`; the ring is then full until acks arrive.

Appends are added in strictly increasing index order, so the ring is sorted
and freeing is a walk from its start. The ring is a fixed list of
`capacity` slots with a start offset and a count; adding past the end wraps
around to slot 0. `reset()` empties it (the follower left the replicate state).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from chainfire_core.types import Index


@dataclass(frozen=True, slots=True, kw_only=True)
class Inflight:
    index: Index
    size_bytes: int


class Inflights:
    """In-flight appends, oldest first, at most `capacity` of them."""

    __slots__ = ("_buffer", "_bytes", "_count", "_start", "capacity", "max_bytes")

    def __init__(self, capacity: int, max_bytes: int | None = None) -> None:
        assert capacity > 0, capacity
        assert max_bytes is None or max_bytes > 0, max_bytes
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._buffer: list[Inflight | None] = [None] * capacity
        self._start = 0
        self._count = 0
        self._bytes = 0

    @property
    def count(self) -> int:
        """Appends in flight."""
        return self._count

    @property
    def bytes(self) -> int:
        """Payload bytes in flight."""
        return self._bytes

    def full(self) -> bool:
        """True when no further append may be sent."""
        if self._count == self.capacity:
            return True
        return self.max_bytes is not None and self._bytes >= self.max_bytes

    def add(self, index: Index, size_bytes: int) -> None:
        """Record an append whose last entry is `index`. The caller must not
        add while `full()`, and indexes must strictly increase."""
        assert not self.full(), "add to a full inflights ring"
        assert size_bytes >= 0, size_bytes
        if self._count:
            assert index > self._at(self._count - 1).index, (index, self.entries())
        self._buffer[self._slot(self._count)] = Inflight(index=index, size_bytes=size_bytes)
        self._count += 1
        self._bytes += size_bytes

    def free_le(self, index: Index) -> None:
        """Forget every append whose index is <= `index` (the follower acked it)."""
        freed = 0
        freed_bytes = 0
        while freed < self._count:  # bounded by count <= capacity
            inflight = self._at(freed)
            if inflight.index > index:
                break
            self._buffer[self._slot(freed)] = None
            freed += 1
            freed_bytes += inflight.size_bytes
        self._start = 0 if freed == self._count else self._slot(freed)
        self._count -= freed
        self._bytes -= freed_bytes

    def reset(self) -> None:
        """Forget everything in flight."""
        self._buffer = [None] * self.capacity
        self._start = 0
        self._count = 0
        self._bytes = 0

    def entries(self) -> tuple[Inflight, ...]:
        """What is in flight, oldest first."""
        return tuple(self._at(offset) for offset in range(self._count))

    def clone(self) -> Inflights:
        twin = Inflights(self.capacity, self.max_bytes)
        twin._buffer = list(self._buffer)
        twin._start = self._start
        twin._count = self._count
        twin._bytes = self._bytes
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Inflights):
            return NotImplemented
        return (self.capacity, self.max_bytes, self.entries()) == (
            other.capacity, other.max_bytes, other.entries())

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        items = " ".join(f"{item.index}:{item.size_bytes}" for item in self.entries())
        return f"Inflights(capacity={self.capacity}, max_bytes={self.max_bytes}, [{items}])"

    def check_invariants(self) -> None:
        assert 0 <= self._start < self.capacity, self._start
        assert 0 <= self._count <= self.capacity, self._count
        live = self.entries()
        assert self._bytes == sum(item.size_bytes for item in live), (self._bytes, live)
        assert all(a.index < b.index for a, b in itertools.pairwise(live)), live
        live_slots = {self._slot(offset) for offset in range(self._count)}
        for slot in range(self.capacity):
            assert (self._buffer[slot] is None) == (slot not in live_slots), slot

    def _slot(self, offset: int) -> int:
        return (self._start + offset) % self.capacity

    def _at(self, offset: int) -> Inflight:
        inflight = self._buffer[self._slot(offset)]
        assert inflight is not None, offset
        return inflight


__all__ = ["Inflight", "Inflights"]
