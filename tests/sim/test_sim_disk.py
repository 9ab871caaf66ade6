"""SimDisk: what survives a crash, torn tails, corruption, bounded journals."""

from __future__ import annotations

import random
from collections import deque

import pytest

from chainfire_core.errors import DataError, InvalidRequest
from chainfire_core.mvcc.messages import PutRequest, RangeRequest
from chainfire_core.node import ChainfireNode, NodeConfig
from chainfire_core.node_messages import ClientResponse
from chainfire_core.raft.config import RaftConfig
from chainfire_core.raft.messages import (
    ConfState,
    Entry,
    HardState,
    Message,
    Snapshot,
    SnapshotMetadata,
)
from chainfire_core.raft.rawnode import Ready
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.types import Index, NodeId, Term
from sim.disk import (
    FOLD_AFTER_RECORDS,
    CorruptLog,
    DiskOptions,
    JournaledStorage,
    RecoveryReport,
    SimDisk,
    StorageImage,
)

N1, N2, N3 = NodeId(1), NodeId(2), NodeId(3)


# -- helpers --------------------------------------------------------------------------------


def bootstrap(ids: tuple[NodeId, ...]) -> MemoryStorage:
    storage = MemoryStorage()
    storage.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
        index=Index(1), term=Term(1), conf_state=ConfState(voters=ids))))
    return storage


def make_ready(*, entries: tuple[Entry, ...] = (), hard_state: HardState | None = None,
               snapshot: Snapshot | None = None) -> Ready:
    return Ready(soft_state=None, hard_state=hard_state, entries=entries, snapshot=snapshot,
                 committed_entries=(), messages=(), read_states=(), must_sync=True)


def run(lo: int, hi: int, term: int) -> tuple[Entry, ...]:
    """Entries lo..hi (inclusive) of `term`."""
    return tuple(Entry(term=Term(term), index=Index(i), data=b"e%d.%d" % (term, i))
                 for i in range(lo, hi + 1))


def new_disk(options: DiskOptions | None = None, seed: int = 0) -> SimDisk:
    return SimDisk(N1, random.Random(seed), options or DiskOptions(), bootstrap((N1,)))


class World:
    """N ChainfireNodes, each on a SimDisk, driven by the Ready contract:
    write, sync, then send, then advance."""

    def __init__(self, size: int, *, seed: int = 0, disk_options: DiskOptions | None = None,
                 snapshot_every_entries: int = 10_000,
                 snapshot_catchup_entries: int = 5_000) -> None:
        self.ids = tuple(NodeId(i) for i in range(1, size + 1))
        self.rng = random.Random(seed)
        self.snapshot_every_entries = snapshot_every_entries
        self.snapshot_catchup_entries = snapshot_catchup_entries
        self.disks = {node_id: SimDisk(node_id, random.Random(self.rng.random()),
                                       disk_options or DiskOptions(), bootstrap(self.ids))
                      for node_id in self.ids}
        self.nodes = {node_id: self.make(node_id) for node_id in self.ids}
        self.wire: deque[Message] = deque()
        self.cut: set[NodeId] = set()
        self.responses: dict[int, ClientResponse] = {}
        self.next_request_id = 1
        self.snapshots_installed: list[NodeId] = []

    def make(self, node_id: NodeId) -> ChainfireNode:
        config = NodeConfig(raft=RaftConfig(id=node_id),
                            snapshot_every_entries=self.snapshot_every_entries,
                            snapshot_catchup_entries=self.snapshot_catchup_entries)
        return ChainfireNode(config, self.disks[node_id].storage, random.Random(node_id))

    def pump(self, rounds: int = 1000) -> None:
        for _ in range(rounds):
            moved = False
            for node_id in self.ids:
                node, disk = self.nodes[node_id], self.disks[node_id]
                if not node.has_ready():
                    continue
                moved = True
                ready = node.ready()
                if ready.raft is not None:
                    disk.sync(disk.write(ready.raft))
                    if ready.raft.snapshot is not None:
                        self.snapshots_installed.append(node_id)
                self.wire.extend(ready.messages)
                for response in ready.responses:
                    self.responses[response.request_id] = response
                node.advance(ready)
                disk.check_invariants()
            while self.wire:
                moved = True
                message = self.wire.popleft()
                if message.sender not in self.cut and message.to not in self.cut:
                    self.nodes[message.to].step(message)
            if not moved:
                return

    def tick(self, ticks: int) -> None:
        for _ in range(ticks):
            for node_id in self.ids:
                self.nodes[node_id].tick()
            self.pump()

    def elect(self, node_id: NodeId = N1) -> None:
        self.nodes[node_id].campaign()
        self.pump()
        assert self.nodes[node_id].is_leader

    def put(self, node_id: NodeId, key: bytes, value: bytes) -> int:
        request_id = self.next_request_id
        self.next_request_id += 1
        self.nodes[node_id].submit(request_id, PutRequest(key=key, value=value))
        self.pump()
        return request_id

    def value(self, node_id: NodeId, key: bytes) -> bytes | None:
        kvs = self.nodes[node_id].sm.range(RangeRequest(key=key)).kvs
        return kvs[0].value if kvs else None

    def write_without_sync(self, node_id: NodeId) -> None:
        """Take the next Ready and write it; the fsync never completes."""
        ready = self.nodes[node_id].ready()
        assert ready.raft is not None
        self.disks[node_id].write(ready.raft)

    def restart(self, node_id: NodeId) -> tuple[int, RecoveryReport]:
        disk = self.disks[node_id]
        lost = disk.crash()
        disk.check_invariants()
        _, report = disk.recover()
        disk.check_invariants()
        self.nodes[node_id] = self.make(node_id)
        return lost, report


