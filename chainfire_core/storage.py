"""The `StorageBackend` protocol and its in-memory implementation.

Theory of operation
-------------------
The MVCC store keeps its data in a backend shaped like etcd's bbolt: named
buckets, each an ordered map from bytes to bytes. The store only uses this
protocol, so a durable backend (real/) can replace the memory one without the
store knowing. Writes either go one by one or as a `write_batch`, which a
durable backend applies atomically.

`MemoryBackend` keeps one `SortedDict` per bucket: point operations are a hash
lookup, ordered scans walk the sorted key list. Its `snapshot()` is a
deterministic byte encoding of every bucket (sorted by bucket and key), and
`restore()` replaces the whole content from such bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sortedcontainers import SortedDict

from chainfire_core.errors import CorruptSnapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchPut:
    bucket: str
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchDelete:
    bucket: str
    key: bytes


BatchOp = BatchPut | BatchDelete


@runtime_checkable
class StorageBackend(Protocol):
    """An ordered bytes-to-bytes store with named buckets."""

    def get(self, bucket: str, key: bytes) -> bytes | None:
        """The value under `key`, or None."""

    def get_many(self, bucket: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """The values under `keys`, in order (None where missing): one call
        for a range read instead of one per key."""

    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        """Set `key` to `value`, creating the bucket if needed."""

    def delete(self, bucket: str, key: bytes) -> None:
        """Remove `key`; a missing key is not an error."""

    def range(
        self, bucket: str, start: bytes, end: bytes | None = None, *, limit: int = 0
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with `start <= key < end` in key order (`end=None`: no upper
        bound; `limit=0`: no limit)."""

    def write_batch(self, ops: Sequence[BatchOp]) -> None:
        """Apply every op, in order, atomically."""

    def count(self, bucket: str) -> int:
        """Number of keys in the bucket."""

    def snapshot(self) -> bytes:
        """A deterministic encoding of the whole content."""

    def restore(self, data: bytes) -> None:
        """Replace the whole content with a `snapshot()` encoding."""


_HEADER = struct.Struct(">4sI")
_LEN = struct.Struct(">I")
_MAGIC = b"CFMB"
_FORMAT_VERSION = 1


class MemoryBackend:
    """`StorageBackend` on one `SortedDict` per bucket."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[str, SortedDict] = {}

    def _bucket(self, bucket: str) -> SortedDict:
        found = self._buckets.get(bucket)
        if found is None:
            found = self._buckets[bucket] = SortedDict()
        return found

    def get(self, bucket: str, key: bytes) -> bytes | None:
        found = self._buckets.get(bucket)
        if found is None:
            return None
        value: bytes | None = found.get(key)
        return value

    def get_many(self, bucket: str, keys: Sequence[bytes]) -> list[bytes | None]:
        found = self._buckets.get(bucket)
        if found is None:
            return [None] * len(keys)
        get = found.get
        return [get(key) for key in keys]

    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        assert isinstance(key, bytes) and isinstance(value, bytes)
        self._bucket(bucket)[key] = value

    def delete(self, bucket: str, key: bytes) -> None:
        found = self._buckets.get(bucket)
        if found is not None:
            found.pop(key, None)

    def range(
        self, bucket: str, start: bytes, end: bytes | None = None, *, limit: int = 0
    ) -> Iterator[tuple[bytes, bytes]]:
        found = self._buckets.get(bucket)
        if found is None:
            return
        keys = found.irange(start, end, inclusive=(True, False))
        for taken, key in enumerate(keys, start=1):
            yield key, found[key]
            if taken == limit:
                return

    def write_batch(self, ops: Sequence[BatchOp]) -> None:
        for op in ops:
            match op:
                case BatchPut(bucket=bucket, key=key, value=value):
                    self.put(bucket, key, value)
                case BatchDelete(bucket=bucket, key=key):
                    self.delete(bucket, key)

    def count(self, bucket: str) -> int:
        found = self._buckets.get(bucket)
        return 0 if found is None else len(found)

    def snapshot(self) -> bytes:
        return encode_backend((name, list(self._buckets[name].items()))
                              for name in sorted(self._buckets))

    def restore(self, data: bytes) -> None:
        self._buckets = decode_backend(data)


def encode_backend(buckets: Iterable[tuple[str, Sequence[tuple[bytes, bytes]]]]) -> bytes:
    """The `snapshot()` encoding of `(bucket, items)` pairs, given sorted by
    bucket name, each bucket's items sorted by key (any backend's snapshot)."""
    listed = list(buckets)
    parts = [_HEADER.pack(_MAGIC, _FORMAT_VERSION), _LEN.pack(len(listed))]
    for name, items in listed:
        encoded = name.encode()
        parts += [_LEN.pack(len(encoded)), encoded, _LEN.pack(len(items))]
        for key, value in items:
            parts += [_LEN.pack(len(key)), key, _LEN.pack(len(value)), value]
    return b"".join(parts)


def decode_backend(data: bytes) -> dict[str, SortedDict]:
    """Decode a `snapshot()` encoding; CorruptSnapshot if it is malformed."""
    view = memoryview(data)
    try:
        magic, version = _HEADER.unpack_from(view, 0)
        if magic != _MAGIC or version != _FORMAT_VERSION:
            raise CorruptSnapshot(f"backend snapshot: bad magic/version {magic!r}/{version}")
        offset = _HEADER.size
        buckets: dict[str, SortedDict] = {}
        (bucket_count,) = _LEN.unpack_from(view, offset)
        offset += _LEN.size
        for _ in range(bucket_count):
            name, offset = _read_chunk(view, offset)
            (item_count,) = _LEN.unpack_from(view, offset)
            offset += _LEN.size
            items = SortedDict()
            for _ in range(item_count):
                key, offset = _read_chunk(view, offset)
                value, offset = _read_chunk(view, offset)
                items[key] = value
            buckets[name.decode()] = items
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptSnapshot(f"backend snapshot: truncated or malformed ({exc})") from exc
    if offset != len(data):
        raise CorruptSnapshot(f"backend snapshot: {len(data) - offset} trailing bytes")
    return buckets


def _read_chunk(view: memoryview, offset: int) -> tuple[bytes, int]:
    (length,) = _LEN.unpack_from(view, offset)
    start = offset + _LEN.size
    end = start + length
    if end > len(view):
        raise CorruptSnapshot("backend snapshot: chunk runs past the end")
    return bytes(view[start:end]), end


__all__ = ["BatchDelete", "BatchOp", "BatchPut", "MemoryBackend", "StorageBackend",
           "decode_backend", "encode_backend"]
