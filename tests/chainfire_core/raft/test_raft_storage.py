"""Tests of the Raft `Storage` protocol's memory implementation and size limits."""

from __future__ import annotations

import pytest

from chainfire_core.errors import ChainfireError
from chainfire_core.raft.messages import (
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from chainfire_core.raft.storage import (
    LogCompacted,
    LogUnavailable,
    MemoryStorage,
    RaftStorageError,
    SnapshotOutOfDate,
    Storage,
    entries_size_bytes,
    limit_size,
)
from chainfire_core.types import Index, NodeId, Term


def entry(index: int, term: int, size_bytes: int = 0) -> Entry:
    return Entry(term=Term(term), index=Index(index), data=b"x" * size_bytes)


def pairs(entries: tuple[Entry, ...]) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in entries]


def snapshot_at(index: int, term: int, conf_state: ConfState | None = None) -> Snapshot:
    metadata = SnapshotMetadata(
        index=Index(index), term=Term(term), conf_state=conf_state or ConfState()
    )
    return Snapshot(metadata=metadata, data=b"state")


def storage_3_to_5() -> MemoryStorage:
    """Compacted through 3 (term 3); holds 4 (term 4) and 5 (term 5)."""
    storage = MemoryStorage()
    storage.apply_snapshot(snapshot_at(3, 3))
    storage.append([entry(4, 4), entry(5, 5)])
    storage.check_invariants()
    return storage


def stored(storage: MemoryStorage) -> list[tuple[int, int]]:
    """(index, term) from the compacted entry through the last one."""
    first = storage.first_index()
    dummy = (first - 1, storage.term(Index(first - 1)))
    rest = storage.entries(first, Index(storage.last_index() + 1), None)
    return [dummy, *pairs(rest)]


def test_errors_share_the_root() -> None:
    for error in (LogCompacted(1, 2), LogUnavailable(3, 2), SnapshotOutOfDate(1, 2)):
        assert isinstance(error, RaftStorageError)
        assert isinstance(error, ChainfireError)


def test_memory_storage_satisfies_the_protocol() -> None:
    storage: Storage = MemoryStorage()
    assert storage.snapshot().metadata.index == 0


def test_fresh_storage_is_empty_after_index_zero() -> None:
    storage = MemoryStorage()
    assert (storage.first_index(), storage.last_index()) == (1, 0)
    assert storage.term(Index(0)) == 0
    assert storage.entries(Index(1), Index(1), None) == ()
    with pytest.raises(LogUnavailable):
        storage.term(Index(1))
    with pytest.raises(LogUnavailable):
        storage.entries(Index(1), Index(2), None)
    storage.check_invariants()


def test_initial_state_reports_hard_state_and_snapshot_membership() -> None:
    storage = MemoryStorage()
    hard_state = HardState(term=Term(4), vote=NodeId(2), commit=Index(0))
    storage.set_hard_state(hard_state)
    conf_state = ConfState(voters=(NodeId(1), NodeId(2)), learners=(NodeId(3),))
    storage.apply_snapshot(snapshot_at(7, 2, conf_state))
    assert storage.initial_state() == (hard_state, conf_state)
    assert storage.hard_state == hard_state


@pytest.mark.parametrize(
    ("index", "outcome"),
    [(2, LogCompacted), (3, 3), (4, 4), (5, 5), (6, LogUnavailable)],
)
def test_term_is_known_from_compacted_entry_to_last(index: int, outcome: object) -> None:
    storage = storage_3_to_5()
    if isinstance(outcome, int):
        assert storage.term(Index(index)) == outcome
    else:
        with pytest.raises(outcome):  # type: ignore[call-overload]
            storage.term(Index(index))


def test_first_and_last_index() -> None:
    storage = storage_3_to_5()
    assert (storage.first_index(), storage.last_index()) == (4, 5)
    storage.append([entry(6, 5)])
    assert (storage.first_index(), storage.last_index()) == (4, 6)
    storage.compact(Index(5))
    assert (storage.first_index(), storage.last_index()) == (6, 6)


def test_entries_ranges_and_errors() -> None:
    storage = storage_3_to_5()
    storage.append([entry(6, 6)])
    assert pairs(storage.entries(Index(4), Index(7), None)) == [(4, 4), (5, 5), (6, 6)]
    assert pairs(storage.entries(Index(5), Index(6), None)) == [(5, 5)]
    assert storage.entries(Index(7), Index(7), None) == ()
    with pytest.raises(LogCompacted):
        storage.entries(Index(3), Index(5), None)
    with pytest.raises(LogUnavailable):
        storage.entries(Index(5), Index(8), None)


@pytest.mark.parametrize(
    ("max_size_bytes", "want"),
    [
        (None, [4, 5, 6, 7]),
        (0, [4]),  # over the limit, yet never empty
        (9, [4]),
        (10, [4, 5]),  # exactly at the limit: included
        (14, [4, 5]),
        (15, [4, 5, 6]),
        (19, [4, 5, 6]),
        (20, [4, 5, 6, 7]),
        (1000, [4, 5, 6, 7]),
    ],
)
def test_entries_honour_the_soft_size_limit(max_size_bytes: int | None, want: list[int]) -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(snapshot_at(3, 1))
    storage.append([entry(i, 1, size_bytes=5) for i in range(4, 8)])
    got = storage.entries(Index(4), Index(8), max_size_bytes)
    assert [e.index for e in got] == want


def test_limit_size_counts_running_total_and_keeps_free_entries() -> None:
    entries = (entry(1, 1, 4), entry(2, 1, 0), entry(3, 1, 0), entry(4, 1, 1))
    assert limit_size(entries, 4) == entries[:3]
    assert limit_size(entries, 5) == entries
    assert limit_size((), 0) == ()
    assert limit_size(entries[:1], 0) == entries[:1]
    assert entries_size_bytes(entries) == 5


