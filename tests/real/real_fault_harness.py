"""Shared pieces of the fault tests (tests/real/test_real_faults*.py).

Theory of operation
-------------------
The cluster is the one test_real_runtime_server.py starts (its `cluster`
fixture: three `chainfire serve` processes on free loopback ports); this
module adds what a fault test does to it: `kill9` a member, `restart` it
with the argv it was started with (its data directory is kept), and find
the leader through Maintenance.Status.

`Workload` runs concurrent grpc.aio clients against the members: puts of
unique values, compare-and-swap txns (compare the key's mod revision with
the last one the client saw: success puts, failure reads) and linearizable
gets, on a few keys. Every call is recorded as a `checker.history.Operation`
in the etcd schema (docs/checker.md) with `time.monotonic()` call and
return times taken around the RPC. A write that ends in any error or
timeout is recorded with an unknown outcome (it may or may not have taken
effect: a follower may have forwarded it, the leader may have logged it
before it died); a failed read is left out (it changed nothing). A client
whose member fails moves on to the next one.

`check_history` hands the history to `checker.revision_check` (the check
sim/checks.py runs); `check_no_acked_write_lost` reads every acknowledged
write back at its own revision, and the final value of every key.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from test_real_runtime_server import ROOT, STARTUP_TIMEOUT_S

from checker.history import Operation, to_jsonl
from checker.result import Verdict
from checker.revision_check import analyze_etcd_history
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

_T = TypeVar("_T")
Procs = list[tuple[subprocess.Popen[bytes], int]]
KEYS = (b"k0", b"k1", b"k2")
CALL_TIMEOUT_S = 2.0
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 500)]


# -- processes -------------------------------------------------------------------------


def kill9(procs: Procs, index: int) -> None:
    proc, _ = procs[index]
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def restart(procs: Procs, index: int, log: Path) -> None:
    """Start member `index` again with its own argv (same name, ports, data dir);
    the cluster fixture's cleanup kills the new process too."""
    old, port = procs[index]
    assert old.poll() is not None, "restart a member that is still running"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with log.open("ab") as out:
        out.write(b"\n=== restarted by the fault test ===\n")
        out.flush()
        proc = subprocess.Popen(old.args, cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    procs[index] = (proc, port)


def channels(procs: Procs) -> list[grpc.aio.Channel]:
    return [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
            for _, port in procs]


async def leader_index(chans: Sequence[grpc.aio.Channel], *, among: Sequence[int],
                       deadline_s: float = STARTUP_TIMEOUT_S) -> int:
    """The index of the member (of `among`) that reports itself leader."""
    deadline = time.monotonic() + deadline_s
    while True:
        for index in among:
            stub = rpc_pb2_grpc.MaintenanceStub(chans[index])
            try:
                status = await stub.Status(rpc_pb2.StatusRequest(), timeout=1.0)
            except grpc.aio.AioRpcError:
                continue
            if status.leader and status.leader == status.header.member_id:
                return index
        assert time.monotonic() < deadline, "no leader elected"
        await asyncio.sleep(0.1)


async def wait_serving(chan: grpc.aio.Channel, *, deadline_s: float = STARTUP_TIMEOUT_S) -> None:
    """Until the member behind `chan` answers Status and knows a leader."""
    deadline = time.monotonic() + deadline_s
    stub = rpc_pb2_grpc.MaintenanceStub(chan)
    while True:
        try:
            status = await stub.Status(rpc_pb2.StatusRequest(), timeout=1.0)
            if status.leader:
                return
        except grpc.aio.AioRpcError:
            pass
        assert time.monotonic() < deadline, "the member did not come back"
        await asyncio.sleep(0.1)


# -- the workload and its history -----------------------------------------------------


def text(data: bytes) -> str:
    return data.decode("latin-1")  # as sim/history_json.py: lossless, order-preserving


def entry(kv: Any) -> list[Any]:
    return [text(kv.key), text(kv.value), kv.mod_revision, kv.create_revision, kv.version,
            kv.lease]


def range_json(response: Any) -> dict[str, Any]:
    return {"kvs": [entry(kv) for kv in response.kvs], "count": response.count,
            "more": response.more}


@dataclass
class History:
    operations: list[Operation] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    acked_puts: list[tuple[bytes, bytes, int]] = field(default_factory=list)

    def done(self, client: int, request: dict[str, Any], call: float,
             output: dict[str, Any]) -> None:
        self.operations.append(Operation(id=next(self.ids), client=client, input=request,
                                         call=call, output=output,
                                         return_time=time.monotonic()))

    def unknown(self, client: int, request: dict[str, Any], call: float) -> None:
        self.operations.append(Operation(id=next(self.ids), client=client, input=request,
                                         call=call, unknown=True))


@dataclass
class Workload:
    chans: Sequence[grpc.aio.Channel]
    history: History = field(default_factory=History)
    errors: dict[str, int] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    acked: int = 0

    async def run_client(self, client: int, seed: int) -> None:
        rng = random.Random(seed)
        member = client % len(self.chans)
        seen: dict[bytes, int] = {}  # key -> the last mod revision this client saw
        for seq in itertools.count():
            if self.stopping.is_set():
                return
            kv = rpc_pb2_grpc.KVStub(self.chans[member])
            key = rng.choice(KEYS)
            kind = rng.choice(("put", "put", "cas", "get", "get"))
            value = b"c%d-%d" % (client, seq)
            call = time.monotonic()
            try:
                await self._one(kv, client=client, kind=kind, key=key, value=value, seen=seen,
                                call=call)
            except grpc.aio.AioRpcError as error:
                name = error.code().name
                self.errors[name] = self.errors.get(name, 0) + 1
                member = (member + 1) % len(self.chans)  # fail over
                await asyncio.sleep(0.02)

    async def _one(self, kv: rpc_pb2_grpc.KVAsyncStub, *, client: int, kind: str, key: bytes,
                   value: bytes, seen: dict[bytes, int], call: float) -> None:
        history = self.history
        if kind == "get":
            read = await kv.Range(rpc_pb2.RangeRequest(key=key), timeout=CALL_TIMEOUT_S)
            history.done(client, {"f": "range", "key": text(key)}, call,
                         {"revision": read.header.revision, **range_json(read)})
            seen[key] = read.kvs[0].mod_revision if read.kvs else 0
            return
        if kind == "put":
            request: dict[str, Any] = {"f": "put", "key": text(key), "value": text(value)}
            pb: Any = rpc_pb2.PutRequest(key=key, value=value)
        else:
            request = {"f": "txn",
                       "compare": [{"key": text(key), "target": "mod", "result": "=",
                                    "value": seen.get(key, 0)}],
                       "success": [{"f": "put", "key": text(key), "value": text(value)}],
                       "failure": [{"f": "range", "key": text(key)}]}
            pb = rpc_pb2.TxnRequest(
                compare=[rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.MOD,
                                         result=rpc_pb2.Compare.EQUAL,
                                         mod_revision=seen.get(key, 0))],
                success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key,
                                                                          value=value))],
                failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))])
        got: Any
        try:
            if kind == "put":
                got = await kv.Put(pb, timeout=CALL_TIMEOUT_S)
            else:
                got = await kv.Txn(pb, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            history.unknown(client, request, call)
            raise
        revision = got.header.revision
        if kind == "put" or got.succeeded:
            history.acked_puts.append((key, value, revision))
            seen[key] = revision
            self.acked += 1
        if kind == "put":
            history.done(client, request, call, {"revision": revision})
            return
        responses: list[dict[str, Any]] = (
            [{}] if got.succeeded else [range_json(got.responses[0].response_range)])
        if not got.succeeded:
            kvs = got.responses[0].response_range.kvs
            seen[key] = kvs[0].mod_revision if kvs else 0
        history.done(client, request, call,
                     {"revision": revision, "succeeded": got.succeeded,
                      "responses": responses})

    async def wait_acked(self, more: int, *, deadline_s: float = 30.0) -> None:
        """Until `more` further writes have been acknowledged."""
        target = self.acked + more
        deadline = time.monotonic() + deadline_s
        while self.acked < target:
            assert time.monotonic() < deadline, (
                f"only {self.acked} of {target} writes acknowledged; errors {self.errors}")
            await asyncio.sleep(0.05)


async def run_workload(workload: Workload, clients: int, seed: int) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(workload.run_client(client, seed * 1000 + client))
            for client in range(clients)]


