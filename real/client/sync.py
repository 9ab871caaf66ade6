"""Client: the synchronous client, a thin shell over `AsyncClient`.

Theory of operation
-------------------
A `Client` owns one private event loop on a daemon thread and an
`AsyncClient` living on it; each method submits the matching coroutine to
that loop and waits for its result, so the sync and async clients share
every rule (conversions, failover, retries) and the sync client can be
used from any thread, including one that runs its own event loop. Streams
stay on the private loop: a `Watch` has a pump task that moves events into
a thread-safe queue (at most `MAX_BUFFERED_EVENTS` ahead of the reader: the
pump stops reading the stream while the queue is full), and a `Lease`'s
keepalive task runs there while the caller's thread does other work.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from chainfire_core.alarms import AlarmMember
from chainfire_core.lease.messages import (
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseLeasesResponse,
    LeaseTimeToLiveResponse,
)
from chainfire_core.mvcc.messages import (
    DeleteRangeResponse,
    Event,
    KeyValue,
    PutResponse,
    RangeResponse,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from chainfire_core.mvcc.watch_messages import WatchFilter
from chainfire_core.node_messages import Member, MemberResponse, StatusResponse
from chainfire_core.quota import NamespaceUsage
from chainfire_core.types import LeaseId, NodeId
from real.client.aio import AsyncClient
from real.client.auth_admin import AuthAdmin
from real.client.lease import AsyncLease
from real.client.maintenance import SNAPSHOT_TIMEOUT_S, HashKVResult, SnapshotTarget
from real.client.pool import EndpointPool, RetryPolicy
from real.client.tls import ClientTLS
from real.client.txn import Bytes, CasOutcome, Txn
from real.client.watch import AsyncWatch

_T = TypeVar("_T")

# Events a sync Watch reads ahead of its consumer.
MAX_BUFFERED_EVENTS = 1024


class _LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="chainfire-client")
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        assert threading.current_thread() is not self._thread, "called from the client's loop"
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class Client:
    """`Client(["127.0.0.1:2379", ...])`: the same operations as `AsyncClient`,
    blocking. Use as `with Client(...) as client:` or call `close()`."""

    def __init__(self, endpoints: Sequence[str] | str, policy: RetryPolicy | None = None, *,
                 tls: ClientTLS | None = None, user: str | None = None,
                 password: str | None = None) -> None:
        self._aio = AsyncClient(endpoints, policy, tls=tls, user=user, password=password)
        self._thread = _LoopThread()
        # Users, roles and auth enable/disable (real/client/auth_admin.py).
        self.auth = AuthAdmin(self._run, self._aio.auth)

    @property
    def pool(self) -> EndpointPool:
        return self._aio.pool

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self._thread.run(coro)

    def close(self) -> None:
        if not self._thread.loop.is_closed():
            self._run(self._aio.close())
            self._thread.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # -- KV ------------------------------------------------------------------------------

    def put(self, key: Bytes, data: Bytes, *, lease: int = 0,
            prev_kv: bool = False) -> PutResponse:
        return self._run(self._aio.put(key, data, lease=lease, prev_kv=prev_kv))

    def range(self, key: Bytes, range_end: Bytes = b"", *, prefix: bool = False,
              revision: int = 0, limit: int = 0, sort_order: SortOrder = SortOrder.NONE,
              sort_target: SortTarget = SortTarget.KEY, keys_only: bool = False,
              count_only: bool = False, serializable: bool = False) -> RangeResponse:
        return self._run(self._aio.range(
            key, range_end, prefix=prefix, revision=revision, limit=limit,
            sort_order=sort_order, sort_target=sort_target, keys_only=keys_only,
            count_only=count_only, serializable=serializable))

    def get(self, key: Bytes, *, revision: int = 0,
            serializable: bool = False) -> KeyValue | None:
        return self._run(self._aio.get(key, revision=revision, serializable=serializable))

    def get_prefix(self, prefix: Bytes, *, revision: int = 0, limit: int = 0,
                   sort_order: SortOrder = SortOrder.ASCEND,
                   sort_target: SortTarget = SortTarget.KEY, keys_only: bool = False,
                   serializable: bool = False) -> tuple[KeyValue, ...]:
        return self._run(self._aio.get_prefix(
            prefix, revision=revision, limit=limit, sort_order=sort_order,
            sort_target=sort_target, keys_only=keys_only, serializable=serializable))

    def delete(self, key: Bytes, range_end: Bytes = b"", *, prefix: bool = False,
               prev_kv: bool = False) -> DeleteRangeResponse:
        return self._run(self._aio.delete(key, range_end, prefix=prefix, prev_kv=prev_kv))

    def delete_prefix(self, prefix: Bytes, *, prev_kv: bool = False) -> DeleteRangeResponse:
        return self._run(self._aio.delete_prefix(prefix, prev_kv=prev_kv))

    def txn(self, txn: Txn | TxnRequest, *, serializable: bool = False) -> TxnResponse:
        return self._run(self._aio.txn(txn, serializable=serializable))

    def compare_and_swap(self, key: Bytes, new_value: Bytes, *,
                         expected_value: Bytes | None = None,
                         expected_mod_revision: int | None = None,
                         lease: int = 0) -> CasOutcome:
        return self._run(self._aio.compare_and_swap(
            key, new_value, expected_value=expected_value,
            expected_mod_revision=expected_mod_revision, lease=lease))

    def compact(self, revision: int) -> int:
        return self._run(self._aio.compact(revision))

    # -- watch, leases -------------------------------------------------------------------

    def watch(self, key: Bytes, range_end: Bytes = b"", *, prefix: bool = False,
              start_revision: int = 0, prev_kv: bool = False,
              filters: tuple[WatchFilter, ...] = ()) -> Watch:
        """A started watch: iterate it (`for event in watch`) or call
        `watch.next(timeout_s)`; `close()` ends it."""
        async def start() -> Watch:
            started = await self._aio.watch(key, range_end, prefix=prefix,
                                            start_revision=start_revision, prev_kv=prev_kv,
                                            filters=filters)
            return Watch(self._thread, started)
        return self._run(start())

    def watch_prefix(self, prefix: Bytes, *, start_revision: int = 0,
                     prev_kv: bool = False) -> Watch:
        return self.watch(prefix, prefix=True, start_revision=start_revision, prev_kv=prev_kv)

    def lease(self, ttl_s: int, *, lease_id: int = 0, keepalive: bool = True) -> Lease:
        """A lease with automatic keepalives: `with client.lease(5) as lease:`."""
        return Lease(self._thread, self._aio.lease(ttl_s, lease_id=lease_id,
                                                   keepalive=keepalive))

    def grant(self, ttl_s: int, *, lease_id: int = 0) -> LeaseGrantResponse:
        return self._run(self._aio.grant(ttl_s, lease_id=lease_id))

    def revoke(self, lease_id: int) -> int:
        return self._run(self._aio.revoke(lease_id))

    def keepalive_once(self, lease_id: int) -> LeaseKeepAliveResponse:
        return self._run(self._aio.keepalive_once(lease_id))

    def time_to_live(self, lease_id: int, *, keys: bool = False) -> LeaseTimeToLiveResponse:
        return self._run(self._aio.time_to_live(lease_id, keys=keys))

    def leases(self) -> LeaseLeasesResponse:
        return self._run(self._aio.leases())

    # -- cluster, maintenance ------------------------------------------------------------

    def member_list(self) -> tuple[Member, ...]:
        return self._run(self._aio.member_list())

    def member_add(self, peer_urls: Sequence[str], *, is_learner: bool = False
                   ) -> MemberResponse:
        return self._run(self._aio.member_add(peer_urls, is_learner=is_learner))

    def member_remove(self, member_id: int) -> tuple[Member, ...]:
        return self._run(self._aio.member_remove(member_id))

    def member_update(self, member_id: int, peer_urls: Sequence[str]) -> tuple[Member, ...]:
        return self._run(self._aio.member_update(member_id, peer_urls))

    def member_promote(self, member_id: int) -> tuple[Member, ...]:
        return self._run(self._aio.member_promote(member_id))

    def status(self, endpoint: str | None = None) -> StatusResponse:
        return self._run(self._aio.status(endpoint))

    def leader(self) -> NodeId:
        return self._run(self._aio.leader())

    def snapshot(self, target: SnapshotTarget, *, endpoint: str | None = None,
                 timeout_s: float = SNAPSHOT_TIMEOUT_S) -> int:
        return self._run(self._aio.snapshot(target, endpoint=endpoint, timeout_s=timeout_s))

    def hash_kv(self, revision: int = 0, *, endpoint: str | None = None) -> HashKVResult:
        return self._run(self._aio.hash_kv(revision, endpoint=endpoint))

    def defragment(self, endpoint: str | None = None) -> None:
        self._run(self._aio.defragment(endpoint))

    def move_leader(self, member_id: int) -> None:
        self._run(self._aio.move_leader(member_id))

    def alarms(self) -> tuple[AlarmMember, ...]:
        return self._run(self._aio.alarms())

    def alarm_disarm(self, alarm: AlarmMember | None = None) -> tuple[AlarmMember, ...]:
        return self._run(self._aio.alarm_disarm(alarm))

    def quota_set(self, prefix: Bytes, *, max_keys: int = 0,
                  max_bytes: int = 0) -> tuple[NamespaceUsage, ...]:
        return self._run(self._aio.quota_set(prefix, max_keys=max_keys, max_bytes=max_bytes))

    def quota_delete(self, prefix: Bytes) -> tuple[NamespaceUsage, ...]:
        return self._run(self._aio.quota_delete(prefix))

    def quota_list(self) -> tuple[NamespaceUsage, ...]:
        return self._run(self._aio.quota_list())


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None


class Watch:
    """A sync view of an `AsyncWatch` (see the module docstring)."""

    def __init__(self, thread: _LoopThread, watch: AsyncWatch) -> None:
        self._thread = thread
        self._watch = watch
        self._queue: queue.Queue[Event | _End] = queue.Queue()
        self._room = asyncio.Event()
        self._end: _End | None = None
        self._pump = asyncio.get_running_loop().create_task(self._run())

    @property
    def next_revision(self) -> int:
        return self._watch.next_revision

    @property
    def reconnects(self) -> int:
        return self._watch.reconnects

    async def _run(self) -> None:
        try:
            async for event in self._watch:
                self._queue.put(event)
                while self._queue.qsize() >= MAX_BUFFERED_EVENTS:
                    self._room.clear()
                    await self._room.wait()
        except asyncio.CancelledError:
            self._queue.put(_End(None))
            raise
        except Exception as error:  # handed to the reader
            self._queue.put(_End(error))
        else:
            self._queue.put(_End(None))

    def next(self, timeout_s: float | None = None) -> Event:
        """The next event; TimeoutError after `timeout_s`; StopIteration once
        closed; the watch's error (e.g. CompactedError) if it failed."""
        if self._end is not None:
            return self._raise_end()
        try:
            item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"no watch event within {timeout_s} s") from None
        self._thread.loop.call_soon_threadsafe(self._room.set)
        if isinstance(item, _End):
            self._end = item
            return self._raise_end()
        return item

    def _raise_end(self) -> Event:
        assert self._end is not None
        if self._end.error is not None:
            raise self._end.error
        raise StopIteration

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        return self.next()

    def close(self) -> None:
        async def stop() -> None:
            await self._watch.aclose()
            self._pump.cancel()
        if not self._thread.loop.is_closed():
            self._thread.run(stop())

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


