"""AsyncWatch: one watcher as an async iterator of events that survives
reconnects and endpoint failover without gaps or duplicates.

Theory of operation
-------------------
The watch owns one gRPC Watch stream with one watcher on it. It keeps
`next_revision`, the first revision it has not yet delivered:

* a watch "from now" (start revision 0) learns it from the `created`
  response: the store revision then, plus one;
* every event response moves it past its last event (responses carry whole
  revisions, so nothing of a revision is left behind);
* a progress notification (no events) moves it past its header revision.

When the stream breaks (the member stopped: UNAVAILABLE "server stopped";
the connection dropped; the member is unreachable), the watch moves to the
next endpoint (real/client/pool.py) and creates the watcher again from
`next_revision`, so the new member replays exactly what was missed (a
stream refused for a stale token is opened again on the same member after
authenticating again). Events
below `next_revision` are dropped should a member send them again. A
watcher the server cancels ends the iteration with an error: a
`CompactedError` (with `compact_revision`) when the history it needed is
gone, the typed error of the server's reason otherwise (a
`PermissionDeniedError` for a range the user may not read; a creation
refused for a stale token is retried once after authenticating again). Reconnecting is
retried within the pool's policy; a failure beyond it ends the iteration
with the last error. `aclose()` ends the stream; the iteration then stops.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress
from dataclasses import replace
from types import TracebackType
from typing import Any

import grpc

from chainfire_core.mvcc.messages import Event
from chainfire_core.mvcc.watch_messages import WatchCreateRequest
from real.api.convert import event_from_pb
from real.api.convert_watch import watch_create_to_pb
from real.client.errors import (
    ClientError,
    CompactedError,
    ConnectionLostError,
    EndpointUnreachableError,
    from_cancel_reason,
    from_rpc_error,
)
from real.client.pool import CallKind, EndpointPool, Retry
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

_Call = Any  # grpc.aio.StreamStreamCall[WatchRequest, WatchResponse]


class AsyncWatch:
    """Iterate with `async for event in watch`; close with `aclose()` (or
    `async with`). Created by `AsyncClient.watch`, which awaits `start()`."""

    def __init__(self, pool: EndpointPool, request: WatchCreateRequest) -> None:
        self._pool = pool
        self._request = request
        self._next: int | None = request.start_revision or None
        self._call: _Call | None = None
        self._buffer: deque[Event] = deque()
        self._closed = False
        self._token: str | None = None  # the credentials the stream was opened with
        self.endpoint = ""
        self._streams = 0
        # Streams opened after the first one (reconnects / failovers).
        self.reconnects = 0

    @property
    def next_revision(self) -> int:
        """The first revision not yet delivered (0 before the watch started)."""
        return self._next or 0

    async def start(self) -> AsyncWatch:
        """Open the stream; returns once the server has created the watcher,
        so every write after this returns is seen."""
        await self._receive(opening=True)
        return self

    async def aclose(self) -> None:
        self._closed = True
        self._drop_call()

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            response = await self._receive(opening=False)
            if response is None:
                raise StopAsyncIteration
            self._absorb(response)
        return self._buffer.popleft()

    # -- the stream ------------------------------------------------------------------

    async def _receive(self, *, opening: bool) -> rpc_pb2.WatchResponse | None:
        """The next response, reconnecting as needed; None once closed."""
        retry = Retry(self._pool, CallKind.READ)
        while True:
            endpoint = self._pool.current
            error: ClientError
            try:
                if self._call is None:
                    await self._open(endpoint)
                    if opening:
                        return None
                call = self._call
                assert call is not None
                message = await call.read()
                if message is grpc.aio.EOF:
                    raise ConnectionLostError("the watch stream ended", endpoint=endpoint)
                assert isinstance(message, rpc_pb2.WatchResponse), type(message)
                return message
            except asyncio.CancelledError:
                if self._closed:
                    return None
                # The caller gave up waiting: the stream is left mid-read, so a
                # later read starts a new one from next_revision (nothing lost).
                self._drop_call()
                raise
            except grpc.RpcError as rpc_error:
                if self._closed:
                    return None
                error = from_rpc_error(rpc_error, self.endpoint or endpoint)
            except (EndpointUnreachableError, ConnectionLostError) as failure:
                error = failure
            except ClientError as failure:  # authenticating before the stream opened
                if self._closed:
                    raise
                error = failure
            self._drop_call()
            await retry.after(error, endpoint, token=self._token)

    async def _open(self, endpoint: str) -> None:
        channel = await self._pool.connected(endpoint)
        self._token = self._pool.token
        call = rpc_pb2_grpc.WatchStub(channel).Watch()
        request = replace(self._request, start_revision=self._next or 0)
        self._call = call
        self.endpoint = endpoint
        await call.write(rpc_pb2.WatchRequest(create_request=watch_create_to_pb(request)))
        first = await call.read()
        if first is grpc.aio.EOF:
            raise ConnectionLostError("the watch stream ended", endpoint=endpoint)
        assert isinstance(first, rpc_pb2.WatchResponse), type(first)
        if first.canceled:
            error = self._cancel_error(first)
            self._drop_call()
            if not (error.reauthenticate and self._pool.auth is not None):
                self._closed = True  # else: opened again after authenticating again
            raise error
        if not first.created:
            raise ConnectionLostError("the watch stream did not start with 'created'",
                                      endpoint=endpoint)
        if self._next is None:
            self._next = first.header.revision + 1
        self._streams += 1
        self.reconnects = self._streams - 1

    def _absorb(self, response: rpc_pb2.WatchResponse) -> None:
        if response.canceled:
            self._closed = True
            self._drop_call()
            raise self._cancel_error(response)
        if response.created:
            return
        assert self._next is not None, "events before the watch started"
        if not response.events:  # a progress notification
            self._next = max(self._next, response.header.revision + 1)
            return
        for pb in response.events:
            event = event_from_pb(pb)
            if event.kv.mod_revision >= self._next:
                self._buffer.append(event)
        self._next = max(self._next, response.events[-1].kv.mod_revision + 1)

    def _cancel_error(self, response: rpc_pb2.WatchResponse) -> ClientError:
        if response.compact_revision:
            return CompactedError("etcdserver: mvcc: required revision has been compacted",
                                  endpoint=self.endpoint,
                                  compact_revision=response.compact_revision)
        return from_cancel_reason(response.cancel_reason, self.endpoint)

    def _drop_call(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            with suppress(Exception):
                call.cancel()


__all__ = ["AsyncWatch"]