# -- options and latency --------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {"write_latency_ms": (-1.0, 1.0)},
    {"write_latency_ms": (2.0, 1.0)},
    {"fsync_latency_ms": (0.0, float("nan"))},
    {"fsync_latency_ms": (1.0,)},
])
def test_options_reject_bad_latency_ranges(options: dict[str, tuple[float, ...]]) -> None:
    with pytest.raises(InvalidRequest, match="latency_ms must be a range"):
        DiskOptions(**options)  # type: ignore[arg-type]


def test_io_delay_is_write_plus_fsync_drawn_from_the_disks_rng() -> None:
    options = DiskOptions(write_latency_ms=(1.0, 2.0), fsync_latency_ms=(10.0, 20.0))
    delays = [new_disk(options, seed=7).io_delay_ms() for _ in range(3)]
    assert len(set(delays)) == 1, "same seed, same draw"
    disk = new_disk(options, seed=7)
    draws = [disk.io_delay_ms() for _ in range(200)]
    assert all(11.0 <= d <= 22.0 for d in draws)
    assert len(set(draws)) == 200
    assert new_disk(DiskOptions(write_latency_ms=(0, 0), fsync_latency_ms=(3, 3))).io_delay_ms() \
        == 3.0


# -- what survives a crash ------------------------------------------------------------------


def test_the_storage_handed_in_is_durable() -> None:
    initial = bootstrap((N1,))
    initial.append(run(2, 4, 1))
    initial.set_hard_state(HardState(term=Term(1), vote=N1, commit=Index(3)))
    disk = SimDisk(N1, random.Random(0), DiskOptions(), initial)
    assert disk.storage is not initial and isinstance(disk.storage, JournaledStorage)
    assert disk.storage.image() == StorageImage.of(initial) == disk.durable_image()
    assert disk.crash() == 0
    storage, report = disk.recover()
    assert storage.image() == StorageImage.of(initial)
    assert report == RecoveryReport(records=1, torn_tail_truncated=False)


def test_synced_writes_survive_exactly_and_unsynced_ones_are_lost() -> None:
    disk = new_disk()
    live = disk.storage
    hard = HardState(term=Term(2), vote=N1, commit=Index(3))
    disk.sync(disk.write(make_ready(entries=run(2, 5, 2), hard_state=hard)))
    synced = live.image()
    seq = disk.write(make_ready(entries=run(6, 7, 2),
                                hard_state=HardState(term=Term(3), vote=N1, commit=Index(5))))
    assert disk.durable_seq == seq - 1
    assert (disk.durable_last_index(), disk.durable_hard_state()) == (5, hard)
    assert live.last_index() == 7
    assert disk.crash() == 2  # entries and hard state of the unsynced write
    recovered, report = disk.recover()
    assert recovered.image() == synced
    assert recovered.last_index() == 5 and recovered.hard_state == hard
    assert report == RecoveryReport(records=3, torn_tail_truncated=False)
    assert disk.storage is recovered and recovered is not live


def test_sync_covers_every_earlier_write() -> None:
    disk = new_disk()
    first = disk.write(make_ready(entries=run(2, 3, 1)))
    second = disk.write(make_ready(entries=run(4, 4, 1)))
    disk.sync(second)
    disk.sync(first)  # a late completion changes nothing
    assert disk.durable_seq == second and disk.durable_last_index() == 4
    assert disk.crash() == 0


