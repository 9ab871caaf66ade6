"""Chainfire's Quota service (proto/chainfire.proto): per-namespace quotas.

Set and Delete are commands (through the log, so every replica enforces the
same limits; root only once auth is enabled); List is a linearizable read
that also reports each namespace's current usage. `chainfire quota` is its
command line (real/quota_cli.py).
"""

from __future__ import annotations

from chainfire_core.quota import (
    QuotaDeleteRequest,
    QuotaListRequest,
    QuotaResponse,
    QuotaSetRequest,
)
from real.api.convert import header_to_pb
from real.api.servicers.common import Context, HandleServicer, decode
from real.etcdpb import chainfire_pb2, chainfire_pb2_grpc


def _set_from_pb(pb: chainfire_pb2.QuotaSetRequest) -> QuotaSetRequest:
    return QuotaSetRequest(prefix=pb.prefix, max_keys=pb.max_keys, max_bytes=pb.max_bytes)


def _delete_from_pb(pb: chainfire_pb2.QuotaDeleteRequest) -> QuotaDeleteRequest:
    return QuotaDeleteRequest(prefix=pb.prefix)


class QuotaServicer(HandleServicer, chainfire_pb2_grpc.QuotaServicer):
    def _to_pb(self, response: QuotaResponse) -> chainfire_pb2.QuotaResponse:
        return chainfire_pb2.QuotaResponse(
            header=header_to_pb(response.header, self.fields()),
            quotas=[chainfire_pb2.NamespaceUsage(
                prefix=usage.prefix, max_keys=usage.max_keys, max_bytes=usage.max_bytes,
                used_keys=usage.used_keys, used_bytes=usage.used_bytes)
                for usage in response.quotas])

    async def Set(self, request: chainfire_pb2.QuotaSetRequest,
                  context: Context) -> chainfire_pb2.QuotaResponse:
        core = await decode(context, _set_from_pb, request)
        return self._to_pb(await self.ask(context, core, QuotaResponse))

    async def Delete(self, request: chainfire_pb2.QuotaDeleteRequest,
                     context: Context) -> chainfire_pb2.QuotaResponse:
        core = await decode(context, _delete_from_pb, request)
        return self._to_pb(await self.ask(context, core, QuotaResponse))

    async def List(self, request: chainfire_pb2.QuotaListRequest,
                   context: Context) -> chainfire_pb2.QuotaResponse:
        return self._to_pb(await self.ask(context, QuotaListRequest(), QuotaResponse))


__all__ = ["QuotaServicer"]
