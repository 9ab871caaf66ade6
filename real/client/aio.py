"""AsyncClient: the asyncio client over etcd's v3 gRPC API.

Theory of operation
-------------------
Each method builds the core's request dataclass (so a bad request fails
here, with the core's validation, before anything is sent), encodes it with
real/api/convert*.py, and sends it through the `EndpointPool`, which picks
the endpoint and decides on failover by the call's kind: reads are retried
on transient errors, writes only when the error proves nothing was applied
(real/client/errors.py has the rule per error). Answers come back as the
core's response dataclasses (`RangeResponse`, `KeyValue`, `TxnResponse`,
...). Keys and values may be bytes or str (UTF-8).

Streams have their own objects: `watch()` returns a started `AsyncWatch`
(real/client/watch.py: resumes after failover without gaps or duplicates),
`lease()` an `AsyncLease` with its keepalive task (real/client/lease.py).
Maintenance and quota calls come from `MaintenanceCalls`
(real/client/maintenance.py), user and role administration from
`client.auth` (real/client/auth_admin.py). `tls=` (real/client/tls.py) and
`user=`/`password=` (real/client/auth.py) set how every channel connects
and which token every call carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TypeVar

import grpc

from chainfire_core.lease.messages import (
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseLeasesResponse,
    LeaseTimeToLiveResponse,
)
from chainfire_core.mvcc.messages import (
    DeleteRangeResponse,
    KeyValue,
    PutResponse,
    RangeResponse,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from chainfire_core.mvcc.watch_messages import WatchCreateRequest, WatchFilter
from chainfire_core.node_messages import Member, MemberResponse, ReadConsistency
from real.api import convert, convert_admin
from real.client.auth import Authenticator
from real.client.auth_admin import AsyncAuthAdmin
from real.client.errors import ConnectionLostError
from real.client.lease import AsyncLease
from real.client.maintenance import MaintenanceCalls
from real.client.pool import CallKind, EndpointPool, RetryPolicy
from real.client.tls import ClientTLS
from real.client.txn import (
    Bytes,
    CasOutcome,
    Txn,
    cas_outcome,
    cas_request,
    is_read_only,
    op_delete,
    op_get,
    op_put,
    range_end_for,
    to_bytes,
)
from real.client.watch import AsyncWatch
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

_T = TypeVar("_T")


def _consistency(serializable: bool) -> ReadConsistency:
    return ReadConsistency.SERIALIZABLE if serializable else ReadConsistency.LINEARIZABLE


def _authenticator(user: str | None, password: str | None) -> Authenticator | None:
    if user is None and password is None:
        return None
    if not user or password is None:
        raise ValueError("give both user and password (or neither)")
    return Authenticator(user, password)


class AsyncClient(MaintenanceCalls):
    """`AsyncClient(["127.0.0.1:2379", ...])`; use as `async with` or `await close()`.
    `tls=ClientTLS(...)` or https:// endpoints: TLS; `user=`, `password=`: auth."""

    def __init__(self, endpoints: Sequence[str] | str, policy: RetryPolicy | None = None, *,
                 tls: ClientTLS | None = None, user: str | None = None,
                 password: str | None = None) -> None:
        self.pool = EndpointPool(endpoints, policy, tls=tls,
                                 auth=_authenticator(user, password))
        self.auth = AsyncAuthAdmin(self.pool)

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    async def _kv(self, kind: CallKind,
                  method: Callable[[rpc_pb2_grpc.KVAsyncStub], Callable[..., Awaitable[_T]]],
                  request: object) -> _T:
        async def invoke(channel: grpc.aio.Channel, timeout_s: float) -> _T:
            return await method(rpc_pb2_grpc.KVStub(channel))(request, timeout=timeout_s)
        return await self.pool.call(kind, invoke)

    # -- KV --------------------------------------------------------------------------

    async def put(self, key: Bytes, data: Bytes, *, lease: int = 0,
                  prev_kv: bool = False) -> PutResponse:
        pb = convert.put_to_pb(op_put(key, data, lease=lease, prev_kv=prev_kv))
        response = await self._kv(CallKind.WRITE, lambda kv: kv.Put, pb)
        return convert.put_response_from_pb(response)

    async def range(self, key: Bytes, range_end: Bytes = b"", *, prefix: bool = False,
                    revision: int = 0, limit: int = 0, sort_order: SortOrder = SortOrder.NONE,
                    sort_target: SortTarget = SortTarget.KEY, keys_only: bool = False,
                    count_only: bool = False, serializable: bool = False) -> RangeResponse:
        request = op_get(key, range_end, prefix=prefix, revision=revision, limit=limit,
                         sort_order=sort_order, sort_target=sort_target, keys_only=keys_only,
                         count_only=count_only)
        pb = convert.range_to_pb(request, _consistency(serializable))
        response = await self._kv(CallKind.READ, lambda kv: kv.Range, pb)
        return convert.range_response_from_pb(response)

    async def get(self, key: Bytes, *, revision: int = 0,
                  serializable: bool = False) -> KeyValue | None:
        """The key, or None when absent (at `revision`: 0 is the newest)."""
        response = await self.range(key, revision=revision, serializable=serializable)
        return response.kvs[0] if response.kvs else None

    async def get_prefix(self, prefix: Bytes, *, revision: int = 0, limit: int = 0,
                         sort_order: SortOrder = SortOrder.ASCEND,
                         sort_target: SortTarget = SortTarget.KEY, keys_only: bool = False,
                         serializable: bool = False) -> tuple[KeyValue, ...]:
        response = await self.range(prefix, prefix=True, revision=revision, limit=limit,
                                    sort_order=sort_order, sort_target=sort_target,
                                    keys_only=keys_only, serializable=serializable)
        return response.kvs

    async def delete(self, key: Bytes, range_end: Bytes = b"", *, prefix: bool = False,
                     prev_kv: bool = False) -> DeleteRangeResponse:
        pb = convert.delete_to_pb(op_delete(key, range_end, prefix=prefix, prev_kv=prev_kv))
        response = await self._kv(CallKind.WRITE, lambda kv: kv.DeleteRange, pb)
        return convert.delete_response_from_pb(response)

    async def delete_prefix(self, prefix: Bytes, *, prev_kv: bool = False) -> DeleteRangeResponse:
        return await self.delete(prefix, prefix=True, prev_kv=prev_kv)

    async def txn(self, txn: Txn | TxnRequest, *, serializable: bool = False) -> TxnResponse:
        """Run a txn (`Txn` builder or core request). A read-only txn is a read
        (retried on failover; `serializable` serves it locally); any other is a
        write."""
        request = txn.request() if isinstance(txn, Txn) else txn
        kind = CallKind.READ if is_read_only(request) else CallKind.WRITE
        pb = convert.txn_to_pb(request, _consistency(serializable and kind is CallKind.READ))
        response = await self._kv(kind, lambda kv: kv.Txn, pb)
        return convert.txn_response_from_pb(response)

    async def compare_and_swap(self, key: Bytes, new_value: Bytes, *,
                               expected_value: Bytes | None = None,
                               expected_mod_revision: int | None = None,
                               lease: int = 0) -> CasOutcome:
        """Write `new_value` if the key holds `expected_value` (or has
        `expected_mod_revision`; with neither: if it is absent), atomically."""
        request = cas_request(key, new_value, expected_value=expected_value,
                              expected_mod_revision=expected_mod_revision, lease=lease)
        return cas_outcome(await self.txn(request))

    async def compact(self, revision: int) -> int:
        """Compact history below `revision`; the answer's store revision."""
        pb = rpc_pb2.CompactionRequest(revision=revision, physical=True)
        response = await self._kv(CallKind.WRITE, lambda kv: kv.Compact, pb)
        return int(response.header.revision)

    # -- watch -----------------------------------------------------------------------

    async def watch(self, key: Bytes, range_end: Bytes = b"", *, prefix: bool = False,
                    start_revision: int = 0, prev_kv: bool = False,
                    filters: tuple[WatchFilter, ...] = ()) -> AsyncWatch:
        """A started watch (see real/client/watch.py): `async for event in w`."""
        raw = to_bytes(key)
        request = WatchCreateRequest(key=raw, range_end=range_end_for(raw, range_end,
                                                                      prefix=prefix),
                                     start_revision=start_revision, prev_kv=prev_kv,
                                     filters=filters)
        return await AsyncWatch(self.pool, request).start()

    async def watch_prefix(self, prefix: Bytes, *, start_revision: int = 0,
                           prev_kv: bool = False,
                           filters: tuple[WatchFilter, ...] = ()) -> AsyncWatch:
        return await self.watch(prefix, prefix=True, start_revision=start_revision,
                                prev_kv=prev_kv, filters=filters)

    # -- leases ----------------------------------------------------------------------

    def lease(self, ttl_s: int, *, lease_id: int = 0, keepalive: bool = True) -> AsyncLease:
        """A lease with automatic keepalives: `async with client.lease(5) as lease`
        (or `await client.lease(5).start()`, then `await lease.close()`)."""
        return AsyncLease(self.pool, ttl_s, lease_id=lease_id, keepalive=keepalive)

    async def grant(self, ttl_s: int, *, lease_id: int = 0) -> LeaseGrantResponse:
        pb = rpc_pb2.LeaseGrantRequest(TTL=ttl_s, ID=lease_id)

        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.LeaseGrantResponse:
            return await rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(pb, timeout=timeout_s)
        return convert_admin.lease_grant_response_from_pb(
            await self.pool.call(CallKind.WRITE, invoke))

    async def revoke(self, lease_id: int) -> int:
        """Revoke the lease (its keys are deleted); the answer's store revision."""
        pb = rpc_pb2.LeaseRevokeRequest(ID=lease_id)

        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.LeaseRevokeResponse:
            return await rpc_pb2_grpc.LeaseStub(channel).LeaseRevoke(pb, timeout=timeout_s)
        return int((await self.pool.call(CallKind.WRITE, invoke)).header.revision)

    async def keepalive_once(self, lease_id: int) -> LeaseKeepAliveResponse:
        """One keepalive (TTL 0 in the answer: the lease is gone). Repeating a
        keepalive is harmless, so it is retried like a read."""
        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.LeaseKeepAliveResponse:
            call = rpc_pb2_grpc.LeaseStub(channel).LeaseKeepAlive(timeout=timeout_s)
            try:
                await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
                response = await call.read()
            finally:
                call.cancel()
            if response is grpc.aio.EOF:
                raise ConnectionLostError("the keepalive stream ended")
            assert isinstance(response, rpc_pb2.LeaseKeepAliveResponse), type(response)
            return response
        return convert_admin.keepalive_response_from_pb(await self.pool.call(CallKind.READ,
                                                                             invoke))

    async def time_to_live(self, lease_id: int, *, keys: bool = False
                           ) -> LeaseTimeToLiveResponse:
        """TTL -1 in the answer: no such lease."""
        pb = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)

        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.LeaseTimeToLiveResponse:
            return await rpc_pb2_grpc.LeaseStub(channel).LeaseTimeToLive(pb, timeout=timeout_s)
        return convert_admin.ttl_response_from_pb(await self.pool.call(CallKind.READ, invoke))

    async def leases(self) -> LeaseLeasesResponse:
        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.LeaseLeasesResponse:
            return await rpc_pb2_grpc.LeaseStub(channel).LeaseLeases(
                rpc_pb2.LeaseLeasesRequest(), timeout=timeout_s)
        return convert_admin.leases_response_from_pb(await self.pool.call(CallKind.READ,
                                                                          invoke))

    # -- cluster and maintenance ---------------------------------------------------------

    async def member_list(self) -> tuple[Member, ...]:
        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.MemberListResponse:
            return await rpc_pb2_grpc.ClusterStub(channel).MemberList(
                rpc_pb2.MemberListRequest(), timeout=timeout_s)
        response = await self.pool.call(CallKind.READ, invoke)
        return convert_admin.member_list_response_from_pb(response).members

    async def member_add(self, peer_urls: Sequence[str], *,
                         is_learner: bool = False) -> MemberResponse:
        """Add a member; `.member` is the new one (with its id), `.members` all."""
        pb = rpc_pb2.MemberAddRequest(peerURLs=list(peer_urls), isLearner=is_learner)

        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.MemberAddResponse:
            return await rpc_pb2_grpc.ClusterStub(channel).MemberAdd(pb, timeout=timeout_s)
        response = await self.pool.call(CallKind.WRITE, invoke)
        return MemberResponse(header=convert.header_from_pb(response.header),
                              member=(convert_admin.member_from_pb(response.member)
                                      if response.HasField("member") else None),
                              members=tuple(convert_admin.member_from_pb(m)
                                            for m in response.members))

    async def member_remove(self, member_id: int) -> tuple[Member, ...]:
        pb = rpc_pb2.MemberRemoveRequest(ID=member_id)

        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.MemberRemoveResponse:
            return await rpc_pb2_grpc.ClusterStub(channel).MemberRemove(pb, timeout=timeout_s)
        response = await self.pool.call(CallKind.WRITE, invoke)
        return tuple(convert_admin.member_from_pb(m) for m in response.members)

    async def member_update(self, member_id: int, peer_urls: Sequence[str]
                            ) -> tuple[Member, ...]:
        """Replace a member's peer URLs (etcd's MemberUpdate); every member
        after the change. Not retried where the outcome is unknown, as etcd's
        client does not (it is a membership change)."""
        pb = rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=list(peer_urls))

        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.MemberUpdateResponse:
            return await rpc_pb2_grpc.ClusterStub(channel).MemberUpdate(pb, timeout=timeout_s)
        response = await self.pool.call(CallKind.WRITE, invoke)
        return tuple(convert_admin.member_from_pb(m) for m in response.members)

    async def member_promote(self, member_id: int) -> tuple[Member, ...]:
        pb = rpc_pb2.MemberPromoteRequest(ID=member_id)

        async def invoke(channel: grpc.aio.Channel,
                         timeout_s: float) -> rpc_pb2.MemberPromoteResponse:
            return await rpc_pb2_grpc.ClusterStub(channel).MemberPromote(pb, timeout=timeout_s)
        response = await self.pool.call(CallKind.WRITE, invoke)
        return tuple(convert_admin.member_from_pb(m) for m in response.members)


__all__ = ["AsyncClient"]
