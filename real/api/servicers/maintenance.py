"""etcd's Maintenance service: Status, Snapshot, Hash, HashKV, Defragment,
MoveLeader and Alarm.

Status is answered from the handle at once, as etcd answers it from the
member's own state. `version` is the etcd version Chainfire is
wire-compatible with (clients read it for feature checks); `dbSize` comes
from an optional callable the runtime may pass (0 without one).

Alarm goes to the node like any request (GET is a read of the replicated
alarms; ACTIVATE and DEACTIVATE go through the log: chainfire_core/alarms.py).
The other calls need more than the `NodeHandle`: a `MaintenanceOps`
(real/maintenance.py) the runtime passes in; without one (a bare handle in
tests) they answer UNIMPLEMENTED.

Snapshot streams a backup (real/backup.py) in 32 KiB blobs, each with the
bytes still to come, the last with remaining_bytes 0; the backup is taken
whole on the event loop first (one consistent applied state), then sent, so
writes go on while a slow client reads it. Hash and HashKV answer 32 bits,
the width of etcd's field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import NoReturn

import grpc

from chainfire_core.alarms import AlarmAction, AlarmRequest, AlarmResponse, AlarmType
from chainfire_core.errors import ChainfireError, InvalidRequest
from chainfire_core.node_messages import ReadConsistency
from chainfire_core.types import NodeId
from real.api import convert_admin as convert
from real.api.convert import HeaderFields
from real.api.errors import abort
from real.api.handle import NodeHandle
from real.api.servicers.common import Context, HandleServicer, decode
from real.backup import chunks
from real.etcdpb import rpc_pb2, rpc_pb2_grpc
from real.maintenance import MaintenanceOps

ETCD_VERSION = "3.4.0"
HASH_MASK = 0xFFFF_FFFF


async def _unimplemented(context: Context, name: str) -> NoReturn:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                        f"chainfire: Maintenance.{name} is not served by this member")
    raise AssertionError("context.abort returned")  # pragma: no cover


def _alarm_from_pb(pb: rpc_pb2.AlarmRequest) -> AlarmRequest:
    """etcd's numbers are the core's; an unknown action or type is INVALID_ARGUMENT."""
    try:
        action, alarm = AlarmAction(pb.action), AlarmType(pb.alarm)
    except ValueError:
        raise InvalidRequest(f"etcdserver: unknown alarm action {pb.action} or type "
                             f"{pb.alarm}") from None
    return AlarmRequest(action=action, member_id=NodeId(pb.memberID), alarm=alarm)


def _header(handle: NodeHandle, fields: HeaderFields) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(cluster_id=fields.cluster_id, member_id=fields.member_id,
                                  revision=handle.revision(), raft_term=fields.raft_term)


class MaintenanceServicer(HandleServicer, rpc_pb2_grpc.MaintenanceServicer):
    def __init__(self, handle: NodeHandle, *, version: str = ETCD_VERSION,
                 db_size_bytes: Callable[[], int] | None = None,
                 ops: MaintenanceOps | None = None) -> None:
        super().__init__(handle)
        self.version = version
        self._db_size_bytes = db_size_bytes
        self.ops = ops

    async def _ops(self, context: Context, name: str) -> MaintenanceOps:
        if self.ops is None:
            await _unimplemented(context, name)
        return self.ops

    def header(self) -> rpc_pb2.ResponseHeader:
        return _header(self.handle, self.fields())

    async def Status(self, request: rpc_pb2.StatusRequest,
                     context: Context) -> rpc_pb2.StatusResponse:
        size = self._db_size_bytes() if self._db_size_bytes is not None else 0
        return convert.status_to_pb(self.handle.status(), self.fields(), version=self.version,
                                    db_size_bytes=size)

    async def Alarm(self, request: rpc_pb2.AlarmRequest,
                    context: Context) -> rpc_pb2.AlarmResponse:
        core = await decode(context, _alarm_from_pb, request)
        response = await self.ask(context, core, AlarmResponse,
                                  ReadConsistency.LINEARIZABLE)
        return rpc_pb2.AlarmResponse(header=self.header(), alarms=[
            rpc_pb2.AlarmMember(memberID=member.member_id,
                                alarm=member.alarm.name)
            for member in response.alarms])

    async def Defragment(self, request: rpc_pb2.DefragmentRequest,
                         context: Context) -> rpc_pb2.DefragmentResponse:
        await self.require_admin(context)
        ops = await self._ops(context, "Defragment")
        await ops.defragment()
        return rpc_pb2.DefragmentResponse(header=self.header())

    async def Hash(self, request: rpc_pb2.HashRequest, context: Context) -> rpc_pb2.HashResponse:
        await self.require_admin(context)
        ops = await self._ops(context, "Hash")
        return rpc_pb2.HashResponse(header=self.header(), hash=ops.hash() & HASH_MASK)

    async def HashKV(self, request: rpc_pb2.HashKVRequest,
                     context: Context) -> rpc_pb2.HashKVResponse:
        await self.require_admin(context)
        ops = await self._ops(context, "HashKV")
        try:
            kv_hash = ops.hash_kv(request.revision)
        except ChainfireError as error:
            await abort(context, error)
        return rpc_pb2.HashKVResponse(header=self.header(), hash=kv_hash.hash & HASH_MASK,
                                      compact_revision=kv_hash.compact_revision)

    async def Snapshot(self, request: rpc_pb2.SnapshotRequest,
                       context: Context) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
        await self.require_admin(context)
        ops = await self._ops(context, "Snapshot")
        data = ops.backup()
        header = self.header()
        sent = 0
        for blob in chunks(data):
            sent += len(blob)
            yield rpc_pb2.SnapshotResponse(header=header, remaining_bytes=len(data) - sent,
                                           blob=blob)

    async def MoveLeader(self, request: rpc_pb2.MoveLeaderRequest,
                         context: Context) -> rpc_pb2.MoveLeaderResponse:
        await self.require_admin(context)
        ops = await self._ops(context, "MoveLeader")
        try:
            await ops.move_leader(request.targetID)
        except ChainfireError as error:
            await abort(context, error)
        return rpc_pb2.MoveLeaderResponse(header=self.header())


__all__ = ["ETCD_VERSION", "MaintenanceServicer"]
