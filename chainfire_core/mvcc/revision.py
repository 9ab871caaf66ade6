"""Revisions and the on-backend encoding of key revisions.

Theory of operation
-------------------
etcd names every change by a revision pair (main, sub): `main` is the store's
global revision, bumped once per write transaction; `sub` numbers the changes
inside that transaction from 0. We keep a pair in one Python int so the key
index can hold a plain list of ints (cheap in memory, fast to bisect):

    packed = main << 21 | sub << 1 | tombstone

Packed ints sort exactly as (main, sub) pairs do, so bisecting a key's list
for `(rev + 1) << SHIFT_MAIN` finds its last change at or before `rev`.

In the backend's "key" bucket, a change lives under the 8-byte big-endian
`main << 20 | sub` (order-preserving, no tombstone bit) and its value is a
record: a fixed header (flags, create revision, version, lease, key length)
followed by the key and the value. A tombstone's record has the flag set,
zero create revision, version and lease, and an empty value.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

SUB_BITS = 20
SHIFT_MAIN = SUB_BITS + 1
SUB_LIMIT = 1 << SUB_BITS
MAIN_LIMIT = 1 << 43

TOMBSTONE_BIT = 1

_RECORD_HEADER = struct.Struct(">BqqqI")
RECORD_HEADER_SIZE = _RECORD_HEADER.size
_FLAG_TOMBSTONE = 1


def main_of(packed: int) -> int:
    return packed >> SHIFT_MAIN


def backend_key(packed: int) -> bytes:
    """The backend key of a packed revision (the tombstone bit dropped)."""
    return (packed >> 1).to_bytes(8, "big")


def packed_from_backend_key(key: bytes, tombstone: bool) -> int:
    assert len(key) == 8, key
    return int.from_bytes(key, "big") << 1 | tombstone


def backend_key_of_main(main: int) -> bytes:
    """The smallest backend key with this main revision (sub 0)."""
    return (main << SUB_BITS).to_bytes(8, "big")


def encode_record(
    key: bytes, value: bytes, create_revision: int, version: int, lease: int
) -> bytes:
    return _RECORD_HEADER.pack(0, create_revision, version, lease, len(key)) + key + value


def encode_tombstone(key: bytes) -> bytes:
    return _RECORD_HEADER.pack(_FLAG_TOMBSTONE, 0, 0, 0, len(key)) + key


# (flags, create revision, version, lease, key length) of a record, without
# copying: the struct's bound `unpack_from` itself, saving a Python call per
# record on reads.
record_header: Callable[[bytes], tuple[int, int, int, int, int]] = _RECORD_HEADER.unpack_from


__all__ = [
    "MAIN_LIMIT",
    "RECORD_HEADER_SIZE",
    "SHIFT_MAIN",
    "SUB_LIMIT",
    "TOMBSTONE_BIT",
    "backend_key",
    "backend_key_of_main",
    "encode_record",
    "encode_tombstone",
    "main_of",
    "packed_from_backend_key",
    "record_header",
]
