"""The wire format: round trips, exact sizes, and strict decoding of garbage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainfire_core.swim import (
    MAX_DATAGRAM_BYTES,
    Ack,
    Alive,
    Dead,
    Incarnation,
    Join,
    JoinAck,
    Left,
    MalformedDatagram,
    Nack,
    Ping,
    PingReq,
    Suspect,
    SwimMessage,
    Update,
    decode,
    encode,
    encoded_size,
)
from chainfire_core.types import NodeId

ids = st.integers(min_value=1, max_value=(1 << 63) - 1).map(NodeId)
incarnations = st.integers(min_value=0, max_value=(1 << 63) - 1).map(Incarnation)
seqs = st.integers(min_value=0, max_value=(1 << 32) - 1)
addresses = st.text(alphabet="ab:.09[]é☃", max_size=16)  # ASCII and multi-byte UTF-8
updates: st.SearchStrategy[Update] = st.one_of(
    st.builds(Alive, member=ids, incarnation=incarnations, address=addresses),
    st.builds(Suspect, member=ids, incarnation=incarnations, accuser=ids),
    st.builds(Dead, member=ids, incarnation=incarnations, accuser=ids),
    st.builds(Left, member=ids, incarnation=incarnations),
)
piggyback = st.lists(updates, max_size=8).map(tuple)


@st.composite
def messages(draw: st.DrawFn) -> SwimMessage:
    sender = draw(ids)
    to = draw(ids.filter(lambda x: x != sender))
    kind = draw(st.sampled_from(["ping", "req", "ack", "nack", "join", "joinack"]))
    if kind == "ping":
        return Ping(sender=sender, to=to, seq=draw(seqs), updates=draw(piggyback))
    if kind == "req":
        target = draw(ids.filter(lambda x: x not in (sender, to)))
        return PingReq(sender=sender, to=to, seq=draw(seqs), target=target,
                       updates=draw(piggyback))
    if kind == "ack":
        return Ack(sender=sender, to=to, seq=draw(seqs), updates=draw(piggyback))
    if kind == "nack":
        return Nack(sender=sender, to=to, seq=draw(seqs))
    if kind == "join":
        return Join(sender=sender, to=to, incarnation=draw(incarnations),
                    address=draw(addresses))
    return JoinAck(sender=sender, to=to, updates=draw(piggyback))


@given(messages())
def test_round_trip_and_exact_size(message: SwimMessage) -> None:
    data = encode(message)
    assert decode(data) == message
    assert encoded_size(message) == len(data) <= MAX_DATAGRAM_BYTES


@given(messages(), st.data())
def test_every_truncation_and_any_trailing_byte_is_malformed(message: SwimMessage,
                                                             data: st.DataObject) -> None:
    raw = encode(message)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(MalformedDatagram):
        decode(raw[:cut])
    with pytest.raises(MalformedDatagram, match="trailing"):
        decode(raw + b"\x00")


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_only_malformed_datagram(raw: bytes) -> None:
    try:
        message = decode(raw)
    except MalformedDatagram:
        return
    assert encode(message) == raw


@given(messages(), st.data())
def test_flipped_bytes_decode_or_raise_only_malformed_datagram(message: SwimMessage,
                                                               data: st.DataObject) -> None:
    raw = bytearray(encode(message))
    where = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[where] ^= data.draw(st.integers(min_value=1, max_value=255))
    with contextlib.suppress(MalformedDatagram):
        decode(bytes(raw))


def test_specific_malformations_are_named() -> None:
    good = encode(Ping(sender=NodeId(1), to=NodeId(2), seq=1))
    with pytest.raises(MalformedDatagram, match="version"):
        decode(b"\x09" + good[1:])
    with pytest.raises(MalformedDatagram, match="kind"):
        decode(good[:1] + b"\x63" + good[2:])
    to_self = encode(Ping(sender=NodeId(1), to=NodeId(2), seq=1))[:10] + (1).to_bytes(8, "big")
    with pytest.raises(MalformedDatagram, match="itself"):
        decode(to_self + good[18:])
    zero_sender = good[:2] + bytes(8) + good[10:]
    with pytest.raises(MalformedDatagram, match="sender"):
        decode(zero_sender)
    bad_utf8 = encode(Join(sender=NodeId(1), to=NodeId(2), incarnation=Incarnation(0),
                           address="ab"))[:-2] + b"\xff\xfe"
    with pytest.raises(MalformedDatagram, match="UTF-8"):
        decode(bad_utf8)
    with pytest.raises(MalformedDatagram, match="datagram"):
        decode(bytes(MAX_DATAGRAM_BYTES + 1))
    with pytest.raises(MalformedDatagram, match="expected bytes"):
        decode("ping")  # type: ignore[arg-type]
