"""`chainfire serve`: run one Chainfire member until SIGTERM / SIGINT.

Theory of operation
-------------------
`main(argv)` reads the configuration (real/config.py: TOML file <
CHAINFIRE_* environment < flags); a bad setting prints the `ConfigError`
(field and reason) and exits 2. `serve(config)` then, in order:

1. opens the data directory (`DiskStorage.open`: recovery; a corrupt log
   stops the member here with the storage's message, exit 1) and the state
   machine's durable backend (`state.db`, real/recovery.py);
2. bootstraps an empty storage for a new cluster and builds the
   `ChainfireNode` (real/bootstrap.py);
3. starts the peer transport on the first listen-peer URL and points it at
   the other members, SWIM gossip on UDP at the same host and port
   (real/gossip_cluster.py; it only informs; `--gossip off`: none), the
   runtime (the Ready loop and the clock), then the gRPC server on every
   listen-client URL, and the HTTP /metrics and /health endpoint on every
   listen-metrics URL (real/metrics.py; none by default);
4. waits for a signal, or for the runtime to stop by itself (a storage
   failure; exit 1).

Shutdown is graceful: the runtime first refuses new requests (etcd's
UNAVAILABLE "server stopped", which clients retry on another member) and
lets the requests it has taken finish, for up to `drain_timeout_s` (the
transport keeps running, so in-flight writes still commit), then ends the
watch streams; then the gRPC server stops, giving calls still open
`shutdown_grace_s`; then the transport and the storage close. Gossip
announces the leave as the shutdown begins, so the others report the
member as left rather than dead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc  # no stubs: see pyproject
from grpc_health.v1.health import HealthServicer

from chainfire_core.node_messages import Member
from chainfire_core.types import NodeId
from real.api.forward import ForwardConfig
from real.api.server import ApiServer, ListenError, start_server
from real.bootstrap import build_node
from real.client.tls import ClientTLS
from real.codec_memo import MemoCodec
from real.config import ConfigError, ServerConfig, load_config, parse_url
from real.gossip_cluster import ClusterGossip, GossipListener
from real.maintenance import NodeMaintenance
from real.metrics import NodeMetrics
from real.metrics_http import start_metrics_server
from real.quota_cli import quota_main
from real.recovery import open_backend
from real.runtime import NodeRuntime, RuntimeConfig
from real.snapshot_cli import snapshot_main
from real.storage import DiskStorage, StorageError
from real.storage.mvcc_backend import SqliteBackend
from real.transport import PeerTransport

logger = logging.getLogger("chainfire.server")

USAGE = ("usage: chainfire serve [--flags]   (chainfire serve --help lists them)\n"
         "       chainfire snapshot save|restore|status ...   (chainfire snapshot --help)\n"
         "       chainfire quota set|delete|list ...   (chainfire quota --help)")
EXIT_CONFIG = 2
EXIT_FAILED = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    # Seconds the gRPC server gives calls in flight when stopping.
    shutdown_grace_s: float = 5.0
    # Seconds the runtime then waits for requests it still holds.
    drain_timeout_s: float = 5.0
    # Called once the member serves clients (embedding: real/embed.py).
    on_started: Callable[[Serving], None] | None = None
    # Operator hook: every gossip event about a member (it may suggest a
    # membership change; nothing acts on it).
    on_gossip_event: GossipListener | None = None


@dataclass(frozen=True, slots=True)
class Serving:
    """What `serve` started, handed to `ServeOptions.on_started`."""

    runtime: NodeRuntime
    # The bound client ports, in listen-client URL order (port 0: the one picked).
    client_ports: tuple[int, ...]
    # The member's gossip (None with --gossip off).
    gossip: ClusterGossip | None = None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "snapshot":
        return snapshot_main(args[1:])
    if args and args[0] == "quota":
        return quota_main(args[1:])
    if not args or args[0] != "serve":
        print(USAGE, file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = load_config(args[1:], os.environ)
    except ConfigError as error:
        print(f"chainfire: {error}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(config))


async def serve(config: ServerConfig, options: ServeOptions | None = None,
                stop: asyncio.Event | None = None) -> int:
    """Run the member until `stop` is set (default: SIGTERM or SIGINT)."""
    options = options or ServeOptions()
    try:
        storage = DiskStorage.open(config.data_dir)
    except StorageError as error:
        logger.error("cannot open the data directory: %s", error)
        return EXIT_FAILED
    try:
        backend = open_backend(config.data_dir)
    except StorageError as error:
        logger.error("cannot open the state machine's backend: %s", error)
        storage.close()
        return EXIT_FAILED
    try:
        return await _run(config, options, storage, backend, stop)
    finally:
        backend.close()
        storage.close()


async def _run(config: ServerConfig, options: ServeOptions, storage: DiskStorage,
               backend: SqliteBackend, stop: asyncio.Event | None) -> int:
    node = build_node(config, storage, codec=MemoCodec(), backend=backend)
    runtime = NodeRuntime(node, storage, RuntimeConfig(tick_ms=config.tick_ms),
                          cluster_id=config.cluster_id,
                          cluster_token=config.initial_cluster_token, backend=backend)
    peer_tls = config.peer_tls()
    transport = PeerTransport(node.id, on_message=runtime.deliver,
                              on_unreachable=runtime.report_unreachable,
                              on_snapshot_status=runtime.report_snapshot,
                              server_ssl=peer_tls.peer_server_context() if peer_tls.enabled
                              else None,
                              client_ssl=peer_tls.peer_client_context() if peer_tls.enabled
                              else None)
    peer = config.listen_peer_urls[0]
    await transport.start(peer.host, peer.port)
    transport.set_peers(config.peer_addresses())
    try:
        gossip = await _start_gossip(config, node.members.all(), options)
    except OSError as error:
        logger.error("cannot gossip on udp %s:%d: %s (--gossip off turns it off)",
                     peer.host, peer.port, error)
        await transport.close()
        return EXIT_FAILED
    runtime.on_members_changed = _peer_updater(config, transport.set_peers, gossip)
    if node.members.all():  # a restart: the table knows addresses changed since bootstrap
        runtime.on_members_changed(node.members.all())
    metrics = NodeMetrics(runtime, gossip=gossip)
    runtime.observer = metrics
    runtime.start(transport)
    try:
        grpc_server = await _start_grpc(runtime, config, storage, backend)
    except ListenError as error:
        logger.error("%s", error)
        await runtime.stop(0)
        await _close_peers(transport, gossip)
        return EXIT_FAILED
    try:
        metrics_server = await start_metrics_server(
            metrics, [(url.host, url.port) for url in config.listen_metrics_urls])
    except OSError as error:
        logger.error("cannot listen for metrics: %s", error)
        await runtime.stop(0)
        await grpc_server.stop(None)
        await _close_peers(transport, gossip)
        return EXIT_FAILED
    runtime.publish(advertised_client_urls(config, grpc_server.ports))
    logger.info("member %s (id %x) serving clients on %s, peers on %s", config.name, node.id,
                ",".join(url.url for url in config.listen_client_urls), peer.url)
    if options.on_started is not None:
        options.on_started(Serving(runtime=runtime, client_ports=grpc_server.ports,
                                   gossip=gossip))
    stop = stop or _signal_event()
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(runtime.wait_stopped())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    logger.info("member %s stopping", config.name)
    # Gossip says goodbye (others report "left", not "dead") while requests drain.
    leaving = asyncio.ensure_future(gossip.leave()) if gossip is not None else None
    # New requests get "server stopped" (UNAVAILABLE: clients retry elsewhere)
    # while the ones taken finish; then the gRPC server and the transport go.
    await runtime.stop(options.drain_timeout_s)
    await grpc_server.stop(options.shutdown_grace_s)
    await metrics_server.close()
    await _close_peers(transport, gossip, leaving)
    if runtime.failed is not None:
        logger.error("member %s stopped: %s", config.name, runtime.failed)
        return EXIT_FAILED
    return 0


async def _start_gossip(config: ServerConfig, members: tuple[Member, ...],
                        options: ServeOptions) -> ClusterGossip | None:
    """The member's gossip, started (None with --gossip off; OSError if its
    UDP port cannot be bound)."""
    if not config.gossip:
        return None
    hooks = [options.on_gossip_event] if options.on_gossip_event is not None else []
    gossip = ClusterGossip(config, members, listeners=hooks)
    await gossip.start()
    return gossip


async def _close_peers(transport: PeerTransport, gossip: ClusterGossip | None,
                       leaving: asyncio.Future[None] | None = None) -> None:
    await transport.close()
    if gossip is not None:
        if leaving is not None:
            await leaving  # the goodbye announced at the start of the shutdown
        await gossip.close()


def _signal_event() -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, event.set)
    return event


def _peer_updater(config: ServerConfig, set_peers: Callable[[Mapping[NodeId, tuple[str, int]]],
                                                              None],
                  gossip: ClusterGossip | None = None) -> Callable[[tuple[Member, ...]], None]:
    """Peers = the bootstrap members' addresses, updated from the member table
    (which gossip follows too)."""
    def update(members: tuple[Member, ...]) -> None:
        peers = dict(config.peer_addresses())
        for member in members:
            if member.id == config.node_id or not member.peer_urls:
                continue
            try:
                url = parse_url(member.peer_urls[0])
            except ValueError:
                logger.warning("member %x has a bad peer URL %r", member.id, member.peer_urls[0])
                continue
            peers[member.id] = (url.host, url.port)
        current = {member.id for member in members}
        set_peers({node_id: address for node_id, address in peers.items()
                   if node_id in current})
        if gossip is not None:
            gossip.members_changed(members)
    return update


async def _start_grpc(runtime: NodeRuntime, config: ServerConfig,
                      storage: DiskStorage, backend: SqliteBackend) -> ApiServer:
    addresses = [f"{url.host}:{url.port}" for url in config.listen_client_urls]
    client_tls = config.client_tls()
    credentials = client_tls.grpc_server_credentials() if client_tls.enabled else None
    tls = {f"{url.host}:{url.port}": credentials for url in config.listen_client_urls
           if url.tls and credentials is not None}
    def defragment() -> None:  # on the loop, between Readies: no backend transaction open
        storage.defragment()
        backend.defragment()

    maintenance = NodeMaintenance(runtime.node, runtime.wait_until, defragment=defragment)
    return await start_server(runtime, addresses, configure=_add_health,
                              db_size_bytes=lambda: (db_size_bytes(storage.path)
                                                     + db_size_bytes(backend.path)),
                              maintenance=maintenance, forward=ForwardConfig.for_timing(
                                  heartbeat_interval_ms=config.heartbeat_interval_ms,
                                  election_timeout_ms=config.election_timeout_ms),
                              tls=tls, forward_credentials=_forward_credentials(config))


def _forward_credentials(config: ServerConfig) -> grpc.ChannelCredentials | None:
    """What a follower dials a leader's https client URL with (forwarded lease
    calls): the trusted CA for the leader's certificate, and this member's
    own certificate for leaders that require client certificates; so one CA
    should sign both (one CA per cluster does)."""
    if not config.client_tls().enabled:
        return None
    return ClientTLS(ca_file=config.trusted_ca_file, cert_file=config.cert_file,
                     key_file=config.key_file).credentials()


def advertised_client_urls(config: ServerConfig, ports: Sequence[int]) -> tuple[str, ...]:
    """--advertise-client-urls, or the listen client URLs with the ports bound."""
    if config.advertise_client_urls:
        return tuple(url.url for url in config.advertise_client_urls)
    return tuple(f"{'https' if url.tls else 'http'}://"
                 f"{f'[{url.host}]' if ':' in url.host else url.host}:{port}"
                 for url, port in zip(config.listen_client_urls, ports, strict=True))


def db_size_bytes(db_path: Path) -> int:
    """The storage's size on disk (Status.dbSize): its database file and
    SQLite's write-ahead log beside it."""
    total = 0
    for path in (db_path, db_path.with_name(db_path.name + "-wal")):
        with suppress(OSError):  # not there (yet, or any more)
            total += path.stat().st_size
    return total


def _add_health(server: grpc.aio.Server) -> None:
    """The standard gRPC health service: SERVING while the server runs."""
    health = HealthServicer()
    health.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)


if __name__ == "__main__":
    sys.exit(main())
