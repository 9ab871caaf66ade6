"""`chainfire snapshot save | restore | status`: backups from the command line.

- `save FILE --endpoint HOST:PORT` (and etcdctl's --cacert/--cert/--key/
  --user, real/cli_connect.py) streams Maintenance.Snapshot from one
  member into FILE.part, checks the backup's SHA-256, syncs and renames it
  to FILE (a failed or corrupt download leaves no FILE).
- `restore FILE [--skip-hash-check] [serve flags]` builds a new member's
  data directory from FILE, like etcdutl's snapshot restore: the flags are
  `chainfire serve`'s (--name, --data-dir, --initial-cluster,
  --initial-cluster-token, --listen-peer-urls...), so run it once per member
  of the new cluster with the same --initial-cluster, then start each
  member with `chainfire serve` and the same flags.
- `status FILE [--write-out table|json]` prints the backup's hash, revision,
  key count and size, as `etcdctl snapshot status` does for etcd's files.

Exit codes: 0 done, 1 the backup or the member failed (the message says
why), 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import grpc

from real.backup import BackupError, info, restore_data_dir, verify
from real.bootstrap import initial_members
from real.cli_connect import ConnectError, add_connect_flags, connect, describe
from real.config import ConfigError, load_config
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chainfire snapshot", allow_abbrev=False,
                     description="Save, restore and inspect backups of a Chainfire cluster.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    save = commands.add_parser("save", help="stream a backup from a member into FILE")
    save.add_argument("file", type=Path)
    add_connect_flags(save)
    restore = commands.add_parser(
        "restore", help="build a new member's data directory from FILE (then: chainfire serve)")
    restore.add_argument("file", type=Path)
    restore.add_argument("--skip-hash-check", action="store_true",
                         help="accept a file whose trailing SHA-256 does not match")
    status = commands.add_parser("status", help="print a backup's hash, revision, keys, size")
    status.add_argument("file", type=Path)
    status.add_argument("--write-out", "-w", choices=("table", "json"), default="table")
    return parser


def snapshot_main(argv: Sequence[str]) -> int:
    try:
        args, rest = _parser().parse_known_args(list(argv))
        if args.command != "restore" and rest:
            raise _UsageError(f"chainfire snapshot {args.command}: unknown arguments {rest}")
    except _UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "save":
            return _save(args)
        if args.command == "status":
            return _status(args.file, args.write_out)
        return _restore(args.file, rest, skip_hash_check=args.skip_hash_check)
    except BackupError as error:
        print(f"chainfire snapshot {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED


def _save(args: argparse.Namespace) -> int:
    path: Path = args.file
    partial = path.with_name(path.name + ".part")
    try:
        connection = connect(args)
    except ConnectError as error:
        print(f"chainfire snapshot save: {error}", file=sys.stderr)
        return EXIT_FAILED
    endpoint = connection.endpoint
    try:
        stub = rpc_pb2_grpc.MaintenanceStub(connection.channel)
        with open(partial, "wb") as out:
            for response in stub.Snapshot(rpc_pb2.SnapshotRequest(),
                                          timeout=connection.timeout_s,
                                          metadata=connection.metadata):
                out.write(response.blob)
            out.flush()
            os.fsync(out.fileno())
    except grpc.RpcError as error:
        partial.unlink(missing_ok=True)
        print(f"chainfire snapshot save: {endpoint}: {describe(error)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        connection.close()
    try:
        verify(partial.read_bytes(), source=f"the backup streamed from {endpoint}")
    except BackupError:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(path)
    print(f"Snapshot saved at {path}")
    return EXIT_OK


def _status(path: Path, write_out: str) -> int:
    found = info(path)
    if write_out == "json":
        print(json.dumps({"hash": found.hash, "revision": found.revision,
                          "totalKey": found.total_keys, "totalSize": found.total_bytes,
                          "appliedIndex": found.applied_index,
                          "compactRevision": found.compact_revision, "leases": found.leases}))
        return EXIT_OK
    rows = [("HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"),
            (f"{found.hash:x}", str(found.revision), str(found.total_keys),
             f"{found.total_bytes} B")]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(rule)
    for number, row in enumerate(rows):
        print("| " + " | ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if number == 0:
            print(rule)
    print(rule)
    return EXIT_OK


def _restore(path: Path, serve_flags: Sequence[str], *, skip_hash_check: bool) -> int:
    try:
        config = load_config(serve_flags, os.environ, prog="chainfire snapshot restore")
    except ConfigError as error:
        print(f"chainfire snapshot restore: {error}", file=sys.stderr)
        return EXIT_USAGE
    members = initial_members(config)
    snapshot = restore_data_dir(path, config.data_dir, members, skip_hash_check=skip_hash_check)
    print(f"restored snapshot {path} into {config.data_dir} for member {config.name} "
          f"(id {config.node_id:x}) of a {len(members)}-member cluster at index "
          f"{snapshot.metadata.index}")
    return EXIT_OK


__all__ = ["snapshot_main"]
