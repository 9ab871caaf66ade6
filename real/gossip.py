"""SWIM gossip over UDP on an asyncio loop: the real-runtime driver of
`chainfire_core.swim`.

Theory of operation
-------------------
`GossipAgent` owns one UDP socket and one `SwimNode`, and follows the
node's Ready contract: after every input (a datagram, a timer, a join or
leave) it takes `ready()`, encodes each message (one datagram each,
`chainfire_core.swim.codec`) and sends it to the member's address, hands
each member event to `on_event` and to `events` (a bounded queue; the
oldest is dropped when nobody reads it), and calls `advance`. One
`loop.call_at` timer is kept armed for `next_deadline_ms()`.

Time is the loop's monotonic clock in integer milliseconds since `start()`.
Randomness is a `random.Random` handed in (or a fresh one seeded by the
system), never the global one.

Addresses: the core carries each member's "host:port" in its `Alive`
updates (one's own is the address bound, or `advertise` when given, e.g.
the member's peer URL when it binds a wildcard address); the agent also
remembers where each member's datagrams come from (and whom it heard
from: `heard_from`) and the addresses it was given (bootstrap members,
join seeds), and uses the core's address first. A datagram that does not decode
(`MalformedDatagram`), is not addressed to this member, or whose sender
cannot be reached is dropped and counted in `stats`: the network is
untrusted input.

Why UDP and not the peer TCP transport (real/transport): a probe measures
whether a member answers *now*. A lost ping is information SWIM is built
to use (it asks others to try), while TCP would retransmit it and turn loss
into a late answer behind head-of-line blocking; a probe goes to a
different member every period, so per-peer connections would be set up
and torn down constantly; every SWIM message fits one datagram; and
keeping gossip off the Raft connections means a stuck Raft stream neither
hides nor fakes a member's liveness. memberlist (Consul, Serf) makes the
same choice.

Gossip only informs: events go to the handler; nothing here touches Raft.
real/gossip_cluster.py runs one agent per `chainfire serve` member.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chainfire_core.swim import (
    MalformedDatagram,
    MemberEvent,
    MemberView,
    SwimConfig,
    SwimMessage,
    SwimNode,
    decode,
    encode,
)
from chainfire_core.types import NodeId

# Member events kept for a reader of `events` before the oldest is dropped.
MAX_QUEUED_EVENTS = 4_096

Address = tuple[str, int]


def parse_address(text: str) -> Address:
    """"host:port" or "[v6]:port" -> (host, port); ValueError if neither."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65_536:
        raise ValueError(f"not a host:port address: {text!r}")
    return host.strip("[]"), int(port)


