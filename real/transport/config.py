"""The transport's limits: every queue, frame and wait has a named bound here.

A `TransportConfig` is frozen and validated on creation, so a transport can
never run with, say, a chunk larger than the frame that must carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainfire_core.errors import InvalidRequest

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConfig:
    """Limits of one `PeerTransport` (sizes in bytes, times in seconds)."""

    # Largest payload one frame may carry, either way; a bigger length field
    # in a received header is refused before anything is read.
    max_frame_bytes: int = 16 * MIB
    # Messages waiting per peer; when full, new ones are dropped.
    max_queue: int = 4096
    # Snapshot data is streamed in chunks of this size.
    snapshot_chunk_bytes: int = 1 * MIB
    # Largest snapshot a receiver assembles (it is held in memory once whole).
    max_snapshot_bytes: int = 1024 * MIB
    # Inbound connections served at once; more are closed on accept.
    max_inbound_connections: int = 256
    # Reconnect backoff: the first delay, doubled per failure up to the cap.
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0
    connect_timeout_s: float = 2.0
    # Time for the receiver to confirm a whole snapshot after its last chunk.
    snapshot_ack_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_frame_bytes", "max_queue", "snapshot_chunk_bytes",
                     "max_snapshot_bytes", "max_inbound_connections"):
            if getattr(self, name) < 1:
                raise InvalidRequest(f"transport config: {name} must be >= 1")
        if self.max_frame_bytes >= 2**32:
            raise InvalidRequest("transport config: max_frame_bytes must fit in 32 bits")
        if self.snapshot_chunk_bytes > self.max_frame_bytes:
            raise InvalidRequest(
                "transport config: snapshot_chunk_bytes must be <= max_frame_bytes")
        for name in ("backoff_initial_s", "backoff_max_s", "connect_timeout_s",
                     "snapshot_ack_timeout_s"):
            if not getattr(self, name) > 0:
                raise InvalidRequest(f"transport config: {name} must be > 0")
        if self.backoff_max_s < self.backoff_initial_s:
            raise InvalidRequest(
                "transport config: backoff_max_s must be >= backoff_initial_s")


__all__ = ["TransportConfig"]