def test_replay_reproduces_the_truncation_of_a_conflicting_suffix() -> None:
    disk = new_disk()
    disk.sync(disk.write(make_ready(entries=run(2, 6, 1))))
    disk.sync(disk.write(make_ready(entries=run(4, 5, 2))))  # a new leader cut 4..6
    synced = disk.storage.image()
    assert [e.term for e in synced.entries] == [1, 1, 1, 2, 2]
    disk.write(make_ready(entries=run(3, 3, 3)))  # unsynced: would cut 4..5 too
    assert disk.storage.last_index() == 3
    assert disk.durable_term_at(Index(5)) == 2 and disk.durable_term_at(Index(3)) == 1
    disk.crash()
    recovered, _ = disk.recover()
    assert recovered.image() == synced


def test_a_snapshot_from_the_leader_is_replayed_then_the_entries_after_it() -> None:
    disk = new_disk()
    disk.sync(disk.write(make_ready(entries=run(2, 4, 1))))
    snapshot = Snapshot(metadata=SnapshotMetadata(
        index=Index(10), term=Term(2), conf_state=ConfState(voters=(N1, N2))), data=b"sm")
    hard = HardState(term=Term(2), commit=Index(10))
    disk.sync(disk.write(make_ready(snapshot=snapshot, entries=run(11, 12, 2), hard_state=hard)))
    synced = disk.storage.image()
    disk.crash()
    recovered, _ = disk.recover()
    assert recovered.image() == synced
    assert recovered.snapshot() == snapshot and recovered.first_index() == 11
    assert recovered.hard_state == hard and recovered.last_index() == 12


def test_durable_queries_follow_syncs_and_compaction() -> None:
    disk = new_disk()
    assert disk.durable_term_at(Index(1)) == 1  # the bootstrap snapshot's index
    assert disk.durable_term_at(Index(2)) is None
    seq = disk.write(make_ready(entries=run(2, 8, 3)))
    assert disk.durable_term_at(Index(2)) is None and disk.durable_last_index() == 1
    disk.sync(seq)
    assert disk.durable_term_at(Index(8)) == 3 and disk.durable_last_index() == 8
    disk.storage.create_snapshot(Index(6), ConfState(voters=(N1,)), b"x")
    disk.storage.compact(Index(5))
    assert disk.durable_term_at(Index(4)) is None  # compacted
    assert disk.durable_term_at(Index(5)) == 3  # the last compacted index keeps its term
    assert disk.durable_image().snapshot.metadata.index == 6
    assert disk.durable_term_at(Index(9)) is None


# -- the node's own snapshots ---------------------------------------------------------------


def test_a_node_snapshot_is_durable_at_once_and_syncs_the_writes_before_it() -> None:
    disk = new_disk()
    live = disk.storage
    seq = disk.write(make_ready(entries=run(2, 9, 1), hard_state=HardState(
        term=Term(1), vote=N1, commit=Index(9))))
    live.create_snapshot(Index(8), ConfState(voters=(N1,)), b"state at 8")
    assert disk.durable_seq > seq
    live.compact(Index(6))
    assert disk.record_count == 1  # folded into one checkpoint
    expected = live.image()
    assert disk.crash() == 0
    recovered, report = disk.recover()
    assert recovered.image() == expected
    assert recovered.snapshot().data == b"state at 8" and recovered.first_index() == 7
    assert report.records == 1


def test_node_snapshots_bound_the_journal_and_survive_a_restart() -> None:
    world = World(1, snapshot_every_entries=5, snapshot_catchup_entries=2)
    world.elect()
    disk = world.disks[N1]
    most_records = 0
    for i in range(40):
        world.put(N1, b"k%d" % i, b"v%d" % i)
        most_records = max(most_records, disk.record_count)
    assert most_records <= 12, most_records  # 40 puts write over 80 records
    live = disk.storage.image()
    assert live.snapshot.metadata.index >= 35 and live.entries[0].index >= 33
    lost, report = world.restart(N1)
    assert lost == 0 and not report.torn_tail_truncated
    assert disk.storage.image() == live
    world.elect()
    assert [world.value(N1, b"k%d" % i) for i in range(40)] == [b"v%d" % i for i in range(40)]
    world.put(N1, b"after", b"restart")
    assert world.value(N1, b"after") == b"restart"


