"""Maintenance and quota calls of `AsyncClient`: status, backups, hashes,
defragmentation, leader transfer, alarms, and Chainfire's namespace quotas.

Theory of operation
-------------------
`MaintenanceCalls` is a part of `AsyncClient` (a mixin over its endpoint
pool). The per-member calls (`status`, `hash_kv`, `defragment`, and
`snapshot` when given an `endpoint`) are pinned to one endpoint, never moved
to another (the answer is about that member); without an endpoint they run
on the current one with failover. Reads and calls that are harmless to
repeat (a snapshot, a hash, a defragmentation, an alarm disarm) are retried
like reads; MoveLeader and quota changes like writes.

`snapshot` streams a backup (real/backup.py), checks its trailing SHA-256
and content with `real.backup.verify`, then writes it: to a path through
`PATH.part`, synced and renamed (a failed or corrupt download leaves no
file at PATH), or to an open binary file. `move_leader` must reach the
leader: it asks each endpoint's status for the member that says it leads,
and tries again (within the pool's budget) when leadership moved meanwhile.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import grpc

from chainfire_core.alarms import AlarmMember, AlarmType
from chainfire_core.node_messages import StatusResponse
from chainfire_core.quota import NamespaceUsage, QuotaDeleteRequest, QuotaSetRequest
from chainfire_core.types import NodeId
from real.api import convert_admin
from real.backup import verify
from real.client.errors import ClientError, ConnectionLostError, NoLeaderError, NotLeaderError
from real.client.pool import CallKind, EndpointPool, Retry
from real.client.txn import Bytes, to_bytes
from real.etcdpb import chainfire_pb2, chainfire_pb2_grpc, rpc_pb2, rpc_pb2_grpc

_T = TypeVar("_T")
# A whole backup streams within this (the policy's request timeout is per reply).
SNAPSHOT_TIMEOUT_S = 120.0

SnapshotTarget = str | Path | BinaryIO
_Method = Callable[["rpc_pb2_grpc.MaintenanceAsyncStub"], Callable[..., Awaitable[_T]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class HashKVResult:
    """One member's HashKV answer: `hash` of the live keys at `revision`
    (compare members at one revision), its compaction point, and its
    store revision when it answered (`current_revision`)."""

    member_id: NodeId
    hash: int
    compact_revision: int
    current_revision: int


def _alarm_from_pb(pb: rpc_pb2.AlarmMember) -> AlarmMember:
    return AlarmMember(member_id=NodeId(pb.memberID), alarm=AlarmType(pb.alarm))


def _usage_from_pb(pb: chainfire_pb2.QuotaResponse) -> tuple[NamespaceUsage, ...]:
    return tuple(NamespaceUsage(prefix=q.prefix, max_keys=q.max_keys, max_bytes=q.max_bytes,
                                used_keys=q.used_keys, used_bytes=q.used_bytes)
                 for q in pb.quotas)


def save_backup(data: bytes, target: SnapshotTarget, source: str) -> None:
    """Check `data` is a backup, then write it to `target` (a path: atomically)."""
    verify(data, source=source)
    if not isinstance(target, str | Path):
        target.write(data)
        return
    path = Path(target)
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class MaintenanceCalls:
    pool: EndpointPool

    async def _maintenance(self, kind: CallKind, method: _Method[_T], request: object,
                           endpoint: str | None = None) -> _T:
        async def invoke(channel: grpc.aio.Channel, timeout_s: float) -> _T:
            stub = rpc_pb2_grpc.MaintenanceStub(channel)
            return await method(stub)(request, timeout=timeout_s)
        return await self.pool.call(kind, invoke, endpoint=endpoint)

    async def status(self, endpoint: str | None = None) -> StatusResponse:
        """The status of `endpoint` (default: the current one, with failover).
        `member_id` tells which member answered, `leader` whom it follows."""
        response = await self._maintenance(CallKind.READ, lambda stub: stub.Status,
                                           rpc_pb2.StatusRequest(), endpoint)
        return convert_admin.status_from_pb(response)

    async def leader(self) -> NodeId:
        """The leader's member id as the current endpoint sees it (0: none)."""
        return (await self.status()).leader

    async def snapshot(self, target: SnapshotTarget, *, endpoint: str | None = None,
                       timeout_s: float = SNAPSHOT_TIMEOUT_S) -> int:
        """Save a backup of one member (default: the current endpoint) to
        `target`, a path or an open binary file; the bytes written."""
        async def invoke(channel: grpc.aio.Channel, _timeout_s: float) -> bytes:
            blobs: list[bytes] = []
            remaining = -1
            call = rpc_pb2_grpc.MaintenanceStub(channel).Snapshot(rpc_pb2.SnapshotRequest(),
                                                                  timeout=timeout_s)
            async for response in call:
                blobs.append(response.blob)
                remaining = response.remaining_bytes
            if remaining != 0:
                raise ConnectionLostError("the snapshot stream ended early")
            return b"".join(blobs)

        data = await self.pool.call(CallKind.READ, invoke, endpoint=endpoint)
        await asyncio.to_thread(save_backup, data, target,
                                f"the backup streamed from {endpoint or self.pool.current}")
        return len(data)

    async def hash_kv(self, revision: int = 0, *, endpoint: str | None = None) -> HashKVResult:
        """One member's hash of the live keys at `revision` (0: its current one)."""
        response = await self._maintenance(CallKind.READ, lambda stub: stub.HashKV,
                                           rpc_pb2.HashKVRequest(revision=revision), endpoint)
        return HashKVResult(member_id=NodeId(response.header.member_id), hash=response.hash,
                            compact_revision=response.compact_revision,
                            current_revision=response.header.revision)

    async def defragment(self, endpoint: str | None = None) -> None:
        """Defragment one member's storage (it holds its writes meanwhile)."""
        await self._maintenance(CallKind.READ, lambda stub: stub.Defragment,
                                rpc_pb2.DefragmentRequest(), endpoint)

    async def move_leader(self, member_id: int) -> None:
        """Transfer leadership to the voting member `member_id`; returns once
        it leads. Sent to the leader, wherever it is among the endpoints."""
        request = rpc_pb2.MoveLeaderRequest(targetID=member_id)
        retry = Retry(self.pool, CallKind.WRITE)
        while True:
            endpoint = await self._leader_endpoint()
            try:
                if endpoint is None:
                    raise NoLeaderError("etcdserver: no leader among the client's endpoints",
                                        code=grpc.StatusCode.UNAVAILABLE)
                await self._maintenance(CallKind.WRITE, lambda stub: stub.MoveLeader,
                                        request, endpoint)
                return
            except (NoLeaderError, NotLeaderError) as error:
                await retry.after(error, endpoint or self.pool.current)

    async def _leader_endpoint(self) -> str | None:
        for endpoint in self.pool.endpoints:
            try:
                status = await self.status(endpoint)
            except ClientError:
                continue
            if status.leader and status.leader == status.member_id:
                return endpoint
        return None

    async def alarms(self) -> tuple[AlarmMember, ...]:
        """Every active alarm of the cluster (member and type)."""
        request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
        response = await self._maintenance(CallKind.READ, lambda stub: stub.Alarm, request)
        return tuple(_alarm_from_pb(member) for member in response.alarms)

    async def alarm_disarm(self, alarm: AlarmMember | None = None) -> tuple[AlarmMember, ...]:
        """Clear `alarm` (default: every active one, as `etcdctl alarm
        disarm`); the alarms cleared. Repeating a disarm is harmless."""
        targets = (alarm,) if alarm is not None else await self.alarms()
        cleared: list[AlarmMember] = []
        for target in targets:
            request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.DEACTIVATE,
                                           memberID=target.member_id,
                                           alarm=int(target.alarm))  # type: ignore[arg-type]
            response = await self._maintenance(CallKind.READ, lambda stub: stub.Alarm, request)
            cleared.extend(_alarm_from_pb(member) for member in response.alarms)
        return tuple(cleared)

    # -- namespace quotas (Chainfire's Quota service) ----------------------------------

    async def _quota(self, kind: CallKind, name: str, request: object
                     ) -> tuple[NamespaceUsage, ...]:
        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> chainfire_pb2.QuotaResponse:
            method = getattr(chainfire_pb2_grpc.QuotaStub(channel), name)
            response = await method(request, timeout=timeout_s)
            assert isinstance(response, chainfire_pb2.QuotaResponse), type(response)
            return response
        return _usage_from_pb(await self.pool.call(kind, invoke))

    async def quota_set(self, prefix: Bytes, *, max_keys: int = 0,
                        max_bytes: int = 0) -> tuple[NamespaceUsage, ...]:
        """Limit the live keys and/or bytes (keys plus values) under `prefix`
        (0: not limited); replaces the prefix's quota. The quota set."""
        core = QuotaSetRequest(prefix=to_bytes(prefix), max_keys=max_keys, max_bytes=max_bytes)
        return await self._quota(CallKind.WRITE, "Set", chainfire_pb2.QuotaSetRequest(
            prefix=core.prefix, max_keys=core.max_keys, max_bytes=core.max_bytes))

    async def quota_delete(self, prefix: Bytes) -> tuple[NamespaceUsage, ...]:
        """Remove the prefix's quota; the quota removed (empty: there was none)."""
        core = QuotaDeleteRequest(prefix=to_bytes(prefix))
        return await self._quota(CallKind.WRITE, "Delete",
                                 chainfire_pb2.QuotaDeleteRequest(prefix=core.prefix))

    async def quota_list(self) -> tuple[NamespaceUsage, ...]:
        """Every namespace quota with its current usage, in prefix order."""
        return await self._quota(CallKind.READ, "List", chainfire_pb2.QuotaListRequest())


__all__ = ["SNAPSHOT_TIMEOUT_S", "HashKVResult", "MaintenanceCalls", "save_backup"]
