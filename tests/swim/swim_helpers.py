"""An in-memory wire for SwimNodes: a tiny discrete-event loop without SimPy.

Messages take `latency_ms` to arrive; `drop` decides per message whether it
is lost; `down` members neither receive nor run timers. Time jumps to the
next delivery or deadline, so tests can run many periods quickly and read
every message that was sent (`sent`) and every event (`events`).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

from chainfire_core.swim import MemberEvent, SwimConfig, SwimMessage, SwimNode
from chainfire_core.types import NodeId


class Wire:
    def __init__(self, size: int, *, config: SwimConfig | None = None, latency_ms: int = 1,
                 seed: int = 7, aligned: bool = True) -> None:
        template = config or SwimConfig(member_id=NodeId(1))
        ids = [NodeId(i) for i in range(1, size + 1)]
        self.now_ms = 0
        self.latency_ms = latency_ms
        self.nodes = {
            i: SwimNode(template.with_member(i), random.Random(seed * 1000 + i),
                        members=[(m, "") for m in ids], first_probe_ms=0 if aligned else None)
            for i in ids
        }
        self.down: set[NodeId] = set()
        self.drop: Callable[[SwimMessage], bool] = lambda _message: False
        self.sent: list[tuple[int, SwimMessage]] = []
        self.events: list[tuple[NodeId, MemberEvent]] = []
        self._queue: list[tuple[int, int, SwimMessage]] = []
        self._order = 0
        for node_id in ids:
            self._flush(node_id)

    def node(self, member: int) -> SwimNode:
        return self.nodes[NodeId(member)]

    def _flush(self, node_id: NodeId) -> None:
        node = self.nodes[node_id]
        ready = node.ready()
        for message in ready.messages:
            self.sent.append((self.now_ms, message))
            if not self.drop(message):
                self._order += 1
                heapq.heappush(self._queue, (self.now_ms + self.latency_ms, self._order, message))
        self.events.extend((node_id, event) for event in ready.events)
        node.advance(ready)

    def _next_time(self) -> int | None:
        times = [node.next_deadline_ms() for i, node in sorted(self.nodes.items())
                 if i not in self.down]
        candidates = [t for t in times if t is not None]
        if self._queue:
            candidates.append(self._queue[0][0])
        return min(candidates, default=None)

    def run_until(self, end_ms: int) -> None:
        for _ in range(10_000_000):
            at = self._next_time()
            if at is None or at > end_ms:
                break
            self.now_ms = max(self.now_ms, at)
            while self._queue and self._queue[0][0] <= self.now_ms:
                _, _, message = heapq.heappop(self._queue)
                if message.to not in self.down:
                    self.nodes[message.to].step(message, self.now_ms)
                    self._flush(message.to)
            for node_id, node in sorted(self.nodes.items()):
                if node_id not in self.down:
                    node.tick(self.now_ms)
                    self._flush(node_id)
                    node.check_invariants()
        self.now_ms = max(self.now_ms, end_ms)

    def events_of(self, kind: type, observer: int | None = None) -> list[MemberEvent]:
        return [e for o, e in self.events
                if isinstance(e, kind) and (observer is None or o == observer)]

    def messages_of(self, kind: type) -> list[SwimMessage]:
        return [m for _, m in self.sent if isinstance(m, kind)]
