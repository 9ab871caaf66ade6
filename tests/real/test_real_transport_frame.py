"""The frame format, the message codec and the inbound sequence rules, without sockets."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from transport_samples import A, B, every_kind, messages

from chainfire_core.raft.messages import (
    ConfState,
    Heartbeat,
    InstallSnapshot,
    Message,
    Snapshot,
    SnapshotMetadata,
)
from chainfire_core.types import Index, NodeId, Term
from real.transport import (
    FRAME_VERSION,
    HEADER_BYTES,
    MAGIC,
    FrameDecoder,
    FrameError,
    FrameKind,
    TransportConfig,
    backoff_delay_s,
    decode_message,
    encode_frame,
    encode_message,
)
from real.transport.codec import TRANSPORT_CODEC
from real.transport.inbound import InboundSession
from real.transport.snapshot import snapshot_frames

LIMIT = 1 << 16
kinds = st.sampled_from(FrameKind)


def decode_all(data: bytes, limit: int = LIMIT) -> list[tuple[FrameKind, bytes]]:
    decoder = FrameDecoder(max_frame_bytes=limit)
    frames = decoder.feed(data)
    decoder.end()
    return [(f.kind, f.payload) for f in frames]


# -- the frame codec -------------------------------------------------------------------


@given(st.lists(st.tuples(kinds, st.binary(max_size=300)), max_size=8), st.data())
def test_frames_round_trip_whatever_the_split(frames: list[tuple[FrameKind, bytes]],
                                             data: st.DataObject) -> None:
    wire = b"".join(encode_frame(k, p, max_frame_bytes=LIMIT) for k, p in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    decoder = FrameDecoder(max_frame_bytes=LIMIT)
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        got += [(f.kind, f.payload) for f in decoder.feed(wire[start:end])]
    decoder.end()
    assert got == frames


@given(messages())
def test_every_message_round_trips_through_codec_and_frame(message: Message) -> None:
    wire = encode_frame(FrameKind.MESSAGE, encode_message(message), max_frame_bytes=LIMIT)
    [(kind, payload)] = decode_all(wire)
    assert kind is FrameKind.MESSAGE
    assert decode_message(payload, to=B) == message
    assert encode_message(decode_message(payload, to=B)) == payload  # canonical bytes


def test_header_layout_is_as_documented() -> None:
    wire = encode_frame(FrameKind.MESSAGE, b"abc", max_frame_bytes=LIMIT)
    assert HEADER_BYTES == 14
    assert wire[:4] == MAGIC == b"CFRP"
    assert wire[4] == FRAME_VERSION == 1
    assert wire[5] == FrameKind.MESSAGE
    assert struct.unpack(">II", wire[6:14]) == (3, zlib.crc32(b"abc"))
    assert wire[14:] == b"abc"


def header(*, magic: bytes = MAGIC, version: int = FRAME_VERSION, kind: int = 1,
           length: int = 3, crc: int | None = None, payload: bytes = b"abc") -> bytes:
    crc = zlib.crc32(payload) if crc is None else crc
    return struct.pack(">4sBBII", magic, version, kind, length, crc) + payload


@pytest.mark.parametrize(("wire", "reason"), [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad magic"),
    (header(crc=zlib.crc32(b"abd")), "CRC mismatch"),
    (header(length=LIMIT + 1), "over the limit"),
    (header(version=2), "unknown frame version 2"),
    (header(kind=9), "unknown frame kind 9"),
])
def test_malformed_frames_raise_frame_error(wire: bytes, reason: str) -> None:
    decoder = FrameDecoder(max_frame_bytes=LIMIT)
    with pytest.raises(FrameError, match=reason):
        decoder.feed(wire)
    with pytest.raises(FrameError, match="already failed"):  # poisoned for good
        decoder.feed(encode_frame(FrameKind.MESSAGE, b"", max_frame_bytes=LIMIT))


@pytest.mark.parametrize("keep", [1, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + 2])
def test_truncated_frame_raises_frame_error_at_end(keep: int) -> None:
    decoder = FrameDecoder(max_frame_bytes=LIMIT)
    assert decoder.feed(header()[:keep]) == []
    with pytest.raises(FrameError, match="ended inside a frame"):
        decoder.end()


@given(st.binary(min_size=HEADER_BYTES, max_size=200))
def test_garbage_is_refused_at_the_header(garbage: bytes) -> None:
    assume(garbage[:4] != MAGIC)
    with pytest.raises(FrameError, match="bad magic"):
        FrameDecoder(max_frame_bytes=LIMIT).feed(garbage)


@given(messages(), st.data())
def test_any_corruption_of_a_payload_is_refused(message: Message, data: st.DataObject) -> None:
    wire = bytearray(encode_frame(FrameKind.MESSAGE, encode_message(message),
                                  max_frame_bytes=LIMIT))
    position = data.draw(st.integers(0, len(wire) - 1))
    wire[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(FrameError):  # at the frame, the payload, or the sequence level
        run_session(decode_all(bytes(wire)))


# -- the message codec -----------------------------------------------------------------


def test_payload_strictness() -> None:
    good = encode_message(every_kind()[0])
    with pytest.raises(FrameError, match="addressed to node 2 arrived at node 3"):
        decode_message(good, to=NodeId(3))
    with pytest.raises(FrameError, match="trailing"):
        decode_message(good + b"\x00", to=B)
    with pytest.raises(FrameError, match="unknown format version"):
        decode_message(b"\x07" + good[1:], to=B)
    with pytest.raises(FrameError, match="not a Raft message"):
        decode_message(TRANSPORT_CODEC.encode(ConfState()), to=B)
    with pytest.raises(FrameError, match="truncated"):
        decode_message(good[:-3], to=B)


def test_a_payload_that_breaks_a_dataclass_assertion_is_a_frame_error() -> None:
    # ConfState asserts sorted voters; a peer can still send them unsorted.
    raw = TRANSPORT_CODEC.encode(ConfState(voters=(NodeId(1), NodeId(2))))
    swapped = raw.replace(b"\x03\x02\x03\x04", b"\x03\x04\x03\x02")
    assert swapped != raw
    with pytest.raises(FrameError, match="invalid payload"):
        decode_message(swapped, to=B)


# -- the inbound sequence rules --------------------------------------------------------


def frames_of(wire: list[bytes]) -> list[tuple[FrameKind, bytes]]:
    return decode_all(b"".join(wire), limit=1 << 20)


def snapshot_message(data: bytes) -> InstallSnapshot:
    return InstallSnapshot(sender=A, to=B, term=Term(4), snapshot=Snapshot(
        metadata=SnapshotMetadata(index=Index(10), term=Term(4)), data=data))


def run_session(frames: list[tuple[FrameKind, bytes]], max_snapshot_bytes: int = 1 << 20
                ) -> list[tuple[Message, bool]]:
    from real.transport.frame import Frame
    session = InboundSession(B, max_snapshot_bytes=max_snapshot_bytes)
    out = []
    for kind, payload in frames:
        delivery = session.receive(Frame(kind=kind, payload=payload))
        if delivery is not None:
            out.append((delivery.message, delivery.ack))
    session.end()
    return out


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 10_000])
def test_snapshot_stream_reassembles_exactly(size: int) -> None:
    data = random.Random(size).randbytes(size)
    config = TransportConfig(snapshot_chunk_bytes=1000, max_frame_bytes=4000)
    frames = frames_of(list(snapshot_frames(snapshot_message(data), config)))
    assert len(frames) == 1 + -(-size // 1000)
    assert run_session(frames) == [(snapshot_message(data), True)]


def test_out_of_sequence_frames_are_refused() -> None:
    config = TransportConfig(snapshot_chunk_bytes=4)
    stream = frames_of(list(snapshot_frames(snapshot_message(b"abcdefgh"), config)))
    message = (FrameKind.MESSAGE, encode_message(every_kind()[5]))
    cases = {
        "SNAPSHOT_CHUNK outside": [stream[1]],
        "MESSAGE frame inside": [stream[0], message],
        "SNAPSHOT_BEGIN inside": [stream[0], stream[0]],
        "longer than the announced": [stream[0], stream[1], (FrameKind.SNAPSHOT_CHUNK, b"12345")],
        "ended inside a snapshot": stream[:2],
        "SNAPSHOT_ACK sent to a receiver": [(FrameKind.SNAPSHOT_ACK, b"")],
        "empty SNAPSHOT_CHUNK": [stream[0], (FrameKind.SNAPSHOT_CHUNK, b"")],
        "outside a snapshot stream": [
            (FrameKind.MESSAGE, encode_message(snapshot_message(b"x")))],
        "over the limit of 4": stream[:1],
    }
    for reason, frames in cases.items():
        limit = 4 if reason == "over the limit of 4" else 1 << 20
        with pytest.raises(FrameError, match=reason):
            run_session(frames, max_snapshot_bytes=limit)
    assert run_session([message]) == [(every_kind()[5], False)]


# -- backoff ---------------------------------------------------------------------------


def test_backoff_doubles_to_a_cap_with_jitter_from_the_given_rng() -> None:
    config = TransportConfig(backoff_initial_s=0.1, backoff_max_s=1.0)
    delays = [backoff_delay_s(n, config, random.Random(7)) for n in range(1, 10)]
    for n, delay in enumerate(delays, start=1):
        base = min(1.0, 0.1 * 2 ** (n - 1))
        assert base / 2 <= delay <= base
    assert delays == [backoff_delay_s(n, config, random.Random(7)) for n in range(1, 10)]
    state = random.getstate()
    backoff_delay_s(3, config, random.Random(1))
    assert random.getstate() == state  # the global generator is never touched


def test_config_is_validated() -> None:
    from chainfire_core.errors import InvalidRequest
    with pytest.raises(InvalidRequest, match="snapshot_chunk_bytes"):
        TransportConfig(max_frame_bytes=10, snapshot_chunk_bytes=11)
    with pytest.raises(InvalidRequest, match="max_queue"):
        TransportConfig(max_queue=0)
    with pytest.raises(InvalidRequest, match="backoff_max_s"):
        TransportConfig(backoff_initial_s=2.0, backoff_max_s=1.0)


def test_heartbeat_sample_is_a_heartbeat() -> None:
    assert isinstance(every_kind()[5], Heartbeat)
