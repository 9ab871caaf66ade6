"""Two (or three) real PeerTransports talking over loopback TCP.

Every test runs its own event loop with a deadline; ports are chosen free at
run time (port 0). Waiting is on conditions signalled by the callbacks, not
on fixed sleeps; the few polls (link state) have a short step and the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from transport_samples import A, B, every_kind

from chainfire_core.raft.messages import (
    Heartbeat,
    InstallSnapshot,
    Message,
    Snapshot,
    SnapshotMetadata,
)
from chainfire_core.types import Index, NodeId, Term
from real.transport import (
    FrameError,
    FrameKind,
    LinkState,
    PeerTransport,
    TransportConfig,
    encode_frame,
    encode_message,
)
from real.transport.snapshot import snapshot_frames

FAST = TransportConfig(backoff_initial_s=0.01, backoff_max_s=0.05, connect_timeout_s=2.0,
                       snapshot_ack_timeout_s=10.0, max_frame_bytes=1 << 20,
                       snapshot_chunk_bytes=64 * 1024)
DEADLINE_S = 30


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(DEADLINE_S):
            await test()
    asyncio.run(bounded())


class Node:
    """A transport plus everything its callbacks reported."""

    def __init__(self, node_id: NodeId, config: TransportConfig = FAST, **kwargs: Any) -> None:
        self.received: list[Message] = []
        self.unreachable: list[NodeId] = []
        self.snapshot_status: list[tuple[NodeId, bool]] = []
        self.frame_errors: list[FrameError] = []
        self._changed = asyncio.Event()
        self.transport = PeerTransport(
            node_id, on_message=self._record(self.received),
            on_unreachable=self._record(self.unreachable),
            on_snapshot_status=lambda peer, ok: self._record(self.snapshot_status)((peer, ok)),
            on_frame_error=self._record(self.frame_errors),
            config=config, rng=random.Random(node_id), **kwargs)
        self.port = 0

    def _record(self, into: list[Any]) -> Callable[[Any], None]:
        def record(value: Any) -> None:
            into.append(value)
            self._changed.set()
        return record

    async def start(self, port: int = 0) -> Node:
        self.port = await self.transport.start("127.0.0.1", port)
        return self

    async def until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()


async def pair(config_a: TransportConfig = FAST, **kwargs: Any) -> tuple[Node, Node]:
    a = await Node(A, config_a, **kwargs).start()
    b = await Node(B).start()
    a.transport.set_peers({B: ("127.0.0.1", b.port)})
    b.transport.set_peers({A: ("127.0.0.1", a.port)})
    return a, b


async def close(*nodes: Node) -> None:
    for node in nodes:
        await node.transport.close()


async def poll(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.005)


def heartbeat(commit: int, sender: NodeId = A, to: NodeId = B) -> Heartbeat:
    return Heartbeat(sender=sender, to=to, term=Term(1), commit=Index(commit))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- delivery ---------------------------------------------------------------------------


def test_every_message_kind_round_trips_both_ways() -> None:
    async def test() -> None:
        a, b = await pair()
        a.transport.send(every_kind(A, B))
        b.transport.send(every_kind(B, A))
        for node, sent in ((b, every_kind(A, B)), (a, every_kind(B, A))):
            await node.until(lambda node=node, sent=sent: len(node.received) == len(sent))
            plain = [m for m in sent if not isinstance(m, InstallSnapshot)]
            assert [m for m in node.received if not isinstance(m, InstallSnapshot)] == plain
            assert [m for m in node.received if isinstance(m, InstallSnapshot)] == \
                [m for m in sent if isinstance(m, InstallSnapshot)]
        await a.until(lambda: a.snapshot_status == [(B, True)])
        await b.until(lambda: b.snapshot_status == [(A, True)])
        assert a.unreachable == b.unreachable == []
        assert a.frame_errors == b.frame_errors == []
        await close(a, b)
    run(test)


def test_messages_to_one_peer_arrive_in_order() -> None:
    async def test() -> None:
        a, b = await pair()
        sent = [heartbeat(i) for i in range(2000)]
        for start in range(0, len(sent), 100):  # across many loop iterations
            a.transport.send(sent[start : start + 100])
            await asyncio.sleep(0)
        await b.until(lambda: len(b.received) == len(sent))
        assert b.received == sent
        await close(a, b)
    run(test)


def test_unknown_peer_is_reported_unreachable() -> None:
    async def test() -> None:
        a, b = await pair()
        a.transport.send([heartbeat(1, to=NodeId(9)), heartbeat(2, to=NodeId(9))])
        assert a.unreachable == []  # never from inside send()
        await a.until(lambda: a.unreachable == [NodeId(9)])  # coalesced: once
        assert a.transport.messages_dropped == 2
        await close(a, b)
    run(test)


# -- failures ---------------------------------------------------------------------------


def test_reconnects_after_the_peer_restarts() -> None:
    async def test() -> None:
        a, b = await pair()
        a.transport.send([heartbeat(1)])
        await b.until(lambda: b.received == [heartbeat(1)])
        link = a.transport.link(B)
        assert link is not None and link.connections == 1
        await b.transport.close()
        # The peer is down: sends are dropped and reported, Raft backs off.
        await poll(lambda: link.state is LinkState.BACKOFF)
        a.transport.send([heartbeat(2)])
        await a.until(lambda: B in a.unreachable)
        restarted = await Node(B).start(b.port)
        await poll(lambda: link.state is LinkState.CONNECTED)
        assert link.connections == 2 and link.failures == 0
        a.transport.send([heartbeat(3)])
        await restarted.until(lambda: restarted.received == [heartbeat(3)])
        await close(a, restarted)
    run(test)


def test_a_changed_peer_address_takes_effect() -> None:
    async def test() -> None:
        a, b = await pair()
        moved = await Node(B).start()
        a.transport.set_peers({B: ("127.0.0.1", moved.port)})
        a.transport.send([heartbeat(1)])
        await moved.until(lambda: moved.received == [heartbeat(1)])
        assert b.received == []
        a.transport.set_peers({})
        a.transport.send([heartbeat(2)])
        await a.until(lambda: a.unreachable == [B])
        await close(a, b, moved)
    run(test)


def test_inbound_connections_are_bounded() -> None:
    async def test() -> None:
        b = await Node(B, TransportConfig(max_inbound_connections=1)).start()
        _, first = await asyncio.open_connection("127.0.0.1", b.port)
        first.write(encode_frame(FrameKind.MESSAGE, encode_message(heartbeat(1)),
                                 max_frame_bytes=1 << 20))
        await b.until(lambda: len(b.received) == 1)
        second_reader, second = await asyncio.open_connection("127.0.0.1", b.port)
        assert await closed_by_peer(second_reader)
        first.write(encode_frame(FrameKind.MESSAGE, encode_message(heartbeat(2)),
                                 max_frame_bytes=1 << 20))
        await b.until(lambda: len(b.received) == 2)
        first.close()
        second.close()
        await close(b)
    run(test)


def test_a_full_queue_drops_and_reports_unreachable() -> None:
    async def test() -> None:
        a, b = await pair(max_queue=4)
        # One synchronous call: the link has not connected yet, so 4 queue and 6 drop.
        a.transport.send([heartbeat(i) for i in range(10)])
        link = a.transport.link(B)
        assert link is not None and link.queued == 4
        assert a.transport.messages_dropped == 6
        await a.until(lambda: a.unreachable == [B])
        await b.until(lambda: len(b.received) == 4)
        a.transport.send([heartbeat(100)])
        await b.until(lambda: len(b.received) == 5)
        assert b.received == [heartbeat(i) for i in (0, 1, 2, 3, 100)]
        await close(a, b)
    run(test)


def test_a_stalled_peer_fills_the_queue_instead_of_memory() -> None:
    async def test() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def never_read(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(never_read, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        a = await Node(A, max_queue=8).start()
        a.transport.set_peers({B: ("127.0.0.1", port)})
        big = Heartbeat(sender=A, to=B, term=Term(1), commit=Index(1),
                        context=bytes(256 * 1024))
        for _ in range(2000):  # ~500 MiB if nothing were bounded
            a.transport.send([big])
            await asyncio.sleep(0)
            if a.unreachable:
                break
        assert a.unreachable == [B]
        link = a.transport.link(B)
        assert link is not None and link.queued <= 8
        await close(a)
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    run(test)


# -- snapshots --------------------------------------------------------------------------


def test_a_big_snapshot_is_streamed_in_chunks() -> None:
    async def test() -> None:
        a, b = await pair()
        data = random.Random(5).randbytes(5 * 1024 * 1024 + 123)  # 81 chunks of 64 KiB
        assert len(data) > FAST.max_frame_bytes
        message = InstallSnapshot(sender=A, to=B, term=Term(7), snapshot=Snapshot(
            metadata=SnapshotMetadata(index=Index(1000), term=Term(6)), data=data))
        assert len(list(snapshot_frames(message, FAST))) == 1 + 81
        a.transport.send([message, heartbeat(1)])
        await a.until(lambda: a.snapshot_status == [(B, True)])
        await b.until(lambda: len(b.received) == 2)
        assert message in b.received and heartbeat(1) in b.received
        await close(a, b)
    run(test)


def test_a_snapshot_to_a_dead_peer_reports_failure() -> None:
    async def test() -> None:
        a = await Node(A).start()
        a.transport.set_peers({B: ("127.0.0.1", free_port())})
        a.transport.send([every_kind(A, B)[4]])
        await a.until(lambda: a.snapshot_status == [(B, False)])
        await close(a)
    run(test)


# -- malformed input --------------------------------------------------------------------


def raw_header(*, magic: bytes = b"CFRP", version: int = 1, kind: int = 1, length: int,
               crc: int = 0) -> bytes:
    return struct.pack(">4sBBII", magic, version, kind, length, crc)


POISON = encode_message(heartbeat(666))  # a valid payload that must never be delivered


def truncated() -> bytes:
    return encode_frame(FrameKind.MESSAGE, POISON, max_frame_bytes=1 << 20)[:-2]


def truncated_snapshot() -> bytes:
    message = InstallSnapshot(sender=A, to=B, term=Term(1), snapshot=Snapshot(
        metadata=SnapshotMetadata(index=Index(1), term=Term(1)), data=bytes(200_000)))
    return b"".join(list(snapshot_frames(message, FAST))[:2])


MALFORMED = {
    "garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40), "bad magic"),
    "bad crc": (raw_header(length=len(POISON), crc=zlib.crc32(POISON) ^ 1) + POISON,
                "CRC mismatch"),
    "oversized": (raw_header(length=FAST.max_frame_bytes + 1), "over the limit"),
    "wrong version": (raw_header(version=9, length=len(POISON), crc=zlib.crc32(POISON))
                      + POISON, "unknown frame version 9"),
    "truncated": (truncated(), "ended inside a MESSAGE frame"),
    "truncated snapshot": (truncated_snapshot(), "ended inside a snapshot"),
    "misaddressed": (encode_frame(FrameKind.MESSAGE, encode_message(heartbeat(666, to=NodeId(3))),
                                  max_frame_bytes=1 << 20), "arrived at node 2"),
}


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(ConnectionResetError):
        return await reader.read() == b""
    return True


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_frame_closes_only_its_connection(case: str) -> None:
    wire, reason = MALFORMED[case]

    async def test() -> None:
        a, b = await pair()
        a.transport.send([heartbeat(1)])
        await b.until(lambda: len(b.received) == 1)  # A's link to B is up
        _, good = await asyncio.open_connection("127.0.0.1", b.port)
        bad_reader, bad = await asyncio.open_connection("127.0.0.1", b.port)
        bad.write(wire)
        bad.write_eof()
        await b.until(lambda: len(b.frame_errors) == 1)
        assert isinstance(b.frame_errors[0], FrameError)
        assert reason in str(b.frame_errors[0])
        assert await closed_by_peer(bad_reader)
        bad.close()
        # The other connections are untouched and B keeps serving.
        good.write(encode_frame(FrameKind.MESSAGE, encode_message(heartbeat(2)),
                                max_frame_bytes=1 << 20))
        await good.drain()
        a.transport.send([heartbeat(3)])
        await b.until(lambda: len(b.received) == 3)
        assert sorted(m.commit for m in b.received if isinstance(m, Heartbeat)) == [1, 2, 3]
        assert b.transport.frame_errors == 1
        link = a.transport.link(B)
        assert link is not None and link.connections == 1
        good.close()
        await close(a, b)
    run(test)


