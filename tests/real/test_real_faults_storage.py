"""Storage faults across real process restarts of a 3-member `chainfire serve`
cluster.

- Torn tail: every member is killed with SIGKILL under write load, then each
  one's WAL gets the torn start of one more transaction after its last commit
  frame, cut in the middle of a frame: what a power cut in the middle of the
  next write leaves (a kill -9 alone tears nothing, the page cache survives
  it). All three restart from those files, with no intact copy to catch up
  from: every acknowledged write must be served, the history must be
  linearizable, and each member must say it cut a torn tail.
- Corrupt record: a member stopped cleanly gets one flipped byte in a log
  entry (a put's value in raft.db), another, killed under load, a damaged
  frame in an early, synced WAL transaction. Each refuses to start: exit
  status 1, the storage's message naming the file and the record, and its
  client port never served. The two healthy members keep serving.

Overwriting a *synced* transaction's last frames would not be a crash but
data loss the storage cannot see (docs/real-storage.md, "Known limit"), so
the torn bytes always go past the last commit frame.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc
from real_fault_harness import (
    Workload,
    channels,
    check_history,
    check_no_acked_write_lost,
    final_reads,
    kill9,
    leader_index,
    restart,
    run_workload,
)
from test_real_runtime_server import cluster
from test_real_storage_crash import frame_offsets

from real.etcdpb import rpc_pb2, rpc_pb2_grpc
from real.storage.walcheck import FRAME_HEADER, WAL_HEADER, scan_wal

__all__ = ["cluster"]  # the fixture, imported for pytest

Procs = list[tuple[subprocess.Popen[bytes], int]]


def tear_next_transaction(wal: Path) -> int:
    """Write, after the WAL's last commit frame, 1.5 frames of a copy of its
    last transaction (a header that carries the current salts but whose
    checksum chain breaks, then half a page), and cut the file there.
    Returns the offset of the torn bytes."""
    frames = frame_offsets(wal)
    commits = [i for i, (_, commit) in enumerate(frames) if commit]
    assert commits, f"{wal}: no committed transaction in the WAL"
    page_size = int(WAL_HEADER.unpack(wal.read_bytes()[:WAL_HEADER.size])[2])
    frame_bytes = FRAME_HEADER.size + page_size
    first = commits[-2] + 1 if len(commits) > 1 else 0
    end = frames[commits[-1]][0] + frame_bytes
    data = wal.read_bytes()
    last_transaction = data[frames[first][0]:end]
    cut = frame_bytes + frame_bytes // 2 if len(last_transaction) > frame_bytes \
        else frame_bytes // 2
    torn = last_transaction[:cut]
    with wal.open("r+b") as file:
        file.seek(end)
        file.write(torn)
        file.truncate(end + len(torn))
    scan = scan_wal(wal)
    assert scan is not None and scan.partial_bytes > 0, "the tail is not torn mid-frame"
    return end


def test_real_faults_torn_wal_tail_on_every_member(cluster: Procs, tmp_path: Path) -> None:
    async def scenario() -> str:
        chans = channels(cluster)
        everyone = list(range(len(cluster)))
        workload = Workload(chans)
        try:
            await leader_index(chans, among=everyone)
            tasks = await run_workload(workload, 6, seed=11)
            await workload.wait_acked(150)
            for index in everyone:  # all at once, in the middle of the load
                kill9(cluster, index)
            for index in everyone:
                tear_next_transaction(tmp_path / f"n{index + 1}" / "raft.db-wal")
                restart(cluster, index, tmp_path / f"n{index + 1}.log")
            await workload.wait_acked(100)
            workload.stopping.set()
            await asyncio.gather(*tasks)
            await final_reads(workload, everyone)
            for index in everyone:
                await check_no_acked_write_lost(workload, index)
        finally:
            for chan in chans:
                await chan.close()
        return check_history(workload.history, tmp_path / "history.jsonl")

    print(asyncio.run(scenario()))
    for index in range(len(cluster)):
        log = (tmp_path / f"n{index + 1}.log").read_text()
        assert "cut a torn WAL tail" in log, log[-2000:]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def flip_value_byte(db: Path, value: bytes) -> None:
    data = bytearray(db.read_bytes())
    offset = data.find(value)
    assert offset >= 0, f"{value!r} not in {db}"
    data[offset + len(value) - 1] ^= 0x01
    db.write_bytes(bytes(data))


def damage_early_wal_frame(wal: Path) -> None:
    frames = frame_offsets(wal)
    commits = [offset for offset, commit in frames if commit]
    assert len(commits) >= 3, f"{wal}: too few transactions to damage a synced one"
    data = bytearray(wal.read_bytes())
    data[commits[0] + FRAME_HEADER.size + 100] ^= 0x40  # a page of the first transaction
    wal.write_bytes(bytes(data))


def expect_refusal(procs: Procs, index: int, log: Path, pattern: str) -> None:
    """The restarted member exits 1 with the storage's message, never serving."""
    proc, port = procs[index]
    deadline = time.monotonic() + 30
    while proc.poll() is None:
        assert not port_open(port), "a member with a corrupt log is serving clients"
        assert time.monotonic() < deadline, "a member with a corrupt log kept running"
        time.sleep(0.05)
    text = log.read_text().split("restarted by the fault test")[-1]
    assert proc.returncode == 1, text
    assert "cannot open the data directory" in text and pattern in text, text


