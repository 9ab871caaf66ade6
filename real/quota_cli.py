"""`chainfire quota set | delete | list`: per-namespace quotas from the
command line, over Chainfire's Quota service (proto/chainfire.proto).

    chainfire quota set /tenant-a/ --max-keys 1000 --max-bytes 10MB
    chainfire quota list            # prefix, limits and current usage
    chainfire quota delete /tenant-a/

Connection flags (`--endpoint`, `--cacert`, `--cert`, `--key`, `--user`) as
real/cli_connect.py describes. Exit codes: 0 done, 1 the member refused
(the message is its error, e.g. a permission error), 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

import grpc

from real.cli_connect import ConnectError, add_connect_flags, connect, describe
from real.etcdpb import chainfire_pb2, chainfire_pb2_grpc

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_SIZE = re.compile(r"^(\d+)\s*(B|KB|KIB|MB|MIB|GB|GIB)?$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 1000, "KIB": 1024, "MB": 1000**2, "MIB": 1024**2,
          "GB": 1000**3, "GIB": 1024**3}


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def parse_size(text: str) -> int:
    """'10MB' -> 10_000_000, '1MiB' -> 1_048_576, '512' -> 512."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size such as 512, 64KiB, 10MB")
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chainfire quota", allow_abbrev=False,
                     description="Per-namespace quotas (keys and bytes under a prefix).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    set_ = commands.add_parser("set", help="limit the keys and/or bytes under PREFIX")
    set_.add_argument("prefix")
    set_.add_argument("--max-keys", type=int, default=0, help="live keys (0: unlimited)")
    set_.add_argument("--max-bytes", type=parse_size, default=0,
                      help="bytes of keys plus values (0: unlimited)")
    delete = commands.add_parser("delete", help="remove the quota of PREFIX")
    delete.add_argument("prefix")
    list_ = commands.add_parser("list", help="every quota and its usage")
    list_.add_argument("--write-out", "-w", choices=("table", "json"), default="table")
    for sub in (set_, delete, list_):
        add_connect_flags(sub)
    return parser


def quota_main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(list(argv))
    except _UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    if args.command == "set" and (args.max_keys < 0 or not (args.max_keys or args.max_bytes)):
        print("chainfire quota set: give --max-keys and/or --max-bytes (> 0)", file=sys.stderr)
        return EXIT_USAGE
    try:
        connection = connect(args)
    except ConnectError as error:
        print(f"chainfire quota {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED
    stub = chainfire_pb2_grpc.QuotaStub(connection.channel)
    timeout, metadata = connection.timeout_s, connection.metadata
    try:
        if args.command == "set":
            response = stub.Set(chainfire_pb2.QuotaSetRequest(
                prefix=args.prefix.encode(), max_keys=args.max_keys, max_bytes=args.max_bytes),
                timeout=timeout, metadata=metadata)
        elif args.command == "delete":
            response = stub.Delete(chainfire_pb2.QuotaDeleteRequest(prefix=args.prefix.encode()),
                                   timeout=timeout, metadata=metadata)
        else:
            response = stub.List(chainfire_pb2.QuotaListRequest(), timeout=timeout,
                                 metadata=metadata)
    except grpc.RpcError as error:
        print(f"chainfire quota {args.command}: {connection.endpoint}: {describe(error)}",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        connection.close()
    _print(response, args.command, getattr(args, "write_out", "table"))
    return EXIT_OK


def _print(response: chainfire_pb2.QuotaResponse, command: str, write_out: str) -> None:
    rows = [{"prefix": usage.prefix.decode(errors="backslashreplace"),
             "maxKeys": usage.max_keys, "maxBytes": usage.max_bytes,
             "usedKeys": usage.used_keys, "usedBytes": usage.used_bytes}
            for usage in response.quotas]
    if write_out == "json":
        print(json.dumps({"revision": response.header.revision, "quotas": rows}))
        return
    if command != "list":
        print(f"{command} done" + (f": {rows[0]['prefix']}" if rows else " (no quota)"))
        return
    print(f"{'PREFIX':<24} {'KEYS':>17} {'BYTES':>25}")
    for row in rows:
        keys = f"{row['usedKeys']}/{row['maxKeys'] or '-'}"
        size = f"{row['usedBytes']}/{row['maxBytes'] or '-'}"
        print(f"{row['prefix']:<24} {keys:>17} {size:>25}")


__all__ = ["parse_size", "quota_main"]
