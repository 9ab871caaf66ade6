"""Starting the state machine from the durable backend, or from the snapshot.

Theory of operation
-------------------
A real node keeps its state machine in `state.db` (`SqliteBackend`), which
records the applied index and term in the same transaction as the data.
On start, `recover_state_machine` compares that with the Raft storage:

- the backend is used when its applied index is at or past the snapshot's
  (so the log holds every entry after it: compaction never passes the
  snapshot), not past the log's last index, and the log's term at that
  index is the one the backend recorded (0: recorded by a snapshot restore,
  whose term the backend did not learn). The state machine is rebuilt from
  it (key index, leases, auth, alarms, quotas, member table) and Raft's
  committed entries after the applied index are applied again; the
  snapshot is not decoded.
- otherwise (no `state.db`, an empty one, one behind the snapshot, one that
  disagrees with the log, or one whose records do not hold together) the
  backend is emptied and the node restores the snapshot into it, then
  replays the log, as a node without a durable backend does; the rebuilt
  backend is committed before the node serves.

Corruption: `state.db` is derived state (everything in it comes from the
snapshot and the log, which are checked), so a `state.db` SQLite cannot
read, or that is not ours, is moved aside (`state.db.corrupt`, kept for
inspection) with a warning on the `chainfire.storage` logger, and rebuilt.
Refusing to start would ask the operator to delete a file the node can
rebuild itself. Corrupt `raft.db` still stops the node (real/storage/disk.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from chainfire_core.config import StateMachineConfig
from chainfire_core.errors import ChainfireError
from chainfire_core.state_machine import StateMachine
from chainfire_core.types import Index
from real.durability import DurableStorage
from real.storage.errors import CorruptStorage
from real.storage.mvcc_backend import STATE_DB_NAME, SqliteBackend

logger = logging.getLogger("chainfire.storage")

CORRUPT_SUFFIX = ".corrupt"


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovery:
    """How the state machine was started: from the backend, or rebuilt."""

    from_backend: bool
    applied_index: int
    reason: str


def open_backend(data_dir: Path | str) -> SqliteBackend:
    """Open `state.db`; one SQLite cannot read is moved aside and a new one made."""
    try:
        return SqliteBackend.open(data_dir)
    except CorruptStorage as error:
        logger.warning("%s; moving it aside to %s%s and rebuilding it from the snapshot "
                       "and the log", error, STATE_DB_NAME, CORRUPT_SUFFIX)
        _move_aside(Path(data_dir))
        return SqliteBackend.open(data_dir)


def _move_aside(data_dir: Path) -> None:
    path = data_dir / STATE_DB_NAME
    os.replace(path, path.with_name(STATE_DB_NAME + CORRUPT_SUFFIX))
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(STATE_DB_NAME + suffix)
        if extra.exists():
            os.replace(extra, path.with_name(STATE_DB_NAME + CORRUPT_SUFFIX + suffix))


def _unusable_because(storage: DurableStorage, backend: SqliteBackend) -> str | None:
    """Why the backend cannot stand for the state (None: it can)."""
    try:
        applied = backend.applied()
    except CorruptStorage as error:
        return str(error)
    if applied is None:
        return "it holds no state"
    index, term = applied
    snapshot_index = storage.snapshot().metadata.index
    if index < snapshot_index:
        return f"it is at index {index}, behind the snapshot at {snapshot_index}"
    if index > storage.last_index():
        return f"it is at index {index}, past the log's last index {storage.last_index()}"
    log_term = storage.term(Index(index))
    if term and log_term != term:
        return f"its entry {index} has term {term}, the log's has {log_term}"
    return None


def recover_state_machine(storage: DurableStorage, backend: SqliteBackend,
                          config: StateMachineConfig | None = None) -> tuple[StateMachine,
                                                                           Recovery]:
    """The state machine over `backend`: from its content if it can stand for
    the state (see the module docstring), else emptied for the snapshot."""
    reason = _unusable_because(storage, backend)
    if reason is None:
        try:
            machine = StateMachine(config, backend)
        except (ChainfireError, ValueError) as error:
            reason = f"its content does not hold together ({error})"
        else:
            recovery = Recovery(from_backend=True, applied_index=machine.applied_index,
                                reason="at or past the snapshot")
            logger.info("%s: state machine recovered from the backend at index %d; "
                        "replaying the log after it (the snapshot is not decoded)",
                        backend.path, machine.applied_index)
            return machine, recovery
    logger.info("%s: not used (%s); rebuilding it from the snapshot and the log",
                backend.path, reason)
    backend.clear()
    backend.commit()
    return StateMachine(config, backend), Recovery(from_backend=False, applied_index=0,
                                                   reason=reason)


__all__ = ["CORRUPT_SUFFIX", "Recovery", "open_backend", "recover_state_machine"]