def test_real_faults_corrupt_record_is_refused(cluster: Procs, tmp_path: Path) -> None:
    async def load_then_check_survivors(phase: str) -> bytes:
        """Load on the members still up; every acknowledged write is on each
        of them; returns the value of an acknowledged put."""
        chans = channels(cluster)
        alive = [i for i, (proc, _) in enumerate(cluster) if proc.poll() is None]
        workload = Workload([chans[i] for i in alive])
        try:
            await leader_index(chans, among=alive)
            tasks = await run_workload(workload, 4, seed=len(phase))
            await workload.wait_acked(60)
            workload.stopping.set()
            await asyncio.gather(*tasks)
            for member in range(len(alive)):
                await check_no_acked_write_lost(workload, member)
            kv = rpc_pb2_grpc.KVStub(workload.chans[0])
            put = await kv.Put(rpc_pb2.PutRequest(key=b"after-" + phase.encode(), value=b"v"),
                               timeout=5)
            assert put.header.revision > 0
            return workload.history.acked_puts[0][1]
        finally:
            for chan in chans:
                await chan.close()

    value = asyncio.run(load_then_check_survivors("entry"))
    # n3 stopped cleanly: its WAL is folded into raft.db; flip a put's value there.
    proc, _ = cluster[2]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    flip_value_byte(tmp_path / "n3" / "raft.db", value)
    restart(cluster, 2, tmp_path / "n3.log")
    expect_refusal(cluster, 2, tmp_path / "n3.log", "is corrupt (checksum")
    asyncio.run(load_then_check_survivors("wal"))
    # n2 killed after that load: a byte of its first WAL transaction is damaged.
    wal = tmp_path / "n2" / "raft.db-wal"
    with grpc.insecure_channel(f"127.0.0.1:{cluster[0][1]}") as channel:
        for pad in range(50):  # a checkpoint may just have restarted the WAL
            if sum(commit for _, commit in frame_offsets(wal)) >= 3:
                break
            rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"pad", value=b"%d" % pad),
                                             timeout=5)
    kill9(cluster, 1)
    damage_early_wal_frame(wal)
    restart(cluster, 1, tmp_path / "n2.log")
    expect_refusal(cluster, 1, tmp_path / "n2.log", "raft.db-wal")
    # n1 alone has no quorum, but it is up and answers a serializable read.
    with grpc.insecure_channel(f"127.0.0.1:{cluster[0][1]}") as channel:
        got = rpc_pb2_grpc.KVStub(channel).Range(
            rpc_pb2.RangeRequest(key=b"after-wal", serializable=True), timeout=5)
    assert [kv.value for kv in got.kvs] == [b"v"]
