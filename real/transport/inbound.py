"""What one inbound connection may carry, as a sans-IO state machine.

Theory of operation
-------------------
An `InboundSession` takes the frames of one accepted connection in order and
says what to deliver. A connection carries either single messages (MESSAGE
frames) or snapshot streams: SNAPSHOT_BEGIN (the InstallSnapshot without
its data, and the data's length), then SNAPSHOT_CHUNK frames until exactly
that many bytes have come, at which point the whole InstallSnapshot is
delivered and the receiver owes the sender a SNAPSHOT_ACK.

Every other sequence is a `FrameError`: a chunk without a begin, a message
or a second begin inside a stream, more data than announced, a stream that
ends early, an ACK sent to a receiver, a whole InstallSnapshot in a MESSAGE
frame. A session that raised is done; the caller closes the connection, and
a partly received snapshot is dropped with it (nothing was delivered).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from chainfire_core.raft.messages import InstallSnapshot, Message
from chainfire_core.types import NodeId
from real.transport.codec import SnapshotBegin, decode_message, decode_snapshot_begin
from real.transport.frame import Frame, FrameError, FrameKind


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    message: Message
    ack: bool  # a whole snapshot: answer the sender with SNAPSHOT_ACK


class InboundSession:
    """The frame sequence rules of one inbound connection."""

    def __init__(self, node_id: NodeId, *, max_snapshot_bytes: int) -> None:
        self.node_id = node_id
        self.max_snapshot_bytes = max_snapshot_bytes
        self._begin: SnapshotBegin | None = None
        self._data = bytearray()

    @property
    def in_snapshot(self) -> bool:
        return self._begin is not None

    def receive(self, frame: Frame) -> Delivery | None:
        match frame.kind:
            case FrameKind.MESSAGE:
                return self._message(frame.payload)
            case FrameKind.SNAPSHOT_BEGIN:
                return self._snapshot_begin(frame.payload)
            case FrameKind.SNAPSHOT_CHUNK:
                return self._snapshot_chunk(frame.payload)
            case FrameKind.SNAPSHOT_ACK:
                raise FrameError("a SNAPSHOT_ACK sent to a receiver")

    def end(self) -> None:
        """The peer closed the stream."""
        if self._begin is not None:
            raise FrameError(
                f"stream ended inside a snapshot ({len(self._data)} of "
                f"{self._begin.data_bytes} bytes)")

    def _message(self, payload: bytes) -> Delivery:
        if self._begin is not None:
            raise FrameError("a MESSAGE frame inside a snapshot stream")
        message = decode_message(payload, to=self.node_id)
        if isinstance(message, InstallSnapshot):
            raise FrameError("an InstallSnapshot outside a snapshot stream")
        return Delivery(message=message, ack=False)

    def _snapshot_begin(self, payload: bytes) -> Delivery | None:
        if self._begin is not None:
            raise FrameError("a SNAPSHOT_BEGIN inside a snapshot stream")
        begin = decode_snapshot_begin(payload, to=self.node_id)
        if begin.data_bytes > self.max_snapshot_bytes:
            raise FrameError(
                f"snapshot of {begin.data_bytes} bytes is over the limit of "
                f"{self.max_snapshot_bytes}")
        self._begin = begin
        return self._maybe_complete()

    def _snapshot_chunk(self, payload: bytes) -> Delivery | None:
        begin = self._begin
        if begin is None:
            raise FrameError("a SNAPSHOT_CHUNK outside a snapshot stream")
        if not payload:
            raise FrameError("an empty SNAPSHOT_CHUNK")
        if len(self._data) + len(payload) > begin.data_bytes:
            raise FrameError(
                f"snapshot data longer than the announced {begin.data_bytes} bytes")
        self._data += payload
        return self._maybe_complete()

    def _maybe_complete(self) -> Delivery | None:
        begin = self._begin
        assert begin is not None
        if len(self._data) < begin.data_bytes:
            return None
        assert len(self._data) == begin.data_bytes
        snapshot = dataclasses.replace(begin.message.snapshot, data=bytes(self._data))
        message = dataclasses.replace(begin.message, snapshot=snapshot)
        self._begin = None
        self._data = bytearray()
        return Delivery(message=message, ack=True)


__all__ = ["Delivery", "InboundSession"]
