"""Frames: the unit of bytes on a peer connection.

Theory of operation
-------------------
A TCP stream carries a sequence of frames. Each frame is a fixed 14-byte
header followed by its payload:

    magic   4 bytes   b"CFRP"
    version 1 byte    FRAME_VERSION
    kind    1 byte    a `FrameKind`
    length  4 bytes   payload length, big-endian, <= the receiver's limit
    crc     4 bytes   CRC-32 (zlib) of the payload, big-endian

The header is checked field by field before any payload byte is read, so an
oversized or foreign frame costs the receiver 14 bytes, never an allocation
of the claimed size. The payload is checked against its CRC before anyone
decodes it. Any failure is a `FrameError`: the connection it came from is
closed and nothing it carried is delivered.

`encode_frame` and `FrameDecoder` are pure (bytes in, frames out);
`read_frame` is the asyncio reader the transport uses.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from chainfire_core.errors import DataError

MAGIC = b"CFRP"
FRAME_VERSION = 1
HEADER = struct.Struct(">4sBBII")
HEADER_BYTES = HEADER.size
assert HEADER_BYTES == 14


class FrameError(DataError):
    """Bytes from a peer that are not a well-formed frame (or frame sequence)."""


class FrameKind(IntEnum):
    MESSAGE = 1  # payload: one encoded Raft message
    SNAPSHOT_BEGIN = 2  # payload: an encoded SnapshotBegin (the message without its data)
    SNAPSHOT_CHUNK = 3  # payload: the next raw bytes of the snapshot data
    SNAPSHOT_ACK = 4  # payload: empty; the receiver has taken the whole snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    kind: FrameKind
    payload: bytes


def encode_frame(kind: FrameKind, payload: bytes, *, max_frame_bytes: int) -> bytes:
    """The bytes of one frame. A payload over the limit is the caller's bug."""
    assert len(payload) <= max_frame_bytes, (len(payload), max_frame_bytes)
    crc = zlib.crc32(payload)
    return HEADER.pack(MAGIC, FRAME_VERSION, int(kind), len(payload), crc) + payload


def parse_header(header: bytes, *, max_frame_bytes: int) -> tuple[FrameKind, int, int]:
    """(kind, payload length, crc) of a header, or FrameError."""
    assert len(header) == HEADER_BYTES
    magic, version, kind, length, crc = HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic!r}: not a Chainfire peer frame")
    if version != FRAME_VERSION:
        raise FrameError(f"unknown frame version {version} (this node speaks {FRAME_VERSION})")
    try:
        frame_kind = FrameKind(kind)
    except ValueError as error:
        raise FrameError(f"unknown frame kind {kind}") from error
    if length > max_frame_bytes:
        raise FrameError(f"frame of {length} bytes is over the limit of {max_frame_bytes}")
    return frame_kind, length, crc


def check_payload(kind: FrameKind, payload: bytes, crc: int) -> Frame:
    if zlib.crc32(payload) != crc:
        raise FrameError(f"CRC mismatch in a {kind.name} frame of {len(payload)} bytes")
    return Frame(kind=kind, payload=payload)


class FrameDecoder:
    """Incremental, sans-IO: `feed` bytes as they come, get whole frames back.

    After a FrameError the decoder is poisoned: a stream that lost framing
    cannot be trusted again, so every later `feed` raises too."""

    def __init__(self, *, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._failed: FrameError | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an incomplete frame (nonzero at EOF means truncation)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        if self._failed is not None:
            raise FrameError(f"stream already failed: {self._failed}")
        self._buffer += data
        frames: list[Frame] = []
        try:
            while len(self._buffer) >= HEADER_BYTES:
                kind, length, crc = parse_header(
                    bytes(self._buffer[:HEADER_BYTES]), max_frame_bytes=self.max_frame_bytes)
                end = HEADER_BYTES + length
                if len(self._buffer) < end:
                    break
                frames.append(check_payload(kind, bytes(self._buffer[HEADER_BYTES:end]), crc))
                del self._buffer[:end]
        except FrameError as error:
            self._failed = error
            raise
        return frames

    def end(self) -> None:
        """The stream ended: a partial frame left over is a truncated frame."""
        if self._buffer:
            raise FrameError(f"stream ended inside a frame ({len(self._buffer)} bytes left)")


async def read_frame(reader: asyncio.StreamReader, *, max_frame_bytes: int) -> Frame | None:
    """The next frame, None on a clean end of stream, FrameError otherwise."""
    try:
        header = await reader.readexactly(HEADER_BYTES)
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise FrameError(f"stream ended inside a header ({len(error.partial)} bytes)") from error
    kind, length, crc = parse_header(header, max_frame_bytes=max_frame_bytes)
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as error:
        raise FrameError(
            f"stream ended inside a {kind.name} frame "
            f"({len(error.partial)} of {length} bytes)") from error
    return check_payload(kind, payload, crc)


__all__ = [
    "FRAME_VERSION",
    "HEADER_BYTES",
    "MAGIC",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameKind",
    "check_payload",
    "encode_frame",
    "parse_header",
    "read_frame",
]
