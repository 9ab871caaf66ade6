"""Key-range permissions: a user's roles merged into disjoint ranges.

Theory of operation
-------------------
Every permission and every request names a key range in etcd's conventions
(b"" end: one key; b"\\0" end: every key from `key` on; else [key, end)).
Both become half-open ranges [start, end) with `end` None for "no upper
bound"; a single key k is [k, k + b"\\0"), since k + b"\\0" is the next key
after k in byte order. A user's READ ranges (its roles' READ and READWRITE
permissions) and WRITE ranges are each merged into sorted, disjoint,
non-touching ranges; a request is permitted when one merged range holds
all of it (so two adjacent grants together cover a range across their
border, as etcd's interval tree does). An empty request range (end at or
below key) is treated as the single key `key`.

`RangePermissions` is the cache entry etcd keeps per user; the auth store
drops its cache whenever the auth state changes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from chainfire_core.auth.messages import Permission, PermissionType

# [start, end), end None: no upper bound.
Span = tuple[bytes, bytes | None]


def span_of(key: bytes, range_end: bytes) -> Span:
    if not range_end:
        return key, key + b"\0"
    if range_end == b"\0":
        return key, None
    if range_end <= key:
        return key, key + b"\0"
    return key, range_end


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sorted, disjoint, non-touching spans covering exactly `spans`."""
    merged: list[Span] = []
    for start, end in sorted(spans, key=lambda s: s[0]):
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None:
                break
            if start <= last_end:
                if end is None or end > last_end:
                    merged[-1] = (last_start, end)
                continue
        merged.append((start, end))
    return tuple(merged)


def covers(merged: tuple[Span, ...], starts: tuple[bytes, ...], wanted: Span) -> bool:
    """Whether one span of `merged` (whose starts are `starts`) holds `wanted`."""
    position = bisect_right(starts, wanted[0]) - 1
    if position < 0:
        return False
    end = merged[position][1]
    if end is None:
        return True
    return wanted[1] is not None and wanted[1] <= end


@dataclass(frozen=True, slots=True)
class RangePermissions:
    """One user's merged READ and WRITE spans."""

    read: tuple[Span, ...]
    write: tuple[Span, ...]
    read_starts: tuple[bytes, ...]
    write_starts: tuple[bytes, ...]

    @classmethod
    def of(cls, permissions: Iterable[Permission]) -> RangePermissions:
        read: list[Span] = []
        write: list[Span] = []
        for perm in permissions:
            span = span_of(perm.key, perm.range_end)
            if perm.perm_type in (PermissionType.READ, PermissionType.READWRITE):
                read.append(span)
            if perm.perm_type in (PermissionType.WRITE, PermissionType.READWRITE):
                write.append(span)
        merged_read, merged_write = merge_spans(read), merge_spans(write)
        return cls(merged_read, merged_write, tuple(s for s, _ in merged_read),
                   tuple(s for s, _ in merged_write))

    def allows(self, key: bytes, range_end: bytes, perm_type: PermissionType) -> bool:
        """READ or WRITE access to the whole range (READWRITE: both)."""
        wanted = span_of(key, range_end)
        if perm_type != PermissionType.WRITE and not covers(self.read, self.read_starts, wanted):
            return False
        return perm_type == PermissionType.READ or covers(self.write, self.write_starts, wanted)


__all__ = ["RangePermissions", "Span", "covers", "merge_spans", "span_of"]
