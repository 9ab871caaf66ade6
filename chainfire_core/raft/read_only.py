"""The leader's queue of pending ReadIndex requests.

Theory of operation
-------------------
A linearizable read must not see state older than any write acknowledged
before it began. The leader records its commit index when the read arrives
and asks every follower, in a heartbeat carrying the request's context, to
confirm it is still leader. Once a quorum has acknowledged that heartbeat
round, no other leader can have committed anything the reader could have
seen, so the read may be served at the recorded index (as soon as the state
machine has applied up to it).

Requests are kept in arrival order. A quorum acknowledging a request also
confirms every request queued before it (those heartbeats went out earlier),
so `advance` releases the acknowledged request and all before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chainfire_core.types import Index, NodeId


@dataclass(slots=True, kw_only=True)
class ReadIndexStatus:
    context: bytes
    index: Index
    # The peer that asked (the leader itself, or a follower that forwarded it).
    requester: NodeId
    acks: set[NodeId] = field(default_factory=set)


class ReadOnlyQueue:
    """Pending ReadIndex requests, oldest first."""

    __slots__ = ("_by_context", "_order")

    def __init__(self) -> None:
        self._by_context: dict[bytes, ReadIndexStatus] = {}
        self._order: list[bytes] = []

    def __len__(self) -> int:
        return len(self._order)

    def add_request(self, index: Index, context: bytes, requester: NodeId) -> bool:
        """Queue a request; False if one with the same context is queued."""
        if context in self._by_context:
            return False
        self._by_context[context] = ReadIndexStatus(context=context, index=index,
                                                     requester=requester)
        self._order.append(context)
        return True

    def recv_ack(self, node_id: NodeId, context: bytes) -> set[NodeId] | None:
        """Record `node_id` acknowledging `context`; the acks so far, or None
        if no such request is pending."""
        status = self._by_context.get(context)
        if status is None:
            return None
        status.acks.add(node_id)
        return status.acks

    def advance(self, context: bytes) -> list[ReadIndexStatus]:
        """Release the request `context` and every one queued before it."""
        if context not in self._by_context:
            return []
        position = self._order.index(context) + 1
        released = [self._by_context.pop(ctx) for ctx in self._order[:position]]
        del self._order[:position]
        return released

    def last_pending_context(self) -> bytes | None:
        return self._order[-1] if self._order else None

    def clear(self) -> None:
        self._by_context.clear()
        self._order.clear()

    def check_invariants(self) -> None:
        assert len(self._order) == len(self._by_context)
        assert set(self._order) == set(self._by_context)
        indexes = [self._by_context[ctx].index for ctx in self._order]
        assert indexes == sorted(indexes), "read indexes out of order"


__all__ = ["ReadIndexStatus", "ReadOnlyQueue"]
