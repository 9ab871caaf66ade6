"""DiskStorage behaves as MemoryStorage on random operation sequences, and a
crash (closing without sync) leaves exactly the state of the last sync."""

from __future__ import annotations

import copy
import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from chainfire_core.raft.messages import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
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
    SnapshotOutOfDate,
)
from chainfire_core.types import Index, NodeId, Term
from real.storage import DiskStorage, StorageOptions

payloads = st.binary(max_size=24)
conf_changes = st.none() | st.builds(
    lambda node, kind: ConfChange(changes=(ConfChangeSingle(type=kind, node_id=NodeId(node)),)),
    st.integers(1, 5), st.sampled_from(ConfChangeType))
conf_states = st.builds(lambda voters: ConfState(voters=tuple(sorted(voters))),
                        st.sets(st.integers(1, 5).map(NodeId), max_size=3))


class StorageMachine(RuleBasedStateMachine):
    """The real storage against the model, plus the model's state at the last sync."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="cf-storage-model-")
        self.model = MemoryStorage()
        self.durable = copy.deepcopy(self.model)
        self.options = StorageOptions(unsafe_no_fsync=True)
        self.disk = DiskStorage.open(self.directory, self.options)

    @initialize(cache=st.integers(1, 6))
    def small_cache(self, cache: int) -> None:
        # A small cache makes most reads go to the database.
        self.disk.close()
        self.options = StorageOptions(unsafe_no_fsync=True, cached_entries_max=cache)
        self.disk = DiskStorage.open(self.directory, self.options)

    def teardown(self) -> None:
        self.disk.abandon()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- writes --------------------------------------------------------------------

    @rule(back=st.integers(0, 4), count=st.integers(0, 6), bump=st.integers(0, 2),
          data=st.lists(payloads, min_size=6, max_size=6), change=conf_changes)
    def append(self, back: int, count: int, bump: int, data: list[bytes],
               change: ConfChange | None) -> None:
        # Raft never truncates what a snapshot covers (it is committed).
        start = max(self.model.last_index() + 1 - back, self.model.snapshot().metadata.index + 1)
        # Terms never decrease along the log (compacted entries are skipped).
        previous_term = self.model.term(Index(max(start - 1, self.model.first_index() - 1)))
        term = Term(previous_term + bump)
        entries = [Entry(term=term, index=Index(start + k), data=data[k],
                         conf_change=change if k == 0 else None) for k in range(count)]
        self.model.append(entries)
        self.disk.append(entries)

    @rule(term=st.integers(0, 9), vote=st.integers(0, 5), commit=st.integers(0, 40))
    def set_hard_state(self, term: int, vote: int, commit: int) -> None:
        hard = HardState(term=Term(term), vote=NodeId(vote), commit=Index(commit))
        self.model.set_hard_state(hard)
        self.disk.set_hard_state(hard)

    @rule(ahead=st.integers(-2, 6), term=st.integers(0, 9), conf=conf_states,
          data=payloads)
    def apply_snapshot(self, ahead: int, term: int, conf: ConfState, data: bytes) -> None:
        index = Index(max(self.model.last_index() + ahead, 0))
        snapshot = Snapshot(metadata=SnapshotMetadata(index=index, term=Term(term),
                                                      conf_state=conf), data=data)
        try:
            self.model.apply_snapshot(snapshot)
        except SnapshotOutOfDate:
            with pytest.raises(SnapshotOutOfDate):
                self.disk.apply_snapshot(snapshot)
            return
        self.disk.apply_snapshot(snapshot)

    @precondition(lambda self: self.model.last_index() > self.model.snapshot().metadata.index)
    @rule(back=st.integers(0, 5), conf=conf_states, data=payloads)
    def create_snapshot(self, back: int, conf: ConfState, data: bytes) -> None:
        low = max(self.model.snapshot().metadata.index + 1, self.model.first_index() - 1)
        index = Index(max(self.model.last_index() - back, low))
        assert self.disk.create_snapshot(index, conf, data) == \
            self.model.create_snapshot(index, conf, data)
        self.durable = copy.deepcopy(self.model)  # create_snapshot syncs

    @rule(back=st.integers(0, 5))
    def compact(self, back: int) -> None:
        index = Index(self.model.last_index() - back)
        try:
            self.model.compact(index)
        except LogCompacted:
            with pytest.raises(LogCompacted):
                self.disk.compact(index)
            return
        self.disk.compact(index)
        self.durable = copy.deepcopy(self.model)  # compact syncs

    @rule()
    def sync(self) -> None:
        self.disk.sync()
        self.durable = copy.deepcopy(self.model)

    @rule()
    def reopen(self) -> None:
        self.disk.close()  # syncs
        self.durable = copy.deepcopy(self.model)
        self.disk = DiskStorage.open(self.directory, self.options)

    @rule()
    def crash(self) -> None:
        self.disk.abandon()
        self.model = copy.deepcopy(self.durable)
        self.disk = DiskStorage.open(self.directory, self.options)

    # -- reads -------------------------------------------------------------------

    @rule(lo_back=st.integers(-1, 8), span=st.integers(0, 8),
          limit=st.none() | st.integers(0, 60))
    def read_range(self, lo_back: int, span: int, limit: int | None) -> None:
        lo = Index(max(self.model.last_index() - lo_back, 0))
        hi = Index(lo + span)
        try:
            expected = self.model.entries(lo, hi, limit)
        except (LogCompacted, LogUnavailable) as error:
            with pytest.raises(type(error)):
                self.disk.entries(lo, hi, limit)
            return
        assert self.disk.entries(lo, hi, limit) == expected

    @invariant()
    def same_state(self) -> None:
        disk, model = self.disk, self.model
        assert disk.first_index() == model.first_index()
        assert disk.last_index() == model.last_index()
        assert disk.initial_state() == model.initial_state()
        assert disk.snapshot() == model.snapshot()
        for i in range(model.first_index() - 1, model.last_index() + 1):
            assert disk.term(Index(i)) == model.term(Index(i))
        for beyond in (model.first_index() - 2, model.last_index() + 1):
            if beyond >= 0:
                error = LogCompacted if beyond < model.first_index() else LogUnavailable
                with pytest.raises(error):
                    disk.term(Index(beyond))
        assert disk.entries(model.first_index(), Index(model.last_index() + 1), None) == \
            model.entries(model.first_index(), Index(model.last_index() + 1), None)
        disk.check_invariants()
        model.check_invariants()


StorageMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50,
                                            deadline=None)
test_real_storage_matches_memory_storage = StorageMachine.TestCase
