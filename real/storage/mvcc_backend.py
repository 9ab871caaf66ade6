"""`SqliteBackend`: the state machine's `StorageBackend` on SQLite (`state.db`).

Theory of operation
-------------------
The MVCC data (key history, compaction revision), auth, alarms, quotas, the
lease records and the state machine's applied index and term all live in
one table `kv(bucket, key, value)` with `(bucket, key)` as its primary key
(a `WITHOUT ROWID` B-tree, so a bucket's keys are stored in key order and a
range is one index scan); `buckets` lists every bucket ever written, so
`snapshot()` gives the same bytes as `MemoryBackend`'s (empty buckets
included). The file is `state.db` in the data directory, beside the Raft
log's `raft.db`, under the same `LOCK` (the caller holds `DiskStorage`).

Transactions. The first write opens a transaction; it stays open across
the state machine's apply of a whole Ready and the driver commits it once
(`commit`), after `node.advance`. Reads on the same connection see the
open transaction's writes. The state machine writes its applied index in
the same transaction as the data (state_machine.py, "Durable progress"),
so a committed `state.db` always says exactly which log entry it reflects.

Why `synchronous=NORMAL` (no fsync per commit) is enough: the backend is
derived state. Everything it holds comes from committed Raft entries,
which `raft.db` synced before they were applied. In WAL mode with NORMAL a
commit is atomic and survives a process crash (kill -9: it is in the OS's
page cache); a machine crash may lose the last commits, never leave a
half-written one, so `state.db` comes back at an older applied index and
the node replays the log from there. If it comes back older than the
snapshot (the log before the snapshot may be gone) the node rebuilds it
from the snapshot instead (real/recovery.py).

Failures: an SQLite error while writing or committing raises
`StorageFailed` (the node stops, as for `raft.db`); the object refuses
every later call. Content SQLite cannot read is `CorruptStorage` naming
`state.db`; the node then falls back to the snapshot (real/recovery.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from chainfire_core.progress import APPLIED, APPLIED_KEY, STATE_BUCKET
from chainfire_core.storage import BatchDelete, BatchOp, BatchPut, decode_backend, encode_backend
from real.storage.errors import CorruptStorage, StorageError, StorageFailed, from_sqlite

STATE_DB_NAME = "state.db"
# PRAGMA user_version of this format; application_id "CFBE" marks the file as ours.
FORMAT_VERSION = 1
APPLICATION_ID = 0x43464245
# Keys fetched per query by `range` (no cursor stays open while the caller writes)
# and keys per IN (...) query of `get_many` (under SQLite's variable limit).
RANGE_PAGE_ROWS = 1024
GET_MANY_CHUNK_KEYS = 500

_SCHEMA = (
    "CREATE TABLE kv (bucket TEXT NOT NULL, key BLOB NOT NULL, "
    "value BLOB NOT NULL, PRIMARY KEY (bucket, key)) WITHOUT ROWID",
    "CREATE TABLE buckets (bucket TEXT PRIMARY KEY) WITHOUT ROWID",
)


class SqliteBackend:
    """A durable `StorageBackend`; see the module docstring."""

    __slots__ = ("_buckets", "_connection", "_failed", "commits", "path")

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._connection = connection
        self._failed: StorageError | None = None
        self._buckets: set[str] = set()
        self.commits = 0

    @classmethod
    def open(cls, data_dir: Path | str) -> SqliteBackend:
        """Open (or create) `state.db`; CorruptStorage if it is not ours or
        SQLite cannot read it."""
        path = Path(data_dir) / STATE_DB_NAME
        try:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise from_sqlite(path, error) from error
        backend = cls(path, connection)
        try:
            backend._prepare()
        except sqlite3.Error as error:
            connection.close()
            raise from_sqlite(path, error) from error
        except StorageError:
            connection.close()
            raise
        return backend

    def _prepare(self) -> None:
        connection = self._connection
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        app_id = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        if (version, app_id, tables) == (0, 0, 0):
            connection.execute("BEGIN")
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version={FORMAT_VERSION}")
            connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
            connection.execute("COMMIT")
        elif (version, app_id) != (FORMAT_VERSION, APPLICATION_ID):
            raise CorruptStorage(self.path, "the file header",
                                 f"format {version}/application id {app_id:#x} is not ours")
        self._buckets = {row[0] for row in connection.execute("SELECT bucket FROM buckets")}

    # -- helpers ---------------------------------------------------------------

    def _check(self) -> sqlite3.Connection:
        if self._failed is not None:
            raise self._failed
        return self._connection

    def _fail(self, error: sqlite3.Error) -> StorageError:
        failure = from_sqlite(self.path, error)
        if isinstance(failure, CorruptStorage):
            failure = StorageFailed(self.path, str(failure))
        self._failed = failure
        return failure

    def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        connection = self._check()
        try:
            if not connection.in_transaction:
                connection.execute("BEGIN")
            connection.executemany(sql, rows)
        except sqlite3.Error as error:
            raise self._fail(error) from error

    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[bytes, ...]]:
        connection = self._check()
        try:
            rows: list[tuple[bytes, ...]] = connection.execute(sql, args).fetchall()
        except sqlite3.Error as error:
            raise self._fail(error) from error
        return rows

    def _note_buckets(self, buckets: set[str]) -> None:
        new = buckets - self._buckets
        if new:
            self._write("INSERT OR IGNORE INTO buckets VALUES (?)", [(b,) for b in sorted(new)])
            self._buckets |= new

    # -- StorageBackend ------------------------------------------------------------

    def get(self, bucket: str, key: bytes) -> bytes | None:
        rows = self._query("SELECT value FROM kv WHERE bucket = ? AND key = ?", (bucket, key))
        return rows[0][0] if rows else None

    def get_many(self, bucket: str, keys: Sequence[bytes]) -> list[bytes | None]:
        found: dict[bytes, bytes] = {}
        for start in range(0, len(keys), GET_MANY_CHUNK_KEYS):
            chunk = tuple(keys[start:start + GET_MANY_CHUNK_KEYS])
            marks = ",".join("?" * len(chunk))
            found.update(self._query(  # type: ignore[arg-type]
                f"SELECT key, value FROM kv WHERE bucket = ? AND key IN ({marks})",
                (bucket, *chunk)))
        return [found.get(key) for key in keys]

    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        assert isinstance(key, bytes) and isinstance(value, bytes)
        self._note_buckets({bucket})
        self._write("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", [(bucket, key, value)])

    def delete(self, bucket: str, key: bytes) -> None:
        self._write("DELETE FROM kv WHERE bucket = ? AND key = ?", [(bucket, key)])

    def range(
        self, bucket: str, start: bytes, end: bytes | None = None, *, limit: int = 0
    ) -> Iterator[tuple[bytes, bytes]]:
        taken = 0
        lower, inclusive = start, True
        while True:
            page = RANGE_PAGE_ROWS if not limit else min(RANGE_PAGE_ROWS, limit - taken)
            sql = ("SELECT key, value FROM kv WHERE bucket = ? AND key "
                   + (">= ?" if inclusive else "> ?")
                   + ("" if end is None else " AND key < ?") + " ORDER BY key LIMIT ?")
            args: tuple[object, ...] = (bucket, lower) if end is None else (bucket, lower, end)
            rows = self._query(sql, (*args, page))
            yield from ((key, value) for key, value in rows)
            taken += len(rows)
            if len(rows) < page or (limit and taken >= limit):
                return
            lower, inclusive = rows[-1][0], False

    def write_batch(self, ops: Sequence[BatchOp]) -> None:
        for op in ops:  # in order: a later op on the same key wins
            match op:
                case BatchPut(bucket=bucket, key=key, value=value):
                    self.put(bucket, key, value)
                case BatchDelete(bucket=bucket, key=key):
                    self.delete(bucket, key)

    def count(self, bucket: str) -> int:
        rows = self._query("SELECT COUNT(*) FROM kv WHERE bucket = ?", (bucket,))
        return int(rows[0][0])

    def size_bytes_of(self, buckets: Sequence[str]) -> int:
        """The bytes of every key and value in `buckets` (the quota's measure)."""
        total = 0
        for bucket in buckets:
            rows = self._query("SELECT COALESCE(SUM(length(key) + length(value)), 0) FROM kv "
                               "WHERE bucket = ?", (bucket,))
            total += int(rows[0][0])
        return total

    def snapshot(self) -> bytes:
        return encode_backend(
            (name, list(self.range(name, b""))) for name in sorted(self._buckets))

    def restore(self, data: bytes) -> None:
        """Replace the content (in the open transaction: atomic with the commit)."""
        buckets = decode_backend(data)  # CorruptSnapshot before anything changes
        self._write("DELETE FROM kv", [()])
        self._write("DELETE FROM buckets", [()])
        self._buckets = set()
        self._note_buckets(set(buckets))
        for name in sorted(buckets):
            self._write("INSERT INTO kv VALUES (?, ?, ?)",
                        [(name, key, value) for key, value in buckets[name].items()])

    # -- durability ------------------------------------------------------------------

    def commit(self) -> None:
        """Commit the open transaction (if any): atomic, not fsynced (see above)."""
        connection = self._check()
        if not connection.in_transaction:
            return
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._fail(error) from error
        self.commits += 1

    def defragment(self) -> None:
        """VACUUM the file (between Readies: no transaction may be open) and
        cut its WAL back (Maintenance.Defragment)."""
        connection = self._check()
        assert not connection.in_transaction, "defragment inside a Ready's transaction"
        try:
            connection.execute("VACUUM")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            raise self._fail(error) from error

    def clear(self) -> None:
        """Empty the backend (in the open transaction)."""
        self._write("DELETE FROM kv", [()])
        self._write("DELETE FROM buckets", [()])
        self._buckets = set()

    def applied(self) -> tuple[int, int] | None:
        """The committed applied index and term the state machine recorded
        (None: no state); CorruptStorage if the record is malformed."""
        raw = self.get(STATE_BUCKET, APPLIED_KEY)
        if raw is None:
            return None
        if len(raw) != APPLIED.size:
            raise CorruptStorage(self.path, "the applied index", f"{len(raw)} bytes")
        index, term = APPLIED.unpack(raw)
        return int(index), int(term)

    def abandon(self) -> None:
        """Close without committing: what was not committed is lost (a crash)."""
        with contextlib.suppress(sqlite3.Error):
            self._connection.close()
        self._failed = StorageFailed(self.path, "closed")

    def close(self) -> None:
        """Close; a transaction still open is rolled back, never committed:
        the driver commits after each whole Ready, so an open one is a
        Ready that failed half-applied (the log replays it at the next start)."""
        self.abandon()


__all__ = ["STATE_DB_NAME", "SqliteBackend"]
