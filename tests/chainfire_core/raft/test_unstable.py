"""Tests of the unstable tail of the Raft log."""

from __future__ import annotations

import pytest

from chainfire_core.raft.messages import Entry, Snapshot, SnapshotMetadata
from chainfire_core.raft.unstable import Unstable
from chainfire_core.types import Index, Term


def entry(index: int, term: int, size_bytes: int = 0) -> Entry:
    return Entry(term=Term(term), index=Index(index), data=b"x" * size_bytes)


def run(first: int, *terms: int) -> list[Entry]:
    return [entry(first + k, term) for k, term in enumerate(terms)]


def snapshot_at(index: int, term: int) -> Snapshot:
    return Snapshot(metadata=SnapshotMetadata(index=Index(index), term=Term(term)))


def make(
    offset: int, entries: list[Entry], snapshot: Snapshot | None = None, *, in_progress: int = 0
) -> Unstable:
    """An Unstable at `offset` holding `entries`, `in_progress` of them handed out."""
    unstable = Unstable(Index(offset))
    if snapshot is not None:
        unstable.restore(snapshot)
    unstable.truncate_and_append(entries)
    unstable.offset_in_progress = Index(offset + in_progress)
    unstable.check_invariants()
    return unstable


def pairs(entries: tuple[Entry, ...]) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in entries]


def test_empty() -> None:
    unstable = Unstable(Index(5))
    assert unstable.maybe_first_index() is None
    assert unstable.maybe_last_index() is None
    assert unstable.maybe_term(Index(4)) is None
    assert unstable.maybe_term(Index(5)) is None
    assert unstable.next_entries() == ()
    assert not unstable.has_next_entries()
    assert unstable.next_snapshot() is None
    unstable.check_invariants()


def test_first_index_is_known_only_with_a_snapshot() -> None:
    assert make(5, run(5, 1)).maybe_first_index() is None
    assert make(5, run(5, 1), snapshot_at(4, 1)).maybe_first_index() == 5
    assert make(5, [], snapshot_at(4, 1)).maybe_first_index() == 5


@pytest.mark.parametrize(
    ("entries", "snapshot", "want"),
    [
        (run(5, 1), None, 5),
        (run(5, 1, 1, 2), snapshot_at(4, 1), 7),
        ([], snapshot_at(4, 1), 4),
        ([], None, None),
    ],
)
def test_last_index(entries: list[Entry], snapshot: Snapshot | None, want: int | None) -> None:
    assert make(5, entries, snapshot).maybe_last_index() == want


@pytest.mark.parametrize(
    ("entries", "snapshot", "index", "want"),
    [
        (run(5, 1), None, 5, 1),
        (run(5, 1), None, 6, None),
        (run(5, 1), None, 4, None),  # stable: storage knows, not us
        (run(5, 2), snapshot_at(4, 1), 5, 2),
        (run(5, 2), snapshot_at(4, 1), 4, 1),  # the snapshot's own index
        (run(5, 2), snapshot_at(4, 1), 3, None),
        (run(5, 2), snapshot_at(4, 1), 6, None),
        ([], snapshot_at(4, 1), 4, 1),
        ([], snapshot_at(4, 1), 5, None),
    ],
)
def test_maybe_term(
    entries: list[Entry], snapshot: Snapshot | None, index: int, want: int | None
) -> None:
    assert make(5, entries, snapshot).maybe_term(Index(index)) == want


def test_restore_replaces_everything() -> None:
    unstable = make(5, run(5, 1, 1, 1), in_progress=2)
    snapshot = snapshot_at(9, 3)
    unstable.restore(snapshot)
    assert (unstable.offset, unstable.offset_in_progress) == (10, 10)
    assert unstable.entries == ()
    assert unstable.snapshot == snapshot
    assert unstable.next_snapshot() == snapshot
    unstable.check_invariants()


def test_entries_and_snapshot_are_handed_out_once() -> None:
    unstable = make(5, run(5, 1, 1), snapshot_at(4, 1))
    assert unstable.next_snapshot() is not None
    assert pairs(unstable.next_entries()) == [(5, 1), (6, 1)]
    unstable.accept_in_progress()
    assert unstable.next_snapshot() is None
    assert unstable.next_entries() == ()
    assert unstable.snapshot_in_progress
    unstable.truncate_and_append(run(7, 1))
    assert pairs(unstable.next_entries()) == [(7, 1)]
    unstable.check_invariants()


@pytest.mark.parametrize(
    ("entries", "in_progress", "appended", "want", "want_offset", "want_in_progress"),
    [
        # At the end: nothing handed out is disturbed.
        (run(5, 1), 1, run(6, 1, 1), [(5, 1), (6, 1), (7, 1)], 5, 6),
        # Replacing everything from the offset.
        (run(5, 1), 1, run(5, 2, 2), [(5, 2), (6, 2)], 5, 5),
        # Replacing from before the offset (stable entries are overwritten).
        (run(5, 1), 1, run(4, 2, 2, 2), [(4, 2), (5, 2), (6, 2)], 4, 4),
        # Truncating in the middle: the marker moves back to the cut.
        (run(5, 1, 1, 1), 3, run(6, 2), [(5, 1), (6, 2)], 5, 6),
        (run(5, 1, 1, 1), 1, run(7, 2, 2), [(5, 1), (6, 1), (7, 2), (8, 2)], 5, 6),
        (run(5, 1, 1, 1), 2, run(7, 2, 2), [(5, 1), (6, 1), (7, 2), (8, 2)], 5, 7),
    ],
)
def test_truncate_and_append(
    *,
    entries: list[Entry],
    in_progress: int,
    appended: list[Entry],
    want: list[tuple[int, int]],
    want_offset: int,
    want_in_progress: int,
) -> None:
    unstable = make(5, entries, in_progress=in_progress)
    unstable.truncate_and_append(appended)
    assert pairs(unstable.entries) == want
    assert (unstable.offset, unstable.offset_in_progress) == (want_offset, want_in_progress)
    unstable.check_invariants()


