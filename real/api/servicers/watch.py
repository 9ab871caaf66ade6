"""etcd's Watch service: one bidirectional stream, many watchers.

Theory of operation
-------------------
Each Watch RPC gets a `WatchSession` from the handle and runs two tasks:

* the reader takes the client's requests in order: a create asks the
  session for a watcher and maps the core's node-wide id to a
  stream-local id (the client's own choice, or the next unused one counting
  from 0, as etcd allocates); a cancel cancels the mapped watcher (an unknown id is
  ignored, as etcd does); a progress request asks for progress
  notifications on all of the stream's watchers. A create the core refuses
  (bad key, unknown filter, too many watchers, an id in use on this stream)
  is answered the way etcd answers it: `created` and `canceled` together,
  watch id -1, the reason in `cancel_reason`; the stream goes on. A client
  that half-closes its side keeps receiving events, as from etcd.
* the pump waits for the session's responses, renames them to the
  stream-local ids, splits large ones for watchers created with `fragment`
  (convert_watch.fragment), and queues them. A watcher leaves the map with
  its `canceled` response.

Both feed one bounded queue that the handler (an async generator) hands to
gRPC, which waits for HTTP/2 flow control: a slow client fills the queue,
the pump stops polling, and responses stay queued in the core (bounded; a
watcher that falls behind catches up from history). A lock orders reader
and pump around the id map: the pump cannot translate a `created` response
before the reader has recorded whose it is. The stream ends when the client
cancels it (the handler is cancelled; `finally` closes the session,
cancelling its watchers) or when the session ends because the node is
stopping (UNAVAILABLE "etcdserver: server stopped"; clients reconnect).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from chainfire_core.auth import AuthInfo
from chainfire_core.errors import ChainfireError, InvalidRequest, WatchNotFound
from chainfire_core.mvcc.messages import ResponseHeader
from chainfire_core.mvcc.watch_messages import WatchIdInUse, WatchResponse
from chainfire_core.types import Revision, WatchId
from real.api.convert import header_to_pb
from real.api.convert_watch import fragment, watch_create_from_pb, watch_response_to_pb
from real.api.errors import STOPPED
from real.api.handle import NodeHandle, WatchSession
from real.api.servicers.common import Context, HandleServicer
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

# etcd's default limit on a request (--max-request-bytes): fragments stay under it.
DEFAULT_FRAGMENT_BYTES = 1536 * 1024
# The watch id etcd puts on answers that belong to no watcher.
NO_WATCH_ID = -1


# Translated responses waiting for the client.
OUT_QUEUE_MAX = 64


@dataclass(frozen=True, slots=True)
class _End:
    error: Exception | None = None


@dataclass(slots=True)
class _Local:
    core_id: WatchId
    fragment: bool


class WatchServicer(HandleServicer, rpc_pb2_grpc.WatchServicer):
    def __init__(self, handle: NodeHandle, *,
                 fragment_bytes: int = DEFAULT_FRAGMENT_BYTES) -> None:
        super().__init__(handle)
        assert fragment_bytes > 0, fragment_bytes
        self.fragment_bytes = fragment_bytes

    async def Watch(self, request_iterator: AsyncIterator[rpc_pb2.WatchRequest],
                    context: Context) -> AsyncIterator[rpc_pb2.WatchResponse]:
        # The stream's credentials, from its metadata (as etcd: per stream).
        auth = await self.credentials(context)
        stream = _WatchStream(self, self.handle.watch_session(), auth)
        try:
            async for response in stream.run(request_iterator):
                yield response
        finally:
            stream.session.close()
        code, message = STOPPED  # the session ended: the node is stopping
        await context.abort(code, message)


class _WatchStream:
    def __init__(self, servicer: WatchServicer, session: WatchSession,
                 auth: AuthInfo | None = None) -> None:
        self.servicer = servicer
        self.session = session
        self.auth = auth
        self._by_local: dict[int, _Local] = {}
        self._local_by_core: dict[WatchId, int] = {}
        self._next_local = 0
        self._map_lock = asyncio.Lock()
        # Responses for the client; bounded, so a slow client stalls the pump.
        self._out: asyncio.Queue[rpc_pb2.WatchResponse | _End] = asyncio.Queue(OUT_QUEUE_MAX)

    async def run(self, requests: AsyncIterator[rpc_pb2.WatchRequest]
                  ) -> AsyncIterator[rpc_pb2.WatchResponse]:
        """The responses to write, until the session ends (then it returns)."""
        reader = asyncio.ensure_future(self._guard(self._read(requests)))
        pump = asyncio.ensure_future(self._guard(self._pump()))
        try:
            while True:
                item = await self._out.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            for task in (reader, pump):
                task.cancel()
            for task in (reader, pump):
                with suppress(asyncio.CancelledError):
                    await task

    async def _guard(self, work: Coroutine[Any, Any, bool]) -> None:
        """Run a task; tell `run` when it ends the stream (or fails)."""
        try:
            ends_stream = await work
        except Exception as error:  # a bug: end the stream with it, keep serving others
            await self._out.put(_End(error=error))
            return
        if ends_stream:
            await self._out.put(_End())

    async def _write(self, response: rpc_pb2.WatchResponse) -> None:
        await self._out.put(response)

    # -- the client's requests -------------------------------------------------------

    async def _read(self, requests: AsyncIterator[rpc_pb2.WatchRequest]) -> bool:
        """False: a half-closed client keeps its stream open."""
        async for request in requests:
            match request.WhichOneof("request_union"):
                case "create_request":
                    await self._create(request.create_request)
                case "cancel_request":
                    await self._cancel(request.cancel_request.watch_id)
                case "progress_request":
                    await self.session.request_progress()
                case _:
                    pass  # an empty request: etcd ignores it too
        return False

    async def _create(self, pb: rpc_pb2.WatchCreateRequest) -> None:
        try:
            async with self._map_lock:
                local = self._claim_local(pb.watch_id)
                core = watch_create_from_pb(pb)
                if self.auth is not None:  # READ on the watched range, as etcd checks
                    self.servicer.handle.check_range(self.auth, core.key, core.range_end)
                core_id = await self.session.create(core)
                self._by_local[local] = _Local(core_id=core_id, fragment=pb.fragment)
                self._local_by_core[core_id] = local
        except ChainfireError as error:
            await self._write(self._refusal(str(error)))

    def _claim_local(self, requested: int) -> int:
        if requested < 0:
            raise InvalidRequest(f"watch_id must be >= 0, got {requested}")
        if requested:
            if requested in self._by_local:
                raise WatchIdInUse(requested)
            return requested
        while self._next_local in self._by_local:
            self._next_local += 1
        local = self._next_local
        self._next_local += 1
        return local

    def _refusal(self, reason: str) -> rpc_pb2.WatchResponse:
        header = ResponseHeader(revision=Revision(self.servicer.handle.revision()))
        return rpc_pb2.WatchResponse(header=header_to_pb(header, self.servicer.fields()),
                                     watch_id=NO_WATCH_ID, created=True, canceled=True,
                                     cancel_reason=reason)

    async def _cancel(self, local: int) -> None:
        entry = self._by_local.get(local)
        if entry is None:
            return
        with suppress(WatchNotFound):  # canceled already (compaction): its answer is queued
            await self.session.cancel(entry.core_id)

    # -- responses to the client -------------------------------------------------------

    async def _pump(self) -> bool:
        """True when the session ended."""
        while True:
            batch = await self.session.responses()
            if not batch:
                return True
            async with self._map_lock:
                pieces = [piece for response in batch for piece in self._translate(response)]
            for piece in pieces:
                await self._write(piece)

    def _translate(self, response: WatchResponse) -> list[rpc_pb2.WatchResponse]:
        local = self._local_by_core.get(response.watch_id)
        assert local is not None, f"a response for watcher {response.watch_id} of no stream"
        entry = self._by_local[local]
        if response.canceled:
            del self._by_local[local]
            del self._local_by_core[response.watch_id]
        pb = watch_response_to_pb(response, local, self.servicer.fields())
        if entry.fragment and response.events:
            return fragment(pb, self.servicer.fragment_bytes)
        return [pb]


__all__ = ["DEFAULT_FRAGMENT_BYTES", "NO_WATCH_ID", "WatchServicer"]
