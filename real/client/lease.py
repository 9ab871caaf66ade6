"""AsyncLease: a granted lease kept alive by a background task.

Theory of operation
-------------------
`start()` grants the lease (a write: retried only when the failure proves
nothing was granted) and starts the keepalive task, which sends a
keepalive every third of the granted TTL over one LeaseKeepAlive stream
(etcd's clientv3 does the same). A follower forwards keepalives to the
leader; when it cannot (an older server answers "not leader", no leader
within the request timeout) or the stream breaks, the task moves to the
next endpoint; repeating a keepalive is harmless, so every
transient error is retried (a stream refused for a stale token is opened
again after authenticating again). The task stops, and `expired` is set, when the
server answers TTL 0 (the lease is gone: revoked or expired) or when no
keepalive succeeded within the lease's last known TTL (it must be assumed
gone). `close(revoke=True)` stops the task first, then revokes (a lease
already gone is fine). As a context manager: `async with client.lease(5)
as lease:` grants on entry, stops and revokes on exit.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from types import TracebackType
from typing import Any

import grpc

from chainfire_core.lease.messages import LeaseTimeToLiveResponse
from chainfire_core.types import LeaseId
from real.api import convert_admin
from real.client.errors import (
    ClientError,
    ConnectionLostError,
    DeadlineExceededError,
    LeaseNotFoundError,
    from_rpc_error,
)
from real.client.pool import CallKind, EndpointPool
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

logger = logging.getLogger("chainfire.client")

_Call = Any  # grpc.aio.StreamStreamCall[LeaseKeepAliveRequest, LeaseKeepAliveResponse]
# Keepalive period floor (a tiny TTL must not spin the loop).
MIN_KEEPALIVE_INTERVAL_S = 0.05


class AsyncLease:
    def __init__(self, pool: EndpointPool, ttl_s: int, *, lease_id: int = 0,
                 keepalive: bool = True) -> None:
        assert ttl_s > 0, ttl_s
        self._pool = pool
        self.requested_ttl_s = ttl_s
        self.id = LeaseId(lease_id)
        self.ttl_s = 0
        self.keepalive = keepalive
        # Set when the lease is known (or must be assumed) gone.
        self.expired = asyncio.Event()
        # Keepalives answered by the server.
        self.renewals = 0
        self._task: asyncio.Task[None] | None = None
        self._call: _Call | None = None
        self._token: str | None = None  # the credentials the stream was opened with
        self._deadline = 0.0

    async def start(self) -> AsyncLease:
        async def grant(channel: grpc.aio.Channel, timeout_s: float) -> rpc_pb2.LeaseGrantResponse:
            request = rpc_pb2.LeaseGrantRequest(TTL=self.requested_ttl_s, ID=self.id)
            return await rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(request, timeout=timeout_s)

        response = await self._pool.call(CallKind.WRITE, grant)
        self.id, self.ttl_s = LeaseId(response.ID), response.TTL
        self._deadline = asyncio.get_running_loop().time() + self.ttl_s
        if self.keepalive:
            self._task = asyncio.create_task(self._keep(), name=f"chainfire-lease-{self.id:x}")
        return self

    async def close(self, *, revoke: bool = True) -> None:
        """Stop the keepalives; revoke the lease unless `revoke` is False (it
        then expires after its TTL)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        self._drop_call()
        if revoke and self.id and not self.expired.is_set():
            async def revoke_call(channel: grpc.aio.Channel,
                                  timeout_s: float) -> rpc_pb2.LeaseRevokeResponse:
                return await rpc_pb2_grpc.LeaseStub(channel).LeaseRevoke(
                    rpc_pb2.LeaseRevokeRequest(ID=self.id), timeout=timeout_s)

            with suppress(LeaseNotFoundError):
                await self._pool.call(CallKind.WRITE, revoke_call)
            self.expired.set()

    async def time_to_live(self, *, keys: bool = False) -> LeaseTimeToLiveResponse:
        async def ask(channel: grpc.aio.Channel,
                      timeout_s: float) -> rpc_pb2.LeaseTimeToLiveResponse:
            return await rpc_pb2_grpc.LeaseStub(channel).LeaseTimeToLive(
                rpc_pb2.LeaseTimeToLiveRequest(ID=self.id, keys=keys), timeout=timeout_s)

        return convert_admin.ttl_response_from_pb(await self._pool.call(CallKind.READ, ask))

    async def __aenter__(self) -> AsyncLease:
        if not self.id or self.ttl_s == 0:
            await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    # -- the keepalive task ------------------------------------------------------------

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        interval_s = max(self.ttl_s / 3, MIN_KEEPALIVE_INTERVAL_S)
        failures = 0
        while True:
            endpoint = self._pool.current
            try:
                ttl_s = await self._renew(endpoint)
            except ClientError as error:
                stale = self._pool.forget_token(error, self._token)
                if not error.retry_read and not stale:
                    logger.warning("lease %x: keepalive failed for good: %s", self.id, error)
                    self.expired.set()
                    return
                self._drop_call()
                if not stale:
                    self._pool.failover(endpoint)
                failures += 1
                if loop.time() >= self._deadline:
                    self.expired.set()  # no renewal within its TTL: assume it gone
                    return
                if failures % len(self._pool.endpoints) == 0:
                    await asyncio.sleep(min(interval_s, 0.5))
                continue
            failures = 0
            if ttl_s <= 0:
                self.expired.set()
                return
            self.renewals += 1
            self._deadline = loop.time() + ttl_s
            await asyncio.sleep(interval_s)

    async def _renew(self, endpoint: str) -> int:
        """One keepalive on the stream to `endpoint`; the TTL answered."""
        try:
            if self._call is None:
                channel = await self._pool.connected(endpoint)
                self._token = self._pool.token
                self._call = rpc_pb2_grpc.LeaseStub(channel).LeaseKeepAlive()
            call = self._call
            await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=self.id))
            response = await asyncio.wait_for(call.read(), self._pool.policy.request_timeout_s)
        except grpc.RpcError as rpc_error:
            raise from_rpc_error(rpc_error, endpoint) from None
        except TimeoutError:
            raise DeadlineExceededError("keepalive unanswered", endpoint=endpoint) from None
        except asyncio.InvalidStateError:  # the call had already ended
            raise ConnectionLostError("the keepalive stream ended", endpoint=endpoint) from None
        if response is grpc.aio.EOF:
            raise ConnectionLostError("the keepalive stream ended", endpoint=endpoint)
        assert isinstance(response, rpc_pb2.LeaseKeepAliveResponse), type(response)
        return int(response.TTL)

    def _drop_call(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            with suppress(Exception):
                call.cancel()


__all__ = ["MIN_KEEPALIVE_INTERVAL_S", "AsyncLease"]
