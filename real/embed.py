"""Embedding: run a Chainfire member inside a Python program.

Theory of operation
-------------------
`ClusterBuilder` collects a member's settings (name, data directory, host,
client and peer ports, the initial cluster, timing) and callbacks, and
`build()` checks them through the server's own configuration
(real/config.py: a bad setting raises `ConfigError` naming it) and returns
an `EmbeddedNode`. The node runs exactly what `chainfire serve` runs:
`real.server.serve` (storage, bootstrap, runtime, peer transport, gRPC API,
graceful shutdown), told through `ServeOptions.on_started` when it serves.
Start it in the caller's event loop (`await node.start()` / `async with`)
or on a background thread with its own loop (`node.start_in_thread()` /
`with`). Port 0 picks a free port: the client port is bound by gRPC itself
(`node.client_port` tells which); a peer port 0 is chosen from the kernel's
free ports just before the start (another process could take it first:
give fixed peer ports for clusters).

Callbacks run on the node's event loop, one at a time, in event order;
each may be a function or a coroutine function, and an exception in one
is logged and does not stop the node:

* cluster events (real/embed_events.py): the node watches its own leader
  and member table (re-checked after every Ready and tick, via the
  runtime's `wait_until`) and reports joins, leaves, leader changes,
  becoming or losing leadership and "cluster ready"; with gossip on (the
  default; `gossip()`), what SWIM tells about the other members too: node
  suspected, recovered, failed (declared dead) and departed. Both kinds
  go through one queue, so handlers see them one at a time, in order;
* `on_gossip_event` hooks get each gossip notice as it happens, with a
  suggested membership change when a voter is declared dead (a hint for
  an operator: nothing acts on it);
* KV events: each registered key or prefix gets a watcher on the node's own
  watchable store (no gRPC in between), created when the node starts, with
  previous values; changes and deletes are reported per key, and a prefix
  handler also gets one "prefix changed" per revision.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from chainfire_core.mvcc.messages import prefix_end
from chainfire_core.mvcc.watch_messages import WatchCreateRequest
from chainfire_core.node_messages import Member, StatusResponse
from chainfire_core.types import NodeId
from real.config import ServerConfig, load_config
from real.embed_events import (
    ClusterEvent,
    ClusterEventKind,
    ClusterObserver,
    KvEvent,
    KvEventKind,
    gossip_cluster_event,
    kv_events,
)
from real.gossip_cluster import ClusterGossip, GossipListener, GossipNotice
from real.runtime import NodeRuntime
from real.server import ServeOptions, Serving, serve

logger = logging.getLogger("chainfire.embed")

ClusterHandler = Callable[[ClusterEvent], Awaitable[None] | None]
KvHandler = Callable[[KvEvent], Awaitable[None] | None]
_E = TypeVar("_E", ClusterEvent, KvEvent)
# How long one wait for a cluster change lasts before it is renewed.
_OBSERVE_WAIT_S = 3600.0
# Cluster events not yet handed to the handlers before the oldest is dropped.
MAX_PENDING_CLUSTER_EVENTS = 4_096


class EmbedError(RuntimeError):
    """The embedded member could not start (see the log for the reason)."""


@dataclass(frozen=True, slots=True)
class _KvWatch:
    key: bytes
    range_end: bytes
    prefix: bytes | None
    handler: KvHandler


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ClusterBuilder:
    """`ClusterBuilder("n1").data_dir(path).client_port(0).build()`."""

    def __init__(self, name: str = "default") -> None:
        self._name = name
        self._data_dir: Path | None = None
        self._host = "127.0.0.1"
        self._client_port = 0
        self._peer_port = 0
        self._cluster: dict[str, str] = {}
        self._state = "new"
        self._token: str | None = None
        self._timing: dict[str, int] = {}
        self._gossip: list[str] = []
        self._cluster_handlers: list[ClusterHandler] = []
        self._kv_watches: list[_KvWatch] = []
        self._gossip_hooks: list[GossipListener] = []

    def name(self, name: str) -> ClusterBuilder:
        self._name = name
        return self

    def data_dir(self, path: str | Path) -> ClusterBuilder:
        self._data_dir = Path(path)
        return self

    def host(self, host: str) -> ClusterBuilder:
        self._host = host
        return self

    def client_port(self, port: int) -> ClusterBuilder:
        self._client_port = port
        return self

    def peer_port(self, port: int) -> ClusterBuilder:
        self._peer_port = port
        return self

    def initial_cluster(self, members: dict[str, str]) -> ClusterBuilder:
        """name -> peer URL of every bootstrap member (this one included; its
        URL is where it listens for peers unless `peer_port` says otherwise)."""
        self._cluster = dict(members)
        return self

    def join_existing(self) -> ClusterBuilder:
        """Join a running cluster (after a MemberAdd), etcd's state 'existing'."""
        self._state = "existing"
        return self

    def cluster_token(self, token: str) -> ClusterBuilder:
        self._token = token
        return self

    def timing(self, *, heartbeat_interval_ms: int = 100, election_timeout_ms: int = 1000,
               snapshot_count: int = 10_000) -> ClusterBuilder:
        self._timing = {"heartbeat-interval-ms": heartbeat_interval_ms,
                        "election-timeout-ms": election_timeout_ms,
                        "snapshot-count": snapshot_count}
        return self

    def gossip(self, enabled: bool = True, *, period_ms: int = 1000) -> ClusterBuilder:
        """SWIM gossip on UDP at the peer host and port (on by default)."""
        self._gossip = ["--gossip", "on" if enabled else "off",
                        "--gossip-period-ms", str(period_ms)]
        return self

    def on_gossip_event(self, hook: GossipListener) -> ClusterBuilder:
        """Call `hook(notice)` (on the node's loop, synchronously) for every
        gossip event about a member; see real/gossip_cluster.py."""
        self._gossip_hooks.append(hook)
        return self

    def on_cluster_event(self, handler: ClusterHandler) -> ClusterBuilder:
        self._cluster_handlers.append(handler)
        return self

    def on_kv_event(self, handler: KvHandler, *, key: bytes | str | None = None,
                    prefix: bytes | str | None = None) -> ClusterBuilder:
        """Report changes of one `key` or of every key under `prefix`."""
        if (key is None) == (prefix is None):
            raise ValueError("give exactly one of key= or prefix=")
        if prefix is not None:
            raw = prefix.encode() if isinstance(prefix, str) else prefix
            watch = _KvWatch(raw or b"\0", prefix_end(raw), raw, handler)
        else:
            assert key is not None
            raw = key.encode() if isinstance(key, str) else key
            watch = _KvWatch(raw, b"", None, handler)
        self._kv_watches.append(watch)
        return self

    def build(self) -> EmbeddedNode:
        """Check the settings (ConfigError names a bad one) and return the
        node, not yet started."""
        peer_url = self._cluster.get(self._name)
        if self._peer_port or peer_url is None:
            peer_url = f"http://{self._host}:{self._peer_port or _free_port(self._host)}"
        cluster = dict(self._cluster) or {self._name: peer_url}
        argv = ["--name", self._name,
                "--data-dir", str(self._data_dir or Path(f"{self._name}.chainfire")),
                "--listen-client-urls", f"http://{self._host}:{self._client_port}",
                "--listen-peer-urls", peer_url,
                "--initial-cluster", ",".join(f"{n}={url}" for n, url in cluster.items()),
                "--initial-cluster-state", self._state]
        if self._token is not None:
            argv += ["--initial-cluster-token", self._token]
        for flag, number in self._timing.items():
            argv += [f"--{flag}", str(number)]
        config = load_config(argv + self._gossip, {}, prog="ClusterBuilder")
        return EmbeddedNode(config, tuple(self._cluster_handlers), tuple(self._kv_watches),
                            tuple(self._gossip_hooks))


