"""The SQLite database under a data directory: lock, open, pragmas, schema.

Theory of operation
-------------------
One data directory holds `raft.db` (with SQLite's `raft.db-wal` beside it)
and a `LOCK` file. `open_database` takes an exclusive `flock` on `LOCK`
first (a second process on the same directory is refused with
`StorageLocked`, so two nodes never write one log), then opens SQLite in WAL
mode with `synchronous=FULL` (every commit is fsynced before it returns) or
`OFF` for `unsafe_no_fsync` (tests and CPU benchmarks only), checks the
format version, creates the schema on a fresh database, and, before any
write, asks `walcheck` whether the WAL SQLite just recovered was torn or
corrupt.

The connection runs in autocommit mode; `DiskStorage` opens and commits its
own transactions. Anything SQLite itself refuses to read ("file is not a
database", "malformed") surfaces as `CorruptStorage` naming the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from real.storage import walcheck
from real.storage.errors import CorruptStorage, StorageLocked, from_sqlite

DB_NAME = "raft.db"
LOCK_NAME = "LOCK"
# PRAGMA user_version of the format written by this code; 0 is a fresh file.
FORMAT_VERSION = 1
# PRAGMA application_id: "CFRE", so a stray SQLite file is not taken for ours.
APPLICATION_ID = 0x43465245
# Pages of WAL after which SQLite checkpoints it into the main file.
WAL_AUTOCHECKPOINT_PAGES = 1000
# What the WAL file is cut back to after a checkpoint (a big snapshot grows it).
WAL_SIZE_LIMIT_BYTES = 64 << 20

SCHEMA = (
    "CREATE TABLE entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, "
    "data BLOB NOT NULL, conf BLOB, crc INTEGER NOT NULL)",
    "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, "
    "vote INTEGER NOT NULL, hard_commit INTEGER NOT NULL, start_index INTEGER NOT NULL, "
    "start_term INTEGER NOT NULL, crc INTEGER NOT NULL)",
    "CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), metadata BLOB NOT NULL, "
    "data BLOB NOT NULL, crc INTEGER NOT NULL)",
)


@dataclass(slots=True)
class Database:
    """An open, locked database and what recovery learned about its WAL."""

    path: Path
    connection: sqlite3.Connection
    lock_file: IO[bytes]
    fresh: bool
    wal: walcheck.WalVerdict

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.connection.close()
        self.lock_file.close()  # releases the flock


Populate = Callable[[sqlite3.Connection], None]


def open_database(data_dir: Path, populate: Populate, *, unsafe_no_fsync: bool) -> Database:
    """Lock `data_dir` and open its database, creating both if needed; a new
    database gets the schema and `populate`'s rows in one transaction."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_file = _lock(data_dir)
    path = data_dir / DB_NAME
    try:
        return _open_locked(path, lock_file, populate, unsafe_no_fsync=unsafe_no_fsync)
    except BaseException:
        lock_file.close()
        raise


def _lock(data_dir: Path) -> IO[bytes]:
    lock_file = (data_dir / LOCK_NAME).open("a+b")
    try:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        lock_file.close()
        raise StorageLocked(data_dir) from error
    return lock_file


def _open_locked(path: Path, lock_file: IO[bytes], populate: Populate, *,
                 unsafe_no_fsync: bool) -> Database:
    existed = path.exists()
    scan = walcheck.scan_wal(path.with_name(path.name + "-wal"))
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        wal, fresh = _prepare(connection, path, scan, populate, existed=existed,
                              unsafe_no_fsync=unsafe_no_fsync)
    except sqlite3.Error as error:
        connection.close()
        raise from_sqlite(path, error) from error
    except BaseException:
        connection.close()
        raise
    return Database(path=path, connection=connection, lock_file=lock_file, fresh=fresh, wal=wal)


def _prepare(connection: sqlite3.Connection, path: Path, scan: walcheck.WalScan | None,
             populate: Populate, *, existed: bool,
             unsafe_no_fsync: bool) -> tuple[walcheck.WalVerdict, bool]:
    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise CorruptStorage(path, "the database file", f"cannot enter WAL mode ({mode})")
    connection.execute(f"PRAGMA synchronous={'OFF' if unsafe_no_fsync else 'FULL'}")
    connection.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    _, valid_frames, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    verdict = walcheck.judge(scan, max(valid_frames, 0))
    if verdict.corrupt is not None and not unsafe_no_fsync:
        raise CorruptStorage(path.with_name(path.name + "-wal"), "a WAL frame", verdict.corrupt)
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    application = connection.execute("PRAGMA application_id").fetchone()[0]
    if version == 0 and application == 0:
        if connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise CorruptStorage(path, "the database file", "not a chainfire database")
        _create_schema(connection, populate)
        if not existed:
            fsync_dir(path.parent)
        return verdict, True
    if application != APPLICATION_ID:
        raise CorruptStorage(path, "the database file", "not a chainfire database")
    if version != FORMAT_VERSION:
        raise CorruptStorage(path, "the database file",
                             f"format version {version}, this code reads {FORMAT_VERSION}")
    return verdict, False


def _create_schema(connection: sqlite3.Connection, populate: Populate) -> None:
    connection.execute("BEGIN IMMEDIATE")
    for statement in SCHEMA:
        connection.execute(statement)
    populate(connection)
    connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
    connection.execute(f"PRAGMA user_version={FORMAT_VERSION}")
    connection.execute("COMMIT")


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (a new or renamed file) durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


__all__ = ["APPLICATION_ID", "DB_NAME", "FORMAT_VERSION", "LOCK_NAME", "Database",
           "fsync_dir", "open_database"]