def test_compact_moves_the_dummy_forward() -> None:
    storage = storage_3_to_5()
    storage.append([entry(6, 5)])
    storage.compact(Index(4))
    assert stored(storage) == [(4, 4), (5, 5), (6, 5)]
    with pytest.raises(LogCompacted):
        storage.term(Index(3))
    storage.compact(Index(6))
    assert stored(storage) == [(6, 5)]
    assert (storage.first_index(), storage.last_index()) == (7, 6)
    storage.check_invariants()


@pytest.mark.parametrize("index", [2, 3])
def test_compact_of_compacted_index_raises(index: int) -> None:
    storage = storage_3_to_5()
    with pytest.raises(LogCompacted):
        storage.compact(Index(index))
    assert stored(storage) == [(3, 3), (4, 4), (5, 5)]


def test_compact_beyond_last_index_is_a_bug() -> None:
    with pytest.raises(AssertionError):
        storage_3_to_5().compact(Index(6))


def test_create_snapshot_records_term_membership_and_data() -> None:
    storage = storage_3_to_5()
    conf_state = ConfState(voters=(NodeId(1),))
    snapshot = storage.create_snapshot(Index(4), conf_state, b"sm")
    assert snapshot.metadata == SnapshotMetadata(
        index=Index(4), term=Term(4), conf_state=conf_state
    )
    assert snapshot.data == b"sm"
    assert storage.snapshot() == snapshot
    assert stored(storage) == [(3, 3), (4, 4), (5, 5)]  # the log is not compacted
    assert storage.initial_state()[1] == conf_state


@pytest.mark.parametrize("index", [3, 4])
def test_create_snapshot_not_newer_is_out_of_date(index: int) -> None:
    storage = storage_3_to_5()
    storage.create_snapshot(Index(4), ConfState())
    with pytest.raises(SnapshotOutOfDate):
        storage.create_snapshot(Index(index), ConfState())


def test_create_snapshot_below_compaction_raises_compacted() -> None:
    storage = storage_3_to_5()
    storage.append([entry(6, 5)])
    storage.compact(Index(5))
    with pytest.raises(LogCompacted):
        storage.create_snapshot(Index(4), ConfState())
    assert storage.create_snapshot(Index(5), ConfState()).metadata.term == 5


def test_create_snapshot_beyond_last_index_is_a_bug() -> None:
    with pytest.raises(AssertionError):
        storage_3_to_5().create_snapshot(Index(6), ConfState())


def test_apply_snapshot_replaces_the_log() -> None:
    storage = storage_3_to_5()
    storage.apply_snapshot(snapshot_at(9, 7))
    assert stored(storage) == [(9, 7)]
    assert (storage.first_index(), storage.last_index()) == (10, 9)
    storage.append([entry(10, 7)])
    assert stored(storage) == [(9, 7), (10, 7)]
    storage.check_invariants()


@pytest.mark.parametrize("index", [2, 3])
def test_apply_snapshot_not_newer_is_out_of_date(index: int) -> None:
    storage = storage_3_to_5()
    with pytest.raises(SnapshotOutOfDate):
        storage.apply_snapshot(snapshot_at(index, 9))
    assert stored(storage) == [(3, 3), (4, 4), (5, 5)]


@pytest.mark.parametrize(
    ("appended", "want"),
    [
        # The same entries again: nothing changes.
        ([(3, 3), (4, 4), (5, 5)], [(3, 3), (4, 4), (5, 5)]),
        # A conflicting suffix replaces ours from the conflict on.
        ([(3, 3), (4, 6), (5, 6)], [(3, 3), (4, 6), (5, 6)]),
        ([(4, 6)], [(3, 3), (4, 6)]),
        ([(5, 6)], [(3, 3), (4, 4), (5, 6)]),
        # Extending past the end.
        ([(3, 3), (4, 4), (5, 5), (6, 5)], [(3, 3), (4, 4), (5, 5), (6, 5)]),
        ([(6, 5)], [(3, 3), (4, 4), (5, 5), (6, 5)]),
        # A compacted prefix is skipped (even with another term there).
        ([(2, 3), (3, 3), (4, 5)], [(3, 3), (4, 5)]),
        ([(2, 2), (3, 9)], [(3, 3), (4, 4), (5, 5)]),
        # Wholly compacted: ignored.
        ([(1, 1), (2, 2)], [(3, 3), (4, 4), (5, 5)]),
        ([], [(3, 3), (4, 4), (5, 5)]),
    ],
)
def test_append(appended: list[tuple[int, int]], want: list[tuple[int, int]]) -> None:
    storage = storage_3_to_5()
    storage.append([entry(index, term) for index, term in appended])
    assert stored(storage) == want
    storage.check_invariants()


def test_append_leaving_a_gap_is_a_bug() -> None:
    with pytest.raises(AssertionError):
        storage_3_to_5().append([entry(7, 5)])


def test_append_of_non_contiguous_entries_is_a_bug() -> None:
    with pytest.raises(AssertionError):
        storage_3_to_5().append([entry(6, 5), entry(8, 5)])


def test_check_invariants_catches_decreasing_terms() -> None:
    storage = storage_3_to_5()
    storage.append([entry(6, 2)])
    with pytest.raises(AssertionError):
        storage.check_invariants()


def test_many_single_appends_then_compact() -> None:
    storage = MemoryStorage()
    for i in range(1, 20_001):
        storage.append([entry(i, 1)])
    assert storage.last_index() == 20_000
    storage.compact(Index(19_999))
    assert stored(storage) == [(19_999, 1), (20_000, 1)]
