"""A no-op etcd KV server: the ceiling of a Python gRPC server.

It implements etcd's `etcdserverpb.KV` Range and Put (and nothing else: the
other methods answer UNIMPLEMENTED) over a plain dict, with the generated
stubs Chainfire itself serves (real/etcdpb). No Raft, no storage, no fsync,
no MVCC: the cost of a request here is the gRPC stack's, so a Chainfire node
can at best approach it. benchmarks/real.py runs it as a process, in one of
two server styles:

* `aio`: `grpc.aio.server`, coroutine handlers (the style Chainfire uses);
* `sync`: `grpc.server` with a thread pool of `--workers` threads.

    python benchmarks/_noop_kv_server.py --style aio --port 23790

prints `ready <port>` on stdout once it serves, then runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from real.etcdpb import kv_pb2, rpc_pb2, rpc_pb2_grpc


class DictKV:
    """The dict and the revision counter shared by both server styles."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.revision = 1

    def put(self, request: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        self.revision += 1
        self.data[request.key] = request.value
        return rpc_pb2.PutResponse(header=rpc_pb2.ResponseHeader(revision=self.revision))

    def range(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        value = self.data.get(request.key)
        header = rpc_pb2.ResponseHeader(revision=self.revision)
        if value is None:
            return rpc_pb2.RangeResponse(header=header)
        return rpc_pb2.RangeResponse(header=header, count=1, kvs=[
            kv_pb2.KeyValue(key=request.key, value=value, mod_revision=self.revision)])


class AioServicer(rpc_pb2_grpc.KVServicer):
    def __init__(self, store: DictKV) -> None:
        self.store = store

    async def Range(self, request: rpc_pb2.RangeRequest,
                    context: grpc.aio.ServicerContext[object, object]) -> rpc_pb2.RangeResponse:
        return self.store.range(request)

    async def Put(self, request: rpc_pb2.PutRequest,
                  context: grpc.aio.ServicerContext[object, object]) -> rpc_pb2.PutResponse:
        return self.store.put(request)


class SyncServicer(rpc_pb2_grpc.KVServicer):
    def __init__(self, store: DictKV) -> None:
        self.store = store
        self.lock = threading.Lock()

    def Range(self, request: rpc_pb2.RangeRequest,
              context: grpc.ServicerContext) -> rpc_pb2.RangeResponse:
        with self.lock:
            return self.store.range(request)

    def Put(self, request: rpc_pb2.PutRequest,
            context: grpc.ServicerContext) -> rpc_pb2.PutResponse:
        with self.lock:
            return self.store.put(request)


async def serve_aio(host: str, port: int) -> None:
    server = grpc.aio.server()
    rpc_pb2_grpc.add_KVServicer_to_server(AioServicer(DictKV()), server)  # type: ignore[abstract]
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"ready {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(None)


def serve_sync(host: str, port: int, workers: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    rpc_pb2_grpc.add_KVServicer_to_server(SyncServicer(DictKV()), server)  # type: ignore[abstract]
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    print(f"ready {bound}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--style", choices=("aio", "sync"), default="aio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=16, help="threads (sync style)")
    args = parser.parse_args()
    if args.style == "aio":
        asyncio.run(serve_aio(args.host, args.port))
    else:
        serve_sync(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
