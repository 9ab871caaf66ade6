"""`start_server`: a started grpc.aio server with etcd's v3 services over a
`NodeHandle`, listening on the given addresses.

Message size limits follow etcd's defaults: a request may be up to
`max_request_bytes` (etcd's --max-request-bytes, 1.5 MiB) plus gRPC's
overhead allowance (512 KiB); responses are not limited (a range can be
large; watch responses are fragmented for clients that ask). `configure`
lets the caller add more services (gRPC health, ...) before the start.

The server owns the `Forwarder` (real/api/forward.py) its Lease service
uses to reach the leader from a follower; `stop` closes its channels once
the server has stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import grpc

from real.api.forward import ForwardConfig, Forwarder
from real.api.handle import NodeHandle
from real.api.servicers import add_services
from real.api.servicers.maintenance import ETCD_VERSION
from real.api.servicers.watch import DEFAULT_FRAGMENT_BYTES
from real.maintenance import MaintenanceOps

DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
GRPC_OVERHEAD_BYTES = 512 * 1024
MAX_SEND_BYTES = 2**31 - 1


class ListenError(OSError):
    """An address could not be bound."""


@dataclass(frozen=True, slots=True)
class ApiServer:
    """A started client API server and the ports it bound (in address order)."""

    server: grpc.aio.Server
    ports: tuple[int, ...]
    forwarder: Forwarder

    async def stop(self, grace: float | None) -> None:
        """Stop taking RPCs; in-flight ones get `grace` seconds (None: cut now);
        then close the forwarder's channels to the leader."""
        await self.server.stop(grace)
        await self.forwarder.close()


async def start_server(handle: NodeHandle, addresses: Sequence[str], *,
                       max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                       version: str = ETCD_VERSION,
                       db_size_bytes: Callable[[], int] | None = None,
                       maintenance: MaintenanceOps | None = None,
                       configure: Callable[[grpc.aio.Server], None] | None = None,
                       forward: ForwardConfig | None = None,
                       tls: Mapping[str, grpc.ServerCredentials] | None = None,
                       forward_credentials: grpc.ChannelCredentials | None = None,
                       ) -> ApiServer:
    """Serve `handle` on every `host:port` in `addresses` (port 0 picks a free
    one; `.ports` tells which); an address in `tls` is served with those
    credentials (real/tls.py), the others in plain text;
    `forward_credentials` let a follower reach a leader's https client URL.
    Raises `ListenError` naming an address that cannot be bound; nothing is
    left listening then."""
    assert addresses, "no address to listen on"
    assert max_request_bytes > 0, max_request_bytes
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_request_bytes + GRPC_OVERHEAD_BYTES),
        ("grpc.max_send_message_length", MAX_SEND_BYTES),
        # gRPC shares ports by default (SO_REUSEPORT): two servers on one
        # client port would split its clients silently. Fail to bind instead.
        ("grpc.so_reuseport", 0),
    ])
    forwarder = Forwarder(handle, forward, credentials=forward_credentials)
    add_services(server, handle, version=version,
                 fragment_bytes=min(max_request_bytes, DEFAULT_FRAGMENT_BYTES),
                 db_size_bytes=db_size_bytes, maintenance=maintenance, forwarder=forwarder)
    if configure is not None:
        configure(server)
    ports: list[int] = []
    for address in addresses:
        try:
            credentials = (tls or {}).get(address)
            port = (server.add_insecure_port(address) if credentials is None
                    else server.add_secure_port(address, credentials))
        except RuntimeError as error:
            await server.stop(grace=None)
            await forwarder.close()
            raise ListenError(f"cannot listen for clients on {address}: {error}") from error
        if port == 0:
            await server.stop(grace=None)
            await forwarder.close()
            raise ListenError(f"cannot listen for clients on {address}")
        ports.append(port)
    await server.start()
    return ApiServer(server=server, ports=tuple(ports), forwarder=forwarder)


__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "ApiServer", "ListenError", "start_server"]
