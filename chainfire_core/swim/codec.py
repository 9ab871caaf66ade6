"""The SWIM wire format: one message per datagram, decoded strictly.

Theory of operation
-------------------
Sans-IO like the rest of the core: `encode(message) -> bytes` and
`decode(bytes) -> message`; the driver owns the socket. All integers are
big-endian. A datagram is

    header   version u8 (= 1), kind u8, sender u64, to u64
    Ping     seq u32, updates
    PingReq  seq u32, target u64, updates
    Ack      seq u32, updates
    Nack     seq u32
    Join     incarnation u64, address
    JoinAck  updates

    updates  count u16, then per update: kind u8, member u64, incarnation u64,
             and for Alive an address, for Suspect and Dead an accuser u64
    address  length u8, UTF-8 bytes (at most MAX_ADDRESS_BYTES)

`decode` trusts nothing: a wrong version or kind, a short read, an
over-long count or address, invalid UTF-8, a zero id, a message to oneself
and any trailing byte raise `MalformedDatagram` (and nothing else), so a
driver can drop the datagram and count it. `encoded_size` gives the length
`encode` would produce without building the bytes (the simulator uses it to
count bytes on the wire); a test holds the two equal.
"""

from __future__ import annotations

import struct
from typing import assert_never

from chainfire_core.errors import InvalidRequest
from chainfire_core.swim.config import MAX_ADDRESS_BYTES, MAX_JOIN_ACK_MEMBERS, MAX_PIGGYBACK
from chainfire_core.swim.errors import MalformedDatagram
from chainfire_core.swim.messages import (
    Ack,
    Alive,
    Dead,
    Incarnation,
    Join,
    JoinAck,
    Left,
    Nack,
    Ping,
    PingReq,
    Suspect,
    SwimMessage,
    Update,
)
from chainfire_core.types import NodeId

VERSION = 1
# The largest UDP payload over IPv4; an encoder never produces more.
MAX_DATAGRAM_BYTES = 65_507
MAX_UPDATES = max(MAX_PIGGYBACK, MAX_JOIN_ACK_MEMBERS + 1)

_HEADER = struct.Struct("!BBQQ")
_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_UPDATE = struct.Struct("!BQQ")

_PING, _PING_REQ, _ACK, _NACK, _JOIN, _JOIN_ACK = range(1, 7)
_ALIVE, _SUSPECT, _DEAD, _LEFT = range(1, 5)


# -- encoding ------------------------------------------------------------------------


def encode(message: SwimMessage) -> bytes:
    parts: list[bytes] = []
    match message:
        case Ping(seq=seq, updates=updates):
            parts += [_header(_PING, message), _U32.pack(seq), *_updates(updates)]
        case PingReq(seq=seq, target=target, updates=updates):
            parts += [_header(_PING_REQ, message), _U32.pack(seq), _U64.pack(target),
                      *_updates(updates)]
        case Ack(seq=seq, updates=updates):
            parts += [_header(_ACK, message), _U32.pack(seq), *_updates(updates)]
        case Nack(seq=seq):
            parts += [_header(_NACK, message), _U32.pack(seq)]
        case Join(incarnation=incarnation, address=address):
            parts += [_header(_JOIN, message), _U64.pack(incarnation), _address(address)]
        case JoinAck(updates=updates):
            parts += [_header(_JOIN_ACK, message), *_updates(updates)]
        case _:
            assert_never(message)
    data = b"".join(parts)
    assert len(data) <= MAX_DATAGRAM_BYTES, f"message too large for a datagram: {len(data)}"
    return data


def _header(kind: int, message: SwimMessage) -> bytes:
    return _HEADER.pack(VERSION, kind, message.sender, message.to)


def _address(address: str) -> bytes:
    raw = address.encode("utf-8")
    assert len(raw) <= MAX_ADDRESS_BYTES, "addresses are bounded by the config"
    return _U8.pack(len(raw)) + raw


def _updates(updates: tuple[Update, ...]) -> list[bytes]:
    assert len(updates) <= MAX_UPDATES
    parts = [_U16.pack(len(updates))]
    for update in updates:
        match update:
            case Alive(address=address):
                parts += [_UPDATE.pack(_ALIVE, update.member, update.incarnation),
                          _address(address)]
            case Suspect(accuser=accuser):
                parts += [_UPDATE.pack(_SUSPECT, update.member, update.incarnation),
                          _U64.pack(accuser)]
            case Dead(accuser=accuser):
                parts += [_UPDATE.pack(_DEAD, update.member, update.incarnation),
                          _U64.pack(accuser)]
            case Left():
                parts.append(_UPDATE.pack(_LEFT, update.member, update.incarnation))
            case _:
                assert_never(update)
    return parts