class EmbeddedNode:
    """A member run in-process (see the module docstring)."""

    def __init__(self, config: ServerConfig, cluster_handlers: tuple[ClusterHandler, ...],
                 kv_watches: tuple[_KvWatch, ...],
                 gossip_hooks: tuple[GossipListener, ...] = ()) -> None:
        self.config = config
        self._cluster_handlers = cluster_handlers
        self._kv_watches = kv_watches
        self._gossip_hooks = gossip_hooks
        self.runtime: NodeRuntime | None = None
        # The member's gossip once started (None with gossip off).
        self.gossip: ClusterGossip | None = None
        self._cluster_events: asyncio.Queue[ClusterEvent] | None = None
        self.client_port = 0
        self._stop: asyncio.Event | None = None
        self._serve: asyncio.Task[int] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._members_dirty = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.exit_code: int | None = None

    @property
    def member_id(self) -> NodeId:
        return self.config.node_id

    @property
    def endpoint(self) -> str:
        """host:port of the client API (once started)."""
        assert self.client_port, "not started"
        return f"{self.config.listen_client_urls[0].host}:{self.client_port}"

    def status(self) -> StatusResponse:
        assert self.runtime is not None, "not started"
        return self.runtime.status()

    @property
    def is_leader(self) -> bool:
        return self.runtime is not None and self.runtime.status().leader == self.member_id

    # -- in the caller's loop ------------------------------------------------------------

    async def start(self) -> EmbeddedNode:
        assert self._serve is None, "started twice"
        self._stop = asyncio.Event()
        started = asyncio.get_running_loop().create_future()

        def on_started(serving: Serving) -> None:
            self._attach(serving)
            started.set_result(None)

        options = ServeOptions(on_started=on_started, on_gossip_event=(
            self._gossip_hook if self._gossip_hooks else None))
        self._serve = asyncio.create_task(serve(self.config, options, stop=self._stop),
                                          name=f"chainfire-embed-{self.config.name}")
        await asyncio.wait([started, self._serve], return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            self.exit_code = self._serve.result()
            raise EmbedError(f"member {self.config.name} failed to start "
                             f"(exit {self.exit_code}; see the log)")
        return self

    async def stop(self) -> int:
        """Stop gracefully (as `chainfire serve` on SIGTERM); the exit code."""
        if self._serve is None:
            return self.exit_code or 0
        assert self._stop is not None
        self._stop.set()
        self.exit_code = await self._serve
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        return self.exit_code

    async def __aenter__(self) -> EmbeddedNode:
        return await self.start()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.stop()

    # -- on a background thread ------------------------------------------------------------

    def start_in_thread(self, timeout_s: float = 30.0) -> EmbeddedNode:
        """Run the node on a new thread with its own event loop; returns once
        it serves (EmbedError if it could not start)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            try:
                await self.start()
            except BaseException as error:
                failure.append(error)
                ready.set()
                return
            ready.set()
            assert self._serve is not None
            await asyncio.wait([self._serve])
            await self.stop()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True,
                                        name=f"chainfire-embed-{self.config.name}")
        self._thread.start()
        if not ready.wait(timeout_s):
            raise EmbedError(f"member {self.config.name} did not start in {timeout_s} s")
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def stop_in_thread(self) -> int:
        if self._thread is None:
            return self.exit_code or 0
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None
        return self.exit_code or 0

    def __enter__(self) -> EmbeddedNode:
        return self.start_in_thread()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop_in_thread()

    # -- events ----------------------------------------------------------------------------

    def _attach(self, serving: Serving) -> None:
        runtime = serving.runtime
        self.runtime = runtime
        self.client_port = serving.client_ports[0]
        previous = runtime.on_members_changed

        def members_changed(members: tuple[Member, ...]) -> None:
            if previous is not None:
                previous(members)
            self._members_dirty = True

        runtime.on_members_changed = members_changed
        self.gossip = serving.gossip
        loop = asyncio.get_running_loop()
        if self._cluster_handlers:
            self._cluster_events = asyncio.Queue(MAX_PENDING_CLUSTER_EVENTS)
            self._tasks.append(loop.create_task(self._deliver_cluster(self._cluster_events)))
            self._tasks.append(loop.create_task(self._observe_cluster(runtime)))
            if serving.gossip is not None:
                serving.gossip.listeners.append(self._on_gossip)
        for watch in self._kv_watches:
            self._tasks.append(loop.create_task(self._observe_kv(runtime, watch)))

    async def _observe_cluster(self, runtime: NodeRuntime) -> None:
        observer = ClusterObserver(self.member_id, runtime.node.members.all())
        while runtime.running:
            self._members_dirty = False
            leader = runtime.node.raw.leader
            for event in observer.observe(leader, runtime.node.members.all()):
                self._queue_cluster_event(event)

            def changed(seen: NodeId = leader) -> bool:
                return (not runtime.running or self._members_dirty
                        or runtime.node.raw.leader != seen)
            try:
                await runtime.wait_until(changed, _OBSERVE_WAIT_S)
            except TimeoutError:
                continue

    def _gossip_hook(self, notice: GossipNotice) -> None:
        for hook in self._gossip_hooks:
            try:
                hook(notice)
            except Exception:  # a hook's bug must not stop the node, nor the other hooks
                logger.exception("gossip hook %r failed on %s", hook, notice)

    def _on_gossip(self, notice: GossipNotice) -> None:
        runtime = self.runtime
        leader = runtime.node.raw.leader if runtime is not None else NodeId(0)
        event = gossip_cluster_event(self.member_id, leader, notice)
        if event is not None:
            self._queue_cluster_event(event)

    def _queue_cluster_event(self, event: ClusterEvent) -> None:
        queue = self._cluster_events
        assert queue is not None
        if queue.full():
            dropped = queue.get_nowait()
            logger.warning("cluster event handlers fall behind; dropped %s", dropped)
        queue.put_nowait(event)

    async def _deliver_cluster(self, queue: asyncio.Queue[ClusterEvent]) -> None:
        while True:
            event = await queue.get()
            for handler in self._cluster_handlers:
                await _call(handler, event)

    async def _observe_kv(self, runtime: NodeRuntime, watch: _KvWatch) -> None:
        session = runtime.watch_session()
        try:
            await session.create(WatchCreateRequest(key=watch.key, range_end=watch.range_end,
                                                    prev_kv=True))
            while responses := await session.responses():
                for response in responses:
                    if response.canceled:
                        logger.warning("KV watch on %r canceled: %s", watch.key,
                                       response.cancel_reason)
                        return
                    for event in kv_events(response.events, watch.prefix):
                        await _call(watch.handler, event)
        finally:
            session.close()


async def _call(handler: Callable[[_E], Awaitable[None] | None], event: _E) -> None:
    try:
        result = handler(event)
        if inspect.isawaitable(result):
            await result
    except Exception:  # a handler's bug must not stop the node
        logger.exception("event handler %r failed on %s", handler, event)


__all__ = ["ClusterBuilder", "ClusterEvent", "ClusterEventKind", "ClusterHandler",
           "EmbedError", "EmbeddedNode", "KvEvent", "KvEventKind", "KvHandler"]
