"""The key index: for every key, the revisions at which it changed.

Theory of operation
-------------------
etcd keeps, per key, a list of generations (a generation runs from a create
to the delete that ends it) in a B-tree ordered by key. We keep the same
information flatter, because Python objects are expensive: per key one list
of packed revisions (see revision.py), in increasing order, where a packed
revision with the tombstone bit set is a delete and so closes a generation.
Everything etcd derives from generations follows: the change visible at
revision R is the last entry with main <= R, and the key is live at R when
that entry is not a tombstone.

The keys themselves sit in a dict (point lookups) and a `SortedList` (range
scans). A key stays indexed after it is deleted, because older revisions can
still read it; compaction is what finally forgets it.

Compaction at revision C keeps, per key, the change visible at C (unless it is
a tombstone) and everything after it, and returns the dropped revisions so
the store can delete their records from the backend.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import pairwise

from sortedcontainers import SortedList

from chainfire_core.mvcc.messages import ALL_KEYS
from chainfire_core.mvcc.revision import SHIFT_MAIN, TOMBSTONE_BIT


class KeyIndex:
    """Every key's change list, ordered by key."""

    __slots__ = ("_changes", "_deleted", "_sorted_keys")

    def __init__(self) -> None:
        self._changes: dict[bytes, list[int]] = {}
        self._sorted_keys = SortedList()
        # Keys whose newest change is a delete: with them, counting the keys
        # live now in a range is two bisections, not a scan.
        self._deleted = SortedList()

    def __len__(self) -> int:
        return len(self._changes)

    def record(self, key: bytes, packed: int) -> None:
        """Append a change (put or tombstone) to `key`'s list."""
        changes = self._changes.get(key)
        if changes is None:
            assert not packed & TOMBSTONE_BIT, "a tombstone for an unindexed key"
            self._changes[key] = [packed]
            self._sorted_keys.add(key)
        else:
            last = changes[-1]
            assert packed > last, (key, packed, last)
            changes.append(packed)
            if packed & TOMBSTONE_BIT:
                self._deleted.add(key)
            elif last & TOMBSTONE_BIT:
                self._deleted.remove(key)

    def latest(self, key: bytes) -> int | None:
        """The key's newest change, tombstone or not; None if never indexed."""
        changes = self._changes.get(key)
        return None if changes is None else changes[-1]

    def visible_at(self, key: bytes, revision: int) -> int | None:
        """The packed revision of the key's live change at `revision`, or None."""
        changes = self._changes.get(key)
        if changes is None:
            return None
        last = changes[-1]
        if last >> SHIFT_MAIN <= revision:
            return None if last & TOMBSTONE_BIT else last
        position = bisect_left(changes, (revision + 1) << SHIFT_MAIN) - 1
        if position < 0:
            return None
        found = changes[position]
        return None if found & TOMBSTONE_BIT else found

    def keys_in(self, key: bytes, range_end: bytes) -> Iterator[bytes]:
        """Indexed keys selected by etcd's (key, range_end) convention."""
        if not range_end:
            if key in self._changes:
                yield key
            return
        end = None if range_end == ALL_KEYS else range_end
        if end is not None and end <= key:
            return
        yield from self._sorted_keys.irange(key, end, inclusive=(True, False))

    def live_in(self, key: bytes, range_end: bytes, revision: int) -> list[tuple[bytes, int]]:
        """(key, packed revision) of every key live at `revision` in the range,
        in key order. The hot loop of range reads: `visible_at` inlined."""
        changes_of = self._changes
        found: list[tuple[bytes, int]] = []
        append = found.append
        bound = (revision + 1) << SHIFT_MAIN
        for candidate in self.keys_in(key, range_end):
            changes = changes_of[candidate]
            last = changes[-1]
            if last >= bound:
                position = bisect_left(changes, bound) - 1
                if position < 0:
                    continue
                last = changes[position]
            if not last & TOMBSTONE_BIT:
                append((candidate, last))
        return found

    def _bounds(self, keys: SortedList, key: bytes, range_end: bytes) -> tuple[int, int]:
        start = keys.bisect_left(key)
        if range_end == ALL_KEYS:
            return start, len(keys)
        return start, max(start, keys.bisect_left(range_end))

    def count_live_now(self, key: bytes, range_end: bytes) -> int:
        """How many keys in the range (`range_end` not empty) are live at the
        newest revision: the indexed keys minus the deleted ones."""
        assert range_end
        low, high = self._bounds(self._sorted_keys, key, range_end)
        dead_low, dead_high = self._bounds(self._deleted, key, range_end)
        return (high - low) - (dead_high - dead_low)

    def live_now_in(
        self, key: bytes, range_end: bytes, limit: int, *, descending: bool = False
    ) -> list[tuple[bytes, int]]:
        """The first `limit` (0: all) keys live at the newest revision in the
        range, with their newest change, in key order (or reversed)."""
        assert range_end
        low, high = self._bounds(self._sorted_keys, key, range_end)
        changes_of = self._changes
        found: list[tuple[bytes, int]] = []
        keys = self._sorted_keys.islice(low, high, reverse=descending)
        for candidate in keys:
            last = changes_of[candidate][-1]
            if not last & TOMBSTONE_BIT:
                found.append((candidate, last))
                if len(found) == limit:
                    break
        return found

    def compact(self, revision: int) -> list[int]:
        """Forget what no read at or after `revision` can see; return the
        packed revisions dropped, for the store to delete from its backend."""
        dropped: list[int] = []
        bound = (revision + 1) << SHIFT_MAIN
        emptied: list[bytes] = []
        for key, changes in self._changes.items():
            cut = bisect_left(changes, bound)
            if cut == 0:
                continue
            if not changes[cut - 1] & TOMBSTONE_BIT:
                cut -= 1
            if cut == 0:
                continue
            dropped.extend(changes[:cut])
            del changes[:cut]
            if not changes:
                emptied.append(key)
        for key in emptied:
            del self._changes[key]
            self._sorted_keys.remove(key)
            # Only a key whose newest change was a delete can empty out.
            self._deleted.remove(key)
        return dropped

    def check_invariants(self) -> None:
        assert len(self._sorted_keys) == len(self._changes)
        deleted = [key for key in self._sorted_keys if self._changes[key][-1] & TOMBSTONE_BIT]
        assert deleted == list(self._deleted), "the deleted-key list drifted"
        for key in self._sorted_keys:
            changes = self._changes[key]
            assert changes, key
            assert not changes[0] & TOMBSTONE_BIT, ("a generation starts with a delete", key)
            assert all(a < b for a, b in pairwise(changes)), key
            # Within a generation (between tombstones) nothing is a tombstone
            # twice in a row: a delete only ever follows a live change.
            for before, after in pairwise(changes):
                assert not (before & TOMBSTONE_BIT and after & TOMBSTONE_BIT), key


__all__ = ["KeyIndex"]
