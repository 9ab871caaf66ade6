"""A tiny asyncio HTTP endpoint for `/metrics` and `/health` (etcd's
`--listen-metrics-urls`).

Theory of operation
-------------------
The client port speaks gRPC only, so metrics get their own listener, as
etcd's `--listen-metrics-urls` gives them. It runs on the node's event loop
(`asyncio.start_server`), so a scrape reads the node between two Readies,
never concurrently with the driver. It understands just enough HTTP/1.x:
one request per connection (answered with `Connection: close`), a request
head of at most `MAX_HEAD_BYTES` read within `READ_TIMEOUT_S`; anything
else gets a 4xx and the connection closes. Nothing a client sends can change
the node.

Routes: `GET /metrics` (Prometheus text format of the node's own registry),
`GET /health` (etcd's JSON: `{"health":"true"}` with 200 while a leader is
known, `{"health":"false"}` with 503 otherwise). HEAD is accepted too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from real.metrics import NodeMetrics

MAX_HEAD_BYTES = 8192
READ_TIMEOUT_S = 5.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """Started listeners and the ports they bound (in address order)."""

    servers: tuple[asyncio.Server, ...]
    ports: tuple[int, ...]

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()


async def start_metrics_server(metrics: NodeMetrics,
                               addresses: Sequence[tuple[str, int]]) -> MetricsServer:
    """Serve `metrics` on every (host, port); port 0 picks a free one. An
    address that cannot be bound raises OSError; nothing is left listening."""
    servers: list[asyncio.Server] = []
    try:
        for host, port in addresses:
            servers.append(await asyncio.start_server(
                lambda reader, writer: _serve(metrics, reader, writer), host, port,
                limit=MAX_HEAD_BYTES))
    except OSError:
        await MetricsServer(tuple(servers), ()).close()
        raise
    ports = tuple(server.sockets[0].getsockname()[1] for server in servers)
    return MetricsServer(tuple(servers), ports)


async def _serve(metrics: NodeMetrics, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        except (asyncio.IncompleteReadError, TimeoutError):
            return  # a client that sent no complete head gets nothing
        except asyncio.LimitOverrunError:
            _respond(writer, 400, b"request head too large\n", "text/plain", head_only=False)
            await writer.drain()
            return
        status, body, content_type, head_only = _route(metrics, head)
        _respond(writer, status, body, content_type, head_only=head_only)
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def _route(metrics: NodeMetrics, head: bytes) -> tuple[int, bytes, str, bool]:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return 400, b"malformed request line\n", "text/plain", False
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return 405, b"method not allowed\n", "text/plain", False
    head_only = method == b"HEAD"
    if target == b"/metrics":
        return 200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST, head_only
    if target == b"/health":
        healthy = bool(metrics.runtime.running and metrics.runtime.node.raw.raft.lead)
        body = json.dumps({"health": "true" if healthy else "false", "reason": ""}).encode()
        return (200 if healthy else 503), body, "application/json", head_only
    return 404, b"not found\n", "text/plain", head_only


def _respond(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str, *,
             head_only: bool) -> None:
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    writer.write(head if head_only else head + body)


__all__ = ["MAX_HEAD_BYTES", "MetricsServer", "start_metrics_server"]
