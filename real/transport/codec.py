"""The versioned codec of Raft's peer messages (frame payloads).

Theory of operation
-------------------
The core's `Codec` (chainfire_core.codec) already encodes frozen dataclasses
deterministically and decodes them strictly; the core registers only what it
writes into its log (`NODE_CODEC`), not Raft's messages. This module
registers those: the list below is the schema of MESSAGE and SNAPSHOT_BEGIN
payloads, and only ever grows at the end (anything else bumps
`frame.FRAME_VERSION`).

`decode_message` adds the checks a network peer needs beyond the codec's:
the value is a Raft message (not some other registered type), it is
addressed to this node, and any assertion a dataclass makes on construction
(`ConfState` asserts sorted ids) becomes a `FrameError`, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from chainfire_core.codec import Codec, CodecError
from chainfire_core.raft.messages import (
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeSingle,
    ConfState,
    Entry,
    ForwardedProposal,
    ForwardedReadIndex,
    ForwardedTransfer,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndexResponse,
    RequestVote,
    Snapshot,
    SnapshotMetadata,
    TimeoutNow,
    VoteResponse,
)
from chainfire_core.types import NodeId
from real.transport.frame import FrameError

MESSAGE_TYPES: tuple[type, ...] = (
    AppendEntries,
    AppendResponse,
    RequestVote,
    VoteResponse,
    InstallSnapshot,
    Heartbeat,
    HeartbeatResponse,
    TimeoutNow,
    ForwardedProposal,
    ForwardedReadIndex,
    ReadIndexResponse,
    ForwardedTransfer,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotBegin:
    """Opens a snapshot stream: the message with its data left out, and how
    many data bytes the SNAPSHOT_CHUNK frames after it will carry."""

    message: InstallSnapshot
    data_bytes: int

    def __post_init__(self) -> None:
        if self.data_bytes < 0:
            raise FrameError(f"snapshot of {self.data_bytes} bytes")
        if self.message.snapshot.data:
            raise FrameError("a SnapshotBegin carries no data of its own")


TRANSPORT_CODEC = Codec([
    *MESSAGE_TYPES,
    ConfChangeSingle,
    ConfChange,
    ConfState,
    Entry,
    SnapshotMetadata,
    Snapshot,
    SnapshotBegin,
])


def encode_message(message: Message) -> bytes:
    assert isinstance(message, MESSAGE_TYPES), type(message)
    return TRANSPORT_CODEC.encode(message)


def _decode(payload: bytes) -> object:
    try:
        return TRANSPORT_CODEC.decode(payload)
    except CodecError as error:
        raise FrameError(f"undecodable payload: {error}") from error
    except AssertionError as error:  # a dataclass refused the values (e.g. ConfState order)
        raise FrameError(f"invalid payload: {error}") from error


def decode_message(payload: bytes, *, to: NodeId) -> Message:
    """The Raft message in a MESSAGE payload, addressed to `to`, or FrameError."""
    value = _decode(payload)
    if not isinstance(value, MESSAGE_TYPES):
        raise FrameError(f"payload holds a {type(value).__name__}, not a Raft message")
    message = cast(Message, value)
    _check_addressee(message, to)
    return message


def encode_snapshot_begin(begin: SnapshotBegin) -> bytes:
    return TRANSPORT_CODEC.encode(begin)


def decode_snapshot_begin(payload: bytes, *, to: NodeId) -> SnapshotBegin:
    value = _decode(payload)
    if not isinstance(value, SnapshotBegin):
        raise FrameError(f"payload holds a {type(value).__name__}, not a SnapshotBegin")
    _check_addressee(value.message, to)
    return value


def _check_addressee(message: Message, to: NodeId) -> None:
    if message.to != to:
        raise FrameError(f"message addressed to node {message.to} arrived at node {to}")
    if message.sender <= 0:
        raise FrameError(f"message from invalid node id {message.sender}")


__all__ = [
    "MESSAGE_TYPES",
    "TRANSPORT_CODEC",
    "SnapshotBegin",
    "decode_message",
    "decode_snapshot_begin",
    "encode_message",
    "encode_snapshot_begin",
]
