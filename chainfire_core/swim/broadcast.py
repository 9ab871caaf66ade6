"""The piggyback queue: which updates ride on the next outgoing message.

Theory of operation
-------------------
SWIM disseminates membership updates infection-style, piggybacked on the
pings, ping-reqs and acks the failure detector sends anyway; there are no
gossip messages of their own. Each update is sent a bounded number of
times, `retransmit_mult * ceil(log10(n + 1))` (lambda log n in the paper),
which is enough for it to reach every member with high probability, and is
then dropped.

The queue holds at most one update per member (newer news about a member
replaces older, whatever its kind), so it is bounded by the member table.
`take(count, limit)` picks the updates sent least often so far, the newest
first among equals (a fresh suspicion or refutation goes out before old
news), counts one transmission for each, and drops those that reached the
limit. Order is fully determined by (transmissions, insertion number): no
set or hash order is involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chainfire_core.swim.messages import Update
from chainfire_core.types import NodeId


def retransmit_limit(retransmit_mult: int, group_size: int) -> int:
    """How many times each update is piggybacked in a group of `group_size`."""
    assert retransmit_mult >= 1 and group_size >= 1
    return retransmit_mult * max(1, math.ceil(math.log10(group_size + 1)))


@dataclass(slots=True)
class _Queued:
    update: Update
    transmits: int
    order: int


class BroadcastQueue:
    def __init__(self, max_items: int) -> None:
        assert max_items >= 1
        self.max_items = max_items
        self._items: dict[NodeId, _Queued] = {}
        self._order = 0

    def __len__(self) -> int:
        return len(self._items)

    def enqueue(self, update: Update) -> None:
        """Queue `update`, replacing anything queued about the same member."""
        self._order += 1
        if update.member not in self._items and len(self._items) >= self.max_items:
            # Full (only with a table at its own bound): drop the most-sent.
            worst = max(self._items.values(), key=lambda q: (q.transmits, -q.order))
            del self._items[worst.update.member]
        self._items[update.member] = _Queued(update=update, transmits=0, order=self._order)

    def queued(self, member: NodeId) -> Update | None:
        item = self._items.get(member)
        return None if item is None else item.update

    def take(self, count: int, limit: int, *, skip: NodeId | None = None) -> tuple[Update, ...]:
        """Up to `count` updates to piggyback now (not the one about `skip`)."""
        if count <= 0 or not self._items:
            return ()
        candidates = sorted(
            (item for item in self._items.values() if item.update.member != skip),
            key=lambda q: (q.transmits, -q.order),
        )[:count]
        for item in candidates:
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[item.update.member]
        return tuple(item.update for item in candidates)

    def check_invariants(self) -> None:
        assert len(self._items) <= self.max_items
        for member, item in self._items.items():
            assert item.update.member == member and item.transmits >= 0


__all__ = ["BroadcastQueue", "retransmit_limit"]