def test_many_durable_records_are_folded_into_the_checkpoint() -> None:
    disk = new_disk()
    disk.sync(disk.write(make_ready(entries=run(2, 2, 1))))
    for commit in range(3 * FOLD_AFTER_RECORDS):
        disk.sync(disk.write(make_ready(hard_state=HardState(term=Term(1),
                                                             commit=Index(commit % 2)))))
        assert disk.record_count <= FOLD_AFTER_RECORDS
    disk.check_invariants()
    expected = disk.storage.image()
    disk.crash()
    recovered, report = disk.recover()
    assert recovered.image() == expected
    assert report.records < FOLD_AFTER_RECORDS


# -- whole nodes ----------------------------------------------------------------------------


def test_an_acknowledged_put_survives_a_crash_and_an_unsynced_one_does_not() -> None:
    world = World(1)
    world.elect()
    acked = world.put(N1, b"k", b"acked")
    assert world.responses[acked].error is None
    world.nodes[N1].submit(99, PutRequest(key=b"lost", value=b"never acknowledged"))
    world.write_without_sync(N1)
    assert world.disks[N1].storage.last_index() > world.disks[N1].durable_last_index()
    lost, _ = world.restart(N1)
    assert lost >= 1
    assert 99 not in world.responses
    world.elect()
    assert world.value(N1, b"k") == b"acked"
    assert world.value(N1, b"lost") is None


def test_a_recovered_follower_catches_up_from_a_leader_snapshot() -> None:
    world = World(3, snapshot_every_entries=4, snapshot_catchup_entries=1)
    world.elect()
    for i in range(5):
        world.put(N1, b"a%d" % i, b"1")
    before = world.disks[N2].storage.image()
    lost, _ = world.restart(N2)
    assert lost == 0 and world.disks[N2].storage.image() == before
    world.cut = {N3}
    for i in range(20):
        world.put(N1, b"b%d" % i, b"2")
    world.cut = set()
    world.tick(5)
    assert world.snapshots_installed == [N3]
    disk3 = world.disks[N3]
    expected = disk3.storage.image()
    world.restart(N3)
    assert disk3.storage.image() == expected
    world.put(N1, b"c", b"3")
    world.tick(3)
    for node_id in world.ids:
        assert world.value(node_id, b"b19") == b"2" and world.value(node_id, b"c") == b"3"
        world.nodes[node_id].check_invariants()


# -- torn writes and corruption -------------------------------------------------------------


def crashed_with_unsynced_write(seed: int, options: DiskOptions) -> SimDisk:
    disk = new_disk(options, seed)
    disk.sync(disk.write(make_ready(entries=run(2, 4, 1))))
    disk.sync(disk.write(make_ready(hard_state=HardState(term=Term(1), commit=Index(4)))))
    disk.write(make_ready(entries=run(5, 6, 1)))
    disk.crash()
    disk.check_invariants()
    return disk


def test_a_torn_tail_is_truncated_and_reported() -> None:
    outcomes = []
    for seed in range(16):
        disk = crashed_with_unsynced_write(seed, DiskOptions(torn_writes=True))
        durable = disk.durable_image()
        torn = disk.record_count == 4  # checkpoint, entries, hard state, torn entries
        recovered, report = disk.recover()
        assert report.torn_tail_truncated == torn
        assert recovered.image() == durable and recovered.last_index() == 4
        assert disk.record_count == 3
        outcomes.append(torn)
    assert True in outcomes and False in outcomes


def test_without_torn_writes_a_crash_leaves_only_durable_records() -> None:
    for seed in range(8):
        disk = crashed_with_unsynced_write(seed, DiskOptions())
        assert disk.record_count == 3
        assert not disk.recover()[1].torn_tail_truncated


def test_corruption_anywhere_raises_corrupt_log_and_never_starts() -> None:
    positions = set()
    for seed in range(24):
        options = DiskOptions(torn_writes=True, corruption=True)
        disk = crashed_with_unsynced_write(seed, options)
        position = disk.corrupt_random_record()
        assert position is not None and 0 <= position < 3
        positions.add(position)
        with pytest.raises(CorruptLog) as raised:
            disk.recover()
        assert raised.value.record_index == position and raised.value.node_id == N1
        assert isinstance(raised.value, DataError) and raised.value.grpc_code == "DATA_LOSS"
        assert disk.crashed
        with pytest.raises(CorruptLog):
            disk.recover()  # still refuses
    # The checkpoint, a middle record, and the last durable record (which a
    # torn write could not have produced) are all caught.
    assert positions == {0, 1, 2}


