"""SWIM gossip membership with the Lifeguard extensions, sans-IO.

Theory of operation
-------------------
One `SwimNode` per member. The driver hands it time (`tick(now_ms)`),
messages (`step(message, now_ms)`) and commands (`join`, `leave`), and
carries out what `ready()` returns (messages to send, member events to
report), then calls `advance`. Failure detection (node.py: probes,
ping-reqs, nacks, local health) sits on dissemination and suspicion
(view.py: precedence, refutation, suspicion timeouts, piggybacking).
codec.py is the strict wire format for drivers that use real datagrams.

Gossip only informs: member events feed the cluster event handler and
metrics, and may back an operator's decision; the core never changes the
Raft voter set.

Modules: config (SwimConfig), messages (updates, messages, events),
members (member table, precedence, probe order), broadcast (piggyback
queue), suspicion (Lifeguard timeouts), health (local health multiplier),
timers, rng (injected randomness), view (GroupView), node (SwimNode),
codec, errors.
"""

from chainfire_core.swim.broadcast import retransmit_limit
from chainfire_core.swim.codec import MAX_DATAGRAM_BYTES, decode, encode, encoded_size
from chainfire_core.swim.config import SwimConfig
from chainfire_core.swim.errors import InvalidSwimConfig, MalformedDatagram
from chainfire_core.swim.messages import (
    Ack,
    Alive,
    Dead,
    Incarnation,
    Join,
    JoinAck,
    Left,
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspected,
    Nack,
    Ping,
    PingReq,
    SelfRefuted,
    Suspect,
    SwimMessage,
    Update,
)
from chainfire_core.swim.node import MemberView, SwimNode, SwimReady, SwimStats
from chainfire_core.swim.suspicion import suspicion_bounds_ms, suspicion_timeout_ms

__all__ = [
    # the member and its config
    "SwimConfig",
    "SwimNode",
    "SwimReady",
    "SwimStats",
    "MemberView",
    "MemberState",
    "Incarnation",
    # errors
    "InvalidSwimConfig",
    "MalformedDatagram",
    # gossip updates
    "Alive",
    "Dead",
    "Left",
    "Suspect",
    "Update",
    # messages
    "Ack",
    "Join",
    "JoinAck",
    "Nack",
    "Ping",
    "PingReq",
    "SwimMessage",
    # events
    "MemberAlive",
    "MemberDead",
    "MemberEvent",
    "MemberJoined",
    "MemberLeft",
    "MemberSuspected",
    "SelfRefuted",
    # wire format and formulas
    "MAX_DATAGRAM_BYTES",
    "decode",
    "encode",
    "encoded_size",
    "retransmit_limit",
    "suspicion_bounds_ms",
    "suspicion_timeout_ms",
]
