"""`chainfire serve` end to end: three server processes on free loopback
ports, a put and a get through the generated etcd gRPC stubs, a graceful
SIGTERM; and the binary's own errors (usage, config, storage)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from real.config import ServerConfig, load_config
from real.server import main, serve

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 30.0


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out (bound together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_real_runtime_server_usage_and_config_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: chainfire serve" in capsys.readouterr().err
    assert main(["serve", "--initial-cluster-state", "old"]) == 2
    err = capsys.readouterr().err
    assert "initial-cluster-state" in err and "'new' or 'existing'" in err


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    ports = free_ports(6)
    names = ["n1", "n2", "n3"]
    peers = ",".join(f"{name}=http://127.0.0.1:{ports[3 + i]}" for i, name in enumerate(names))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs: list[tuple[subprocess.Popen[bytes], int]] = []
    for i, name in enumerate(names):
        argv = [sys.executable, "-m", "real.server", "serve", "--name", name,
                "--data-dir", str(tmp_path / name), "--initial-cluster", peers,
                "--listen-client-urls", f"http://127.0.0.1:{ports[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{ports[3 + i]}",
                "--heartbeat-interval-ms", "50", "--election-timeout-ms", "500"]
        with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its copy
            procs.append((subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                           stderr=subprocess.STDOUT), ports[i]))
    try:
        yield procs
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def retry(call: object, *args: object, deadline: float) -> object:
    """Retry a unary call while the cluster elects (UNAVAILABLE and friends)."""
    assert callable(call)
    while True:
        try:
            return call(*args, timeout=2.0)
        except grpc.RpcError as error:
            if time.monotonic() > deadline:
                raise
            code = error.code()
            assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.StatusCode.UNKNOWN), error
            time.sleep(0.1)


def test_real_runtime_server_three_processes_put_get(
        cluster: list[tuple[subprocess.Popen[bytes], int]], tmp_path: Path) -> None:
    from real.etcdpb import rpc_pb2, rpc_pb2_grpc

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _, port in cluster]
    try:
        kv = [rpc_pb2_grpc.KVStub(channel) for channel in channels]
        put = retry(kv[0].Put, rpc_pb2.PutRequest(key=b"greeting", value=b"hello"),
                    deadline=deadline)
        assert isinstance(put, rpc_pb2.PutResponse) and put.header.revision >= 1
        got = retry(kv[2].Range, rpc_pb2.RangeRequest(key=b"greeting"), deadline=deadline)
        assert isinstance(got, rpc_pb2.RangeResponse)
        assert [(item.key, item.value) for item in got.kvs] == [(b"greeting", b"hello")]
        members = retry(rpc_pb2_grpc.ClusterStub(channels[1]).MemberList,
                        rpc_pb2.MemberListRequest(), deadline=deadline)
        assert isinstance(members, rpc_pb2.MemberListResponse)
        assert sorted(member.name for member in members.members) == ["n1", "n2", "n3"]
    finally:
        for channel in channels:
            channel.close()
    for proc, _ in cluster:
        proc.send_signal(signal.SIGTERM)
    for index, (proc, _) in enumerate(cluster):
        code = proc.wait(timeout=30)
        log = (tmp_path / f"n{index + 1}.log").read_text()
        assert code == 0, log
        assert "stopping" in log


def single_config(tmp_path: Path) -> ServerConfig:
    client, peer = free_ports(2)
    return load_config(["--name", "solo", "--data-dir", str(tmp_path / "solo"),
                        "--listen-client-urls", f"http://127.0.0.1:{client}",
                        "--listen-peer-urls", f"http://127.0.0.1:{peer}"], {})


def test_real_runtime_server_graceful_stop_and_restart(tmp_path: Path) -> None:
    """In-flight writes finish on stop; a restart serves them from disk; a
    second server on the same data directory is refused."""
    from real.etcdpb import rpc_pb2, rpc_pb2_grpc

    config = single_config(tmp_path)
    address = f"127.0.0.1:{config.listen_client_urls[0].port}"

    async def first_run() -> int:
        stop = asyncio.Event()
        server = asyncio.create_task(serve(config, stop=stop))
        async with grpc.aio.insecure_channel(address) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            await kv.Put(rpc_pb2.PutRequest(key=b"k0", value=b"v"), wait_for_ready=True,
                         timeout=10)
            # A second server on the same directory is refused (exit 1).
            assert await serve(single_config(tmp_path)) == 1
            writes = [asyncio.ensure_future(kv.Put(rpc_pb2.PutRequest(key=b"k%d" % i,
                                                                      value=b"v"), timeout=10))
                      for i in range(1, 200)]
            await asyncio.sleep(0.05)  # the puts are on their way
            stop.set()
            results = await asyncio.gather(*writes, return_exceptions=True)
        assert await server == 0
        done = [r for r in results if isinstance(r, rpc_pb2.PutResponse)]
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(done) + len(refused) == len(results)
        assert len(done) > 0
        # Refused calls get etcd's retryable "server stopped", or CANCELLED from
        # gRPC itself for calls it had not dispatched when it stopped; either
        # way they were never taken (the count after the restart shows it).
        codes = {(r.code(), r.details()) for r in refused}
        assert codes <= {(grpc.StatusCode.UNAVAILABLE, "etcdserver: server stopped"),
                         (grpc.StatusCode.CANCELLED, "CANCELLED")}, codes
        return len(done)

    async def second_run() -> int:
        stop = asyncio.Event()
        server = asyncio.create_task(serve(config, stop=stop))
        async with grpc.aio.insecure_channel(address) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            got = await kv.Range(rpc_pb2.RangeRequest(key=b"k", range_end=b"l", count_only=True),
                                 wait_for_ready=True, timeout=10)
        stop.set()
        assert await server == 0
        return int(got.count)

    done = asyncio.run(first_run())
    count = asyncio.run(second_run())
    assert count == 1 + done  # every answered put, and nothing else
