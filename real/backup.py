"""Backup files: what Maintenance.Snapshot streams, and restoring a new
cluster's data directory from one (`chainfire snapshot restore`).

Theory of operation
-------------------
A backup is the replicated state of one member at one applied index: the
state machine's snapshot bytes (the MVCC key history with its revisions and
compaction point, the leases, and every other replicated store the state
machine keeps), preceded by their length (8 bytes) and padded with zeros to
a multiple of 512 bytes, followed, as etcd does, by the SHA-256 of all that
(32 bytes). The padding is for etcd's clients: etcdctl 3.4 refuses a
download whose size is not 32 more than a multiple of 512 (its bbolt files
are made of 512-byte multiples) with "sha256 checksum not found". The
state machine snapshot carries its own magic, format version and digest, so
a file that is not a Chainfire backup, a truncated one, and one
with a flipped bit are all told apart before anything is written.

Membership is not part of a backup: like etcdutl's restore, `restore_data_dir`
builds a new cluster whose members are the ones named by `--initial-cluster`
(new member ids, new cluster id), holding the backed-up data. Each member of
the new cluster runs the restore with the same file and flags, so each writes
the same Raft snapshot (index = the backup's applied index, term 1, voters =
the new members); their logs then agree, and the first leader goes on from
there. Leases keep their ids and TTLs; their clocks restart on the new leader
(as after any leader change).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chainfire_core.errors import ChainfireError, CorruptSnapshot
from chainfire_core.mvcc.messages import RangeRequest
from chainfire_core.node_codec import NODE_CODEC
from chainfire_core.node_messages import Member, NodeSnapshot
from chainfire_core.raft.messages import ConfState, Snapshot, SnapshotMetadata
from chainfire_core.state_machine import StateMachine
from chainfire_core.types import Index, Term
from real.storage import DiskStorage

DIGEST_BYTES = 32
LENGTH = struct.Struct(">Q")
PAD_TO = 512
# etcd streams its snapshot in 32 KiB blobs.
CHUNK_BYTES = 32 * 1024


class BackupError(ChainfireError):
    """A backup file cannot be used (unreadable, corrupt, checksum mismatch),
    or the restore target is not usable (the data directory exists)."""


def backup_bytes(state_machine: StateMachine) -> bytes:
    """The backup of `state_machine` as it is now: its snapshot + SHA-256."""
    snapshot = state_machine.snapshot()
    body = LENGTH.pack(len(snapshot)) + snapshot
    body += bytes(-len(body) % PAD_TO)
    return body + hashlib.sha256(body).digest()


def chunks(data: bytes, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """`data` in pieces of at most `size` bytes (one empty piece for no data)."""
    assert size > 0, size
    if not data:
        yield b""
    for start in range(0, len(data), size):
        yield data[start:start + size]


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupInfo:
    """What `chainfire snapshot status` prints about a backup."""

    hash: int  # the first 32 bits of the file's SHA-256 (etcd prints a 32-bit hash)
    applied_index: int
    revision: int
    compact_revision: int
    total_keys: int
    total_bytes: int
    leases: int


def verify(data: bytes, *, source: str = "backup", skip_hash_check: bool = False) -> StateMachine:
    """The state machine a backup holds; `BackupError` when it is not one."""
    if len(data) < DIGEST_BYTES:
        raise BackupError(f"{source}: {len(data)} bytes is too short to be a Chainfire backup")
    body, digest = data[:-DIGEST_BYTES], data[-DIGEST_BYTES:]
    if not skip_hash_check:
        actual = hashlib.sha256(body).digest()
        if actual != digest:
            raise BackupError(
                f"{source}: SHA-256 mismatch (file says {digest.hex()[:16]}..., content hashes "
                f"to {actual.hex()[:16]}...): the file is corrupt or truncated")
    (length,) = LENGTH.unpack_from(body) if len(body) >= LENGTH.size else (-1,)
    if not 0 <= length <= len(body) - LENGTH.size or any(body[LENGTH.size + length:]):
        raise BackupError(f"{source}: not a valid Chainfire backup: bad length or padding")
    state_machine = StateMachine()
    try:
        state_machine.restore(body[LENGTH.size:LENGTH.size + length])
    except CorruptSnapshot as error:
        raise BackupError(f"{source}: not a valid Chainfire backup: {error}") from error
    return state_machine


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise BackupError(f"cannot read the backup {path}: {error.strerror or error}") from error


def read_backup(path: Path, *, skip_hash_check: bool = False) -> StateMachine:
    return verify(_read(path), source=str(path), skip_hash_check=skip_hash_check)


def info(path: Path) -> BackupInfo:
    data = _read(path)
    state_machine = verify(data, source=str(path))
    store = state_machine.store
    return BackupInfo(
        hash=int.from_bytes(hashlib.sha256(data).digest()[:4], "big"),
        applied_index=state_machine.applied_index,
        revision=state_machine.revision,
        compact_revision=store.compact_revision,
        total_keys=store.range(RangeRequest(key=b"\0", range_end=b"\0", count_only=True)).count,
        total_bytes=len(data),
        leases=len(state_machine.leases().leases),
    )


def restore_snapshot(state_machine: StateMachine, members: tuple[Member, ...]) -> Snapshot:
    """The Raft snapshot every member of the new cluster starts from."""
    assert members, "a cluster needs a member"
    index = max(1, state_machine.applied_index)
    voters = tuple(sorted(member.id for member in members))
    data = NODE_CODEC.encode(NodeSnapshot(state_machine=state_machine.snapshot(),
                                          members=tuple(sorted(members, key=lambda m: m.id))))
    return Snapshot(metadata=SnapshotMetadata(index=Index(index), term=Term(1),
                                              conf_state=ConfState(voters=voters)), data=data)


def restore_data_dir(backup: Path, data_dir: Path, members: tuple[Member, ...], *,
                     skip_hash_check: bool = False) -> Snapshot:
    """Write a new member's data directory holding `backup`'s data, for a
    cluster of `members`. Refuses an existing data directory (nothing is
    overwritten) and a corrupt backup (nothing is created)."""
    if data_dir.exists():
        raise BackupError(f"data-dir {str(data_dir)!r} exists: restore into a new directory")
    state_machine = read_backup(backup, skip_hash_check=skip_hash_check)
    snapshot = restore_snapshot(state_machine, members)
    partial = data_dir.with_name(data_dir.name + ".restoring")
    if partial.exists():
        raise BackupError(f"{str(partial)!r} exists (an earlier restore stopped halfway): "
                          "remove it and run the restore again")
    storage = DiskStorage.open(partial)
    try:
        storage.save(None, (), snapshot)
        storage.sync()
    finally:
        storage.close()
    partial.rename(data_dir)  # the directory appears whole or not at all
    return snapshot


__all__ = ["CHUNK_BYTES", "BackupError", "BackupInfo", "backup_bytes", "chunks", "info",
           "read_backup", "restore_data_dir", "restore_snapshot", "verify"]