def encoded_size(message: SwimMessage) -> int:
    """len(encode(message)), computed without encoding."""
    size = _HEADER.size
    match message:
        case Ping(updates=updates) | Ack(updates=updates):
            return size + 4 + _updates_size(updates)
        case PingReq(updates=updates):
            return size + 12 + _updates_size(updates)
        case Nack():
            return size + 4
        case Join(address=address):
            return size + 8 + 1 + len(address.encode("utf-8"))
        case JoinAck(updates=updates):
            return size + _updates_size(updates)
        case _:
            assert_never(message)


def _updates_size(updates: tuple[Update, ...]) -> int:
    size = 2 + _UPDATE.size * len(updates)
    for update in updates:
        if isinstance(update, Alive):
            size += 1 + len(update.address.encode("utf-8"))
        elif not isinstance(update, Left):
            size += 8
    return size


# -- decoding ------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, fmt: struct.Struct) -> tuple[int, ...]:
        end = self.offset + fmt.size
        if end > len(self.data):
            raise MalformedDatagram(f"truncated at byte {self.offset}")
        values = fmt.unpack_from(self.data, self.offset)
        self.offset = end
        return values

    def one(self, fmt: struct.Struct) -> int:
        return self.take(fmt)[0]

    def address(self) -> str:
        length = self.one(_U8)
        if length > MAX_ADDRESS_BYTES:
            raise MalformedDatagram(f"address of {length} bytes")
        end = self.offset + length
        if end > len(self.data):
            raise MalformedDatagram("truncated address")
        raw = self.data[self.offset:end]
        self.offset = end
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedDatagram("address is not UTF-8") from error

    def updates(self) -> tuple[Update, ...]:
        count = self.one(_U16)
        if count > MAX_UPDATES:
            raise MalformedDatagram(f"{count} updates")
        return tuple(self.update() for _ in range(count))

    def update(self) -> Update:
        kind, member, raw_incarnation = self.take(_UPDATE)
        node, incarnation = NodeId(member), Incarnation(raw_incarnation)
        if kind == _ALIVE:
            return Alive(member=node, incarnation=incarnation, address=self.address())
        if kind == _SUSPECT:
            return Suspect(member=node, incarnation=incarnation, accuser=NodeId(self.one(_U64)))
        if kind == _DEAD:
            return Dead(member=node, incarnation=incarnation, accuser=NodeId(self.one(_U64)))
        if kind == _LEFT:
            return Left(member=node, incarnation=incarnation)
        raise MalformedDatagram(f"unknown update kind {kind}")


def decode(data: bytes) -> SwimMessage:
    """The one message in `data`; MalformedDatagram if it is anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedDatagram(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_DATAGRAM_BYTES:
        raise MalformedDatagram(f"{len(data)} bytes is more than one datagram")
    reader = _Reader(bytes(data))
    version, kind, raw_sender, raw_to = reader.take(_HEADER)
    if version != VERSION:
        raise MalformedDatagram(f"unknown version {version}")
    sender, to = NodeId(raw_sender), NodeId(raw_to)
    try:
        message = _decode_body(reader, kind, sender, to)
    except InvalidRequest as error:  # a field the message itself rejects
        raise MalformedDatagram(str(error)) from error
    if reader.offset != len(reader.data):
        raise MalformedDatagram(f"{len(reader.data) - reader.offset} trailing bytes")
    return message


def _decode_body(reader: _Reader, kind: int, sender: NodeId, to: NodeId) -> SwimMessage:
    if kind == _PING:
        return Ping(sender=sender, to=to, seq=reader.one(_U32), updates=reader.updates())
    if kind == _PING_REQ:
        seq, target = reader.one(_U32), NodeId(reader.one(_U64))
        return PingReq(sender=sender, to=to, seq=seq, target=target, updates=reader.updates())
    if kind == _ACK:
        return Ack(sender=sender, to=to, seq=reader.one(_U32), updates=reader.updates())
    if kind == _NACK:
        return Nack(sender=sender, to=to, seq=reader.one(_U32))
    if kind == _JOIN:
        incarnation = Incarnation(reader.one(_U64))
        return Join(sender=sender, to=to, incarnation=incarnation, address=reader.address())
    if kind == _JOIN_ACK:
        return JoinAck(sender=sender, to=to, updates=reader.updates())
    raise MalformedDatagram(f"unknown message kind {kind}")


__all__ = ["MAX_DATAGRAM_BYTES", "VERSION", "decode", "encode", "encoded_size"]