def format_address(address: Address) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(slots=True)
class GossipStats:
    datagrams_in: int = 0
    datagrams_out: int = 0
    malformed: int = 0
    misdelivered: int = 0
    unreachable: int = 0
    events_dropped: int = 0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, agent: GossipAgent) -> None:
        self.agent = agent

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.agent._received(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.agent.stats.unreachable += 1  # e.g. ICMP port unreachable


class GossipAgent:
    """One SWIM member on UDP. See the module docstring."""

    def __init__(self, config: SwimConfig, *, host: str = "127.0.0.1", port: int = 0,
                 members: Sequence[tuple[NodeId, str]] = (), rng: random.Random | None = None,
                 on_event: Callable[[MemberEvent], None] | None = None,
                 advertise: str | None = None) -> None:
        self.template = config
        self.bind = (host, port)
        # What the others are told to send to (default: the address bound),
        # e.g. the member's peer URL when it binds a wildcard address.
        self.advertise = advertise
        self._bootstrap = tuple(members)
        self.rng = rng or random.Random()
        self.on_event = on_event
        self.events: asyncio.Queue[MemberEvent] = asyncio.Queue(MAX_QUEUED_EVENTS)
        self.stats = GossipStats()
        self.node: SwimNode | None = None
        self._known: dict[NodeId, Address] = {}
        # Members a valid datagram came from (a bootstrap member is only
        # presumed alive until then).
        self.heard_from: set[NodeId] = set()
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._origin = 0.0

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self),
                                                           local_addr=self.bind)
        self._transport = transport
        bound = self._transport.get_extra_info("sockname")
        address = self.advertise or format_address((str(bound[0]), int(bound[1])))
        self._origin = loop.time()
        config = self.template.with_member(self.template.member_id, address)
        for member, text in self._bootstrap:
            self._known[member] = parse_address(text)
        self.node = SwimNode(config, self.rng, now_ms=0, members=self._bootstrap)
        self._after_input()

    @property
    def address(self) -> str:
        """Where this member listens ("host:port"), once started."""
        assert self.node is not None, "start() first"
        return self.node.config.address

    @property
    def id(self) -> NodeId:
        return self.template.member_id

    async def join(self, seeds: Sequence[tuple[NodeId, str]]) -> None:
        node = self._running()
        for member, text in seeds:
            self._known[member] = parse_address(text)
        node.join([member for member, _ in seeds], self._now_ms())
        self._after_input()

    async def leave(self, linger_s: float = 1.0) -> None:
        """Leave gracefully: announce it, keep answering for `linger_s`, stop."""
        node = self._running()
        node.leave(self._now_ms())
        self._after_input()
        await asyncio.sleep(linger_s)
        await self.stop()

    async def stop(self) -> None:
        """Stop at once (to the others, as if crashed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def members(self) -> tuple[MemberView, ...]:
        return self._running().members()

    @property
    def running(self) -> bool:
        """Started, and neither stopped nor gone (a leave stops it)."""
        return self.node is not None and self._transport is not None

    @property
    def family(self) -> int:
        """The bound socket's address family (socket.AF_INET or AF_INET6)."""
        assert self._transport is not None, "start() first"
        return int(self._transport.get_extra_info("socket").family)

    # -- inputs ---------------------------------------------------------------------------

    def _received(self, data: bytes, source: Address) -> None:
        node = self.node
        if node is None or self._transport is None:
            return
        self.stats.datagrams_in += 1
        try:
            message = decode(data)
        except MalformedDatagram:
            self.stats.malformed += 1
            return
        if message.to != node.id:
            self.stats.misdelivered += 1
            return
        self._known[message.sender] = source
        node.step(message, self._now_ms())
        if node.member(message.sender) is not None:  # bounded by the member table
            self.heard_from.add(message.sender)
        self._after_input()

    def _on_timer(self, deadline_ms: int) -> None:
        self._timer = None
        if self.node is None or self._transport is None:
            return
        # The loop may run a timer a hair early: it is due by definition.
        self.node.tick(max(self._now_ms(), deadline_ms))
        self._after_input()

    # -- outputs ----------------------------------------------------------------------------

    def _after_input(self) -> None:
        node = self._running()
        if node.has_ready():
            ready = node.ready()
            for message in ready.messages:
                self._send(message)
            for event in ready.events:
                self._report(event)
            node.advance(ready)
        self._arm()

    def _send(self, message: SwimMessage) -> None:
        transport = self._transport
        address = self._address_of(message.to)
        if transport is None or address is None:
            self.stats.unreachable += 1
            return
        transport.sendto(encode(message), address)
        self.stats.datagrams_out += 1

    def _address_of(self, member: NodeId) -> Address | None:
        view = self._running().member(member)
        if view is not None and view.address:
            with contextlib.suppress(ValueError):
                return parse_address(view.address)
        return self._known.get(member)

    def _report(self, event: MemberEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)
        if self.events.full():
            self.events.get_nowait()
            self.stats.events_dropped += 1
        self.events.put_nowait(event)

    def _arm(self) -> None:
        deadline = self._running().next_deadline_ms()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is None or self._transport is None:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(self._origin + deadline / 1000, self._on_timer, deadline)

    def _now_ms(self) -> int:
        now = int((asyncio.get_running_loop().time() - self._origin) * 1000)
        assert self.node is not None
        return max(now, self.node.now_ms)  # never backwards, even by rounding

    def _running(self) -> SwimNode:
        if self.node is None:
            raise RuntimeError("gossip agent not started")
        return self.node


__all__ = ["MAX_QUEUED_EVENTS", "GossipAgent", "GossipStats", "format_address",
           "parse_address"]
