"""NodeRuntime: the asyncio driver of one `ChainfireNode`.

Theory of operation
-------------------
The runtime only moves bytes, time and disk writes in and out of the core;
every decision stays in chainfire_core. Three inputs feed the node, all on
the event loop thread: client requests (`request`), peer messages
(`deliver`, the transport's callback) and ticks (a task that ticks the node
once per `tick_ms` of `loop.time()`, the loop's monotonic clock). Each input
sets a wake-up flag for the one driver task, which carries out Readies one
at a time, in the order of the Ready contract (as sim/host.py does):

1. persist: `storage.save(hard state, entries, snapshot)`, then, when the
   Ready must be synced, `storage.sync()` (fsync) on the runtime's one
   sync thread (real/storage/sync_thread.py, cheaper than `to_thread`);
2. check: every outgoing message depends only on durable state
   (`DurabilityCheck`, the simulator's `_assert_durable`);
3. send the messages (`transport.send`, non-blocking);
4. answer: resolve the futures of the client requests the Ready answers;
5. `node.advance(ready)`: the node applies committed entries and moves on;
   with a durable state machine backend (`backend`, real/recovery.py) the
   runtime then commits what the Ready applied, in one transaction with
   the applied index (no fsync: the log already holds those entries);
   then the watch hub (real/api/watch_hub.py) wakes its sessions.

Group commit: while the driver awaits an fsync, the loop keeps taking
requests; `ChainfireNode` queues the writes and proposes all of them as one
batch at the next `ready()`, so N writes that arrive during one fsync cost
one log append and one fsync together.

Time: ticks follow the loop's clock. When the loop falls behind (a long
fsync on the loop thread, a busy CPU), at most `max_catchup_ticks` missed
ticks are replayed and the rest dropped (counted in `dropped_ticks`): a
burst of ticks would time out elections against heartbeats that are only
waiting in a socket buffer. Dropping ticks slows this node's clock, which
only makes its leases last longer, never shorter.

Failure: if storage fails (an OSError from save or sync) the node cannot
know what is durable and must stop: the driver records the error, every
waiting request fails with `NodeStopped`, and `failed` holds the cause.
`stop()` is graceful: new requests are refused, requests already taken
(in-flight writes) are finished or time out in the core, then the tasks
end and watch streams are broken.

Answers: a Ready's responses were all made before that Ready was taken
(writes answered when they applied in the previous `advance`, reads served
then or at submit, errors), so none depends on the Ready's own entries.
`answer_before_persist` answers them before persisting the Ready, so a
write's answer need not wait for the next batch's fsync; measured in
docs/benchmarks.md ("Real nodes") it did not help (the loop is CPU-bound
under load, and with light load the next Ready has nothing to fsync), so it
is off and the order is sim/host.py's.

Observation: an optional `observer` (real/metrics.py's `NodeMetrics`) hears
of every request taken and finished and of every Ready carried out, with
the time its persist and fsync took; it only counts, never decides.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Protocol

from chainfire_core.auth import AuthInfo, PermissionType, simple_token_index
from chainfire_core.errors import ChainfireError, RequestError
from chainfire_core.node import ChainfireNode, NodeReady
from chainfire_core.node_messages import (
    ClientRequest,
    Member,
    MemberAddRequest,
    MemberPublishRequest,
    ReadConsistency,
    StatusResponse,
)
from chainfire_core.raft.messages import NO_NODE, Message
from chainfire_core.raft.raft import Role
from chainfire_core.types import NodeId
from real.api.handle import WatchSession
from real.api.watch_hub import WatchHub
from real.config import member_id
from real.durability import DurabilityCheck, DurableStorage
from real.storage.sync_thread import SyncThread

# How long auth_info waits for this member to apply a token's entry.
TOKEN_WAIT_S = 5.0


class NodeStopped(RequestError):
    """The node is stopping or has stopped (etcd's ErrStopped)."""

    grpc_code = "UNAVAILABLE"

    def __init__(self, reason: str = "") -> None:
        super().__init__("etcdserver: server stopped")  # etcd's exact text (clients match it)
        self.reason = reason


class RuntimeObserver(Protocol):
    """Hears what the runtime does (metrics); must be cheap and never raise."""

    def request_started(self, request: ClientRequest) -> None: ...

    def request_finished(self, request: ClientRequest, error: BaseException | None) -> None: ...

    def carried_out(self, ready: NodeReady, save_s: float, sync_s: float | None) -> None:
        """A Ready was persisted (`save_s`; `sync_s` when it was fsynced), sent,
        answered and advanced."""
        ...


class CommittedBackend(Protocol):
    """A durable state machine backend (real/storage/mvcc_backend.py)."""

    def commit(self) -> None: ...


class Transport(Protocol):
    """Where the runtime sends peer messages (real.transport.PeerTransport)."""

    def send(self, messages: Sequence[Message]) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeConfig:
    # Wall time per core tick: the node's NodeConfig.tick_ms must match.
    tick_ms: int = 100
    # Missed ticks replayed at once after the loop fell behind (the rest are dropped).
    max_catchup_ticks: int = 2
    # Run fsync on a worker thread so requests keep arriving (group commit).
    sync_in_thread: bool = True
    # Check the node's invariants every this many ticks (0: never; tests turn it on).
    check_invariants_every_ticks: int = 0
    # Campaign at start when this node is the only voter (a single-node cluster
    # serves at once instead of after an election timeout).
    campaign_if_alone: bool = True
    # Answer a Ready's client responses before persisting its entries (see
    # "Answers" in the module docstring); False: after, as sim/host.py does.
    answer_before_persist: bool = False

    def __post_init__(self) -> None:
        assert self.tick_ms > 0, self.tick_ms
        assert self.max_catchup_ticks > 0, self.max_catchup_ticks
        assert self.check_invariants_every_ticks >= 0, self.check_invariants_every_ticks


@dataclass(slots=True)
class RuntimeStats:
    readies: int = 0
    syncs: int = 0
    messages_sent: int = 0
    ticks: int = 0
    dropped_ticks: int = 0
    answered: int = 0


class NullTransport:
    """A transport for a single-node cluster: there is nobody to send to."""

    def send(self, messages: Sequence[Message]) -> None:
        assert not messages, f"single node sent {len(messages)} messages"


class NodeRuntime:
    """Drives one ChainfireNode on the running event loop; implements NodeHandle."""

    def __init__(self, node: ChainfireNode, storage: DurableStorage,
                 config: RuntimeConfig | None = None, *, cluster_id: int = 0,
                 cluster_token: str | None = None,
                 backend: CommittedBackend | None = None) -> None:
        """`backend`: the state machine's durable backend, committed once per
        Ready after the node applied it (None: it is in memory)."""
        self.node = node
        self.storage = storage
        self.backend = backend
        self.config = config or RuntimeConfig(tick_ms=node.config.tick_ms)
        assert self.config.tick_ms == node.config.tick_ms, (
            "runtime and node disagree on tick_ms", self.config.tick_ms, node.config.tick_ms)
        assert node.storage is storage, "the node must read the storage the runtime writes"
        hard_state, _ = storage.initial_state()
        self.durability = DurabilityCheck(node.id, hard_state, storage.last_index())
        self.stats = RuntimeStats()
        self._cluster_id = cluster_id
        # MemberAdd without an id gets the id its own node derives from its
        # peer URLs (real.config.member_id), when the token is known.
        self._cluster_token = cluster_token
        # The one poller of the node's watchable store (see real/api/watch_hub.py).
        self.watches = WatchHub(node.sm.watches)
        self._transport: Transport = NullTransport()
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[object]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stopped = asyncio.Event()
        self.failed: BaseException | None = None
        self._halt_task: asyncio.Task[None] | None = None
        # Runs the fsyncs when sync_in_thread (started with the runtime).
        self._sync_thread: SyncThread | None = None
        self._campaign_alone = False
        # wait_until's predicates, checked after every Ready carried out.
        self._conditions: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        # Called with the member table after a membership change or a snapshot
        # was applied (the server points the transport at the new peers).
        self.on_members_changed: Callable[[tuple[Member, ...]], None] | None = None
        # Metrics (real/metrics.py); None: nothing observes.
        self.observer: RuntimeObserver | None = None

    # -- life cycle --------------------------------------------------------------------

    @property
    def node_id(self) -> NodeId:
        return self.node.id

    @property
    def member_id(self) -> int:
        return self.node.id

    @property
    def cluster_id(self) -> int:
        return self._cluster_id

    def raft_term(self) -> int:
        return self.node.raw.raft.term

    def revision(self) -> int:
        return self.node.sm.revision

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not self._stopped.is_set()

    def start(self, transport: Transport | None = None) -> None:
        """Start the driver and ticker tasks on the running loop."""
        assert not self._tasks, "started twice"
        if transport is not None:
            self._transport = transport
        voters = self.node.raw.raft.tracker.conf_state().voters
        # Campaign again after each Ready until leader: Raft ignores a campaign
        # while committed conf changes are unapplied (a restart replaying them).
        self._campaign_alone = (self.config.campaign_if_alone
                                and tuple(voters) == (self.node.id,))
        if self._campaign_alone:
            self.node.campaign()
        if self.config.sync_in_thread:
            self._sync_thread = SyncThread(f"chainfire-sync-{self.node.id}")
        self._tasks = [
            asyncio.create_task(self._guard(self._drive()), name=f"chainfire-drive-{self.node.id}"),
            asyncio.create_task(self._guard(self._tick()), name=f"chainfire-tick-{self.node.id}"),
        ]
        self._wake.set()

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Refuse new requests, let the ones taken finish (up to the timeout),
        then stop. Idempotent."""
        self._stopping = True
        if self._tasks and self.failed is None and self._waiters:
            waiting = [future for future in self._waiters.values() if not future.done()]
            if waiting:
                await asyncio.wait(waiting, timeout=drain_timeout_s)
        await self._halt("stopping")

    async def _halt(self, reason: str) -> None:
        tasks, self._tasks = self._tasks, []
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        for task in tasks:
            if task is not current:
                with suppress(asyncio.CancelledError):
                    await task
        if self._sync_thread is not None:
            self._sync_thread.close()
        self._fail_waiters(NodeStopped(reason))
        self.watches.close()
        self._stopped.set()
        self._check_conditions()  # a condition about the stop itself

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Return once `predicate()` holds, checked now and after every Ready
        this runtime carries out or tick it takes; TimeoutError after `timeout_s`."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._conditions.append(entry)
        try:
            await asyncio.wait_for(future, timeout_s)
        finally:
            if entry in self._conditions:
                self._conditions.remove(entry)

    def _check_conditions(self) -> None:
        for predicate, future in list(self._conditions):
            if not future.done() and predicate():
                future.set_result(None)

    def _fail_waiters(self, error: Exception) -> None:
        waiters, self._waiters = self._waiters, {}
        for request_id in sorted(waiters):
            if not waiters[request_id].done():
                waiters[request_id].set_exception(error)

    # -- NodeHandle ----------------------------------------------------------------------

    async def request(self, request: ClientRequest,
                      consistency: ReadConsistency = ReadConsistency.LINEARIZABLE,
                      auth: AuthInfo | None = None) -> object:
        """The core's response to `request`; raises the core's ChainfireError
        (or NodeStopped). A cancelled caller leaves the request to finish in
        the node: the outcome of a write is then unknown."""
        if self._stopping or not self._tasks:
            raise NodeStopped(str(self.failed) if self.failed else "not serving")
        if isinstance(request, MemberAddRequest) and not request.id and self._cluster_token:
            request = replace(request, id=member_id(request.peer_urls, self._cluster_token))
        return await self._submit(request, consistency, self.observer, auth)

    # -- auth ------------------------------------------------------------------------------

    def auth_enabled(self) -> bool:
        return self.node.sm.auth.enabled

    async def auth_info(self, token: str) -> AuthInfo:
        index = simple_token_index(token)
        if index is not None and self.node.sm.applied_index < index:
            # Assigned by an entry this member has not applied yet (etcd waits too).
            with suppress(TimeoutError):
                await self.wait_until(lambda: self.node.sm.applied_index >= index,
                                      TOKEN_WAIT_S)
        return self.node.auth_info(token)

    def check_admin(self, auth: AuthInfo) -> None:
        self.node.sm.auth.check_admin(auth)

    def check_range(self, auth: AuthInfo, key: bytes, range_end: bytes) -> None:
        self.node.sm.auth.check_range(auth, key, range_end, PermissionType.READ)

    async def _submit(self, request: ClientRequest, consistency: ReadConsistency,
                      observer: RuntimeObserver | None, auth: AuthInfo | None = None) -> object:
        request_id = next(self._ids)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = future
        if observer is not None:
            observer.request_started(request)
        self.node.submit(request_id, request, consistency, auth=auth)
        self._wake.set()
        try:
            response = await future
        except BaseException as error:
            if observer is not None:
                observer.request_finished(request, error)
            raise
        finally:
            self._waiters.pop(request_id, None)
        if observer is not None:
            observer.request_finished(request, None)
        return response

    @property
    def requests_waiting(self) -> int:
        """Requests taken and not yet answered."""
        return len(self._waiters)

    def status(self) -> StatusResponse:
        return self.node.status()

    def watch_session(self) -> WatchSession:
        """A watch session for one client stream (closed at once if the node
        is not serving: its stream ends)."""
        session = self.watches.session()
        if self._stopping or not self._tasks:
            session.close()
        return session

    # -- publishing this member's client URLs ---------------------------------------------

    def publish(self, client_urls: tuple[str, ...], retry_s: float = 0.5) -> None:
        """Tell the cluster this member's client URLs (etcd's publish at start):
        retried until the member table holds them or the node stops (refusals
        while there is no leader or another membership change is pending are
        expected)."""
        assert self._tasks, "publish needs a started runtime"

        async def publishing() -> None:
            while not self._stopping:
                member = self.node.members.get(self.node.id)
                if member is not None and member.client_urls == client_urls:
                    return
                if member is not None and self.node.raw.raft.lead != NO_NODE:
                    with suppress(ChainfireError):  # tried again below
                        # Not observed: the metrics count clients' requests.
                        await self._submit(MemberPublishRequest(id=self.node.id,
                                                                client_urls=client_urls),
                                           ReadConsistency.LINEARIZABLE, None)
                        continue  # applied here: the check above ends the loop
                await asyncio.sleep(retry_s)

        self._tasks.append(asyncio.create_task(publishing(),
                                               name=f"chainfire-publish-{self.node.id}"))

    # -- peer inputs (the transport's callbacks) --------------------------------------------

    def deliver(self, message: Message) -> None:
        if not self._tasks:
            return  # stopped: a late frame
        self.node.step(message)
        self._wake.set()

    def report_unreachable(self, peer: NodeId) -> None:
        if self._tasks:
            self.node.report_unreachable(peer)
            self._wake.set()

    def report_snapshot(self, peer: NodeId, ok: bool) -> None:
        if self._tasks:
            self.node.report_snapshot(peer, ok=ok)
            self._wake.set()

    # -- the Ready loop ----------------------------------------------------------------------

    async def _guard(self, body: Coroutine[None, None, None]) -> None:
        """Run a driver task; if it fails (storage error, broken invariant) the
        node stops: it can no longer tell what is durable or true."""
        try:
            await body
        except Exception as error:  # any failure stops the node
            self.failed = error
            self._stopping = True
            self._halt_task = asyncio.get_running_loop().create_task(
                self._halt(f"{type(error).__name__}: {error}"))

    async def _drive(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.node.has_ready():
                await self._carry_out(self.node.ready())

    async def _carry_out(self, ready: NodeReady) -> None:
        raft = ready.raft
        self.stats.readies += 1
        if self.config.answer_before_persist:
            self._answer(ready)
        save_s = 0.0
        sync_s: float | None = None
        if raft is not None:
            if raft.entries or raft.hard_state is not None or raft.snapshot is not None:
                started = time.perf_counter()
                self.storage.save(raft.hard_state, raft.entries, raft.snapshot)
                save_s = time.perf_counter() - started
                self.durability.saved(raft.hard_state, raft.entries, raft.snapshot)
            if raft.must_sync:
                started = time.perf_counter()
                if self._sync_thread is not None:
                    await self._sync_thread.run(self.storage.sync)
                else:
                    self.storage.sync()
                sync_s = time.perf_counter() - started
                self.durability.synced()
                self.stats.syncs += 1
            if raft.messages:
                self.durability.check(raft.messages)
                self._transport.send(raft.messages)
                self.stats.messages_sent += len(raft.messages)
        if not self.config.answer_before_persist:
            self._answer(ready)
        self.node.advance(ready)
        if self.backend is not None:
            self.backend.commit()  # what advance applied, with its applied index
        if self._campaign_alone:
            self._campaign_again()
        self.watches.notify()
        if self.observer is not None:
            self.observer.carried_out(ready, save_s, sync_s)
        if raft is not None and self.on_members_changed is not None and (
                raft.snapshot is not None
                or any(entry.conf_change is not None for entry in raft.committed_entries)):
            self.on_members_changed(self.node.members.all())
        if self._conditions:
            self._check_conditions()

    def _campaign_again(self) -> None:
        raft = self.node.raw.raft
        if raft.role == Role.LEADER or raft.lead != NO_NODE:
            self._campaign_alone = False
        elif raft.role == Role.FOLLOWER:
            self.node.campaign()  # a no-op until the conf changes are applied

    def _answer(self, ready: NodeReady) -> None:
        for response in ready.responses:
            future = self._waiters.pop(response.request_id, None)
            if future is None or future.done():
                continue  # its caller gave up
            if response.error is not None:
                future.set_exception(response.error)
            else:
                future.set_result(response.response)
            self.stats.answered += 1

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        tick_s = self.config.tick_ms / 1000
        next_at = loop.time() + tick_s
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            due = int((loop.time() - next_at) / tick_s) + 1
            ticks = min(due, self.config.max_catchup_ticks)
            self.stats.dropped_ticks += due - ticks
            next_at += due * tick_s
            for _ in range(ticks):
                self.node.tick()
                self.stats.ticks += 1
                every = self.config.check_invariants_every_ticks
                if every and self.stats.ticks % every == 0:
                    self.node.check_invariants()
            self._wake.set()
            self.watches.notify()
            if self._conditions:
                self._check_conditions()


__all__ = ["NodeRuntime", "NodeStopped", "NullTransport", "RuntimeConfig", "RuntimeObserver",
           "RuntimeStats", "Transport"]
