"""Crash safety of DiskStorage: SIGKILL under load loses nothing synced; a torn
WAL tail is cut; damaged bytes are refused with CorruptStorage."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chainfire_core.raft.messages import ConfState, Entry, HardState
from chainfire_core.types import Index, NodeId, Term
from real.storage import CorruptStorage, DiskStorage, StorageOptions
from real.storage.walcheck import FRAME_HEADER, WAL_HEADER, scan_wal

CHILD = Path(__file__).with_name("real_storage_crash_child.py")
ROUNDS = 8


def payload(index: int, term: int) -> bytes:  # as the child writes it
    return f"{index}/{term};".encode() * (index % 13 + 1)


def run_child_until_killed(data_dir: Path, term: int, rng: random.Random) -> tuple[int, int, int]:
    """Start the writer, let it report a random number of syncs, SIGKILL it at
    once (mid-write), and return the last (last index, commit, snapshot) it reported."""
    child = subprocess.Popen([sys.executable, str(CHILD), str(data_dir), str(term),
                              str(rng.randrange(1 << 30))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    reported = (0, 0, 0)
    try:
        for _ in range(rng.randint(1, 120)):
            line = child.stdout.readline()
            assert line.startswith("synced "), (line, child.stderr and child.stderr.read())
            last, commit, snapshot = (int(part) for part in line.split()[1:])
            reported = (last, commit, snapshot)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert child.stderr is not None
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    return reported


def test_sigkill_under_load_loses_nothing_synced(tmp_path: Path) -> None:
    rng = random.Random(8)
    for term in range(1, ROUNDS + 1):
        last, commit, snapshot_index = run_child_until_killed(tmp_path, term, rng)
        storage = DiskStorage.open(tmp_path)
        try:
            assert storage.last_index() >= last
            hard = storage.hard_state
            assert hard.term == term and hard.commit >= commit
            snapshot = storage.snapshot()
            assert snapshot.metadata.index >= snapshot_index
            if snapshot.metadata.index:
                assert snapshot.data == b"state@%d" % snapshot.metadata.index
            entries = storage.entries(storage.first_index(), Index(storage.last_index() + 1),
                                      None)
            for entry in entries:
                assert entry.data == payload(entry.index, entry.term), entry.index
                assert entry.term <= term
            assert [e.index for e in entries] == list(range(storage.first_index(),
                                                            storage.last_index() + 1))
            storage.check_invariants()
        finally:
            storage.close()


# -- torn and corrupt WAL frames (copies of a live database, as a crash leaves it) --


def write_transactions(data_dir: Path, count: int) -> Path:
    """`count` synced transactions of 10 entries each, then a copy of the
    directory taken while the database is still open (its WAL not yet folded
    into the main file)."""
    storage = DiskStorage.open(data_dir)
    for t in range(count):
        entries = [Entry(term=Term(1), index=Index(10 * t + k + 1), data=b"e" * 300)
                   for k in range(10)]
        storage.save(HardState(term=Term(1), vote=NodeId(1)), entries, None)
        storage.sync()
    copy = data_dir.parent / f"{data_dir.name}-crashed"
    shutil.copytree(data_dir, copy)
    (copy / "LOCK").unlink()
    storage.close()
    return copy


def frame_offsets(wal: Path) -> list[tuple[int, bool]]:
    """(offset, is a commit frame) of every frame of the WAL's current generation."""
    scan = scan_wal(wal)
    assert scan is not None
    page_size = WAL_HEADER.unpack(wal.read_bytes()[:WAL_HEADER.size])[2]
    return [(WAL_HEADER.size + number * (FRAME_HEADER.size + page_size), commit)
            for number, commit in scan.salted]