def test_truncate_and_append_with_a_gap_is_a_bug() -> None:
    with pytest.raises(AssertionError):
        make(5, run(5, 1)).truncate_and_append(run(7, 1))


def test_append_into_the_snapshot_is_a_bug() -> None:
    with pytest.raises(AssertionError):
        make(5, [], snapshot_at(4, 1)).truncate_and_append(run(4, 2))


@pytest.mark.parametrize(
    ("entries", "in_progress", "snapshot", "index", "term", "want_offset", "want_left"),
    [
        ([], 0, None, 5, 1, 5, 0),  # nothing held: ignored
        (run(5, 1), 1, None, 5, 1, 6, 0),  # stable
        (run(5, 1, 1), 2, None, 5, 1, 6, 1),  # partly stable
        (run(5, 1, 1), 1, None, 5, 1, 6, 1),
        (run(5, 2), 1, None, 5, 1, 5, 1),  # replaced since: the term differs
        (run(5, 1), 1, None, 4, 1, 5, 1),  # already stable
        (run(5, 1), 1, None, 6, 1, 5, 1),  # not held
        (run(5, 1), 1, snapshot_at(4, 1), 5, 1, 6, 0),
        (run(5, 1, 1), 2, snapshot_at(4, 1), 5, 1, 6, 1),
        (run(5, 2), 1, snapshot_at(4, 1), 5, 1, 5, 1),
        (run(5, 1), 1, snapshot_at(4, 1), 4, 1, 5, 1),  # the snapshot index, not an entry
    ],
)
def test_stable_to(
    *,
    entries: list[Entry],
    in_progress: int,
    snapshot: Snapshot | None,
    index: int,
    term: int,
    want_offset: int,
    want_left: int,
) -> None:
    unstable = make(5, entries, snapshot, in_progress=in_progress)
    unstable.snapshot_in_progress = snapshot is not None
    unstable.stable_to(Index(index), Term(term))
    assert unstable.offset == want_offset
    assert len(unstable.entries) == want_left
    assert unstable.offset_in_progress >= unstable.offset
    unstable.check_invariants()


def test_stale_stable_report_after_replacement_is_ignored() -> None:
    # Entries 5..7 of term 1 are handed out; a new leader replaces 6.. with
    # term 2 before the write completes. The late report for (7, 1) must not
    # mark the new entries stable, and the new ones must be handed out again.
    unstable = make(5, run(5, 1, 1, 1))
    unstable.accept_in_progress()
    unstable.truncate_and_append(run(6, 2))
    unstable.stable_to(Index(7), Term(1))
    assert (unstable.offset, pairs(unstable.entries)) == (5, [(5, 1), (6, 2)])
    assert pairs(unstable.next_entries()) == [(6, 2)]
    unstable.accept_in_progress()
    unstable.stable_to(Index(6), Term(2))
    assert (unstable.offset, unstable.entries) == (7, ())
    unstable.check_invariants()


@pytest.mark.parametrize("snapshot_first", [True, False])
def test_snapshot_and_entries_of_one_write_may_be_reported_in_either_order(
    snapshot_first: bool,
) -> None:
    unstable = make(5, run(5, 1, 1), snapshot_at(4, 1))
    unstable.accept_in_progress()
    if snapshot_first:
        unstable.stable_snap_to(Index(4))
        unstable.check_invariants()
    unstable.stable_to(Index(6), Term(1))
    unstable.check_invariants()
    unstable.stable_snap_to(Index(4))
    assert unstable.snapshot is None
    assert (unstable.offset, unstable.entries) == (7, ())
    unstable.check_invariants()


def test_entries_stable_before_their_snapshot_was_handed_out_is_a_bug() -> None:
    unstable = make(5, run(5, 1), snapshot_at(4, 1))
    with pytest.raises(AssertionError):
        unstable.stable_to(Index(5), Term(1))


def test_stable_snap_to_forgets_only_the_matching_snapshot() -> None:
    unstable = make(5, run(5, 1), snapshot_at(4, 1))
    unstable.accept_in_progress()
    unstable.stable_snap_to(Index(3))
    assert unstable.maybe_first_index() == 5  # still held
    unstable.stable_snap_to(Index(4))
    assert unstable.snapshot is None
    assert not unstable.snapshot_in_progress
    assert unstable.offset == 5
    unstable.check_invariants()


def test_slice() -> None:
    unstable = make(5, [entry(5, 1, 4), entry(6, 1, 4), entry(7, 1, 4)])
    assert pairs(unstable.slice(Index(5), Index(8))) == [(5, 1), (6, 1), (7, 1)]
    assert pairs(unstable.slice(Index(6), Index(7))) == [(6, 1)]
    assert unstable.slice(Index(8), Index(8)) == ()
    assert pairs(unstable.slice(Index(5), Index(8), 8)) == [(5, 1), (6, 1)]
    assert pairs(unstable.slice(Index(5), Index(8), 0)) == [(5, 1)]


@pytest.mark.parametrize(("lo", "hi"), [(4, 6), (5, 9), (7, 6)])
def test_slice_out_of_bounds_is_a_bug(lo: int, hi: int) -> None:
    with pytest.raises(AssertionError):
        make(5, run(5, 1, 1, 1)).slice(Index(lo), Index(hi))


def test_check_invariants_catches_a_bad_marker() -> None:
    unstable = make(5, run(5, 1))
    unstable.offset_in_progress = Index(7)
    with pytest.raises(AssertionError):
        unstable.check_invariants()
