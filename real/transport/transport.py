"""`PeerTransport`: Raft messages between real nodes over TCP.

Theory of operation
-------------------
The runtime hands `send` the messages of each Ready (after persisting what
they depend on) and gets peers' messages back through `on_message`. In
between, every message is one frame (`frame.py`) whose payload is the
versioned codec of Raft's messages (`codec.py`).

Outbound, each peer has one `PeerLink` (`peer.py`): a bounded queue and one
connection kept up with backoff. `send` never blocks and never raises for a
peer's sake: a message that cannot be queued (unknown peer, full queue, peer
in backoff, oversized) is dropped and reported through `on_unreachable`, the
signal Raft uses to fall back to probing. An InstallSnapshot goes over its
own connection in chunks (`snapshot.py`) and its outcome comes back through
`on_snapshot_status(peer, ok)`.

Inbound, a server accepts connections; each one is read frame by frame and
checked by an `InboundSession` (`inbound.py`). A malformed, oversized,
unknown-version or out-of-sequence frame raises `FrameError`: that
connection alone is closed, the error is counted and passed to
`on_frame_error`, and nothing from the bad frame (or a half-received
snapshot) reaches the node. Other connections are not affected.

Callbacks run on the event loop and never inside a call to `send` or
`set_peers` (reports are scheduled with `call_soon`, unreachable reports
coalesced per peer), so the driver is never re-entered while it is handling
a Ready. After `close` no callback runs. All methods must be called from the
loop's thread; `send` and `set_peers` need a running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import ssl
from collections.abc import Callable, Mapping, Sequence

from chainfire_core.raft.messages import InstallSnapshot, Message
from chainfire_core.types import NodeId
from real.transport.codec import encode_message
from real.transport.config import TransportConfig
from real.transport.frame import FrameError, FrameKind, encode_frame, read_frame
from real.transport.inbound import InboundSession
from real.transport.peer import PeerLink

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = TransportConfig()


class PeerTransport:
    """One node's peer-to-peer transport (see the module docstring)."""

    def __init__(
        self,
        node_id: NodeId,
        *,
        on_message: Callable[[Message], None],
        on_unreachable: Callable[[NodeId], None],
        on_snapshot_status: Callable[[NodeId, bool], None],
        max_queue: int | None = None,
        config: TransportConfig = DEFAULT_CONFIG,
        rng: random.Random | None = None,
        on_frame_error: Callable[[FrameError], None] | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        assert node_id > 0, node_id
        # Mutual TLS (real/tls.py): accepted and dialled connections are
        # verified against the peer CA before a frame is read or written.
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        if max_queue is not None:
            config = dataclasses.replace(config, max_queue=max_queue)
        self.node_id = node_id
        self.config = config
        # Jitter only; an own generator (never the global one), injectable for tests.
        self.rng = rng if rng is not None else random.Random()
        self._on_message = on_message
        self._on_unreachable = on_unreachable
        self._on_snapshot_status = on_snapshot_status
        self._on_frame_error = on_frame_error
        self._links: dict[NodeId, PeerLink] = {}
        self._server: asyncio.Server | None = None
        self._inbound: set[asyncio.Task[None]] = set()  # connection handlers
        self._background: set[asyncio.Task[None]] = set()  # links being closed
        self._unreachable: set[NodeId] = set()
        self._closed = False
        self.frame_errors = 0
        self.tls_refused = 0  # inbound connections whose TLS handshake failed
        self.messages_received = 0
        self.messages_dropped = 0

    # -- life cycle ---------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen for peers on (host, port); return the bound port (0: a free one)."""
        assert self._server is None and not self._closed
        # TLS is started per connection in `_serve`, so a failed handshake is
        # counted and logged (asyncio's own server TLS drops it silently).
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening, drop every connection and queue; no callbacks after this."""
        self._closed = True
        if self._server is not None:
            self._server.close()
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.close() for link in links))
        for task in list(self._inbound):
            task.cancel()
        await asyncio.gather(*self._inbound, *self._background, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def set_peers(self, peers: Mapping[NodeId, tuple[str, int]]) -> None:
        """The peers and their addresses; links to others are closed, new ones opened."""
        assert not self._closed
        assert self.node_id not in peers, "a node is not its own peer"
        for peer in sorted(self._links):
            if peers.get(peer) != self._links[peer].address:
                task = asyncio.create_task(self._links.pop(peer).close())
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        for peer in sorted(peers):
            if peer not in self._links:
                self._links[peer] = PeerLink(
                    peer, peers[peer], config=self.config, rng=self.rng,
                    report_unreachable=self._report_unreachable,
                    report_snapshot=self._report_snapshot, ssl_context=self.client_ssl)

    def link(self, peer: NodeId) -> PeerLink | None:
        """The outbound link to `peer` (for status and metrics)."""
        return self._links.get(peer)

    # -- outbound -----------------------------------------------------------------

    def send(self, messages: Sequence[Message]) -> None:
        """Queue each message for its `to`; never blocks, never raises for a peer."""
        assert not self._closed
        for message in messages:
            assert message.sender == self.node_id, message
            link = self._links.get(message.to)
            if link is None:
                self._drop(message.to, "unknown peer")
            elif isinstance(message, InstallSnapshot):
                link.send_snapshot(message)
            else:
                self._enqueue(link, message)

    def _enqueue(self, link: PeerLink, message: Message) -> None:
        payload = encode_message(message)
        if len(payload) > self.config.max_frame_bytes:
            logger.error("dropping a %s of %d bytes to node %d: over max_frame_bytes %d",
                         type(message).__name__, len(payload), message.to,
                         self.config.max_frame_bytes)
            self._drop(message.to, "oversized")
            return
        frame = encode_frame(FrameKind.MESSAGE, payload, max_frame_bytes=len(payload))
        if not link.enqueue(frame):
            self.messages_dropped += 1

    def _drop(self, peer: NodeId, reason: str) -> None:
        logger.debug("dropping a message to node %d: %s", peer, reason)
        self.messages_dropped += 1
        self._report_unreachable(peer)

    # -- callbacks, always from the loop ------------------------------------------

    def _report_unreachable(self, peer: NodeId) -> None:
        if self._closed:
            return
        if not self._unreachable:
            asyncio.get_running_loop().call_soon(self._flush_unreachable)
        self._unreachable.add(peer)

    def _flush_unreachable(self) -> None:
        peers, self._unreachable = sorted(self._unreachable), set()
        for peer in peers:
            if not self._closed:
                self._on_unreachable(peer)

    def _report_snapshot(self, peer: NodeId, ok: bool) -> None:
        if not self._closed:
            asyncio.get_running_loop().call_soon(self._snapshot_status, peer, ok)

    def _snapshot_status(self, peer: NodeId, ok: bool) -> None:
        if not self._closed:
            self._on_snapshot_status(peer, ok)

    # -- inbound ------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            if self._closed or len(self._inbound) >= self.config.max_inbound_connections:
                logger.warning("refusing a peer connection: %d already open",
                               len(self._inbound))
                return
            self._inbound.add(task)
            task.add_done_callback(self._inbound.discard)
            if self.server_ssl is not None and not await self._handshake(writer):
                return
            await self._read_frames(reader, writer)
        except FrameError as error:
            self.frame_errors += 1
            logger.warning("closing a peer connection: %s", error)
            if self._on_frame_error is not None and not self._closed:
                self._on_frame_error(error)
        except OSError:
            pass  # the peer went away; nothing half-read was delivered
        finally:
            if self.server_ssl is not None:
                # Drop a TLS connection at once: a graceful TLS close waits for
                # a close_notify a gone or hostile peer never sends, and after a
                # failed or cancelled handshake the stream never learns that its
                # transport closed (wait_closed would wait forever).
                writer.transport.abort()
            else:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def _handshake(self, writer: asyncio.StreamWriter) -> bool:
        """Mutual TLS before any frame: False (logged) for a peer whose
        certificate the peer CA did not sign, or that sent none."""
        assert self.server_ssl is not None
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                await writer.start_tls(self.server_ssl)
        except (OSError, TimeoutError) as error:  # ssl.SSLError is an OSError
            self.tls_refused += 1
            logger.warning("refusing a peer connection from %s: TLS handshake failed: %s",
                           writer.get_extra_info("peername"), error or "timed out")
            return False
        return True

    async def _read_frames(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        session = InboundSession(self.node_id, max_snapshot_bytes=self.config.max_snapshot_bytes)
        while True:
            frame = await read_frame(reader, max_frame_bytes=self.config.max_frame_bytes)
            if frame is None:
                session.end()
                return
            delivery = session.receive(frame)
            if delivery is None or self._closed:
                continue
            self.messages_received += 1
            self._on_message(delivery.message)
            if delivery.ack:
                writer.write(encode_frame(FrameKind.SNAPSHOT_ACK, b"",
                                          max_frame_bytes=self.config.max_frame_bytes))
                await writer.drain()


__all__ = ["DEFAULT_CONFIG", "PeerTransport"]