def test_torn_last_transaction_is_cut(tmp_path: Path) -> None:
    crashed = write_transactions(tmp_path / "node", 3)
    wal = crashed / "raft.db-wal"
    frames = frame_offsets(wal)
    commits = [offset for offset, commit in frames if commit]
    assert len(commits) >= 3
    with wal.open("r+b") as file:  # the last commit frame only half written
        file.truncate(commits[-1] + FRAME_HEADER.size + 100)
    storage = DiskStorage.open(crashed)
    assert storage.last_index() == 20
    assert storage.recovery.torn_tail_truncated
    storage.close()


def test_torn_frame_inside_the_last_transaction_is_cut(tmp_path: Path) -> None:
    crashed = write_transactions(tmp_path / "node", 3)
    wal = crashed / "raft.db-wal"
    frames = frame_offsets(wal)
    commit_positions = [i for i, (_, commit) in enumerate(frames) if commit]
    last_txn = frames[commit_positions[-2] + 1 : commit_positions[-1] + 1]
    with wal.open("r+b") as file:  # a page of the last transaction never reached the disk
        file.seek(last_txn[0][0])
        file.write(bytes(FRAME_HEADER.size + 64))
    storage = DiskStorage.open(crashed)
    assert storage.last_index() == 20
    assert storage.recovery.torn_tail_truncated
    storage.close()


def test_damaged_synced_wal_frame_is_refused(tmp_path: Path) -> None:
    crashed = write_transactions(tmp_path / "node", 4)
    wal = crashed / "raft.db-wal"
    frames = frame_offsets(wal)
    offset = frames[1][0] + FRAME_HEADER.size + 50  # in the first transactions' pages
    data = bytearray(wal.read_bytes())
    data[offset] ^= 0x40
    wal.write_bytes(bytes(data))
    with pytest.raises(CorruptStorage, match=r"raft\.db-wal.*WAL frame"):
        DiskStorage.open(crashed)


def test_corrupt_entry_byte_is_refused(tmp_path: Path) -> None:
    storage = DiskStorage.open(tmp_path)
    entries = [Entry(term=Term(1), index=Index(i), data=b"payload-%05d" % i)
               for i in range(1, 101)]
    storage.save(HardState(term=Term(1)), entries, None)
    storage.close()  # a clean close folds the WAL into raft.db
    db = tmp_path / "raft.db"
    data = bytearray(db.read_bytes())
    offset = data.index(b"payload-00042")
    data[offset + 9] ^= 0x01
    db.write_bytes(bytes(data))
    with pytest.raises(CorruptStorage, match=r"raft\.db: entry 42 is corrupt \(checksum"):
        DiskStorage.open(tmp_path)


def test_corrupt_snapshot_byte_is_refused(tmp_path: Path) -> None:
    storage = DiskStorage.open(tmp_path)
    storage.save(HardState(term=Term(1)), [Entry(term=Term(1), index=Index(1))], None)
    storage.create_snapshot(Index(1), ConfState(voters=(NodeId(1),)), b"SNAPSHOT-DATA" * 10)
    storage.close()
    db = tmp_path / "raft.db"
    data = bytearray(db.read_bytes())
    data[data.index(b"SNAPSHOT-DATA") + 3] ^= 0x20
    db.write_bytes(bytes(data))
    with pytest.raises(CorruptStorage, match="the snapshot row is corrupt"):
        DiskStorage.open(tmp_path)


def test_garbage_database_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "raft.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptStorage, match="database file"):
        DiskStorage.open(tmp_path)


def test_damaged_btree_page_is_refused(tmp_path: Path) -> None:
    storage = DiskStorage.open(tmp_path, StorageOptions(cached_entries_max=1))
    entries = [Entry(term=Term(1), index=Index(i), data=b"z" * 200) for i in range(1, 400)]
    storage.save(HardState(term=Term(1)), entries, None)
    storage.close()
    db = tmp_path / "raft.db"
    data = bytearray(db.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for page in range(2, len(data) // page_size):  # wreck every page header but the first
        data[page * page_size : page * page_size + 8] = b"\xff" * 8
    db.write_bytes(bytes(data))
    with pytest.raises(CorruptStorage):
        DiskStorage.open(tmp_path)
