"""One peer's outbound side: a bounded queue, one connection, reconnects.

Theory of operation
-------------------
A `PeerLink` owns the single outbound message connection to one peer and a
task that keeps it up. It is in one of three states:

- CONNECTING: a connection attempt is under way; frames queue (bounded).
- CONNECTED: a writer drains the queue in order onto the socket, waiting for
  the socket to drain after each batch; a watcher ends the connection when
  the peer closes it (peers never send on our outbound connection, so any
  byte from them is a protocol error too).
- BACKOFF: the last attempt or connection failed. Whatever was queued is
  dropped, and every frame enqueued until the next attempt is dropped too,
  each drop reported as `unreachable` so Raft slows down to probing. The
  wait before the next attempt doubles per failure up to a cap, with
  jitter drawn from the injected `random.Random`.

When the queue is full (the peer is slow or the connection stalls), the
frame is dropped and `unreachable` is reported. Raft tolerates lost
messages; what it must not get is unbounded memory or a blocked driver.
Frames to one peer leave in the order they were enqueued, on one
connection, so they arrive in that order (or not at all).

Snapshots take their own connection (`snapshot.stream_snapshot`); at most
one per peer is in flight, and a newer one replaces (cancels) the older,
whose status is reported as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable

from chainfire_core.raft.messages import InstallSnapshot
from chainfire_core.types import NodeId
from real.transport.config import TransportConfig
from real.transport.snapshot import stream_snapshot

logger = logging.getLogger(__name__)


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"


def backoff_delay_s(failures: int, config: TransportConfig, rng: random.Random) -> float:
    """Delay before the next attempt after `failures` failures in a row:
    exponential with a cap, the upper half jittered ("equal jitter")."""
    assert failures >= 1
    base_s = min(config.backoff_max_s, config.backoff_initial_s * 2.0 ** min(failures - 1, 60))
    return base_s / 2 + rng.uniform(0.0, base_s / 2)


class PeerLink:
    """Outbound messages and snapshots to one peer."""

    def __init__(
        self,
        peer: NodeId,
        address: tuple[str, int],
        *,
        config: TransportConfig,
        rng: random.Random,
        report_unreachable: Callable[[NodeId], None],
        report_snapshot: Callable[[NodeId, bool], None],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.peer = peer
        self.ssl_context = ssl_context
        self.address = address
        self.config = config
        self.rng = rng
        self._report_unreachable = report_unreachable
        self._report_snapshot = report_snapshot
        self.state = LinkState.CONNECTING
        self.failures = 0  # consecutive failed attempts or connections
        self.connections = 0  # successful connections so far
        self._queue: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"peer-link-{peer}")
        self._snapshot_task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def enqueue(self, frame: bytes) -> bool:
        """Queue one frame; False (and `unreachable` reported) if dropped."""
        if self.state is LinkState.BACKOFF or len(self._queue) >= self.config.max_queue:
            self._report_unreachable(self.peer)
            return False
        self._queue.append(frame)
        self._wakeup.set()
        return True

    def send_snapshot(self, message: InstallSnapshot) -> None:
        assert message.to == self.peer
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()  # its status is reported as failed
        self._snapshot_task = asyncio.create_task(
            self._snapshot(message), name=f"peer-snapshot-{self.peer}")

    async def close(self) -> None:
        tasks = [self._task]
        if self._snapshot_task is not None:
            tasks.append(self._snapshot_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._queue.clear()

    async def _snapshot(self, message: InstallSnapshot) -> None:
        ok = False
        try:
            ok = await stream_snapshot(self.address, message, self.config,
                                       ssl_context=self.ssl_context)
        finally:
            self._report_snapshot(self.peer, ok)
            if self._snapshot_task is asyncio.current_task():
                self._snapshot_task = None

    async def _run(self) -> None:
        while True:
            self.state = LinkState.CONNECTING
            connection = await self._connect()
            if connection is not None:
                self.state = LinkState.CONNECTED
                self.failures = 0
                self.connections += 1
                await self._serve(*connection)
            self._fail()
            await asyncio.sleep(backoff_delay_s(self.failures, self.config, self.rng))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        host, port = self.address
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                return await asyncio.open_connection(host, port, ssl=self.ssl_context)
        except ssl.SSLError as error:
            # The peer's certificate is not from the peer CA (or it refused ours).
            log = logger.warning if self.failures == 0 else logger.debug
            log("peer %x at %s:%d: TLS handshake failed: %s", self.peer, host, port, error)
            return None
        except (OSError, TimeoutError):
            return None

    def _fail(self) -> None:
        self.state = LinkState.BACKOFF
        self.failures += 1
        if self._queue:
            self._queue.clear()
            self._report_unreachable(self.peer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Write queued frames until the connection fails or the peer closes it."""
        write = asyncio.create_task(self._write(writer))
        watch = asyncio.create_task(reader.read(1))
        try:
            await asyncio.wait((write, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (write, watch):
                task.cancel()
            await asyncio.gather(write, watch, return_exceptions=True)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _write(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while True:
                while not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                writer.write(self._take_batch())
                await writer.drain()

    def _take_batch(self) -> bytes:
        """Queued frames from the front, about one frame limit's worth at most."""
        batch = [self._queue.popleft()]
        size_bytes = len(batch[0])
        while self._queue and size_bytes + len(self._queue[0]) <= self.config.max_frame_bytes:
            frame = self._queue.popleft()
            batch.append(frame)
            size_bytes += len(frame)
        return b"".join(batch)


__all__ = ["LinkState", "PeerLink", "backoff_delay_s"]
