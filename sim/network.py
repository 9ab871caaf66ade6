"""The simulated network between nodes.

Each directed link gets a base latency drawn once; each message waits
base * uniform(1, 1 + jitter), plus, with the run's probabilities, a reorder
delay (so later messages overtake it) or a rare spike. Messages may be lost
or duplicated. A partition is a set of allowed (sender, receiver) pairs
built from a networkx graph (sim/partitions.py); a message is dropped if its
link is cut when it is sent or when it would arrive. Nodes outside the
partition graph (members added later) are connected to everyone.

Every send, delivery and drop is traced with the message's type and term,
and every message is shown to `on_send` as it leaves its node, before any
loss or partition (the safety monitor reads the votes cast from it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import cast

import simpy

from chainfire_core.raft.messages import (
    AppendEntries,
    ForwardedProposal,
    InstallSnapshot,
    Message,
)
from chainfire_core.types import NodeId
from sim.options import SimParams
from sim.trace import Trace


class Network:
    def __init__(self, env: simpy.Environment, rng: random.Random, params: SimParams, *,
                 trace: Trace, deliver: Callable[[tuple[Message, ...]], bool],
                 feedback: Callable[[Message, bool], None],
                 on_send: Callable[[Message, float], None] | None = None) -> None:
        self.env = env
        self.rng = rng
        self.params = params
        self.trace = trace
        self.deliver = deliver
        # What a real transport tells its sender: a snapshot sent or failed,
        # a peer unreachable (etcd's ReportSnapshot / ReportUnreachable).
        self.feedback = feedback
        # Sees each message sent, with the time (SafetyMonitor.message_sent).
        self.on_send = on_send
        self._base: dict[tuple[NodeId, NodeId], float] = {}
        self._allowed: frozenset[tuple[NodeId, NodeId]] | None = None
        self._members: frozenset[NodeId] = frozenset()
        # Fault rates (from the drawn parameters; zeroed by `quiet` at the heal).
        self.loss = params.loss
        self.duplicate = params.duplicate
        self.reorder = params.reorder
        self.spike = params.spike
        self.sent = 0
        self.dropped = 0

    def quiet(self) -> None:
        """No more loss, duplication, reordering or spikes."""
        self.loss = self.duplicate = self.reorder = self.spike = 0.0

    # -- partitions ----------------------------------------------------------

    def partition(self, allowed: frozenset[tuple[NodeId, NodeId]],
                  members: frozenset[NodeId]) -> None:
        self._allowed = allowed
        self._members = members

    def heal(self) -> None:
        self._allowed = None
        self._members = frozenset()

    @property
    def partitioned(self) -> bool:
        return self._allowed is not None

    def connected(self, sender: NodeId, receiver: NodeId) -> bool:
        if self._allowed is None or sender == receiver:
            return True
        if sender not in self._members or receiver not in self._members:
            return True
        return (sender, receiver) in self._allowed

    # -- latency ---------------------------------------------------------------

    def latency_ms(self, sender: NodeId, receiver: NodeId) -> float:
        link = (sender, receiver)
        base = self._base.get(link)
        if base is None:
            low, high = self.params.latency_ms
            base = self._base[link] = self.rng.uniform(low, high)
        delay = base * (1.0 + self.rng.random() * self.params.jitter)
        roll = self.rng.random()
        if roll < self.reorder:
            delay += self.rng.uniform(0.0, self.params.reorder_delay_ms)
        elif roll < self.reorder + self.spike:
            delay += self.rng.uniform(*self.params.spike_ms)
        return delay

    # -- sending -----------------------------------------------------------------

    def send_all(self, messages: Sequence[Message]) -> None:
        """Send a Ready's messages. Those to one peer travel as one packet (as
        on a stream connection): one latency, lost, duplicated or cut as one."""
        self._observe(messages)
        packets: dict[NodeId, list[Message]] = {}
        for message in messages:
            packets.setdefault(message.to, []).append(message)
        for packet in packets.values():
            self._send_packet(tuple(packet))

    def send(self, message: Message) -> None:
        self._observe((message,))
        self._send_packet((message,))

    def _observe(self, messages: Sequence[Message]) -> None:
        # In the order the node made them (packets regroup them by peer).
        if self.on_send is not None:
            for message in messages:
                self.on_send(message, self.env.now)

    def _send_packet(self, packet: tuple[Message, ...]) -> None:
        self.sent += len(packet)
        first = packet[0]
        sender, receiver = first.sender, first.to
        trace = self.trace
        if trace.full:
            for message in packet:
                trace.message(self.env.now, "send", sender, receiver,
                              type(message).__name__, message.term)
        if not self.connected(sender, receiver):
            self._drop(packet, "partition")
            return
        if self.loss and self.rng.random() < self.loss:
            self._drop(packet, "loss")
            return
        # A forwarded proposal is not idempotent (two copies would be appended
        # and applied twice): its transport, like etcd's TCP streams, never
        # duplicates it. Raft's own messages are duplicated freely.
        copies = 1
        if self.duplicate and self.rng.random() < self.duplicate and not any(
                isinstance(message, ForwardedProposal) for message in packet):
            copies = 2
            if trace.full:
                for message in packet:
                    trace.message(self.env.now, "dup", sender, receiver,
                                  type(message).__name__, message.term)
        for _ in range(copies):
            timer = self.env.timeout(self.latency_ms(sender, receiver), packet)
            timer.callbacks.append(self._arrive)

    def _arrive(self, event: simpy.Event) -> None:
        packet = cast(tuple[Message, ...], event.value)
        first = packet[0]
        if not self.connected(first.sender, first.to):
            self._drop(packet, "partition")
            return
        if self.trace.full:
            for message in packet:
                self.trace.message(self.env.now, "deliver", message.sender, message.to,
                                   type(message).__name__, message.term)
        delivered = self.deliver(packet)  # False: no process there to take it
        for message in packet:
            if isinstance(message, InstallSnapshot):
                self.feedback(message, delivered)

    def _drop(self, packet: tuple[Message, ...], reason: str) -> None:
        self.dropped += len(packet)
        unreachable = False
        for message in packet:
            if self.trace.full:
                self.trace.message(self.env.now, "drop", message.sender, message.to,
                                   type(message).__name__, message.term, reason)
            if isinstance(message, InstallSnapshot):
                self.feedback(message, False)
            elif reason == "partition" and isinstance(message, AppendEntries) \
                    and not unreachable:
                unreachable = True
                self.feedback(message, False)


__all__ = ["Network"]