# -- the checks ------------------------------------------------------------------------


async def settled(method: Callable[..., Awaitable[_T]], request: object) -> tuple[float, _T]:
    """(call time, `method(request)`), retried through an election: the checks
    at the end must not fail because a leader changed at that moment. A failed
    try is no operation (reads only); the last try's call time counts."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        call = time.monotonic()
        try:
            return call, await method(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def final_reads(workload: Workload, members: Sequence[int]) -> None:
    """A linearizable get of every key from each of `members`, into the history."""
    for index in members:
        kv = rpc_pb2_grpc.KVStub(workload.chans[index])
        for key in KEYS:
            call, got = await settled(kv.Range, rpc_pb2.RangeRequest(key=key))
            workload.history.done(1000 + index, {"f": "range", "key": text(key)}, call,
                                  {"revision": got.header.revision, **range_json(got)})


async def check_no_acked_write_lost(workload: Workload, member: int) -> None:
    """Every acknowledged write is in `member`'s MVCC history at its revision,
    and no key's latest revision is older than an acknowledged write to it."""
    kv = rpc_pb2_grpc.KVStub(workload.chans[member])
    acked = workload.history.acked_puts
    assert acked, "no write was acknowledged"
    for key, value, revision in acked:
        _, got = await settled(kv.Range, rpc_pb2.RangeRequest(key=key, revision=revision))
        assert [(kv_.value, kv_.mod_revision) for kv_ in got.kvs] == [(value, revision)], (
            f"acknowledged put {key!r}={value!r} at revision {revision} is lost on member "
            f"{member}: {got.kvs}")
    for key in KEYS:
        latest = max((r for k, _, r in acked if k == key), default=0)
        _, got = await settled(kv.Range, rpc_pb2.RangeRequest(key=key))
        assert got.kvs and got.kvs[0].mod_revision >= latest, (key, latest, got.kvs)


def check_history(history: History, dump: Path) -> str:
    """The checker's verdict must be Ok; else the history is written to `dump`
    (chainfire-check DUMP --model etcd replays it) and the test fails."""
    operations = sorted(history.operations, key=lambda op: (op.call, op.id))
    analysis = analyze_etcd_history(operations, timeout_s=60.0)
    result = analysis.result
    if result.verdict != Verdict.OK:
        dump.write_text("".join(line + "\n" for line in to_jsonl(operations)))
        reasons = [(p.verdict.value, p.reason, list(p.explanation)) for p in result.partitions]
        raise AssertionError(f"history is {result.verdict.value}: {json.dumps(reasons)}; "
                             f"{len(operations)} operations written to {dump}")
    unknown = sum(op.unknown for op in operations)
    return (f"{len(operations)} operations ({unknown} unknown) linearizable in "
            f"{result.elapsed_s:.2f} s, revisions up to {analysis.last_revision}")
