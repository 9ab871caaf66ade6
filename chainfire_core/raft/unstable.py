"""The unstable tail of the Raft log: entries and a snapshot not yet persisted.

Theory of operation
-------------------
New entries (proposed by the leader, or received by a follower) and an
incoming snapshot first land here. The driver is handed them in a `Ready`,
writes them to stable storage, and then reports them stable, at which point
they leave this structure and are read from `Storage` instead.

Layout: `entries[k]` has index `offset + k`. If a snapshot is held, it
precedes the entries: `offset == snapshot.index + 1`. Without a snapshot,
`offset` is the first index that storage may not hold yet.

Handing out once: `offset_in_progress` marks how far entries have already
been handed to the driver (`offset <= offset_in_progress <= offset +
len(entries)`); `next_entries()` returns only those after it, and
`accept_in_progress()` moves the mark once a `Ready` is accepted.
`snapshot_in_progress` does the same for the snapshot. So a driver may
pipeline writes: ask for a new `Ready` before the previous write finished.

Reports follow the order of persisting: the snapshot is written before the
entries that follow it, so a `stable_to` for those entries also settles the
snapshot, and the snapshot and entries of one write may be reported in
either order.

Replacement race: while a write is in flight, a new leader may overwrite some
of those entries (`truncate_and_append`). The late report `stable_to(index,
term)` then names an entry that is no longer the one held at `index`; it is
ignored unless the term still matches (by Log Matching, an equal index and
term mean the same entry and the same prefix). Overwritten entries are
handed out again: the in-progress mark moves back to the point of overwrite.
"""

from __future__ import annotations

from collections.abc import Sequence

from chainfire_core.raft.messages import Entry, Snapshot
from chainfire_core.raft.storage import assert_contiguous, size_limited_stop
from chainfire_core.types import Index, Term


class Unstable:
    """Entries (and maybe a snapshot) that are not yet in stable storage."""

    __slots__ = ("_entries", "offset", "offset_in_progress", "snapshot", "snapshot_in_progress")

    def __init__(self, offset: Index) -> None:
        assert offset >= 1, offset
        self.offset = offset
        self.offset_in_progress = offset
        self.snapshot: Snapshot | None = None
        self.snapshot_in_progress = False
        self._entries: list[Entry] = []

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries)

    # -- indexes and terms -------------------------------------------------------

    def maybe_first_index(self) -> Index | None:
        """The first log index if a snapshot is held here, else None (storage knows)."""
        if self.snapshot is None:
            return None
        return Index(self.snapshot.metadata.index + 1)

    def maybe_last_index(self) -> Index | None:
        """The last index held here (entries, else snapshot), or None."""
        if self._entries:
            return Index(self.offset + len(self._entries) - 1)
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, i: Index) -> Term | None:
        """The term of index `i` if this structure knows it, else None."""
        if i < self.offset:
            snapshot = self.snapshot
            if snapshot is not None and snapshot.metadata.index == i:
                return snapshot.metadata.term
            return None
        position = i - self.offset
        if position >= len(self._entries):
            return None
        return self._entries[position].term

    # -- handing out to the driver ------------------------------------------------

    def next_entries(self) -> tuple[Entry, ...]:
        """Entries not yet handed out for persisting."""
        return tuple(self._entries[self.offset_in_progress - self.offset :])

    def has_next_entries(self) -> bool:
        return self.offset_in_progress < self.offset + len(self._entries)

    def next_snapshot(self) -> Snapshot | None:
        """The snapshot, if it has not been handed out yet."""
        return None if self.snapshot_in_progress else self.snapshot

    def accept_in_progress(self) -> None:
        """Everything held has now been handed out for persisting."""
        self.offset_in_progress = Index(self.offset + len(self._entries))
        self.snapshot_in_progress = self.snapshot is not None

    # -- reports from the driver --------------------------------------------------

    def stable_to(self, index: Index, term: Term) -> None:
        """Entries up to `index` are durable, if entry `index` still has `term`.

        Ignored when the entry is gone, was replaced (another term), or is the
        snapshot's index rather than an entry's. A pending snapshot precedes
        these entries and was persisted first, so it is settled too."""
        if index < self.offset or self.maybe_term(index) != term:
            return
        if self.snapshot is not None:
            assert self.snapshot_in_progress, "entries stable before their snapshot was handed out"
            self.stable_snap_to(self.snapshot.metadata.index)
        del self._entries[: index + 1 - self.offset]
        self.offset = Index(index + 1)
        self.offset_in_progress = max(self.offset_in_progress, self.offset)

    def stable_snap_to(self, index: Index) -> None:
        """The snapshot at `index` is durable; forget it (ignored if it is not ours)."""
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None
            self.snapshot_in_progress = False

    # -- changes from Raft --------------------------------------------------------

    def restore(self, snapshot: Snapshot) -> None:
        """Replace everything by `snapshot`; the log continues right after it."""
        self.offset = Index(snapshot.metadata.index + 1)
        self.offset_in_progress = self.offset
        self._entries = []
        self.snapshot = snapshot
        self.snapshot_in_progress = False

    def truncate_and_append(self, entries: Sequence[Entry]) -> None:
        """Append `entries`, first dropping every held entry at or after their
        first index. Entries before `offset` replace the (stable) ones there."""
        if not entries:
            return
        assert_contiguous(entries)
        from_index = entries[0].index
        if self.snapshot is not None:
            assert from_index > self.snapshot.metadata.index, ("append into snapshot", from_index)
        end = self.offset + len(self._entries)
        assert from_index <= end, ("gap before appended entries", from_index, end)
        if from_index <= self.offset:
            self.offset = from_index
            self._entries = list(entries)
        else:
            del self._entries[from_index - self.offset :]
            self._entries.extend(entries)
        # Replaced entries must be handed out again.
        self.offset_in_progress = Index(min(self.offset_in_progress, from_index))

    def slice(self, lo: Index, hi: Index, max_size_bytes: int | None = None) -> tuple[Entry, ...]:
        """Entries `lo .. hi-1`, all of which must be held here, soft size-limited
        like `Storage.entries`."""
        end = self.offset + len(self._entries)
        assert self.offset <= lo <= hi <= end, (lo, hi, self.offset, end)
        start = lo - self.offset
        stop = size_limited_stop(self._entries, start, hi - self.offset, max_size_bytes)
        return tuple(self._entries[start:stop])

    def check_invariants(self) -> None:
        assert self.offset >= 1, self.offset
        end = self.offset + len(self._entries)
        assert self.offset <= self.offset_in_progress <= end, (self.offset_in_progress, end)
        if self.snapshot is not None:
            assert self.offset == self.snapshot.metadata.index + 1, "entries follow the snapshot"
            if self._entries:
                assert self._entries[0].term >= self.snapshot.metadata.term
        else:
            assert not self.snapshot_in_progress, "in progress without a snapshot"
        previous: Entry | None = None
        for position, entry in enumerate(self._entries):
            assert entry.index == self.offset + position, (entry.index, self.offset, position)
            assert previous is None or entry.term >= previous.term, ("terms decrease", entry)
            previous = entry


__all__ = ["Unstable"]
