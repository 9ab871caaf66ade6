"""Gossip in a running member: one `GossipAgent` beside the Raft node,
following the Raft member table and reporting what it sees.

Theory of operation
-------------------
Addressing: a member gossips over UDP on the host and port of its first
peer URL, the same numbers its Raft peer transport listens on over TCP
(UDP and TCP ports are separate name spaces, so nothing clashes and nothing
new needs configuring). Every member's gossip address follows from the
member table, which already holds the peer URLs; the socket binds the
first listen-peer URL, and the member tells the others its own first peer
URL (resolved to an IP address once, so no datagram waits on DNS).

Members: `start()` seeds the SWIM view with every other member of the Raft
member table (or of `--initial-cluster` while the table is still empty)
and sends each a join, so a member that restarts after being declared
dead hears so and refutes. `members_changed(table)` (the runtime's
`on_members_changed`) joins members the view has never been handed (a
MemberAdd), and makes this member leave gossip when the table no longer
holds it (MemberRemove of itself). A removed member stays in the SWIM
view (the core keeps dead and departed members so old news cannot revive
them) but is no longer reported: events, metrics and listeners only
concern members of the current Raft table.

Reports: each member event is logged, counted (`counters`, exported by
real/metrics.py) and handed, as a `GossipNotice`, to every listener (the
embedding's cluster event handler, `ServeOptions.on_gossip_event`). A
notice about a voter declared dead carries a `MembershipSuggestion` for an
operator. Nothing here proposes anything: gossip never changes the Raft
voter set, whatever the datagrams say (they are not authenticated).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass

from chainfire_core.node_messages import Member
from chainfire_core.swim import (
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspected,
    SelfRefuted,
    SwimConfig,
)
from chainfire_core.types import NodeId
from real.config import ServerConfig, parse_url
from real.gossip import GossipAgent, format_address

logger = logging.getLogger("chainfire.gossip")

# The longest a graceful leave keeps answering before the member stops.
MAX_LEAVE_LINGER_S = 1.0
# Gossip states reported per member; "unknown": in the Raft table, never heard of.
REPORTED_STATES = ("alive", "suspect", "dead", "left", "unknown")


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipSuggestion:
    """A hint for an operator; nothing in Chainfire acts on it."""

    action: str  # "remove": consider MemberRemove
    member_id: NodeId
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipNotice:
    """One gossip event about a member of the Raft table (or about oneself)."""

    event: MemberEvent
    # The Raft member concerned; None for SelfRefuted (this member).
    member: Member | None
    # The member's gossip state before the event (None: first heard of).
    previous: MemberState | None = None
    suggestion: MembershipSuggestion | None = None


@dataclass(slots=True)
class GossipCounters:
    suspicions: int = 0
    # A suspect alive again before anyone declared it dead (a false suspicion).
    refuted_suspicions: int = 0
    deaths: int = 0
    # A member declared dead, or that left, alive again.
    recoveries: int = 0
    departures: int = 0
    self_refutations: int = 0


GossipListener = Callable[[GossipNotice], None]


def swim_config(config: ServerConfig) -> SwimConfig:
    """The SWIM settings of a member: the defaults, scaled to its period."""
    period = config.gossip_period_ms
    return SwimConfig(member_id=config.node_id, protocol_period_ms=period,
                      probe_timeout_ms=period // 2, nack_timeout_ms=period * 2 // 5)


def initial_members(config: ServerConfig) -> tuple[Member, ...]:
    ids = config.member_ids()
    return tuple(Member(id=ids[name], name=name, peer_urls=config.peer_urls_of(name))
                 for name in config.member_names())


class ClusterGossip:
    """The gossip of one running member (see the module docstring)."""

    def __init__(self, config: ServerConfig, members: Iterable[Member] = (), *,
                 rng: random.Random | None = None,
                 listeners: Iterable[GossipListener] = ()) -> None:
        self.config = config
        self.node_id = config.node_id
        self.swim = swim_config(config)
        self.counters = GossipCounters()
        self.listeners = list(listeners)
        self.members = _by_id(tuple(members) or initial_members(config))
        self.agent: GossipAgent | None = None
        self._rng = rng
        self._family = socket.AF_UNSPEC
        self._handed: set[NodeId] = set()  # members given to the agent (seeded or joined)
        self._states: dict[NodeId, MemberState] = {}
        self._heard: set[NodeId] = set()  # members some news said were alive
        self._tasks: set[asyncio.Task[None]] = set()
        self._leaving: asyncio.Task[None] | None = None

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the UDP socket (OSError if it cannot) and join the others."""
        listen = self.config.listen_peer_urls[0]
        infos = await asyncio.get_running_loop().getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        self._family = family
        own = self.members.get(self.node_id)
        advertise = await self._resolve(own.peer_urls[0] if own and own.peer_urls
                                        else listen.url)
        seeds = await self._addresses(self._others(self.members.values()))
        agent = GossipAgent(self.swim, host=str(sockaddr[0]), port=listen.port, members=seeds,
                            rng=self._rng, on_event=self._on_event, advertise=advertise)
        await agent.start()
        self.agent = agent
        self._handed.update(member for member, _ in seeds)
        self._states.update((member, MemberState.ALIVE) for member, _ in seeds)
        if seeds:
            await agent.join(seeds)
        logger.info("member %s (%x) gossiping on udp %s, period %d ms, %d other members",
                    self.config.name, self.node_id, agent.address,
                    self.swim.protocol_period_ms, len(seeds))

    async def leave(self) -> None:
        """Tell the others this member is going (graceful shutdown), then stop."""
        agent = self.agent
        if agent is not None and agent.running and self._leaving is None:
            linger_s = min(MAX_LEAVE_LINGER_S, 3 * self.swim.protocol_period_ms / 1000)
            self._leaving = asyncio.ensure_future(agent.leave(linger_s))
        if self._leaving is not None:
            await self._leaving

    async def close(self) -> None:
        """Stop at once (idempotent)."""
        tasks = [*self._tasks, *([self._leaving] if self._leaving else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self.agent is not None:
            await self.agent.stop()

    # -- the Raft member table -------------------------------------------------------------

    def members_changed(self, members: tuple[Member, ...]) -> None:
        """The runtime's `on_members_changed`: follow the Raft member table."""
        if not members:
            return
        self.members = _by_id(members)
        agent = self.agent
        if agent is None or not agent.running:
            return
        if self.node_id not in self.members:
            logger.info("this member was removed from the cluster; leaving gossip")
            self._spawn(self.leave())
            return
        new = [m for m in self._others(members) if m.id not in self._handed]
        if new:
            self._handed.update(m.id for m in new)
            self._spawn(self._join(new))

    async def _join(self, members: list[Member]) -> None:
        seeds = await self._addresses(members)
        if seeds and self.agent is not None and self.agent.running:
            await self.agent.join(seeds)

    def states(self) -> dict[NodeId, str]:
        """Every other Raft member's gossip state (REPORTED_STATES), by id:
        "unknown" until a member is heard from (directly, or by news of it
        joining or coming back), as a member seeded from the table is only
        presumed alive."""
        agent = self.agent
        out: dict[NodeId, str] = {}
        for member_id in sorted(self.members):
            if member_id == self.node_id:
                continue
            view = agent.node.member(member_id) if agent and agent.node else None
            presumed = (view is not None and view.state == MemberState.ALIVE
                        and member_id not in self._heard and agent is not None
                        and member_id not in agent.heard_from)
            out[member_id] = ("unknown" if view is None or presumed
                              else view.state.name.lower())
        return out

    # -- events --------------------------------------------------------------------------

    def _on_event(self, event: MemberEvent) -> None:
        if isinstance(event, SelfRefuted):
            self.counters.self_refutations += 1
            logger.warning("this member was suspected (or declared dead); refuted "
                           "with incarnation %d",
                           event.incarnation)
            self._notify(GossipNotice(event=event, member=None))
            return
        previous = self._states.get(event.member)
        self._states[event.member] = _state_after(event)
        member = self.members.get(event.member)
        if member is None:
            logger.debug("%s about %x, not a member of the cluster", event, event.member)
            return
        if isinstance(event, MemberJoined | MemberAlive):
            self._heard.add(member.id)
        self._count(event, previous)
        _log(event, _name(member), previous)
        suggestion = None
        if isinstance(event, MemberDead) and not member.is_learner:
            suggestion = MembershipSuggestion(
                action="remove", member_id=member.id,
                reason=f"gossip declared member {_name(member)} dead; if it is gone for good, "
                       f"remove it (etcdctl member remove {member.id:x})")
        self._notify(GossipNotice(event=event, member=member, previous=previous,
                                  suggestion=suggestion))

    def _count(self, event: MemberEvent, previous: MemberState | None) -> None:
        counters = self.counters
        match event:
            case MemberSuspected():
                counters.suspicions += 1
            case MemberDead():
                counters.deaths += 1
            case MemberLeft():
                counters.departures += 1
            case MemberAlive() if previous == MemberState.SUSPECT:
                counters.refuted_suspicions += 1
            case MemberAlive():
                counters.recoveries += 1
            case _:
                pass

    def _notify(self, notice: GossipNotice) -> None:
        for listener in list(self.listeners):
            try:
                listener(notice)
            except Exception:  # a listener's bug must not stop gossip
                logger.exception("gossip listener %r failed on %s", listener, notice)

    # -- helpers ---------------------------------------------------------------------------

    def _others(self, members: Iterable[Member]) -> list[Member]:
        return [m for m in members if m.id != self.node_id and m.peer_urls]

    async def _addresses(self, members: Iterable[Member]) -> list[tuple[NodeId, str]]:
        out = []
        for member in sorted(members, key=lambda m: m.id):
            address = await self._resolve(member.peer_urls[0])
            if address is not None:
                out.append((member.id, address))
        return out

    async def _resolve(self, url: str) -> str | None:
        """A peer URL's host and port as the "ip:port" to send datagrams to."""
        try:
            parsed = parse_url(url)
            infos = await asyncio.get_running_loop().getaddrinfo(
                parsed.host, parsed.port, family=self._family, type=socket.SOCK_DGRAM)
        except (ValueError, OSError) as error:
            logger.warning("cannot address peer URL %r: %s", url, error)
            return None
        sockaddr = infos[0][4]
        return format_address((str(sockaddr[0]), int(sockaddr[1])))

    def _spawn(self, body: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(body)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _state_after(event: MemberJoined | MemberSuspected | MemberAlive | MemberDead | MemberLeft
                 ) -> MemberState:
    match event:
        case MemberJoined() | MemberAlive():
            return MemberState.ALIVE
        case MemberSuspected():
            return MemberState.SUSPECT
        case MemberDead():
            return MemberState.DEAD
        case MemberLeft():
            return MemberState.LEFT


def _log(event: MemberEvent, name: str, previous: MemberState | None) -> None:
    match event:
        case MemberSuspected():
            logger.warning("member %s suspected by %x (incarnation %d)", name,
                           event.accuser, event.incarnation)
        case MemberDead():
            logger.warning("member %s declared dead by %x (incarnation %d); the Raft "
                           "voter set is unchanged", name, event.accuser, event.incarnation)
        case MemberAlive():
            was = previous.name.lower() if previous is not None else "unknown"
            logger.info("member %s alive again (was %s; incarnation %d)", name, was,
                        event.incarnation)
        case MemberLeft():
            logger.info("member %s left (a graceful shutdown)", name)
        case MemberJoined():
            logger.info("member %s joined at %s", name, event.address)
        case _:
            pass


def _name(member: Member) -> str:
    return f"{member.name or '?'} ({member.id:x})"


def _by_id(members: tuple[Member, ...]) -> dict[NodeId, Member]:
    return {member.id: member for member in sorted(members, key=lambda m: m.id)}


__all__ = ["MAX_LEAVE_LINGER_S", "REPORTED_STATES", "ClusterGossip", "GossipCounters",
           "GossipListener", "GossipNotice", "MembershipSuggestion", "initial_members",
           "swim_config"]
