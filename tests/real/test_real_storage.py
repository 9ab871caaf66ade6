"""DiskStorage: round trips, the write-side contract, compaction and snapshot
install, locking, and a ChainfireNode restarted from it (snapshot + log replay)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chainfire_core.mvcc.messages import PutRequest, RangeRequest, RangeResponse
from chainfire_core.node import ChainfireNode, NodeConfig
from chainfire_core.node_messages import ReadConsistency
from chainfire_core.raft.config import RaftConfig
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
from chainfire_core.raft.storage import LogCompacted, LogUnavailable, SnapshotOutOfDate
from chainfire_core.types import Index, NodeId, Term
from real.storage import (
    DiskStorage,
    StorageFailed,
    StorageLocked,
    StorageOptions,
)


def entries(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(term=Term(term), index=Index(i), data=b"v%d" % i) for i in range(lo, hi)]


def test_fresh_storage_reads_like_an_empty_memory_storage(tmp_path: Path) -> None:
    storage = DiskStorage.open(tmp_path / "new")
    assert storage.initial_state() == (HardState(), ConfState())
    assert (storage.first_index(), storage.last_index()) == (1, 0)
    assert storage.term(Index(0)) == 0
    assert storage.entries(Index(1), Index(1), None) == ()
    with pytest.raises(LogUnavailable):
        storage.term(Index(1))
    storage.close()


def test_round_trip_through_reopen(tmp_path: Path) -> None:
    change = ConfChange(changes=(ConfChangeSingle(type=ConfChangeType.ADD_LEARNER,
                                                  node_id=NodeId(4)),), context=b"ctx")
    written = [*entries(1, 50), Entry(term=Term(2), index=Index(50), conf_change=change)]
    storage = DiskStorage.open(tmp_path, StorageOptions(cached_entries_max=8))
    storage.save(HardState(term=Term(2), vote=NodeId(3), commit=Index(40)), written, None)
    storage.sync()
    storage.close()
    storage = DiskStorage.open(tmp_path, StorageOptions(cached_entries_max=8))
    assert storage.hard_state == HardState(term=Term(2), vote=NodeId(3), commit=Index(40))
    assert storage.entries(Index(1), Index(51), None) == tuple(written)
    assert storage.entries(Index(3), Index(51), 5) == tuple(written[2:4])  # 2 + 2 bytes fit
    assert storage.term(Index(50)) == 2
    assert storage.recovery.entries == 50
    storage.check_invariants()
    storage.close()


def test_unsynced_writes_are_lost_in_a_crash(tmp_path: Path) -> None:
    storage = DiskStorage.open(tmp_path)
    storage.save(HardState(term=Term(1), commit=Index(5)), entries(1, 6), None)
    storage.sync()
    storage.save(HardState(term=Term(2), vote=NodeId(2)), entries(6, 9, term=2), None)
    assert storage.last_index() == 8  # visible before the sync
    storage.abandon()
    with pytest.raises(StorageFailed):
        storage.sync()
    storage = DiskStorage.open(tmp_path)
    assert storage.last_index() == 5
    assert storage.hard_state == HardState(term=Term(1), commit=Index(5))
    storage.close()


def test_conflicting_append_replaces_the_tail(tmp_path: Path) -> None:
    storage = DiskStorage.open(tmp_path)
    storage.save(None, entries(1, 11), None)
    storage.save(None, entries(7, 9, term=3), None)
    storage.sync()
    storage.close()
    storage = DiskStorage.open(tmp_path)
    assert storage.last_index() == 8
    assert [e.term for e in storage.entries(Index(5), Index(9), None)] == [1, 1, 3, 3]
    storage.close()


def test_snapshot_install_replaces_the_log_atomically(tmp_path: Path) -> None:
    storage = DiskStorage.open(tmp_path)
    storage.save(HardState(term=Term(1), commit=Index(10)), entries(1, 11), None)
    storage.sync()
    snapshot = Snapshot(metadata=SnapshotMetadata(index=Index(100), term=Term(4),
                                                  conf_state=ConfState(voters=(NodeId(1),
                                                                               NodeId(2)))),
                        data=b"state" * 1000)
    storage.save(HardState(term=Term(4), commit=Index(100)), entries(101, 103, term=4), snapshot)
    storage.sync()
    with pytest.raises(SnapshotOutOfDate):
        storage.save(None, (), snapshot)
    storage.close()
    storage = DiskStorage.open(tmp_path)
    assert storage.snapshot() == snapshot
    assert storage.initial_state() == (HardState(term=Term(4), commit=Index(100)),
                                       snapshot.metadata.conf_state)
    assert (storage.first_index(), storage.last_index()) == (101, 102)
    assert storage.term(Index(100)) == 4
    with pytest.raises(LogCompacted):
        storage.entries(Index(100), Index(102), None)
    storage.close()


def test_compaction_drops_rows_and_survives_restart(tmp_path: Path) -> None:
    storage = DiskStorage.open(tmp_path, StorageOptions(cached_entries_max=4))
    storage.save(HardState(term=Term(1), commit=Index(999)), entries(1, 1000), None)
    storage.sync()
    snapshot = storage.create_snapshot(Index(900), ConfState(voters=(NodeId(1),)), b"sm@900")
    storage.compact(Index(850))
    with pytest.raises(LogCompacted):
        storage.compact(Index(850))
    with pytest.raises(SnapshotOutOfDate):
        storage.create_snapshot(Index(900), ConfState(), b"")
    storage.abandon()  # create_snapshot and compact are durable at once
    storage = DiskStorage.open(tmp_path, StorageOptions(cached_entries_max=4))
    assert storage.recovery.entries == 149  # restart reads the live log only
    assert storage.snapshot() == snapshot
    assert (storage.first_index(), storage.last_index()) == (851, 999)
    assert storage.term(Index(850)) == 1
    assert storage.entries(Index(851), Index(855), None) == tuple(entries(851, 855))
    storage.check_invariants()
    storage.close()


def test_a_second_process_is_locked_out(tmp_path: Path) -> None:
    storage = DiskStorage.open(tmp_path)
    with pytest.raises(StorageLocked):
        DiskStorage.open(tmp_path)
    storage.close()
    DiskStorage.open(tmp_path).close()


def test_a_failed_write_stops_the_storage(tmp_path: Path) -> None:
    storage = DiskStorage.open(tmp_path)
    storage._db.connection.close()  # the disk goes away under it
    with pytest.raises(StorageFailed):
        storage.save(None, entries(1, 3), None)
    with pytest.raises(StorageFailed):
        storage.sync()
    storage.abandon()


# -- a node over DiskStorage: recovery is snapshot + log replay ------------------------


class Driver:
    """The Ready contract with durable storage: save, sync, (send), answer, advance."""

    def __init__(self, data_dir: Path) -> None:
        self.storage = DiskStorage.open(data_dir)
        if self.storage.last_index() == 0:
            bootstrap = Snapshot(metadata=SnapshotMetadata(
                index=Index(1), term=Term(1), conf_state=ConfState(voters=(NodeId(1),))))
            self.storage.save(None, (), bootstrap)
            self.storage.sync()
        config = NodeConfig(raft=RaftConfig(id=NodeId(1)), snapshot_every_entries=20,
                            snapshot_catchup_entries=5)
        self.node = ChainfireNode(config, self.storage, random.Random(1))
        self.node.campaign()
        self.answers: dict[int, object] = {}
        self.drive()

    def drive(self) -> None:
        while self.node.has_ready():
            ready = self.node.ready()
            if ready.raft is not None:
                self.storage.save(ready.raft.hard_state, ready.raft.entries, ready.raft.snapshot)
                self.storage.sync()
            for response in ready.responses:
                self.answers[response.request_id] = response.response or response.error
            self.node.advance(ready)


def test_node_restarts_from_snapshot_and_log(tmp_path: Path) -> None:
    driver = Driver(tmp_path)
    for i in range(53):
        driver.node.submit(i, PutRequest(key=b"k%d" % (i % 7), value=b"v%d" % i))
        driver.drive()
    assert driver.storage.snapshot().metadata.index > 1  # the node snapshotted itself
    assert driver.storage.first_index() > 2  # and compacted
    driver.storage.abandon()  # kill -9: everything acknowledged was synced
    driver = Driver(tmp_path)
    driver.node.submit(100, RangeRequest(key=b"k", range_end=b"l"),
                       ReadConsistency.SERIALIZABLE)
    driver.drive()
    response = driver.answers[100]
    assert isinstance(response, RangeResponse)
    assert {kv.key: kv.value for kv in response.kvs} == {
        b"k%d" % k: b"v%d" % max(i for i in range(53) if i % 7 == k) for k in range(7)}
    driver.storage.close()


def test_sync_in_a_worker_thread_while_reading(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    storage = DiskStorage.open(tmp_path, StorageOptions(cached_entries_max=2))
    storage.save(None, entries(1, 200), None)
    storage.sync()
    with ThreadPoolExecutor(1) as pool:
        for first in range(200, 400, 10):
            storage.save(HardState(term=Term(1), commit=Index(first)), entries(first, first + 10),
                         None)
            pending = pool.submit(storage.sync)
            while not pending.done():  # the loop keeps reading old entries meanwhile
                assert storage.entries(Index(1), Index(50), None) == tuple(entries(1, 50))
            pending.result()
    storage.close()
    storage = DiskStorage.open(tmp_path)
    assert storage.last_index() == 399
    storage.close()
