"""A deterministic, versioned binary codec for the core's frozen dataclasses.

Theory of operation
-------------------
Raft replicates opaque bytes, the real runtime writes entries to disk and
sends messages over TCP, and both need the same thing: turn a request,
command or message (a frozen dataclass of ints, bytes, strings, bools,
enums, tuples and further dataclasses) into bytes and back, identically on
every machine. A `Codec` knows an explicit, ordered list of dataclass types;
a type's number is its position in that list, so the list is the wire
format's schema and only ever grows at the end (`FORMAT_VERSION` is bumped
for anything else).

Encoding: one tag byte per value, then its body. Integers are zigzag
varints (any size), bytes and strings are a varint length and the data,
tuples a varint count and the items, dataclasses the type number and every
field in declaration order. The output of equal values is equal bytes.

Decoding is strict: unknown tags or type numbers, truncated input, trailing
bytes, a value whose kind does not match the field's declared type, or a
dataclass whose own validation refuses the values all raise `CodecError`
(a `DataError`), never a half-built object.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any

from chainfire_core.errors import ChainfireError, DataError

FORMAT_VERSION = 1

_NONE, _TRUE, _FALSE, _INT, _BYTES, _STR, _TUPLE, _OBJECT = range(8)
# Nesting deeper than this is refused on decode (a bounded recursion).
MAX_DEPTH = 64


class CodecError(DataError):
    """Bytes that do not decode to a known value."""


def _write_varint(out: bytearray, value: int) -> None:
    assert value >= 0
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


def _unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


class _Reader:
    __slots__ = ("data", "position")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def byte(self) -> int:
        if self.position >= len(self.data):
            raise CodecError("truncated input")
        value = self.data[self.position]
        self.position += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
            if shift > 640:
                raise CodecError("varint too long")

    def chunk(self) -> bytes:
        length = self.varint()
        end = self.position + length
        if end > len(self.data):
            raise CodecError("truncated input")
        value = self.data[self.position : end]
        self.position = end
        return value


Checker = Callable[[Any], bool]


class Codec:
    """Encodes and decodes values built from the registered dataclass types."""

    def __init__(self, registered: Sequence[type]) -> None:
        self._types = tuple(registered)
        self._number = {cls: number for number, cls in enumerate(self._types)}
        assert len(self._number) == len(self._types), "a type registered twice"
        self._fields: dict[type, tuple[tuple[str, Checker, type | None], ...]] = {}
        for cls in self._types:
            assert dataclasses.is_dataclass(cls), cls
            hints = typing.get_type_hints(cls)
            self._fields[cls] = tuple(
                (f.name, _checker(hints[f.name]), _enum_of(hints[f.name]))
                for f in dataclasses.fields(cls)
            )

    def encode(self, value: object) -> bytes:
        out = bytearray((FORMAT_VERSION,))
        self._encode(out, value)
        return bytes(out)

    def decode(self, data: bytes) -> object:
        if not data or data[0] != FORMAT_VERSION:
            raise CodecError(f"unknown format version {data[:1]!r}")
        reader = _Reader(data)
        reader.position = 1
        value = self._decode(reader, 0)
        if reader.position != len(data):
            raise CodecError(f"{len(data) - reader.position} trailing bytes")
        return value

    def _encode(self, out: bytearray, value: object) -> None:
        if value is None:
            out.append(_NONE)
        elif value is True:
            out.append(_TRUE)
        elif value is False:
            out.append(_FALSE)
        elif isinstance(value, int):
            out.append(_INT)
            _write_varint(out, _zigzag(int(value)))
        elif isinstance(value, bytes):
            out.append(_BYTES)
            _write_varint(out, len(value))
            out += value
        elif isinstance(value, str):
            encoded = value.encode()
            out.append(_STR)
            _write_varint(out, len(encoded))
            out += encoded
        elif isinstance(value, tuple):
            out.append(_TUPLE)
            _write_varint(out, len(value))
            for item in value:
                self._encode(out, item)
        else:
            self._encode_object(out, value)

    def _encode_object(self, out: bytearray, value: object) -> None:
        number = self._number.get(type(value))
        assert number is not None, f"{type(value).__name__} is not registered with this codec"
        out.append(_OBJECT)
        _write_varint(out, number)
        for name, _, _ in self._fields[type(value)]:
            self._encode(out, getattr(value, name))

    def _decode(self, reader: _Reader, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise CodecError("nested too deeply")
        tag = reader.byte()
        if tag == _NONE:
            return None
        if tag in (_TRUE, _FALSE):
            return tag == _TRUE
        if tag == _INT:
            return _unzigzag(reader.varint())
        if tag == _BYTES:
            return reader.chunk()
        if tag == _STR:
            try:
                return reader.chunk().decode()
            except UnicodeDecodeError as error:
                raise CodecError("invalid UTF-8 in a string") from error
        if tag == _TUPLE:
            count = reader.varint()
            if count > len(reader.data):
                raise CodecError("tuple longer than the input")
            return tuple(self._decode(reader, depth + 1) for _ in range(count))
        if tag == _OBJECT:
            return self._decode_object(reader, depth)
        raise CodecError(f"unknown tag {tag}")

    def _decode_object(self, reader: _Reader, depth: int) -> object:
        number = reader.varint()
        if number >= len(self._types):
            raise CodecError(f"unknown type number {number}")
        cls = self._types[number]
        values: dict[str, object] = {}
        for name, check, enum in self._fields[cls]:
            value = self._decode(reader, depth + 1)
            if enum is not None and isinstance(value, int) and not isinstance(value, bool):
                try:
                    value = enum(value)
                except ValueError as error:
                    raise CodecError(f"{cls.__name__}.{name}: bad {enum.__name__}") from error
            if not check(value):
                raise CodecError(f"{cls.__name__}.{name}: unexpected {type(value).__name__}")
            values[name] = value
        try:
            return cls(**values)
        except ChainfireError as error:
            raise CodecError(f"{cls.__name__}: {error}") from error


def _enum_of(hint: object) -> type | None:
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    for option in options:
        if isinstance(option, type) and issubclass(option, IntEnum):
            return option
    return None


def _is_union(hint: object) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _checker(hint: object) -> Checker:
    """A predicate that a decoded value fits the declared field type."""
    if _is_union(hint):
        options = [_checker(option) for option in typing.get_args(hint)]
        return lambda value: any(check(value) for check in options)
    if hint is type(None):
        return lambda value: value is None
    if typing.get_origin(hint) is tuple:
        item = _checker(typing.get_args(hint)[0])
        return lambda value: isinstance(value, tuple) and all(item(v) for v in value)
    supertype = getattr(hint, "__supertype__", None)  # a NewType
    if supertype is not None:
        return _checker(supertype)
    if hint is bool:
        return lambda value: isinstance(value, bool)
    if hint is int or (isinstance(hint, type) and issubclass(hint, IntEnum)):
        return lambda value: isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        cls = hint
        return lambda value: isinstance(value, cls)
    return lambda value: True  # a hint we cannot check (Any): the constructor validates


__all__ = ["FORMAT_VERSION", "MAX_DEPTH", "Codec", "CodecError"]
