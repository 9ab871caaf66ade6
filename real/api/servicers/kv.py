"""etcd's KV service: Range, Put, DeleteRange, Txn, Compact over a NodeHandle.

Each RPC is decode -> `handle.request` -> encode (see common.py). Range and
read-only Txn honour etcd's `serializable` flag (a txn is serializable when
every operation in it is a serializable range); everything else is
linearizable through Raft.
"""

from __future__ import annotations

from chainfire_core.errors import ChainfireError
from chainfire_core.mvcc.messages import (
    CompactionResponse,
    DeleteRangeResponse,
    PutResponse,
    RangeResponse,
    TxnResponse,
)
from real.api import convert
from real.api.errors import abort
from real.api.servicers.common import Context, HandleServicer, decode
from real.etcdpb import rpc_pb2, rpc_pb2_grpc


class KVServicer(HandleServicer, rpc_pb2_grpc.KVServicer):
    # Range and Put, the hot paths, decode in line (`decode` costs a coroutine).

    async def Range(self, request: rpc_pb2.RangeRequest,
                    context: Context) -> rpc_pb2.RangeResponse:
        try:
            core, consistency = convert.range_from_pb(request)
        except ChainfireError as error:
            await abort(context, error)
        response = await self.ask(context, core, RangeResponse, consistency)
        return convert.range_response_to_pb(response, self.fields())

    async def Put(self, request: rpc_pb2.PutRequest, context: Context) -> rpc_pb2.PutResponse:
        try:
            core = convert.put_from_pb(request)
        except ChainfireError as error:
            await abort(context, error)
        response = await self.ask(context, core, PutResponse)
        return convert.put_response_to_pb(response, self.fields())

    async def DeleteRange(self, request: rpc_pb2.DeleteRangeRequest,
                          context: Context) -> rpc_pb2.DeleteRangeResponse:
        core = await decode(context, convert.delete_from_pb, request)
        response = await self.ask(context, core, DeleteRangeResponse)
        return convert.delete_response_to_pb(response, self.fields())

    async def Txn(self, request: rpc_pb2.TxnRequest, context: Context) -> rpc_pb2.TxnResponse:
        core, consistency = await decode(context, convert.txn_from_pb, request)
        response = await self.ask(context, core, TxnResponse, consistency)
        return convert.txn_response_to_pb(response, self.fields())

    async def Compact(self, request: rpc_pb2.CompactionRequest,
                      context: Context) -> rpc_pb2.CompactionResponse:
        core = await decode(context, convert.compaction_from_pb, request)
        response = await self.ask(context, core, CompactionResponse)
        return convert.compaction_response_to_pb(response, self.fields())


__all__ = ["KVServicer"]
