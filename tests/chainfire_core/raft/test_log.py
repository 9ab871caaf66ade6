"""Tests of the Raft log (stable storage + unstable tail, commit and apply cursors)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chainfire_core.raft.log import RaftLog
from chainfire_core.raft.messages import ConfState, Entry, Snapshot, SnapshotMetadata
from chainfire_core.raft.storage import LogCompacted, LogUnavailable, MemoryStorage, limit_size
from chainfire_core.types import Index, Term

UNLIMITED_BYTES = 1 << 40


def entry(index: int, term: int, size_bytes: int = 0) -> Entry:
    return Entry(term=Term(term), index=Index(index), data=b"x" * size_bytes)


def run(first: int, *terms: int, size_bytes: int = 0) -> list[Entry]:
    return [entry(first + k, term, size_bytes) for k, term in enumerate(terms)]


def pairs(entries: tuple[Entry, ...] | list[Entry]) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in entries]


def snapshot_at(index: int, term: int) -> Snapshot:
    return Snapshot(metadata=SnapshotMetadata(index=Index(index), term=Term(term)), data=b"s")


def make_log(
    stable: Sequence[Entry],
    unstable: Sequence[Entry] = (),
    *,
    snapshot: Snapshot | None = None,
    max_applying_size_bytes: int = UNLIMITED_BYTES,
) -> tuple[RaftLog, MemoryStorage]:
    """A log whose storage holds `snapshot` then `stable`, followed by `unstable`."""
    storage = MemoryStorage()
    if snapshot is not None:
        storage.apply_snapshot(snapshot)
    storage.append(stable)
    log = RaftLog(storage, max_applying_size_bytes)
    log.append(unstable)
    log.check_invariants()
    return log, storage


def split_log(terms: list[int], *, first: int = 1, split: int) -> RaftLog:
    """A log of `terms` from index `first`; the first `split` entries stable."""
    entries = run(first, *terms)
    snapshot = snapshot_at(first - 1, 1) if first > 1 else None
    log, _ = make_log(entries[:split], entries[split:], snapshot=snapshot)
    return log


def persist(log: RaftLog, storage: MemoryStorage) -> None:
    """Write everything unstable to storage and report it, as a driver does."""
    snapshot = log.next_unstable_snapshot()
    entries = log.next_unstable_entries()
    log.accept_unstable()
    if snapshot is not None:
        storage.apply_snapshot(snapshot)
        log.stable_snap_to(snapshot.metadata.index)
    if entries:
        storage.append(entries)
        log.stable_to(entries[-1].index, entries[-1].term)


# -- construction, terms and bounds ------------------------------------------------------


def test_new_log_starts_after_the_storage_snapshot() -> None:
    log, _ = make_log(run(6, 2, 2), snapshot=snapshot_at(5, 2))
    assert (log.first_index(), log.last_index(), log.last_term()) == (6, 7, 2)
    assert (log.committed, log.applying, log.applied) == (5, 5, 5)
    assert log.unstable.offset == 8
    assert log.snapshot().metadata.index == 5


def test_empty_log() -> None:
    log, _ = make_log([])
    assert (log.first_index(), log.last_index(), log.last_term()) == (1, 0, 0)
    assert log.all_entries() == ()
    assert log.entries(Index(1)) == ()


@pytest.mark.parametrize("split", [0, 2, 4])
@pytest.mark.parametrize(
    ("index", "want"),
    [(8, LogCompacted), (9, 1), (10, 2), (13, 4), (14, LogUnavailable)],
)
def test_term_and_its_errors(split: int, index: int, want: object) -> None:
    log = split_log([2, 3, 3, 4], first=10, split=split)
    if isinstance(want, int):
        assert log.term(Index(index)) == want
        assert log.term_or_none(Index(index)) == want
        assert log.match_term(Index(index), Term(want))
    else:
        with pytest.raises(want):  # type: ignore[call-overload]
            log.term(Index(index))
        assert log.term_or_none(Index(index)) is None
        assert not log.match_term(Index(index), Term(1))


def test_terms_with_an_unstable_snapshot_ignore_storage() -> None:
    log, _ = make_log(run(1, 1, 1, 2))
    log.restore(snapshot_at(20, 5))
    assert (log.first_index(), log.last_index(), log.last_term()) == (21, 20, 5)
    assert log.term(Index(20)) == 5
    with pytest.raises(LogCompacted):
        log.term(Index(3))
    with pytest.raises(LogUnavailable):
        log.term(Index(21))
    log.check_invariants()


@pytest.mark.parametrize(
    ("last_index", "last_term", "want"),
    [
        (2, 4, True), (3, 4, True), (9, 4, True),  # higher last term wins
        (2, 3, False), (3, 3, True), (4, 3, True),  # same term: longer or equal wins
        (9, 2, False),  # lower last term loses however long
    ],
)  # fmt: skip
def test_is_up_to_date(last_index: int, last_term: int, want: bool) -> None:
    log = split_log([1, 2, 3], split=1)
    assert log.is_up_to_date(Index(last_index), Term(last_term)) == want


# -- conflicts ------------------------------------------------------------------------


@pytest.mark.parametrize("split", [0, 1, 3])
@pytest.mark.parametrize(
    ("entries", "want"),
    [
        ([], None),
        (run(1, 1, 2, 3), None),
        (run(2, 2, 3), None),
        (run(3, 3), None),
        (run(1, 1, 2, 3, 4, 4), 4),  # new entries past our end
        (run(4, 4, 4), 4),
        (run(1, 4, 4), 1),  # conflicts with our entries
        (run(2, 1, 4, 4), 2),
        (run(3, 1, 2, 4, 4), 3),
    ],
)
def test_find_conflict(split: int, entries: list[Entry], want: int | None) -> None:
    log = split_log([1, 2, 3], split=split)
    assert log.find_conflict(entries) == want


LOG_FROM_ONE = [1, 1, 3, 3, 3, 6]  # indexes 1..6
LOG_AFTER_SNAPSHOT = [2, 5, 5, 7]  # indexes 21..24 after a snapshot at (20, 2)


@pytest.mark.parametrize("split", [0, 3, 6])
@pytest.mark.parametrize(
    ("index", "term", "want"),
    [
        (50, 2, (50, 0)),  # beyond our log: the term is unknown, it may match
        (6, 7, (6, 6)),
        (6, 6, (6, 6)),
        (6, 5, (5, 3)),
        (6, 3, (5, 3)),
        (6, 2, (2, 1)),
        (4, 2, (2, 1)),
        (6, 0, (0, 0)),
        (2, 1, (2, 1)),
        (0, 0, (0, 0)),
    ],
)
def test_find_conflict_by_term(split: int, index: int, term: int, want: tuple[int, int]) -> None:
    log = split_log(LOG_FROM_ONE, split=split)
    assert log.find_conflict_by_term(Index(index), Term(term)) == want


@pytest.mark.parametrize("split", [0, 2, 4])
@pytest.mark.parametrize(
    ("index", "term", "want"),
    [
        (40, 5, (40, 0)),
        (24, 8, (24, 7)),
        (24, 6, (23, 5)),
        (24, 4, (21, 2)),
        (20, 3, (20, 2)),  # the snapshot's term is known
        (24, 1, (19, 0)),  # compacted: unknown, may match
        (20, 1, (19, 0)),
        (15, 1, (15, 0)),
    ],
)
def test_find_conflict_by_term_after_compaction(
    split: int, index: int, term: int, want: tuple[int, int]
) -> None:
    entries = run(21, *LOG_AFTER_SNAPSHOT)
    log, _ = make_log(entries[:split], entries[split:], snapshot=snapshot_at(20, 2))
    assert log.find_conflict_by_term(Index(index), Term(term)) == want


# -- append and maybe_append --------------------------------------------------------------


@pytest.mark.parametrize(
    ("appended", "want_last", "want", "want_offset"),
    [
        ([], 2, [(1, 1), (2, 2)], 3),
        (run(3, 2), 3, [(1, 1), (2, 2), (3, 2)], 3),
        (run(1, 2), 1, [(1, 2)], 1),  # replaces stable entries from 1
        (run(2, 3, 3), 3, [(1, 1), (2, 3), (3, 3)], 2),
    ],
)
def test_append(
    appended: list[Entry], want_last: int, want: list[tuple[int, int]], want_offset: int
) -> None:
    log, _ = make_log(run(1, 1, 2))
    assert log.append(appended) == want_last
    assert pairs(log.all_entries()) == want
    assert log.unstable.offset == want_offset
    log.check_invariants()


def test_append_over_committed_entries_is_a_bug() -> None:
    log, _ = make_log(run(1, 1, 2))
    log.commit_to(Index(2))
    with pytest.raises(AssertionError):
        log.append(run(2, 3))


def test_append_leaving_a_gap_is_a_bug() -> None:
    log, _ = make_log(run(1, 1, 2))
    with pytest.raises(AssertionError):
        log.append(run(4, 3))


@pytest.mark.parametrize("split", [0, 2, 3])
@pytest.mark.parametrize(
    ("index", "log_term", "committed", "entries", "want_last", "want_commit", "want"),
    [
        # No match at (index, log_term): rejected, nothing changes.
        (3, 2, 3, run(4, 4), None, 1, [1, 2, 3]),
        (4, 3, 3, run(5, 4), None, 1, [1, 2, 3]),
        # Match with no entries: commit = min(committed, index).
        (3, 3, 3, [], 3, 3, [1, 2, 3]),
        (3, 3, 4, [], 3, 3, [1, 2, 3]),
        (3, 3, 2, [], 3, 2, [1, 2, 3]),
        (3, 3, 0, [], 3, 1, [1, 2, 3]),  # commit never decreases
        (0, 0, 3, [], 0, 1, [1, 2, 3]),
        # New entries past our end.
        (3, 3, 3, run(4, 4), 4, 3, [1, 2, 3, 4]),
        (3, 3, 4, run(4, 4), 4, 4, [1, 2, 3, 4]),
        (3, 3, 5, run(4, 4), 4, 4, [1, 2, 3, 4]),
        (3, 3, 5, run(4, 4, 4), 5, 5, [1, 2, 3, 4, 4]),
        # Matching entries only: our longer log is kept, commit stops at the last new.
        (2, 2, 3, [], 2, 2, [1, 2, 3]),
        (1, 1, 3, run(2, 2), 2, 2, [1, 2, 3]),
        (0, 0, 3, run(1, 1, 2, 3), 3, 3, [1, 2, 3]),
        # Conflicts: ours are replaced from the first conflict on.
        (2, 2, 3, run(3, 4), 3, 3, [1, 2, 4]),
        (1, 1, 3, run(2, 4), 2, 2, [1, 4]),
        (1, 1, 1, run(2, 1, 1), 3, 1, [1, 1, 1]),
        (0, 0, 1, run(1, 1, 4, 4), 3, 1, [1, 4, 4]),
    ],
)
def test_maybe_append(
    *,
    split: int,
    index: int,
    log_term: int,
    committed: int,
    entries: list[Entry],
    want_last: int | None,
    want_commit: int,
    want: list[int],
) -> None:
    log = split_log([1, 2, 3], split=split)
    log.commit_to(Index(1))
    got = log.maybe_append(Index(index), Term(log_term), Index(committed), entries)
    assert got == want_last
    assert log.committed == want_commit
    assert [e.term for e in log.all_entries()] == want
    log.check_invariants()


def test_maybe_append_conflicting_with_a_committed_entry_is_a_bug() -> None:
    log = split_log([1, 2, 3], split=2)
    log.commit_to(Index(2))
    with pytest.raises(AssertionError):
        log.maybe_append(Index(1), Term(1), Index(3), run(2, 4))


# -- commit -------------------------------------------------------------------------------


def test_commit_to_never_decreases_and_never_passes_the_end() -> None:
    log = split_log([1, 2, 3], split=1)
    log.commit_to(Index(3))
    log.commit_to(Index(2))
    assert log.committed == 3
    with pytest.raises(AssertionError):
        log.commit_to(Index(4))


@pytest.mark.parametrize(
    ("max_index", "term", "want", "want_commit"),
    [
        (3, 3, True, 3),
        (2, 2, True, 2),
        (3, 2, False, 1),  # the entry is of another term (Figure 8)
        (1, 1, False, 1),  # not beyond what is committed
        (5, 3, False, 1),  # beyond the log
    ],
)
def test_maybe_commit(max_index: int, term: int, want: bool, want_commit: int) -> None:
    log = split_log([1, 2, 3], split=2)
    log.commit_to(Index(1))
    assert log.maybe_commit(Index(max_index), Term(term)) == want
    assert log.committed == want_commit


# -- unstable hand-out and stable reports ----------------------------------------------------


def test_unstable_entries_are_handed_out_once_then_made_stable() -> None:
    log, storage = make_log(run(1, 1, 2), run(3, 3, 3))
    assert pairs(log.next_unstable_entries()) == [(3, 3), (4, 3)]
    log.accept_unstable()
    assert not log.has_next_unstable_entries()
    assert log.has_next_or_in_progress_unstable_entries()
    persist_entries = run(3, 3, 3)
    storage.append(persist_entries)
    log.stable_to(Index(4), Term(3))
    assert not log.has_next_or_in_progress_unstable_entries()
    assert log.unstable.offset == 5
    assert pairs(log.all_entries()) == [(1, 1), (2, 2), (3, 3), (4, 3)]
    log.check_invariants()


def test_stable_to_with_a_stale_term_is_ignored() -> None:
    log, storage = make_log(run(1, 1), run(2, 2, 2))
    log.accept_unstable()
    storage.append(run(2, 2, 2))
    log.append(run(3, 3))  # a new leader replaced entry 3 while it was being written
    log.stable_to(Index(3), Term(2))
    assert log.unstable.offset == 2
    assert pairs(log.next_unstable_entries()) == [(3, 3)]
    log.accept_unstable()
    storage.append(run(3, 3))
    log.stable_to(Index(3), Term(3))
    assert log.unstable.offset == 4
    assert pairs(log.all_entries()) == [(1, 1), (2, 2), (3, 3)]
    log.check_invariants()


def test_stable_to_an_index_already_stable_is_ignored() -> None:
    log, _ = make_log(run(1, 1, 1), run(3, 2))
    log.stable_to(Index(1), Term(1))
    assert log.unstable.offset == 3


# -- snapshots and compaction ----------------------------------------------------------------


def test_restore_from_a_snapshot() -> None:
    log, storage = make_log(run(1, 1, 1), run(3, 2, 2))
    log.commit_to(Index(2))
    snapshot = snapshot_at(10, 3)
    log.restore(snapshot)
    assert (log.committed, log.first_index(), log.last_index(), log.last_term()) == (10, 11, 10, 3)
    assert log.all_entries() == ()
    assert log.snapshot() == snapshot
    assert log.next_unstable_snapshot() == snapshot
    assert log.next_committed_entries(allow_unstable=True) == ()  # the snapshot goes first
    log.check_invariants()
    log.append(run(11, 3))
    persist(log, storage)
    log.applied_to(Index(10))
    assert log.snapshot() == snapshot  # now from storage
    assert not log.has_next_or_in_progress_snapshot()
    assert storage.first_index() == 11
    assert pairs(log.next_committed_entries(allow_unstable=True)) == []
    log.commit_to(Index(11))
    assert pairs(log.next_committed_entries(allow_unstable=True)) == [(11, 3)]
    log.check_invariants()


def test_restore_at_or_below_committed_is_a_bug() -> None:
    log, _ = make_log(run(1, 1, 1))
    log.commit_to(Index(2))
    with pytest.raises(AssertionError):
        log.restore(snapshot_at(2, 1))


def test_persisted_snapshot_must_be_applied_before_entries_after_it() -> None:
    log, storage = make_log([])
    log.restore(snapshot_at(5, 2))
    log.append(run(6, 2))
    log.commit_to(Index(6))
    persist(log, storage)
    assert not log.has_next_committed_entries(allow_unstable=True)
    log.applied_to(Index(5))
    assert pairs(log.next_committed_entries(allow_unstable=True)) == [(6, 2)]


def test_compaction_of_storage_moves_the_first_index() -> None:
    log, storage = make_log(run(1, *([1] * 100)))
    log.commit_to(Index(100))
    log.applied_to(Index(100))
    storage.create_snapshot(Index(60), ConfState())
    storage.compact(Index(60))
    assert (log.first_index(), log.last_index()) == (61, 100)
    assert log.term(Index(60)) == 1
    with pytest.raises(LogCompacted):
        log.term(Index(59))
    with pytest.raises(LogCompacted):
        log.slice(Index(50), Index(70))
    with pytest.raises(LogCompacted):
        log.entries(Index(60))
    assert len(log.all_entries()) == 40
    assert log.snapshot().metadata.index == 60
    log.check_invariants()


def test_compaction_keeps_unstable_entries_readable() -> None:
    log, storage = make_log(run(1, 1, 1, 1, 1), run(5, 2, 2))
    log.commit_to(Index(5))
    log.applied_to(Index(4))
    storage.compact(Index(4))
    assert pairs(log.all_entries()) == [(5, 2), (6, 2)]
    assert log.term(Index(4)) == 1
    log.check_invariants()


# -- slicing with size limits ---------------------------------------------------------------


@pytest.mark.parametrize(("lo", "hi"), [(5, 4), (3, 12)])
def test_slice_out_of_bounds_is_a_bug(lo: int, hi: int) -> None:
    log = split_log([1, 1, 1, 1], first=3, split=2)  # 3..6
    with pytest.raises(AssertionError):
        log.slice(Index(lo), Index(hi))


def test_slice_below_first_index_is_compacted() -> None:
    log = split_log([1, 1, 1, 1], first=3, split=2)
    with pytest.raises(LogCompacted):
        log.slice(Index(2), Index(4))
    assert log.slice(Index(3), Index(3)) == ()
    assert log.slice(Index(7), Index(7)) == ()
    assert log.entries(Index(8)) == ()


@pytest.mark.parametrize(
    ("lo", "hi", "max_size_bytes", "want"),
    [
        (4, 9, None, [4, 5, 6, 7, 8]),
        (4, 9, 0, [4]),
        (4, 9, 10, [4, 5]),  # all stable
        (4, 9, 15, [4, 5, 6]),  # crosses into unstable
        (4, 9, 19, [4, 5, 6]),
        (5, 9, 10, [5, 6]),
        (6, 9, 5, [6]),  # starts in unstable
        (6, 9, 0, [6]),
        (4, 6, 0, [4]),
        (6, 7, 1000, [6]),
    ],
)
def test_slice_across_stable_and_unstable(
    lo: int, hi: int, max_size_bytes: int | None, want: list[int]
) -> None:
    stable = run(4, 1, 1, size_bytes=5)  # 4, 5
    unstable = run(6, 1, 1, 1, size_bytes=5)  # 6, 7, 8
    log, _ = make_log(stable, unstable, snapshot=snapshot_at(3, 1))
    got = log.slice(Index(lo), Index(hi), max_size_bytes)
    assert [e.index for e in got] == want


def test_slice_drops_a_first_unstable_entry_that_does_not_fit() -> None:
    log, _ = make_log(run(1, 1, size_bytes=4), [entry(2, 1, 7), entry(3, 1, 0)])
    assert pairs(log.slice(Index(1), Index(4), 10)) == [(1, 1)]
    assert pairs(log.slice(Index(1), Index(4), 11)) == [(1, 1), (2, 1), (3, 1)]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 8), min_size=1, max_size=12),
    split=st.integers(0, 12),
    bounds=st.tuples(st.integers(0, 12), st.integers(0, 12)),
    max_size_bytes=st.none() | st.integers(0, 40),
)
def test_slice_equals_limit_size_of_the_whole_range(
    sizes: list[int], split: int, bounds: tuple[int, int], max_size_bytes: int | None
) -> None:
    entries = [entry(i + 1, 1, size) for i, size in enumerate(sizes)]
    log, _ = make_log(entries[:split], entries[split:])
    lo, hi = sorted(min(b, len(entries)) for b in bounds)
    want = limit_size(entries[lo:hi], max_size_bytes)
    assert log.slice(Index(lo + 1), Index(hi + 1), max_size_bytes) == want


# -- committed entries, applying and flow control ------------------------------------------


def paused(log: RaftLog) -> bool:
    return log.applying_paused  # a call, so mypy does not narrow the property


def log_4_to_6(*, committed: int = 6, max_applying_size_bytes: int = UNLIMITED_BYTES) -> RaftLog:
    """Snapshot at 3; 4 and 5 stable, 6 unstable; each entry 4 bytes."""
    log, _ = make_log(
        run(4, 1, 1, size_bytes=4),
        run(6, 1, size_bytes=4),
        snapshot=snapshot_at(3, 1),
        max_applying_size_bytes=max_applying_size_bytes,
    )
    log.commit_to(Index(committed))
    return log


@pytest.mark.parametrize(
    ("applying", "allow_unstable", "committed", "want"),
    [
        (3, True, 6, [4, 5, 6]),
        (4, True, 6, [5, 6]),
        (5, True, 6, [6]),
        (6, True, 6, []),
        (3, True, 5, [4, 5]),
        (3, False, 6, [4, 5]),  # 6 is not persisted yet
        (4, False, 6, [5]),
        (5, False, 6, []),
        (3, False, 4, [4]),
    ],
)
def test_next_committed_entries(
    applying: int, allow_unstable: bool, committed: int, want: list[int]
) -> None:
    log = log_4_to_6(committed=committed)
    log.applied_to(Index(applying))
    got = log.next_committed_entries(allow_unstable)
    assert [e.index for e in got] == want
    assert log.has_next_committed_entries(allow_unstable) == bool(want)
    log.check_invariants()


def test_next_committed_entries_waits_for_a_pending_snapshot() -> None:
    log = log_4_to_6()
    log.restore(snapshot_at(9, 2))
    assert not log.has_next_committed_entries(allow_unstable=True)
    assert log.next_committed_entries(allow_unstable=True) == ()


def test_hand_out_cut_short_by_the_budget_pauses_until_applied() -> None:
    log = log_4_to_6(max_applying_size_bytes=10)
    got = log.next_committed_entries(allow_unstable=True)
    assert [e.index for e in got] == [4, 5]  # 12 bytes would pass the 10-byte budget
    log.accept_applying(Index(5), 8, allow_unstable=True)
    assert paused(log)
    assert not log.has_next_committed_entries(allow_unstable=True)
    assert log.next_committed_entries(allow_unstable=True) == ()
    log.applied_to(Index(5))
    assert not paused(log)
    assert log.applying_size_bytes == 0
    assert [e.index for e in log.next_committed_entries(allow_unstable=True)] == [6]
    log.check_invariants()


def test_outstanding_bytes_are_released_per_batch() -> None:
    log = log_4_to_6(committed=4, max_applying_size_bytes=8)
    assert [e.index for e in log.next_committed_entries(allow_unstable=True)] == [4]
    log.accept_applying(Index(4), 4, allow_unstable=True)
    assert not paused(log)  # 4 of 8 bytes, and nothing more was committed
    log.commit_to(Index(5))
    assert [e.index for e in log.next_committed_entries(allow_unstable=True)] == [5]
    log.accept_applying(Index(5), 4, allow_unstable=True)
    assert paused(log)  # 8 bytes outstanding reach the limit
    log.commit_to(Index(6))
    assert log.next_committed_entries(allow_unstable=True) == ()
    log.applied_to(Index(4))
    assert (log.applied, log.applying, log.applying_size_bytes) == (4, 5, 4)
    assert not paused(log)
    assert [e.index for e in log.next_committed_entries(allow_unstable=True)] == [6]
    log.check_invariants()


def test_a_single_entry_over_the_budget_is_still_handed_out() -> None:
    log, _ = make_log(run(1, 1, size_bytes=50), max_applying_size_bytes=10)
    log.commit_to(Index(1))
    assert pairs(log.next_committed_entries(allow_unstable=False)) == [(1, 1)]
    log.accept_applying(Index(1), 50, allow_unstable=False)
    assert paused(log)
    log.applied_to(Index(1))
    assert not paused(log)


def test_synchronous_apply_without_accepting() -> None:
    log = log_4_to_6(max_applying_size_bytes=10)
    assert [e.index for e in log.next_committed_entries(allow_unstable=True)] == [4, 5]
    log.applied_to(Index(5))
    assert (log.applying, log.applied) == (5, 5)
    assert [e.index for e in log.next_committed_entries(allow_unstable=True)] == [6]


@pytest.mark.parametrize(("applied", "index"), [(5, 4), (3, 7)])
def test_applied_to_outside_applied_and_committed_is_a_bug(applied: int, index: int) -> None:
    log = log_4_to_6()
    log.applied_to(Index(applied))
    with pytest.raises(AssertionError):
        log.applied_to(Index(index))


def test_check_invariants_catches_cursor_disorder() -> None:
    log = log_4_to_6(committed=4)
    log.applied = Index(5)
    with pytest.raises(AssertionError):
        log.check_invariants()


def test_check_invariants_catches_storage_ahead_of_the_log() -> None:
    log, storage = make_log(run(1, 1))
    storage.append(run(2, 1))  # written behind Raft's back
    with pytest.raises(AssertionError):
        log.check_invariants()


# -- model-based test ---------------------------------------------------------------------

MAX_APPLYING_BYTES = 12


class RaftLogMachine(RuleBasedStateMachine):
    """RaftLog + MemoryStorage against a plain list of entries.

    The model is `model` (model[k] is the entry at `base + k`; model[0] stands
    for the compacted entry whose term is still known), with the cursors. A
    driver is simulated too: writes handed out are persisted in order, possibly
    late, and committed entries handed out are applied later. New leaders keep
    our log up to at least the commit index and continue it with a fresh term,
    so the Log Matching property holds by construction."""

    def __init__(self) -> None:
        super().__init__()
        self.storage = MemoryStorage()
        self.log = RaftLog(self.storage, MAX_APPLYING_BYTES)
        self.model: list[Entry] = [entry(0, 0)]
        self.committed = self.applying = self.applied = 0
        self.newest_term = 0
        self.snapshot_pending = False
        self.writes: deque[Snapshot | tuple[Entry, ...]] = deque()
        self.apply_batches: deque[tuple[int, int]] = deque()

    @property
    def base(self) -> int:
        return self.model[0].index

    @property
    def last(self) -> int:
        return self.model[-1].index

    def term_at(self, index: int) -> int:
        return self.model[index - self.base].term

    def fresh_term(self) -> int:
        self.newest_term += 1
        return self.newest_term

    def leader_log(self, keep: int, extra: int) -> list[Entry]:
        """Ours through an index >= committed, then `extra` entries of a fresh term."""
        kept = self.committed + keep % (self.last - self.committed + 1)
        term = self.fresh_term()
        new = [entry(kept + 1 + k, term, (kept + k) % 5) for k in range(extra)]
        return self.model[: kept - self.base + 1] + new

    @rule(keep=st.integers(0, 99), sizes=st.lists(st.integers(0, 6), min_size=1, max_size=4))
    def append(self, keep: int, sizes: list[int]) -> None:
        after = self.committed + keep % (self.last - self.committed + 1)
        term = self.fresh_term()
        entries = [entry(after + 1 + k, term, size) for k, size in enumerate(sizes)]
        assert self.log.append(entries) == after + len(entries)
        self.model = self.model[: after - self.base + 1] + entries

    @rule(
        keep=st.integers(0, 99),
        extra=st.integers(0, 3),
        start=st.integers(0, 99),
        count=st.integers(0, 4),
        commit=st.integers(0, 99),
        corrupt=st.booleans(),
    )
    def maybe_append(
        self, *, keep: int, extra: int, start: int, count: int, commit: int, corrupt: bool
    ) -> None:
        leader = self.leader_log(keep, extra)
        leader_last = leader[-1].index
        index = max(0, self.base - 2 + start % (leader_last - self.base + 3))
        if index < self.base:
            log_term, entries = 1, []
        else:
            log_term = leader[index - self.base].term + int(corrupt)
            entries = leader[index - self.base + 1 : index - self.base + 1 + count]
        leader_commit = commit % (leader_last + 1)
        want = self.model_maybe_append(index, log_term, leader_commit, entries)
        got = self.log.maybe_append(Index(index), Term(log_term), Index(leader_commit), entries)
        assert got == want

    def model_maybe_append(
        self, index: int, log_term: int, leader_commit: int, entries: list[Entry]
    ) -> int | None:
        if not (self.base <= index <= self.last and self.term_at(index) == log_term):
            return None
        for position, new in enumerate(entries):
            if new.index > self.last or self.term_at(new.index) != new.term:
                assert new.index > self.committed
                self.model = self.model[: new.index - self.base] + entries[position:]
                break
        last_new = index + len(entries)
        self.committed = max(self.committed, min(leader_commit, last_new))
        return last_new

    @rule(pick=st.integers(0, 99))
    def commit_to(self, pick: int) -> None:
        target = self.committed + pick % (self.last - self.committed + 1)
        self.log.commit_to(Index(target))
        self.committed = target

    @rule(pick=st.integers(0, 99), right_term=st.booleans())
    def maybe_commit(self, pick: int, right_term: bool) -> None:
        target = self.base + pick % (self.last - self.base + 1)
        term = self.term_at(target) + (0 if right_term else 1)
        want = right_term and target > self.committed
        assert self.log.maybe_commit(Index(target), Term(term)) == want
        self.committed = max(self.committed, target) if want else self.committed

    @rule(ahead=st.integers(1, 4))
    def restore(self, ahead: int) -> None:
        index = self.committed + ahead
        snapshot = snapshot_at(index, self.fresh_term())
        self.log.restore(snapshot)
        self.model = [entry(index, snapshot.metadata.term)]
        self.committed = index
        self.snapshot_pending = True

    @rule()
    def hand_out_writes(self) -> None:
        snapshot = self.log.next_unstable_snapshot()
        entries = self.log.next_unstable_entries()
        self.log.accept_unstable()
        if snapshot is not None:
            assert snapshot.metadata.index == self.base
            self.writes.append(snapshot)
        if entries:
            assert list(entries) == self.model[entries[0].index - self.base :][: len(entries)]
            assert entries[-1].index == self.last
            self.writes.append(entries)

    @precondition(lambda self: self.writes)
    @rule()
    def persist_oldest_write(self) -> None:
        write = self.writes.popleft()
        if isinstance(write, Snapshot):
            index = write.metadata.index
            self.storage.apply_snapshot(write)
            self.log.stable_snap_to(index)
            while self.apply_batches:
                self.apply_oldest_batch()
            self.log.applied_to(index)
            self.applied = self.applying = index
            self.snapshot_pending = self.snapshot_pending and index != self.base
        else:
            self.storage.append(write)
            self.log.stable_to(write[-1].index, write[-1].term)

    @rule(allow_unstable=st.booleans())
    def hand_out_committed(self, allow_unstable: bool) -> None:
        has_next = self.log.has_next_committed_entries(allow_unstable)
        entries = self.log.next_committed_entries(allow_unstable)
        assert has_next == bool(entries)
        idle = self.applying == self.applied and not self.snapshot_pending
        if not entries:
            assert not (allow_unstable and idle and self.applying < self.committed)
            return
        assert entries[0].index == self.applying + 1
        assert entries[-1].index <= self.committed
        assert list(entries) == self.model[self.applying + 1 - self.base :][: len(entries)]
        if not allow_unstable:
            assert entries[-1].index < self.log.unstable.offset
        size_bytes = sum(e.size_bytes for e in entries)
        budget_bytes = MAX_APPLYING_BYTES - sum(size for _, size in self.apply_batches)
        assert size_bytes <= budget_bytes or len(entries) == 1
        if allow_unstable and entries[-1].index < self.committed:  # cut short: next won't fit
            following = self.model[entries[-1].index + 1 - self.base]
            assert size_bytes + following.size_bytes > budget_bytes
        self.log.accept_applying(entries[-1].index, size_bytes, allow_unstable)
        self.apply_batches.append((entries[-1].index, size_bytes))
        self.applying = entries[-1].index

    @precondition(lambda self: self.apply_batches)
    @rule()
    def apply_oldest_batch(self) -> None:
        index, _ = self.apply_batches.popleft()
        self.log.applied_to(Index(index))
        self.applied = index

    @precondition(lambda self: not self.snapshot_pending)
    @rule(pick=st.integers(0, 99))
    def compact(self, pick: int) -> None:
        lo = self.storage.first_index()
        hi = min(self.applied, self.log.unstable.offset - 1, self.storage.last_index())
        if hi < lo:
            return
        index = Index(lo + pick % (hi - lo + 1))
        snapshot = self.storage.create_snapshot(index, ConfState(), b"sm")
        assert snapshot.metadata.term == self.term_at(index)
        self.storage.compact(index)
        self.model = self.model[index - self.base :]

    @invariant()
    def log_matches_model(self) -> None:
        log = self.log
        log.check_invariants()
        self.storage.check_invariants()
        assert (log.first_index(), log.last_index()) == (self.base + 1, self.last)
        assert (log.committed, log.applying, log.applied) == (
            self.committed,
            self.applying,
            self.applied,
        )
        assert log.last_term() == self.model[-1].term
        assert log.term(Index(self.base)) == self.model[0].term
        assert log.term_or_none(Index(self.last + 1)) is None
        if self.base > 0:
            assert log.term_or_none(Index(self.base - 1)) is None
        assert list(log.all_entries()) == self.model[1:]
        assert log.has_next_or_in_progress_snapshot() == self.snapshot_pending

    @invariant()
    def storage_matches_model_when_all_is_written(self) -> None:
        if self.writes or self.log.has_next_unstable_entries() or self.snapshot_pending:
            return
        assert self.storage.first_index() == self.base + 1
        assert self.storage.last_index() == self.last
        assert self.storage.term(Index(self.base)) == self.model[0].term
        assert (
            list(self.storage.entries(Index(self.base + 1), Index(self.last + 1), None))
            == (self.model[1:])
        )


RaftLogMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
test_raft_log_against_model = RaftLogMachine.TestCase
