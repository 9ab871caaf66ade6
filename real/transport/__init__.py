"""Peer transport: Raft messages between real nodes over TCP.

Frames (`frame`) carry the versioned codec of Raft's messages (`codec`);
`PeerTransport` (`transport`) keeps one outbound connection per peer
(`peer`), streams snapshots on their own connections (`snapshot`), and
checks every inbound connection strictly (`inbound`). See
docs/real-transport.md.
"""

from __future__ import annotations

from real.transport.codec import SnapshotBegin, decode_message, encode_message
from real.transport.config import TransportConfig
from real.transport.frame import (
    FRAME_VERSION,
    HEADER_BYTES,
    MAGIC,
    Frame,
    FrameDecoder,
    FrameError,
    FrameKind,
    encode_frame,
)
from real.transport.peer import LinkState, PeerLink, backoff_delay_s
from real.transport.transport import PeerTransport

__all__ = [
    "FRAME_VERSION",
    "HEADER_BYTES",
    "MAGIC",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameKind",
    "LinkState",
    "PeerLink",
    "PeerTransport",
    "SnapshotBegin",
    "TransportConfig",
    "backoff_delay_s",
    "decode_message",
    "encode_frame",
    "encode_message",
]
