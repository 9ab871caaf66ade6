"""SWIM's data: membership updates, protocol messages and member events.

Theory of operation
-------------------
Three families, each a frozen, slotted, keyword-only dataclass per kind:

* Updates (`Alive`, `Suspect`, `Dead`, `Left`) are what members gossip
  about one member: its state at an incarnation. They ride piggybacked on
  protocol messages (SWIM's infection-style dissemination). Which one wins
  over what a member already knows is decided in members.py.
* Messages (`Ping`, `PingReq`, `Ack`, `Nack`, `Join`, `JoinAck`) are what a
  member sends to one other member. Every message names its `sender` and
  its receiver `to`; `seq` ties an ack or nack to the probe it answers.
* Events (`MemberJoined`, `MemberSuspected`, `MemberAlive`, `MemberDead`,
  `MemberLeft`, `SelfRefuted`) are what one member's view tells its cluster
  event handler, stamped with the member's `now_ms`. They only inform: the
  core never turns them into Raft membership changes.

Construction validates cheaply (ids > 0, counters >= 0), so an invalid
message cannot exist; the codec maps those errors to `MalformedDatagram`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NewType

from chainfire_core.errors import InvalidRequest
from chainfire_core.types import NodeId

Incarnation = NewType("Incarnation", int)

MAX_SEQ = (1 << 32) - 1
MAX_INCARNATION = (1 << 63) - 1


class MemberState(IntEnum):
    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


def _check_id(what: str, value: int) -> None:
    if value <= 0:
        raise InvalidRequest(f"swim: {what} must be > 0, got {value}")


def _check_incarnation(value: int) -> None:
    if not 0 <= value <= MAX_INCARNATION:
        raise InvalidRequest(f"swim: incarnation out of range: {value}")


def _check_seq(value: int) -> None:
    if not 0 <= value <= MAX_SEQ:
        raise InvalidRequest(f"swim: seq out of range: {value}")


def _check_link(sender: int, to: int) -> None:
    _check_id("sender", sender)
    _check_id("to", to)
    if sender == to:
        raise InvalidRequest("swim: a member does not message itself")


# -- updates (gossip) --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Alive:
    member: NodeId
    incarnation: Incarnation
    address: str = ""

    def __post_init__(self) -> None:
        _check_id("member", self.member)
        _check_incarnation(self.incarnation)


@dataclass(frozen=True, slots=True, kw_only=True)
class Suspect:
    member: NodeId
    incarnation: Incarnation
    accuser: NodeId

    def __post_init__(self) -> None:
        _check_id("member", self.member)
        _check_id("accuser", self.accuser)
        _check_incarnation(self.incarnation)


@dataclass(frozen=True, slots=True, kw_only=True)
class Dead:
    member: NodeId
    incarnation: Incarnation
    accuser: NodeId

    def __post_init__(self) -> None:
        _check_id("member", self.member)
        _check_id("accuser", self.accuser)
        _check_incarnation(self.incarnation)


@dataclass(frozen=True, slots=True, kw_only=True)
class Left:
    member: NodeId
    incarnation: Incarnation

    def __post_init__(self) -> None:
        _check_id("member", self.member)
        _check_incarnation(self.incarnation)


Update = Alive | Suspect | Dead | Left


# -- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    sender: NodeId
    to: NodeId
    seq: int
    updates: tuple[Update, ...] = ()

    def __post_init__(self) -> None:
        _check_link(self.sender, self.to)
        _check_seq(self.seq)


@dataclass(frozen=True, slots=True, kw_only=True)
class PingReq:
    """Ask `to` to ping `target` on the sender's behalf and relay the ack."""

    sender: NodeId
    to: NodeId
    seq: int
    target: NodeId
    updates: tuple[Update, ...] = ()

    def __post_init__(self) -> None:
        _check_link(self.sender, self.to)
        _check_seq(self.seq)
        _check_id("target", self.target)
        if self.target in (self.sender, self.to):
            raise InvalidRequest("swim: a ping-req targets a third member")


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    sender: NodeId
    to: NodeId
    seq: int
    updates: tuple[Update, ...] = ()

    def __post_init__(self) -> None:
        _check_link(self.sender, self.to)
        _check_seq(self.seq)


@dataclass(frozen=True, slots=True, kw_only=True)
class Nack:
    """A ping-req relay heard nothing from the target in time (Lifeguard)."""

    sender: NodeId
    to: NodeId
    seq: int

    def __post_init__(self) -> None:
        _check_link(self.sender, self.to)
        _check_seq(self.seq)


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    sender: NodeId
    to: NodeId
    incarnation: Incarnation
    address: str = ""

    def __post_init__(self) -> None:
        _check_link(self.sender, self.to)
        _check_incarnation(self.incarnation)


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinAck:
    """The answer to a join: the sender's whole view, one update per member."""

    sender: NodeId
    to: NodeId
    updates: tuple[Update, ...] = ()

    def __post_init__(self) -> None:
        _check_link(self.sender, self.to)


SwimMessage = Ping | PingReq | Ack | Nack | Join | JoinAck


# -- events (to the cluster event handler) ------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberJoined:
    member: NodeId
    incarnation: Incarnation
    address: str
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberSuspected:
    member: NodeId
    incarnation: Incarnation
    accuser: NodeId
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberAlive:
    """A suspected, dead or departed member is alive again (it refuted or rejoined)."""

    member: NodeId
    incarnation: Incarnation
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberDead:
    member: NodeId
    incarnation: Incarnation
    accuser: NodeId
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberLeft:
    member: NodeId
    incarnation: Incarnation
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfRefuted:
    """This member heard itself suspected (or declared dead) and answered
    with a higher incarnation."""

    incarnation: Incarnation
    at_ms: int


MemberEvent = MemberJoined | MemberSuspected | MemberAlive | MemberDead | MemberLeft | SelfRefuted

__all__ = [
    "MAX_INCARNATION",
    "MAX_SEQ",
    "Ack",
    "Alive",
    "Dead",
    "Incarnation",
    "Join",
    "JoinAck",
    "Left",
    "MemberAlive",
    "MemberDead",
    "MemberEvent",
    "MemberJoined",
    "MemberLeft",
    "MemberState",
    "MemberSuspected",
    "Nack",
    "Ping",
    "PingReq",
    "SelfRefuted",
    "Suspect",
    "SwimMessage",
    "Update",
]
