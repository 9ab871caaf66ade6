"""How `chainfire snapshot save` and `chainfire quota` reach a member: one
endpoint, plain text or TLS, with or without a user.

The flags are etcdctl's: `--endpoint HOST:PORT`, `--cacert` (verify the
member's certificate; turns TLS on), `--cert`/`--key` (a client
certificate, for members started with --client-cert-auth), `--user
NAME[:PASSWORD]` (authenticates once with Auth.Authenticate and sends the
token with every call, as etcdctl does; without the password part it is
read from the terminal).
"""

from __future__ import annotations

import argparse
import getpass
from dataclasses import dataclass
from pathlib import Path

import grpc

from real.client.tls import ClientTLS
from real.etcdpb import rpc_pb2, rpc_pb2_grpc
from real.tls import TLSConfigError


class ConnectError(Exception):
    """The member could not be reached, or refused the user."""


def add_connect_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", default="127.0.0.1:2379",
                        help="the member's client address, host:port (default 127.0.0.1:2379)")
    parser.add_argument("--cacert", type=Path, help="CA of the member's certificate (TLS)")
    parser.add_argument("--cert", type=Path, help="client certificate (TLS)")
    parser.add_argument("--key", type=Path, help="key of --cert")
    parser.add_argument("--user", help="NAME[:PASSWORD] to authenticate as")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")


@dataclass
class Connection:
    channel: grpc.Channel
    metadata: tuple[tuple[str, str], ...]
    timeout_s: float
    endpoint: str

    def close(self) -> None:
        self.channel.close()


def connect(args: argparse.Namespace) -> Connection:
    """A channel to `args.endpoint`, authenticated when `--user` is given."""
    if args.cacert is not None or args.cert is not None:
        tls = ClientTLS(ca_file=args.cacert, cert_file=args.cert, key_file=args.key)
        try:
            credentials = tls.credentials()
        except TLSConfigError as error:
            raise ConnectError(str(error)) from None
        channel = grpc.secure_channel(args.endpoint, credentials)
    else:
        channel = grpc.insecure_channel(args.endpoint)
    connection = Connection(channel, (), args.timeout, args.endpoint)
    if args.user:
        name, sep, password = args.user.partition(":")
        if not sep:
            password = getpass.getpass(f"Password for {name}: ")
        try:
            answer = rpc_pb2_grpc.AuthStub(channel).Authenticate(
                rpc_pb2.AuthenticateRequest(name=name, password=password),
                timeout=args.timeout)
        except grpc.RpcError as error:
            channel.close()
            raise ConnectError(f"{args.endpoint}: {describe(error)}") from None
        connection.metadata = (("token", answer.token),)
    return connection


def describe(error: grpc.RpcError) -> str:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    return f"{code.name if code is not None else 'ERROR'} {details}"


__all__ = ["ConnectError", "Connection", "add_connect_flags", "connect", "describe"]
