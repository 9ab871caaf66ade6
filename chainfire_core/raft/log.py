"""The Raft log: stable storage plus the unstable tail, with commit and apply cursors.

Theory of operation
-------------------
`RaftLog` presents one log `first_index .. last_index` made of two parts:
the durable prefix behind `Storage` and the not-yet-persisted `Unstable`
tail (which may also hold an incoming snapshot). Index `i` is read from the
unstable part when `i >= unstable.offset`, else from storage. Terms are known
for `first_index - 1 .. last_index` (the entry before the first is the
snapshot's), which is what the append consistency check needs.

Cursors, always `applied <= applying <= committed <= last_index`:
- `committed`: the highest index known to be committed. It never decreases
  and never passes `last_index`; entries at or below it are never truncated.
  `maybe_commit(index, term)` only commits if entry `index` has `term`: the
  caller passes its current term, which is how the leader obeys the rule of
  the Raft paper's Figure 8 (only entries of its own term commit by counting).
- `applying`: the last index handed out to be applied (async apply, as
  etcd's newer raftLog). `next_committed_entries` hands out entries after it;
  `accept_applying` moves it. A synchronous driver that never calls
  `accept_applying` sees `applying == applied`.
- `applied`: the last index the state machine has applied.

Flow control on apply: entries handed out but not yet applied count against
`max_applying_size_bytes`. Once the outstanding bytes reach the limit, or a
hand-out had to be cut short by it, no more entries are handed out until
`applied_to` reports progress. Outstanding bytes are recorded per accepted
batch and released when `applied_to` covers a batch's last index.

Snapshots: `restore(snapshot)` replaces the log by an incoming snapshot
(held in `unstable` until the driver persists it) and commits up to it. While
a snapshot is waiting to be persisted or applied no committed entries are
handed out (the state machine must take the snapshot first); the driver
reports `stable_snap_to(i)` and `applied_to(i)` together. Note that `applied`
may therefore lag below `first_index - 1` until the snapshot is applied.

Contract with the driver's storage (checked by `check_invariants`): entries
are persisted in the order they are handed out, and storage is only compacted
up to an index that is both applied and stable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from chainfire_core.raft.messages import Entry, Snapshot
from chainfire_core.raft.storage import (
    LogCompacted,
    LogUnavailable,
    Storage,
    assert_contiguous,
    entries_size_bytes,
)
from chainfire_core.raft.unstable import Unstable
from chainfire_core.types import Index, Term


class RaftLog:
    """The replicated log of one Raft peer (etcd's raftLog)."""

    __slots__ = (
        "_applying_batches",
        "_applying_paused",
        "_applying_size_bytes",
        "applied",
        "applying",
        "committed",
        "max_applying_size_bytes",
        "storage",
        "unstable",
    )

    def __init__(self, storage: Storage, max_applying_size_bytes: int) -> None:
        assert max_applying_size_bytes >= 1, max_applying_size_bytes
        self.storage = storage
        self.max_applying_size_bytes = max_applying_size_bytes
        self.unstable = Unstable(Index(storage.last_index() + 1))
        self.committed = Index(storage.first_index() - 1)
        self.applying = self.committed
        self.applied = self.committed
        self._applying_size_bytes = 0
        self._applying_paused = False
        # (last index, bytes) per accepted, not yet applied, batch; ascending.
        self._applying_batches: deque[tuple[Index, int]] = deque()

    # -- indexes and terms -------------------------------------------------------

    def first_index(self) -> Index:
        index = self.unstable.maybe_first_index()
        return self.storage.first_index() if index is None else index

    def last_index(self) -> Index:
        index = self.unstable.maybe_last_index()
        return self.storage.last_index() if index is None else index

    def last_term(self) -> Term:
        return self.term(self.last_index())

    def term(self, i: Index) -> Term:
        """The term of entry `i`; raises LogCompacted below `first_index - 1`
        and LogUnavailable above `last_index`."""
        term = self.unstable.maybe_term(i)
        if term is not None:
            return term
        first = self.first_index()
        if i < first - 1:
            raise LogCompacted(i, first)
        last = self.last_index()
        if i > last:
            raise LogUnavailable(i, last)
        return self.storage.term(i)

    def term_or_none(self, i: Index) -> Term | None:
        """The term of entry `i`, or None if it is compacted or beyond the log."""
        try:
            return self.term(i)
        except (LogCompacted, LogUnavailable):
            return None

    def match_term(self, i: Index, term: Term) -> bool:
        return self.term_or_none(i) == term

    def is_up_to_date(self, last_index: Index, last_term: Term) -> bool:
        """Whether a log ending at (`last_index`, `last_term`) is at least as
        up-to-date as ours (Raft paper, section 5.4.1)."""
        our_term = self.last_term()
        return last_term > our_term or (last_term == our_term and last_index >= self.last_index())

    # -- appending -------------------------------------------------------------

    def find_conflict(self, entries: Sequence[Entry]) -> Index | None:
        """The index of the first of `entries` that is not in our log (another
        term at that index, or beyond our end); None if all are."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return None

    def find_conflict_by_term(self, index: Index, term: Term) -> tuple[Index, Term]:
        """The largest index `<= index` whose term is `<= term`, with that term.

        A rejecting follower sends it as a hint so the leader can skip a whole
        term of entries per round trip. Where our term is unknown (compacted,
        or beyond our log) the answer is that index with term 0: it may match."""
        i = index
        while i > 0:
            our_term = self.term_or_none(i)
            if our_term is None:
                return i, Term(0)
            if our_term <= term:
                return i, our_term
            i = Index(i - 1)
        return Index(0), Term(0)

    def maybe_append(
        self, index: Index, log_term: Term, committed: Index, entries: Sequence[Entry]
    ) -> Index | None:
        """A leader's append after (`index`, `log_term`): None if our log does
        not hold that entry; else keep our matching entries, replace ours from
        the first conflict on, commit up to min(`committed`, last new index)
        and return that last new index."""
        if not self.match_term(index, log_term):
            return None
        assert not entries or entries[0].index == index + 1, (index, entries[0].index)
        assert_contiguous(entries)
        last_new_index = Index(index + len(entries))
        conflict = self.find_conflict(entries)
        if conflict is not None:
            assert conflict > self.committed, ("conflict with committed entry", conflict)
            self.append(entries[conflict - index - 1 :])
        self.commit_to(Index(min(committed, last_new_index)))
        return last_new_index

    def append(self, entries: Sequence[Entry]) -> Index:
        """Append `entries`, replacing ours from their first index on; returns
        the new last index. Committed entries are never replaced."""
        if not entries:
            return self.last_index()
        after = entries[0].index - 1
        assert after >= self.committed, ("append before committed", after, self.committed)
        assert after <= self.last_index(), ("gap before appended entries", after)
        self.unstable.truncate_and_append(entries)
        return self.last_index()

    def truncate_and_append_uncommitting(self, entries: Sequence[Entry]) -> None:
        """For the planted bug truncate_committed (chainfire_core/bugs.py):
        replace our log from the first of `entries` on (those not compacted
        away), even below `committed`, which drops to their last index. Never
        below `applying`, so the cursors stay ordered."""
        first = self.first_index()
        kept = [entry for entry in entries if entry.index >= first]
        if not kept or kept[-1].index < self.applying:
            return
        # planted bug: truncate_committed -- no check that anything conflicts.
        self.unstable.truncate_and_append(kept)
        self.committed = Index(min(self.committed, kept[-1].index))

    # -- reading ---------------------------------------------------------------

    def entries(self, i: Index, max_size_bytes: int | None = None) -> tuple[Entry, ...]:
        """Entries from `i` to the end, soft size-limited; raises LogCompacted."""
        last = self.last_index()
        if i > last:
            return ()
        return self.slice(i, Index(last + 1), max_size_bytes)

    def all_entries(self) -> tuple[Entry, ...]:
        return self.entries(self.first_index())

    def slice(self, lo: Index, hi: Index, max_size_bytes: int | None = None) -> tuple[Entry, ...]:
        """Entries `lo .. hi-1`, soft size-limited (never empty if `lo < hi`).

        Raises LogCompacted if `lo < first_index`; `hi` must be at most
        `last_index + 1`."""
        self._check_bounds(lo, hi)
        if lo == hi:
            return ()
        offset = self.unstable.offset
        if lo >= offset:
            return self.unstable.slice(lo, hi, max_size_bytes)
        stable = self._storage_entries(lo, Index(min(hi, offset)), max_size_bytes)
        if hi <= offset or len(stable) < offset - lo:
            return stable  # all from storage, or the size limit already cut it
        if max_size_bytes is None:
            return stable + self.unstable.slice(offset, hi)
        used_bytes = entries_size_bytes(stable)
        rest = self.unstable.slice(offset, hi, max_size_bytes - used_bytes)
        if used_bytes + rest[0].size_bytes > max_size_bytes:
            return stable  # the first unstable entry alone would go over
        return stable + rest

    def _check_bounds(self, lo: Index, hi: Index) -> None:
        assert lo <= hi, (lo, hi)
        first = self.first_index()
        if lo < first:
            raise LogCompacted(lo, first)
        assert hi <= self.last_index() + 1, ("slice beyond the log", hi, self.last_index())

    def _storage_entries(
        self, lo: Index, hi: Index, max_size_bytes: int | None
    ) -> tuple[Entry, ...]:
        try:
            entries = self.storage.entries(lo, hi, max_size_bytes)
        except LogUnavailable as error:
            raise AssertionError(f"storage lacks entries {lo}..{hi - 1}") from error
        assert entries and entries[0].index == lo and len(entries) <= hi - lo, (lo, hi)
        return entries

    def snapshot(self) -> Snapshot:
        """The incoming snapshot if one is pending, else storage's."""
        pending = self.unstable.snapshot
        return self.storage.snapshot() if pending is None else pending

    # -- handing out unstable entries for persisting -----------------------------

    def next_unstable_entries(self) -> tuple[Entry, ...]:
        return self.unstable.next_entries()

    def has_next_unstable_entries(self) -> bool:
        return self.unstable.has_next_entries()

    def has_next_or_in_progress_unstable_entries(self) -> bool:
        return bool(self.unstable.entries)

    def next_unstable_snapshot(self) -> Snapshot | None:
        return self.unstable.next_snapshot()

    def has_next_unstable_snapshot(self) -> bool:
        return self.unstable.next_snapshot() is not None

    def has_next_or_in_progress_snapshot(self) -> bool:
        return self.unstable.snapshot is not None

    def accept_unstable(self) -> None:
        """Everything unstable has been handed out for persisting."""
        self.unstable.accept_in_progress()

    def stable_to(self, index: Index, term: Term) -> None:
        """Entries up to (`index`, `term`) are durable (ignored if replaced since)."""
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: Index) -> None:
        self.unstable.stable_snap_to(index)

    # -- committing and applying -------------------------------------------------

    def commit_to(self, index: Index) -> None:
        """Raise `committed` to `index` (never lowers it)."""
        if index <= self.committed:
            return
        assert index <= self.last_index(), ("commit beyond the log", index, self.last_index())
        self.committed = index

    def maybe_commit(self, max_index: Index, term: Term) -> bool:
        """Commit up to `max_index` if that entry has `term`; whether it moved."""
        if max_index > self.committed and self.term_or_none(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def next_committed_entries(self, allow_unstable: bool) -> tuple[Entry, ...]:
        """Committed entries to apply next (after `applying`), within the apply
        budget; with `allow_unstable` False, only entries already persisted."""
        lo, hi = self._next_committed_range(allow_unstable)
        if lo >= hi:
            return ()
        budget_bytes = self.max_applying_size_bytes - self._applying_size_bytes
        assert budget_bytes > 0, ("not paused yet no budget", budget_bytes)
        return self.slice(lo, hi, budget_bytes)

    def has_next_committed_entries(self, allow_unstable: bool) -> bool:
        lo, hi = self._next_committed_range(allow_unstable)
        return lo < hi

    def _next_committed_range(self, allow_unstable: bool) -> tuple[Index, Index]:
        lo = Index(self.applying + 1)
        if self._applying_paused or self.has_next_or_in_progress_snapshot():
            return lo, lo
        if lo < self.first_index():
            return lo, lo  # a persisted snapshot must be applied first
        return lo, Index(self._max_appliable_index(allow_unstable) + 1)

    def _max_appliable_index(self, allow_unstable: bool) -> Index:
        if allow_unstable:
            return self.committed
        return Index(min(self.committed, self.unstable.offset - 1))

    def accept_applying(self, index: Index, size_bytes: int, allow_unstable: bool) -> None:
        """Entries up to `index` (of total `size_bytes`) have been handed out to apply."""
        assert self.applying <= index <= self.committed, (self.applying, index, self.committed)
        assert size_bytes >= 0, size_bytes
        if index == self.applying:
            assert size_bytes == 0, ("bytes without entries", size_bytes)
        else:
            self._applying_batches.append((index, size_bytes))
        self.applying = index
        self._applying_size_bytes += size_bytes
        cut_short = index < self._max_appliable_index(allow_unstable)
        over_bytes = self._applying_size_bytes >= self.max_applying_size_bytes
        self._applying_paused = over_bytes or cut_short

    def applied_to(self, index: Index) -> None:
        """The state machine has applied everything up to `index` (entries or a snapshot)."""
        assert self.applied <= index <= self.committed, (self.applied, index, self.committed)
        self.applied = index
        self.applying = max(self.applying, index)
        while self._applying_batches and self._applying_batches[0][0] <= index:
            _, size_bytes = self._applying_batches.popleft()
            self._applying_size_bytes -= size_bytes
        self._applying_paused = self._applying_size_bytes >= self.max_applying_size_bytes

    @property
    def applying_size_bytes(self) -> int:
        """Bytes handed out to apply and not yet reported applied."""
        return self._applying_size_bytes

    @property
    def applying_paused(self) -> bool:
        return self._applying_paused

    # -- snapshots -------------------------------------------------------------

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the log by `snapshot` (newer than `committed`) and commit up to it."""
        index = snapshot.metadata.index
        assert index > self.committed, ("restore of a committed index", index, self.committed)
        self.committed = index
        self.unstable.restore(snapshot)

    def check_invariants(self) -> None:
        self.unstable.check_invariants()
        last = self.last_index()
        assert self.applied <= self.applying <= self.committed <= last, (
            self.applied,
            self.applying,
            self.committed,
            last,
        )
        assert self.first_index() - 1 <= self.committed, (self.first_index(), self.committed)
        self.last_term()  # the last entry's term is always known
        self._check_applying()
        if self.unstable.snapshot is None:
            self._check_storage_boundary()

    def _check_applying(self) -> None:
        batches = list(self._applying_batches)
        assert sum(size for _, size in batches) == self._applying_size_bytes
        indexes = [index for index, _ in batches]
        assert indexes == sorted(set(indexes)), indexes
        assert all(self.applied < index <= self.applying for index in indexes), indexes

    def _check_storage_boundary(self) -> None:
        offset = self.unstable.offset
        stored_first, stored_last = self.storage.first_index(), self.storage.last_index()
        assert stored_first <= offset <= stored_last + 1, (stored_first, offset, stored_last)
        if not self.unstable.entries:
            assert offset == stored_last + 1, ("storage ahead of the log", offset, stored_last)


__all__ = ["RaftLog"]
