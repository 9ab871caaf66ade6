"""Maintenance and backups end to end: Snapshot / restore, HashKV, Hash,
Defragment, MoveLeader, against three-process `chainfire serve` clusters,
through the generated stubs, `chainfire snapshot` and (when installed)
etcd 3.4's etcdctl; and the backup file's own checks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from real_cluster_harness import Cluster, cluster_argvs, start, stop

from chainfire_core.mvcc.messages import PutRequest
from chainfire_core.node_messages import Member
from chainfire_core.state_machine import StateMachine
from chainfire_core.types import NodeId
from real.backup import BackupError, backup_bytes, info, restore_data_dir, verify
from real.etcdpb import rpc_pb2, rpc_pb2_grpc
from real.server import main
from real.storage import DiskStorage

ETCDCTL = shutil.which("etcdctl")


# -- the backup file ----------------------------------------------------------------


def state_with_keys(count: int) -> StateMachine:
    state = StateMachine()
    for i in range(count):
        state.apply(PutRequest(key=f"k{i:03}".encode(), value=b"v" * i), now_ms=0, index=i + 2)
    return state


def test_backup_round_trip_and_status(tmp_path: Path) -> None:
    state = state_with_keys(20)
    data = backup_bytes(state)
    assert data[-32:] == hashlib.sha256(data[:-32]).digest()
    assert len(data) % 512 == 32  # what etcdctl snapshot save checks
    again = verify(data)
    assert again.snapshot() == state.snapshot()
    path = tmp_path / "b.db"
    path.write_bytes(data)
    found = info(path)
    assert (found.revision, found.total_keys, found.total_bytes) == (
        state.revision, 20, len(data))
    assert found.applied_index == state.applied_index == 21


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "not a backup"])
def test_backup_damage_is_refused(damage: str) -> None:
    data = bytearray(backup_bytes(state_with_keys(5)))
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        expected = "SHA-256 mismatch"
    elif damage == "truncate":
        del data[-100:]
        expected = "SHA-256 mismatch"
    elif damage == "empty":
        data = bytearray()
        expected = "too short"
    else:
        body = b"hello world" * 10
        data = bytearray(body + hashlib.sha256(body).digest())
        expected = "not a valid Chainfire backup"
    with pytest.raises(BackupError, match=expected):
        verify(bytes(data))


def test_skip_hash_check_still_refuses_a_corrupt_body() -> None:
    state = state_with_keys(5)
    data = bytearray(backup_bytes(state))
    data[-1] ^= 0xFF  # only the trailing digest: the body is intact
    assert verify(bytes(data), skip_hash_check=True).snapshot() == state.snapshot()
    data[40] ^= 0xFF  # now the body too: its own framing digest catches it
    with pytest.raises(BackupError, match="not a valid Chainfire backup"):
        verify(bytes(data), skip_hash_check=True)


def test_restore_refuses_an_existing_data_dir_and_leaves_nothing_on_a_bad_file(
        tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    good.write_bytes(backup_bytes(state_with_keys(3)))
    members = (Member(id=NodeId(7), name="a", peer_urls=("http://127.0.0.1:1",)),)
    (tmp_path / "taken").mkdir()
    with pytest.raises(BackupError, match="exists"):
        restore_data_dir(good, tmp_path / "taken", members)
    bad = tmp_path / "bad.db"
    bad.write_bytes(good.read_bytes()[:-1])
    with pytest.raises(BackupError, match="SHA-256 mismatch"):
        restore_data_dir(bad, tmp_path / "new", members)
    assert not (tmp_path / "new").exists()
    snapshot = restore_data_dir(good, tmp_path / "new", members)
    assert snapshot.metadata.index == 4 and snapshot.metadata.conf_state.voters == (7,)
    storage = DiskStorage.open(tmp_path / "new")
    try:
        assert storage.snapshot().metadata == snapshot.metadata
    finally:
        storage.close()


def test_snapshot_cli_usage_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    assert main(["snapshot"]) == 2
    assert main(["snapshot", "status"]) == 2
    assert main(["snapshot", "status", str(tmp_path / "missing.db")]) == 1
    assert "cannot read the backup" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"x" * 64)
    assert main(["snapshot", "restore", str(corrupt), "--data-dir", str(tmp_path / "d")]) == 1
    assert "SHA-256 mismatch" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    assert main(["snapshot", "restore", str(corrupt), "--initial-cluster-state", "old"]) == 2


# -- live clusters ------------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Cluster]:
    base = tmp_path / "source"
    base.mkdir()
    argvs, endpoints = cluster_argvs(base, ["s1", "s2", "s3"])
    cluster = start(base, argvs, endpoints)
    try:
        yield cluster
    finally:
        stop(cluster)


def put_load(cluster: Cluster, stop_event: threading.Event, counter: list[int]) -> None:
    kv = cluster.kv(cluster.leader())
    i = 0
    while not stop_event.is_set():
        try:
            kv.Put(rpc_pb2.PutRequest(key=f"load/{i % 50:02}".encode(),
                                      value=f"value {i}".encode()), timeout=2)
            i += 1
        except grpc.RpcError:
            time.sleep(0.05)
    counter.append(i)


def all_kvs(kv: rpc_pb2_grpc.KVStub, revision: int = 0) -> tuple[int, list[tuple[object, ...]]]:
    response = kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", revision=revision),
                        timeout=5)
    return response.header.revision, [
        (kv_.key, kv_.value, kv_.create_revision, kv_.mod_revision, kv_.version, kv_.lease)
        for kv_ in response.kvs]


def test_snapshot_save_under_load_restore_matches(source: Cluster, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    lead = source.leader()
    kv = source.kv(lead)
    for i in range(30):
        kv.Put(rpc_pb2.PutRequest(key=f"fixed/{i:02}".encode(), value=b"x" * i), timeout=5)
    kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"fixed/00"), timeout=5)
    kv.Compact(rpc_pb2.CompactionRequest(revision=10), timeout=5)
    stop_event = threading.Event()
    counter: list[int] = []
    writer = threading.Thread(target=put_load, args=(source, stop_event, counter))
    writer.start()
    try:
        time.sleep(0.5)
        backup = tmp_path / "backup.db"
        # Save from a follower: any member can be backed up.
        follower = next(i for i in range(3) if i != lead)
        assert main(["snapshot", "save", str(backup),
                     "--endpoint", source.endpoints[follower]]) == 0
        time.sleep(0.3)
    finally:
        stop_event.set()
        writer.join()
    assert counter[0] > 0
    assert f"Snapshot saved at {backup}" in capsys.readouterr().out
    found = info(backup)
    assert found.compact_revision == 10
    # What the source held at the backup's revision (read before the restore).
    at_revision = all_kvs(source.kv(lead), found.revision)[1]
    assert found.total_keys == len(at_revision)
    assert main(["snapshot", "status", str(backup), "-w", "json"]) == 0
    assert f'"revision": {found.revision}' in capsys.readouterr().out

    base = tmp_path / "restored"
    base.mkdir()
    argvs, endpoints = cluster_argvs(base, ["r1", "r2", "r3"])
    for argv in argvs:
        assert main(["snapshot", "restore", str(backup), *argv]) == 0
    restored = start(base, argvs, endpoints)
    try:
        new_lead = restored.leader()
        revision, kvs = all_kvs(restored.kv(new_lead))
        assert revision == found.revision
        assert kvs == at_revision
        # History before the backup's compaction point is gone, after it is kept.
        with pytest.raises(grpc.RpcError) as compacted:
            all_kvs(restored.kv(new_lead), 9)
        assert "compacted" in str(compacted.value.details())
        assert all_kvs(restored.kv(new_lead), 11)[1] == all_kvs(source.kv(lead), 11)[1]
        # The new cluster is a different cluster with its own members, and writable.
        statuses = restored.statuses()
        assert {s.header.cluster_id for s in statuses} != {
            s.header.cluster_id for s in source.statuses()}
        put = restored.kv(new_lead).Put(rpc_pb2.PutRequest(key=b"after", value=b"1"), timeout=5)
        assert put.header.revision == found.revision + 1
    finally:
        stop(restored)


def wait_equal_applied(cluster: Cluster) -> list[rpc_pb2.StatusResponse]:
    deadline = time.monotonic() + 10
    while True:
        statuses = cluster.statuses()
        if len({s.raftAppliedIndex for s in statuses}) == 1:
            return statuses
        assert time.monotonic() < deadline, statuses
        time.sleep(0.05)


def test_hash_kv_hash_defragment_move_leader(source: Cluster) -> None:
    lead = source.leader()
    kv = source.kv(lead)
    for i in range(40):
        kv.Put(rpc_pb2.PutRequest(key=f"h/{i % 7}".encode(), value=f"{i}".encode()), timeout=5)
    head = kv.Range(rpc_pb2.RangeRequest(key=b"h/0"), timeout=5).header.revision
    wait_equal_applied(source)
    hashes = {source.stub(i).HashKV(rpc_pb2.HashKVRequest(revision=head), timeout=5).hash
              for i in range(3)}
    assert len(hashes) == 1
    earlier = source.stub(lead).HashKV(rpc_pb2.HashKVRequest(revision=head - 5), timeout=5)
    assert earlier.hash not in hashes
    with pytest.raises(grpc.RpcError) as future:
        source.stub(lead).HashKV(rpc_pb2.HashKVRequest(revision=head + 100), timeout=5)
    assert future.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert len({source.stub(i).Hash(rpc_pb2.HashRequest(), timeout=5).hash
                for i in range(3)}) == 1

    before = source.statuses()[lead].dbSize
    source.stub(lead).Defragment(rpc_pb2.DefragmentRequest(), timeout=10)
    assert source.statuses()[lead].dbSize > 0 and before > 0
    assert kv.Range(rpc_pb2.RangeRequest(key=b"h/1"), timeout=5).kvs[0].value == b"36"

    ids = [s.header.member_id for s in source.statuses()]
    follower = next(i for i in range(3) if i != lead)
    with pytest.raises(grpc.RpcError) as not_leader:
        source.stub(follower).MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=ids[lead]), timeout=5)
    assert (not_leader.value.code(), not_leader.value.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: not leader")
    with pytest.raises(grpc.RpcError) as bad:
        source.stub(lead).MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=12345), timeout=5)
    assert (bad.value.code(), bad.value.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: bad leader transferee")
    source.stub(lead).MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=ids[follower]), timeout=15)
    assert source.leader() == follower
    assert {s.leader for s in source.statuses()} == {ids[follower]}


# -- etcdctl ------------------------------------------------------------------------


def etcdctl(endpoints: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert ETCDCTL is not None
    return subprocess.run([ETCDCTL, f"--endpoints={endpoints}", "--dial-timeout=5s",
                           "--command-timeout=15s", *args], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, ETCDCTL_API="3"), check=False)


@pytest.mark.skipif(ETCDCTL is None, reason="etcdctl not installed (run scripts/install-etcd)")
def test_etcdctl_maintenance_commands(source: Cluster, tmp_path: Path) -> None:
    lead = source.leader()
    everyone = ",".join(source.endpoints)
    for i in range(10):
        assert etcdctl(source.endpoints[lead], "put", f"e/{i}", str(i)).returncode == 0
    wait_equal_applied(source)

    saved = etcdctl(source.endpoints[lead], "snapshot", "save", str(tmp_path / "e.db"))
    assert saved.returncode == 0, saved.stderr
    assert "Snapshot saved at" in saved.stdout
    assert info(tmp_path / "e.db").total_keys == 10

    hashkv = etcdctl(everyone, "endpoint", "hashkv", "-w", "json")
    assert hashkv.returncode == 0, hashkv.stderr
    entries = json.loads(hashkv.stdout)
    assert len(entries) == 3 and len({entry["HashKV"]["hash"] for entry in entries}) == 1

    defrag = etcdctl(everyone, "defrag")
    assert defrag.returncode == 0, defrag.stderr
    assert defrag.stdout.count("Finished defragmenting etcd member") == 3

    alarms = etcdctl(everyone, "alarm", "list")
    assert alarms.returncode == 0 and alarms.stdout == "", (alarms.stdout, alarms.stderr)

    ids = [s.header.member_id for s in source.statuses()]
    follower = next(i for i in range(3) if i != lead)
    moved = etcdctl(everyone, "move-leader", f"{ids[follower]:x}")
    assert moved.returncode == 0, moved.stderr
    assert f"Leadership transferred from {ids[lead]:x} to {ids[follower]:x}" in moved.stdout
    assert source.leader() == follower
