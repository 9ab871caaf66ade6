"""The simulated datagram network between SWIM members.

Theory of operation
-------------------
SWIM runs over an unreliable datagram service, so this network is simpler
than the Raft one (sim/network.py, left untouched): each message is one
datagram, lost with probability `loss`, otherwise delivered after a latency
drawn uniformly from `latency_ms` (integer milliseconds, so every event in
a SWIM run happens at an integer time). Datagrams may overtake each other.
`cut(a, b)` drops everything between two members both ways until `mend`.

Every datagram is counted at its sender with its encoded size
(`chainfire_core.swim.encoded_size`, what the real UDP driver would put on
the wire), lost or not: that is the "bytes per member per second" figure.
All draws come from the one `random.Random` handed in, in send order, so a
seed fixes every loss and every latency.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

import simpy

from chainfire_core.swim import SwimMessage, encoded_size
from chainfire_core.types import NodeId


class SwimNetwork:
    def __init__(self, env: simpy.Environment, rng: random.Random, *, loss: float,
                 latency_ms: tuple[int, int], members: int,
                 deliver: Callable[[SwimMessage], None]) -> None:
        assert 0.0 <= loss < 1.0 and 0 <= latency_ms[0] <= latency_ms[1]
        self.env = env
        self.rng = rng
        self.loss = loss
        self.latency_ms = latency_ms
        self.deliver = deliver
        # Indexed by member id (index 0 unused).
        self.bytes_sent = [0] * (members + 1)
        self.messages_sent = [0] * (members + 1)
        self.dropped = 0
        self._cut: set[tuple[NodeId, NodeId]] = set()

    def cut(self, a: NodeId, b: NodeId) -> None:
        self._cut.update(((a, b), (b, a)))

    def mend(self, a: NodeId, b: NodeId) -> None:
        self._cut.difference_update(((a, b), (b, a)))

    def send(self, message: SwimMessage) -> None:
        sender = message.sender
        self.bytes_sent[sender] += encoded_size(message)
        self.messages_sent[sender] += 1
        if (self.loss and self.rng.random() < self.loss) or (
                self._cut and (sender, message.to) in self._cut):
            self.dropped += 1
            return
        low, high = self.latency_ms
        delay = low if low == high else self.rng.randint(low, high)
        self.env.timeout(delay).callbacks.append(partial(self._arrive, message))

    def _arrive(self, message: SwimMessage, _event: simpy.Event) -> None:
        self.deliver(message)


__all__ = ["SwimNetwork"]