class Lease:
    """A sync view of an `AsyncLease`: `with client.lease(5) as lease:`."""

    def __init__(self, thread: _LoopThread, lease: AsyncLease) -> None:
        self._thread = thread
        self._lease = lease

    @property
    def id(self) -> LeaseId:
        return self._lease.id

    @property
    def ttl_s(self) -> int:
        return self._lease.ttl_s

    @property
    def renewals(self) -> int:
        return self._lease.renewals

    @property
    def expired(self) -> bool:
        return self._lease.expired.is_set()

    def start(self) -> Lease:
        self._thread.run(self._lease.start())
        return self

    def close(self, *, revoke: bool = True) -> None:
        self._thread.run(self._lease.close(revoke=revoke))

    def time_to_live(self, *, keys: bool = False) -> LeaseTimeToLiveResponse:
        return self._thread.run(self._lease.time_to_live(keys=keys))

    def wait_expired(self, timeout_s: float) -> bool:
        """Wait until the lease is known gone; False if still alive after `timeout_s`."""
        async def wait() -> bool:
            try:
                await asyncio.wait_for(self._lease.expired.wait(), timeout_s)
            except TimeoutError:
                return False
            return True
        return self._thread.run(wait())

    def __enter__(self) -> Lease:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


__all__ = ["MAX_BUFFERED_EVENTS", "Client", "Lease", "Watch"]
