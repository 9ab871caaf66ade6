"""Malformed input to a running 3-member `chainfire serve` cluster: garbage
and broken frames on a member's peer port, raw bytes and invalid fields on
its gRPC methods. Each gets an error (the peer connection is closed; the
RPC ends with a status code other than OK), and afterwards every member is
still running and the cluster serves a put and a linearizable get through
the member that took the abuse."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from test_real_runtime_server import STARTUP_TIMEOUT_S, cluster, retry, single_config

from chainfire_core.raft.messages import AppendEntries, Entry, Heartbeat, Message
from chainfire_core.types import Index, NodeId, Term
from real.config import load_config
from real.etcdpb import rpc_pb2, rpc_pb2_grpc
from real.server import ServeOptions, serve
from real.transport.codec import encode_message
from real.transport.frame import FRAME_VERSION, HEADER, MAGIC, FrameKind, encode_frame

__all__ = ["cluster"]  # the fixture, imported for pytest

Procs = list[tuple[subprocess.Popen[bytes], int]]
MAX_FRAME = 16 << 20
VICTIM = 0


def member_ids(procs: Procs) -> tuple[NodeId, int]:
    """The victim's node id and peer port, from the argv it was started with."""
    args = procs[VICTIM][0].args
    assert isinstance(args, list)
    argv = [str(arg) for arg in args]
    config = load_config(argv[argv.index("serve") + 1:], {})
    return config.node_id, config.listen_peer_urls[0].port


def frame(payload: bytes, *, kind: int = FrameKind.MESSAGE, magic: bytes = MAGIC,
          version: int = FRAME_VERSION, crc: int | None = None,
          length: int | None = None) -> bytes:
    crc = zlib.crc32(payload) if crc is None else crc
    length = len(payload) if length is None else length
    return HEADER.pack(magic, version, kind, length, crc) + payload


def message_frame(message: Message) -> bytes:
    return encode_frame(FrameKind.MESSAGE, encode_message(message), max_frame_bytes=MAX_FRAME)


def bad_peer_inputs(me: NodeId) -> dict[str, bytes]:
    stranger = NodeId(0x5EED)
    heartbeat = Heartbeat(sender=stranger, to=me, term=Term(0), commit=Index(0))
    good = encode_message(heartbeat)
    return {
        "garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)),
        "bad magic": frame(good, magic=b"XXXX"),
        "bad version": frame(good, version=FRAME_VERSION + 1),
        "unknown kind": frame(good, kind=99),
        "oversized length": frame(b"", length=0xFFFF_FFF0),
        "crc mismatch": frame(good, crc=zlib.crc32(good) ^ 1),
        "undecodable payload": frame(b"\x01\xff\xfe garbage"),
        "truncated payload": frame(good[:-3], crc=zlib.crc32(good[:-3])),
        "not a message": encode_frame(FrameKind.SNAPSHOT_ACK, b"", max_frame_bytes=MAX_FRAME),
        "chunk without begin": encode_frame(FrameKind.SNAPSHOT_CHUNK, b"data",
                                            max_frame_bytes=MAX_FRAME),
        "addressed elsewhere": message_frame(Heartbeat(sender=stranger, to=NodeId(me + 1),
                                                       term=Term(0), commit=Index(0))),
    }


def cut_peer_inputs(me: NodeId) -> dict[str, bytes]:
    """Streams that end inside a frame (then EOF)."""
    good = message_frame(Heartbeat(sender=NodeId(0x5EED), to=me, term=Term(0),
                                   commit=Index(0)))
    return {"inside the header": good[:5], "inside the payload": good[:-3]}


def stray_messages(me: NodeId) -> dict[str, bytes]:
    """Well-formed frames from a node that is no member, at term 0: Raft drops
    them (a stale term); they must not disturb the member."""
    stranger = NodeId(0x5EED)
    return {
        "stale heartbeat": message_frame(Heartbeat(sender=stranger, to=me, term=Term(0),
                                                   commit=Index(10**9))),
        "stale append": message_frame(AppendEntries(
            sender=stranger, to=me, term=Term(0), log_term=Term(0), index=Index(10**6),
            entries=(Entry(term=Term(0), index=Index(10**6 + 1), data=b"\xffjunk"),),
            commit=Index(10**6 + 1))),
    }