def test_corruption_of_a_live_disk_is_found_at_the_next_restart() -> None:
    world = World(1, disk_options=DiskOptions(corruption=True))
    world.elect()
    world.put(N1, b"k", b"v")
    assert world.disks[N1].corrupt_random_record() is not None
    with pytest.raises(CorruptLog):
        world.restart(N1)


def test_corruption_needs_the_option() -> None:
    with pytest.raises(AssertionError, match="corruption"):
        new_disk().corrupt_random_record()


# -- random schedules against a model -------------------------------------------------------


def random_ready(rng: random.Random, live: JournaledStorage, term: int) -> Ready:
    snapshot = None
    # Raft never rewrites what a snapshot covers (it is committed).
    start = rng.randint(live.snapshot().metadata.index + 1, live.last_index() + 1)
    if rng.random() < 0.08:
        index = max(live.snapshot().metadata.index + 1, live.last_index() + rng.randint(-2, 3))
        snapshot = Snapshot(metadata=SnapshotMetadata(
            index=Index(index), term=Term(term), conf_state=ConfState(voters=(N1,))),
            data=b"leader %d" % index)
        start = index + 1
    entries = run(start, start + rng.randint(-1, 3), term)
    hard_state = None
    if rng.random() < 0.5:
        hard_state = HardState(term=Term(term), vote=N1, commit=Index(rng.randint(0, 9)))
    return make_ready(entries=entries, hard_state=hard_state, snapshot=snapshot)


def node_snapshot(rng: random.Random, live: JournaledStorage) -> bool:
    low, high = live.snapshot().metadata.index + 1, live.last_index()
    if low > high:
        return False
    index = Index(rng.randint(low, high))
    live.create_snapshot(index, ConfState(voters=(N1,)), b"node %d" % index)
    if rng.random() < 0.7:
        live.compact(Index(rng.randint(live.first_index(), index)))
    return True


@pytest.mark.parametrize("seed", range(25))
def test_random_schedules_recover_the_state_of_the_last_sync(seed: int) -> None:
    rng = random.Random(seed)
    disk = new_disk(DiskOptions(torn_writes=True), seed)
    durable = disk.durable_image()
    images: dict[int, StorageImage] = {}  # after each unsynced write, by seq
    term = 1
    for _ in range(300):
        roll = rng.random()
        if roll < 0.05:
            term += 1
        elif roll < 0.55:
            seq = disk.write(random_ready(rng, disk.storage, term))
            images[seq] = disk.storage.image()
        elif roll < 0.8 and images:
            seq = rng.choice(sorted(images))
            disk.sync(seq)
            durable = images[seq]
            images = {s: image for s, image in images.items() if s > seq}
        elif roll < 0.9 and node_snapshot(rng, disk.storage):
            durable, images = disk.storage.image(), {}
        elif roll >= 0.95:
            lost = disk.crash()
            assert images or lost == 0
            recovered, _ = disk.recover()
            assert recovered.image() == durable
            images = {}
        disk.check_invariants()
        assert disk.durable_image() == durable
        assert disk.durable_hard_state() == durable.hard_state


def test_the_same_seed_gives_the_same_faults() -> None:
    def run_once(seed: int) -> tuple[object, ...]:
        disk = crashed_with_unsynced_write(seed, DiskOptions(torn_writes=True, corruption=True))
        return disk.record_count, disk.corrupt_random_record(), disk.io_delay_ms()

    assert [run_once(seed) for seed in range(6)] == [run_once(seed) for seed in range(6)]


# -- misuse is caught -----------------------------------------------------------------------


def test_writes_bypassing_the_disk_are_refused() -> None:
    disk = new_disk()
    with pytest.raises(AssertionError, match=r"through SimDisk\.write"):
        disk.storage.append(run(2, 2, 1))


def test_a_crashed_disk_and_its_dead_storage_refuse_writes() -> None:
    disk = new_disk()
    dead = disk.storage
    seq = disk.write(make_ready(entries=run(2, 5, 1)))
    disk.crash()
    with pytest.raises(AssertionError, match="crashed"):
        disk.write(make_ready(entries=run(2, 2, 1)))
    with pytest.raises(AssertionError, match="crashed"):
        disk.sync(seq)
    with pytest.raises(AssertionError, match="crashed"):
        _ = disk.storage
    disk.recover()
    with pytest.raises(AssertionError, match="lost in a crash"):
        disk.sync(seq)  # the fsync of the dead process cannot complete now
    with pytest.raises(AssertionError, match="dead process"):
        dead.create_snapshot(Index(3), ConfState(voters=(N1,)))
