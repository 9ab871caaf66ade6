"""kill -9 a single `chainfire serve` at random points under write load and
restart it from its data directory, several times: no acknowledged write is
lost, the restart starts the state machine from state.db (its log says the
snapshot was not decoded), and the state it serves equals a reference: the
same data directory without state.db, so rebuilt from the snapshot and the
log (same keys, values, revisions and HashKV)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from test_real_runtime_server import ROOT, STARTUP_TIMEOUT_S, free_ports

from real.etcdpb import rpc_pb2, rpc_pb2_grpc
from real.storage.mvcc_backend import STATE_DB_NAME

WRITERS = 8
KILLS = 4
RECOVERED_LINE = b"state machine recovered from the backend"


def spawn(data_dir: Path, log: Path, ports: tuple[int, int]) -> tuple[subprocess.Popen[bytes],
                                                                      int]:
    """`ports` (client, peer) stay the same across restarts: the member id
    comes from the peer URL."""
    client, peer = ports
    argv = [sys.executable, "-m", "real.server", "serve", "--name", "solo",
            "--data-dir", str(data_dir), "--snapshot-count", "40", "--gossip", "off",
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with log.open("ab") as out:
        out.write(b"\n=== started by the test ===\n")
        out.flush()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, client


async def serving(port: int) -> grpc.aio.Channel:
    chan = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = rpc_pb2_grpc.MaintenanceStub(chan)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            if (await stub.Status(rpc_pb2.StatusRequest(), timeout=1.0)).leader:
                return chan
        except grpc.aio.AioRpcError:
            pass
        assert time.monotonic() < deadline, "the server did not come up"
        await asyncio.sleep(0.05)


async def write_until_killed(chan: grpc.aio.Channel, writer: int, first: int,
                             acked: dict[bytes, bytes]) -> None:
    kv = rpc_pb2_grpc.KVStub(chan)
    for n in itertools.count(first):
        key, value = b"w%d/%06d" % (writer, n), b"v%d" % n
        try:
            await kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=2.0)
            acked[key] = value
            if n % 5 == 0:  # overwrites of a few shared keys too
                await kv.Put(rpc_pb2.PutRequest(key=b"shared%d" % (n % 3), value=value),
                             timeout=2.0)
        except grpc.aio.AioRpcError:
            return  # the server died: this write's outcome is unknown


async def dump(chan: grpc.aio.Channel) -> tuple[list[tuple[bytes, bytes, int, int, int]], int,
                                                int]:
    kv = rpc_pb2_grpc.KVStub(chan)
    got = await kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"), timeout=5.0)
    hashed = await rpc_pb2_grpc.MaintenanceStub(chan).HashKV(rpc_pb2.HashKVRequest(),
                                                            timeout=5.0)
    rows = [(item.key, item.value, item.create_revision, item.mod_revision, item.version)
            for item in got.kvs]
    return rows, got.header.revision, hashed.hash


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


async def scenario(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data, log = tmp_path / "data", tmp_path / "server.log"
    acked: dict[bytes, bytes] = {}
    next_n = 0
    client, peer = free_ports(2)
    ports = (client, peer)
    for round_ in range(KILLS):
        proc, port = spawn(data, log, ports)
        try:
            chan = await serving(port)
            if round_:
                assert log.read_bytes().count(RECOVERED_LINE) == round_, "snapshot decoded"
            rows, _, _ = await dump(chan)
            held = {key: value for key, value, *_ in rows}
            lost = [key for key, value in acked.items() if held.get(key) != value]
            assert not lost, f"seed {seed}: acknowledged writes lost: {lost[:5]}"
            writers = [asyncio.ensure_future(write_until_killed(chan, w, next_n, acked))
                       for w in range(WRITERS)]
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            kill9(proc)  # at a random point of the load
            await asyncio.gather(*writers)
            await chan.close()
            next_n += 100_000
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(acked) > 100, "too little load to mean anything"
    # The reference: the same directory rebuilt from the snapshot and the log.
    shutil.copytree(data, tmp_path / "reference")
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / "reference" / (STATE_DB_NAME + suffix)).unlink(missing_ok=True)
    results = []
    for directory, name in ((data, "final"), (tmp_path / "reference", "reference")):
        proc, port = spawn(directory, tmp_path / f"{name}.log", ports)
        try:
            chan = await serving(port)
            results.append(await dump(chan))
            await chan.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    assert RECOVERED_LINE in (tmp_path / "final.log").read_bytes()
    assert RECOVERED_LINE not in (tmp_path / "reference.log").read_bytes()
    final, reference = results
    assert final == reference, f"seed {seed}: backend state differs from snapshot + log"
    held = {key: value for key, value, *_ in final[0]}
    assert all(held.get(key) == value for key, value in acked.items())


def test_real_kill9_under_load_restarts_from_the_backend(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    asyncio.run(scenario(tmp_path, seed))