def closed_by_peer(port: int, data: bytes, *, then_eof: bool = False) -> bool:
    """Send `data` (and end the stream if `then_eof`), then wait for the
    member to close the connection; False if it stays open for 5 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        if then_eof:
            sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True


def still_serving(procs: Procs, key: bytes) -> None:
    """Every member is alive; a put and a linearizable get through the victim work."""
    assert all(proc.poll() is None for proc, _ in procs), "a member died"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with grpc.insecure_channel(f"127.0.0.1:{procs[VICTIM][1]}") as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        retry(kv.Put, rpc_pb2.PutRequest(key=key, value=b"ok"), deadline=deadline)
        got = retry(kv.Range, rpc_pb2.RangeRequest(key=key), deadline=deadline)
    assert isinstance(got, rpc_pb2.RangeResponse)
    assert [kv_.value for kv_ in got.kvs] == [b"ok"]


def test_real_faults_malformed_peer_frames(cluster: Procs) -> None:
    still_serving(cluster, b"before")
    me, peer_port = member_ids(cluster)
    for name, data in bad_peer_inputs(me).items():
        assert closed_by_peer(peer_port, data), f"{name}: the connection stayed open"
    for name, data in cut_peer_inputs(me).items():
        assert closed_by_peer(peer_port, data, then_eof=True), f"{name}: stayed open"
    for name, data in stray_messages(me).items():
        with socket.create_connection(("127.0.0.1", peer_port), timeout=5) as sock:
            sock.sendall(data)
            time.sleep(0.2)  # let the member take it; nothing is expected back
        still_serving(cluster, name.encode())
    still_serving(cluster, b"after-peer-garbage")


Call = Callable[[grpc.Channel], object]


def raw(method: str, payload: bytes) -> Call:
    def call(channel: grpc.Channel) -> object:
        return cast(Any, channel).unary_unary(method)(payload, timeout=5)
    return call


def raw_stream(method: str, payload: bytes) -> Call:
    def call(channel: grpc.Channel) -> object:
        return list(cast(Any, channel).stream_stream(method)(iter([payload]), timeout=5))
    return call


def kv(method: str, request: object) -> Call:
    def call(channel: grpc.Channel) -> object:
        return getattr(rpc_pb2_grpc.KVStub(channel), method)(request, timeout=5)
    return call


def put_op(key: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"v"))


# grpc.aio answers a request its deserializer refuses with UNKNOWN ("Unexpected
# <class 'DecodeError'>: Error parsing message"); Go gRPC (etcd) says INTERNAL.
GARBAGE = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT}

BAD_REQUESTS: dict[str, tuple[Call, set[grpc.StatusCode]]] = {
    # Bytes that are no protobuf message: gRPC's own deserializer refuses them.
    "garbage bytes to Put": (raw("/etcdserverpb.KV/Put", b"\xff\xff\xff\xff\x0f"),
                             GARBAGE),
    "garbage bytes to Txn": (raw("/etcdserverpb.KV/Txn", b"\x0a\xff\xff\xff\xff\xff"),
                             GARBAGE),
    "garbage on the Watch stream": (raw_stream("/etcdserverpb.Watch/Watch", b"\x0a\xff\xff\xff"),
                                    GARBAGE),
    "garbage on the KeepAlive stream": (raw_stream("/etcdserverpb.Lease/LeaseKeepAlive",
                                                   b"\xff\xff\xff\xff"), GARBAGE),
    "no such method": (raw("/etcdserverpb.KV/Nope", b""), {grpc.StatusCode.UNIMPLEMENTED}),
    "no such service": (raw("/etcdserverpb.Nope/Put", b""), {grpc.StatusCode.UNIMPLEMENTED}),
    # Well-formed protobuf, invalid fields: etcd's INVALID_ARGUMENT / OUT_OF_RANGE.
    "empty key": (kv("Put", rpc_pb2.PutRequest(key=b"", value=b"v")),
                  {grpc.StatusCode.INVALID_ARGUMENT}),
    "future revision": (kv("Range", rpc_pb2.RangeRequest(key=b"a", revision=1 << 40)),
                        {grpc.StatusCode.OUT_OF_RANGE}),
    "duplicate key in txn": (kv("Txn", rpc_pb2.TxnRequest(success=[put_op(b"d"), put_op(b"d")])),
                             {grpc.StatusCode.INVALID_ARGUMENT}),
    "empty request op": (kv("Txn", rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp()])),
                         {grpc.StatusCode.INVALID_ARGUMENT}),
    "unknown compare target": (kv("Txn", rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(
        key=b"a", target=99, result=rpc_pb2.Compare.EQUAL, version=1)])),  # type: ignore[arg-type]
        {grpc.StatusCode.INVALID_ARGUMENT}),
    "unknown compare result": (kv("Txn", rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(
        key=b"a", target=rpc_pb2.Compare.VERSION, result=77, version=1)])),  # type: ignore[arg-type]
        {grpc.StatusCode.INVALID_ARGUMENT}),
    "unknown sort order": (kv("Range", rpc_pb2.RangeRequest(key=b"a", sort_order=42)),  # type: ignore[arg-type]
                           {grpc.StatusCode.INVALID_ARGUMENT}),
    "compact the future": (kv("Compact", rpc_pb2.CompactionRequest(revision=1 << 40)),
                           {grpc.StatusCode.OUT_OF_RANGE}),
    "value over the request limit": (kv("Put", rpc_pb2.PutRequest(key=b"big",
                                                                  value=b"x" * (2 << 20))),
                                     {grpc.StatusCode.INVALID_ARGUMENT,
                                      grpc.StatusCode.RESOURCE_EXHAUSTED}),
}


def test_real_faults_malformed_grpc_requests(cluster: Procs) -> None:
    still_serving(cluster, b"before")
    wrong: list[tuple[str, object, str]] = []
    with grpc.insecure_channel(f"127.0.0.1:{cluster[VICTIM][1]}") as channel:
        for name, (call, expected) in BAD_REQUESTS.items():
            try:
                call(channel)
            except grpc.RpcError as error:
                details = error.details() or ""
                if error.code() not in expected or (
                        error.code() == grpc.StatusCode.UNKNOWN
                        and "Error parsing message" not in details):
                    wrong.append((name, error.code(), details))
            else:
                wrong.append((name, "OK", "accepted"))
    assert not wrong, wrong
    still_serving(cluster, b"after")


def test_real_faults_member_add_or_update_with_a_bad_url_is_refused(tmp_path: Path) -> None:
    config = single_config(tmp_path)
    address = f"127.0.0.1:{config.listen_client_urls[0].port}"

    async def scenario() -> None:
        stop = asyncio.Event()
        server = asyncio.create_task(serve(config, ServeOptions(shutdown_grace_s=0.5,
                                                                drain_timeout_s=0.5), stop))
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                kv = rpc_pb2_grpc.KVStub(channel)
                await kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), wait_for_ready=True,
                             timeout=10)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await rpc_pb2_grpc.ClusterStub(channel).MemberAdd(
                        rpc_pb2.MemberAddRequest(peerURLs=["not a url"]), timeout=5)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                cluster = rpc_pb2_grpc.ClusterStub(channel)
                (me,) = (await cluster.MemberList(rpc_pb2.MemberListRequest())).members
                with pytest.raises(grpc.aio.AioRpcError) as moved:
                    await cluster.MemberUpdate(rpc_pb2.MemberUpdateRequest(
                        ID=me.ID, peerURLs=["not a url"]), timeout=5)
                assert moved.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                (still,) = (await cluster.MemberList(rpc_pb2.MemberListRequest())).members
                assert list(still.peerURLs) == list(me.peerURLs)
                await kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"w"), timeout=5)
        finally:
            stop.set()
            await server

    asyncio.run(scenario())
