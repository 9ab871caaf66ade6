"""etcd's Maintenance service: Status is served; Alarm, Defragment, Hash,
HashKV, Snapshot and MoveLeader answer UNIMPLEMENTED (the next issue).

Status is answered from the handle at once, as etcd answers it from the
member's own state. `version` is the etcd version Chainfire is
wire-compatible with (clients read it for feature checks); `dbSize` comes
from an optional callable the runtime may pass (0 without one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import NoReturn

import grpc

from real.api import convert_admin as convert
from real.api.handle import NodeHandle
from real.api.servicers.common import Context, HandleServicer
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

ETCD_VERSION = "3.4.0"


async def _unimplemented(context: Context, name: str) -> NoReturn:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                        f"chainfire: Maintenance.{name} is not supported yet")
    raise AssertionError("context.abort returned")  # pragma: no cover


async def _no_snapshot(context: Context) -> list[rpc_pb2.SnapshotResponse]:
    await _unimplemented(context, "Snapshot")


class MaintenanceServicer(HandleServicer, rpc_pb2_grpc.MaintenanceServicer):
    def __init__(self, handle: NodeHandle, *, version: str = ETCD_VERSION,
                 db_size_bytes: Callable[[], int] | None = None) -> None:
        super().__init__(handle)
        self.version = version
        self._db_size_bytes = db_size_bytes

    async def Status(self, request: rpc_pb2.StatusRequest,
                     context: Context) -> rpc_pb2.StatusResponse:
        size = self._db_size_bytes() if self._db_size_bytes is not None else 0
        return convert.status_to_pb(self.handle.status(), self.fields(), version=self.version,
                                    db_size_bytes=size)

    async def Alarm(self, request: rpc_pb2.AlarmRequest,
                    context: Context) -> rpc_pb2.AlarmResponse:
        if request.action == rpc_pb2.AlarmRequest.GET:
            # No alarms exist yet: the honest answer to a query is an empty list.
            return rpc_pb2.AlarmResponse(header=rpc_pb2.ResponseHeader(
                cluster_id=self.handle.cluster_id, member_id=self.handle.member_id,
                revision=self.handle.revision(), raft_term=self.handle.raft_term()))
        await _unimplemented(context, "Alarm")

    async def Defragment(self, request: rpc_pb2.DefragmentRequest,
                         context: Context) -> rpc_pb2.DefragmentResponse:
        await _unimplemented(context, "Defragment")

    async def Hash(self, request: rpc_pb2.HashRequest, context: Context) -> rpc_pb2.HashResponse:
        await _unimplemented(context, "Hash")

    async def HashKV(self, request: rpc_pb2.HashKVRequest,
                     context: Context) -> rpc_pb2.HashKVResponse:
        await _unimplemented(context, "HashKV")

    async def Snapshot(self, request: rpc_pb2.SnapshotRequest,
                       context: Context) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
        for response in await _no_snapshot(context):  # it aborts: nothing to yield
            yield response

    async def MoveLeader(self, request: rpc_pb2.MoveLeaderRequest,
                         context: Context) -> rpc_pb2.MoveLeaderResponse:
        await _unimplemented(context, "MoveLeader")


__all__ = ["ETCD_VERSION", "MaintenanceServicer"]
