"""SqliteBackend (state.db) and the node's recovery from it: the backend
answers as MemoryBackend does; a state machine over it reopens to the same
state; a node restarts from it without decoding the snapshot; a deleted,
stale, foreign or corrupt state.db is rebuilt from the snapshot and the log;
a crash between the log's fsync and the backend's commit replays the log."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest

from chainfire_core.alarms import AlarmAction, AlarmRequest, AlarmType
from chainfire_core.errors import ChainfireError
from chainfire_core.lease.messages import (
    LeaseCheckpoint,
    LeaseCheckpointRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
)
from chainfire_core.mvcc.messages import (
    CompactionRequest,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    RangeResponse,
    ResponseHeader,
)
from chainfire_core.node import ChainfireNode
from chainfire_core.node_messages import MemberListRequest, MemberResponse, ReadConsistency
from chainfire_core.quota import QuotaListRequest, QuotaSetRequest
from chainfire_core.state_machine import StateMachine
from chainfire_core.storage import BatchDelete, BatchPut, MemoryBackend
from chainfire_core.types import NodeId, Revision
from real.bootstrap import build_node
from real.config import load_config
from real.recovery import CORRUPT_SUFFIX, open_backend
from real.storage import DiskStorage
from real.storage.mvcc_backend import STATE_DB_NAME, SqliteBackend

# -- the backend on its own -------------------------------------------------------------


def test_backend_answers_as_the_memory_backend(tmp_path: Path) -> None:
    rng = random.Random(7)
    disk, memory = SqliteBackend.open(tmp_path), MemoryBackend()
    for step in range(3000):
        bucket = rng.choice(["a", "b", "key"])
        key = bytes([rng.randrange(40)]) * rng.randrange(1, 3)
        roll = rng.random()
        if roll < 0.5:
            value = b"v%d" % step
            disk.put(bucket, key, value)
            memory.put(bucket, key, value)
        elif roll < 0.7:
            disk.delete(bucket, key)
            memory.delete(bucket, key)
        elif roll < 0.8:
            ops = [BatchPut(bucket=bucket, key=key, value=b"batch"),
                   BatchDelete(bucket=bucket, key=key[:1])]
            disk.write_batch(ops)
            memory.write_batch(ops)
        if step % 97 == 0:
            disk.commit()
        start, end = sorted([bytes([rng.randrange(40)]), bytes([rng.randrange(40)])])
        limit = rng.choice([0, 1, 5])
        assert list(disk.range(bucket, start, end, limit=limit)) == list(
            memory.range(bucket, start, end, limit=limit))
        assert disk.get(bucket, key) == memory.get(bucket, key)
        keys = [bytes([k]) for k in range(0, 40, 3)]
        assert disk.get_many(bucket, keys) == memory.get_many(bucket, keys)
        assert disk.count(bucket) == memory.count(bucket)
    assert disk.snapshot() == memory.snapshot()
    disk.commit()
    disk.close()
    reopened = SqliteBackend.open(tmp_path)
    assert reopened.snapshot() == memory.snapshot()
    reopened.restore(MemoryBackend().snapshot())
    assert reopened.count("a") == 0
    reopened.close()  # not committed: the restore is lost
    assert SqliteBackend.open(tmp_path).snapshot() == memory.snapshot()


def test_long_ranges_page_through(tmp_path: Path) -> None:
    disk = SqliteBackend.open(tmp_path)
    disk.write_batch([BatchPut(bucket="k", key=i.to_bytes(4, "big"), value=b"x")
                      for i in range(5000)])
    assert len(list(disk.range("k", b""))) == 5000
    assert len(list(disk.range("k", b"", limit=2500))) == 2500
    assert len(disk.get_many("k", [i.to_bytes(4, "big") for i in range(1200)])) == 1200


def _commands() -> list[object]:
    return [
        PutRequest(key=b"a", value=b"1"),
        LeaseGrantRequest(ttl_s=60),
        PutRequest(key=b"b", value=b"2", lease=1),
        LeaseGrantRequest(ttl_s=30, id=77),
        PutRequest(key=b"c", value=b"3", lease=77),
        LeaseCheckpointRequest(checkpoints=(LeaseCheckpoint(id=77, remaining_ttl_s=12),)),
        PutRequest(key=b"a", value=b"4"),
        DeleteRangeRequest(key=b"c"),
        LeaseRevokeRequest(id=77),
        CompactionRequest(revision=3),
        LeaseGrantRequest(ttl_s=90),
        QuotaSetRequest(prefix=b"q/", max_keys=2),
        AlarmRequest(action=AlarmAction.ACTIVATE, member_id=NodeId(1),
                     alarm=AlarmType.CORRUPT),
    ]


def test_state_machine_reopens_from_the_backend(tmp_path: Path) -> None:
    backend = SqliteBackend.open(tmp_path)
    disk, memory = StateMachine(backend=backend), StateMachine()
    for index, command in enumerate(_commands(), start=2):
        for machine in (disk, memory):
            with contextlib.suppress(ChainfireError):  # a refused command takes its index
                machine.apply(command, now_ms=0, index=index, term=3)  # type: ignore[arg-type]
    backend.commit()
    backend.close()
    reopened = StateMachine(backend=SqliteBackend.open(tmp_path))
    assert (reopened.applied_index, reopened.applied_term) == (memory.applied_index, 3)
    assert reopened.snapshot() == memory.snapshot()
    assert reopened.lessor.to_records() == memory.lessor.to_records()
    assert reopened.lessor.next_id == memory.lessor.next_id
    assert reopened.lessor.keys(1) == (b"b",)
    get = AlarmRequest(action=AlarmAction.GET)
    assert reopened.serve_read(get) == memory.serve_read(get)
    assert reopened.alarms.get()
    assert reopened.quotas.list(ResponseHeader(revision=Revision(1))).quotas
    assert reopened.serve_read(QuotaListRequest()) == memory.serve_read(QuotaListRequest())
    reopened.check_invariants(deep=True)


# -- a node restarted from its data directory -----------------------------------------


class Member:
    """One node over a data directory, driven by hand (persist, apply, commit)."""

    def __init__(self, data_dir: Path, *, snapshot_count: int = 20) -> None:
        self.config = load_config(["--name", "solo", "--data-dir", str(data_dir),
                                   "--snapshot-count", str(snapshot_count)], {})
        self.storage = DiskStorage.open(data_dir)
        self.backend = open_backend(data_dir)
        self.node: ChainfireNode = build_node(self.config, self.storage, backend=self.backend,
                                              rng=random.Random(1))
        self.answers: dict[int, object] = {}
        self.node.campaign()
        self.drive()

    def drive(self, *, commit: bool = True) -> None:
        while self.node.has_ready():
            ready = self.node.ready()
            if ready.raft is not None:
                self.storage.save(ready.raft.hard_state, ready.raft.entries, ready.raft.snapshot)
                self.storage.sync()
            for response in ready.responses:
                self.answers[response.request_id] = response.response or response.error
            self.node.advance(ready)
            if commit:
                self.backend.commit()

    def put(self, first: int, count: int, *, commit: bool = True) -> None:
        for i in range(first, first + count):
            self.node.submit(i, PutRequest(key=b"k%d" % (i % 13), value=b"v%d" % i))
            self.drive(commit=commit)

    def read_all(self) -> dict[bytes, bytes]:
        self.node.submit(10**9, RangeRequest(key=b"\0", range_end=b"\xff"),
                         ReadConsistency.SERIALIZABLE)
        self.drive()
        response = self.answers.pop(10**9)
        assert isinstance(response, RangeResponse)
        return {kv.key: kv.value for kv in response.kvs}

    def kill(self) -> None:
        self.backend.abandon()
        self.storage.abandon()


def expected(count: int) -> dict[bytes, bytes]:
    return {b"k%d" % k: b"v%d" % max(i for i in range(count) if i % 13 == k)
            for k in range(13)}


def test_restart_uses_the_backend_not_the_snapshot(tmp_path: Path) -> None:
    member = Member(tmp_path)
    member.put(0, 75)
    assert member.storage.snapshot().metadata.index > 1  # it snapshotted and compacted
    before, revision = member.read_all(), member.node.sm.revision
    member.kill()
    member = Member(tmp_path)
    assert member.node.sm.snapshot_restores == 0  # the snapshot was not decoded
    assert member.read_all() == before == expected(75)
    assert member.node.sm.revision == revision
    members = MemberRequestHelper.list(member)
    assert [m.name for m in members.members] == ["solo"]  # from the backend's record
    member.put(75, 10)  # and carries on
    assert member.read_all() == expected(85)
    member.node.check_invariants()
    member.kill()


class MemberRequestHelper:
    @staticmethod
    def list(member: Member) -> MemberResponse:
        member.node.submit(10**8, MemberListRequest())
        member.drive()
        response = member.answers.pop(10**8)
        assert isinstance(response, MemberResponse)
        return response


def test_backend_deleted_is_rebuilt_from_snapshot_and_log(tmp_path: Path) -> None:
    member = Member(tmp_path)
    member.put(0, 57)
    member.kill()
    for name in (STATE_DB_NAME, STATE_DB_NAME + "-wal", STATE_DB_NAME + "-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    member = Member(tmp_path)
    assert member.node.sm.snapshot_restores == 1
    assert member.read_all() == expected(57)
    member.kill()
    member = Member(tmp_path)  # the rebuilt backend is used next time
    assert member.node.sm.snapshot_restores == 0
    assert member.read_all() == expected(57)
    member.kill()


def test_crash_between_log_sync_and_backend_commit_replays_the_log(tmp_path: Path) -> None:
    member = Member(tmp_path, snapshot_count=1000)
    member.put(0, 40)
    member.put(40, 15, commit=False)  # synced in raft.db, applied, never committed
    member.kill()
    member = Member(tmp_path, snapshot_count=1000)
    assert member.node.sm.snapshot_restores == 0  # backend behind, but the log covers it
    assert member.read_all() == expected(55)
    member.kill()


def test_backend_behind_the_snapshot_falls_back(tmp_path: Path) -> None:
    member = Member(tmp_path, snapshot_count=10)
    member.put(0, 5)
    member.put(5, 60, commit=False)  # the snapshot and compaction moved past the backend
    member.kill()
    member = Member(tmp_path, snapshot_count=10)
    assert member.node.sm.snapshot_restores == 1
    assert member.read_all() == expected(65)
    member.kill()


def test_backend_from_another_history_is_not_used(tmp_path: Path) -> None:
    member = Member(tmp_path / "one")
    member.put(0, 30)
    member.kill()
    other = Member(tmp_path / "two")
    other.put(100, 60)
    other.kill()
    # one's raft.db with two's state.db: two is past one's log, so rebuilt
    (tmp_path / "one" / STATE_DB_NAME).unlink()
    (tmp_path / "two" / STATE_DB_NAME).rename(tmp_path / "one" / STATE_DB_NAME)
    member = Member(tmp_path / "one")
    assert member.node.sm.snapshot_restores == 1
    assert member.read_all() == expected(30)
    member.kill()


@pytest.mark.parametrize("damage", ["garbage", "foreign"])
def test_corrupt_backend_is_moved_aside_and_rebuilt(tmp_path: Path, damage: str) -> None:
    member = Member(tmp_path)
    member.put(0, 33)
    member.kill()
    path = tmp_path / STATE_DB_NAME
    for extra in (STATE_DB_NAME + "-wal", STATE_DB_NAME + "-shm"):
        (tmp_path / extra).unlink(missing_ok=True)
    if damage == "garbage":
        path.write_bytes(b"not a database at all" * 100)
    else:
        import sqlite3
        path.unlink()
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    member = Member(tmp_path)
    assert (tmp_path / (STATE_DB_NAME + CORRUPT_SUFFIX)).exists()
    assert member.node.sm.snapshot_restores == 1
    assert member.read_all() == expected(33)
    member.kill()
