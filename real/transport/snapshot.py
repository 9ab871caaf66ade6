"""Sending one snapshot: its own connection, its data in chunks, an ACK back.

Theory of operation
-------------------
A snapshot can be far larger than a frame, and must not hold up heartbeats
queued behind it, so it never travels on the peer's message connection.
`stream_snapshot` opens a fresh connection, sends SNAPSHOT_BEGIN (the
InstallSnapshot with its data left out, plus the data's length), then the
data in SNAPSHOT_CHUNK frames of at most `snapshot_chunk_bytes`, waiting for
the socket to drain after each chunk (so memory stays bounded by one chunk
plus the kernel buffer), then waits for the receiver's SNAPSHOT_ACK, sent
once it has handed the whole message to its node. The result is True only
if that ACK came; any failure or timeout is False. The caller reports it to
Raft (`report_snapshot`), which either moves on or probes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import Iterator

from chainfire_core.raft.messages import InstallSnapshot
from real.transport.codec import SnapshotBegin, encode_snapshot_begin
from real.transport.config import TransportConfig
from real.transport.frame import FrameError, FrameKind, encode_frame, read_frame


def snapshot_frames(message: InstallSnapshot, config: TransportConfig) -> Iterator[bytes]:
    """The frames of one snapshot stream, lazily (one chunk in memory at a time)."""
    data = message.snapshot.data
    bare = dataclasses.replace(message, snapshot=dataclasses.replace(message.snapshot, data=b""))
    begin = encode_snapshot_begin(SnapshotBegin(message=bare, data_bytes=len(data)))
    yield encode_frame(FrameKind.SNAPSHOT_BEGIN, begin, max_frame_bytes=config.max_frame_bytes)
    view = memoryview(data)
    for start in range(0, len(data), config.snapshot_chunk_bytes):
        chunk = bytes(view[start : start + config.snapshot_chunk_bytes])
        yield encode_frame(FrameKind.SNAPSHOT_CHUNK, chunk,
                           max_frame_bytes=config.max_frame_bytes)


async def stream_snapshot(
    address: tuple[str, int], message: InstallSnapshot, config: TransportConfig, *,
    ssl_context: ssl.SSLContext | None = None,
) -> bool:
    """Send `message` to `address` as a snapshot stream; True once acknowledged."""
    host, port = address
    try:
        async with asyncio.timeout(config.connect_timeout_s):
            reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context)
    except (OSError, TimeoutError):
        return False
    try:
        for frame in snapshot_frames(message, config):
            writer.write(frame)
            await writer.drain()
        async with asyncio.timeout(config.snapshot_ack_timeout_s):
            ack = await read_frame(reader, max_frame_bytes=config.max_frame_bytes)
        return ack is not None and ack.kind == FrameKind.SNAPSHOT_ACK and not ack.payload
    except (OSError, TimeoutError, FrameError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


__all__ = ["snapshot_frames", "stream_snapshot"]
