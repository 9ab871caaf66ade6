"""Durable storage: fsynced appends per engine, and recovery time vs log length.

Appends: N entries of 128 bytes written in batches of 1, 16 or 256, one
commit + fsync per batch (what a driver does per Ready), on the data
directory's file system. Engines:

- `disk_storage`: real.storage.DiskStorage itself (SQLite WAL, synchronous=FULL,
  plus the codec and CRC per entry): the figure the runtime gets;
- `sqlite_wal`, `sqlite_rollback`: bare SQLite inserts in WAL mode and in
  rollback-journal mode (journal_mode=TRUNCATE), both synchronous=FULL;
- `lmdb`, `rocksdb` (rocksdict): one transaction / write batch per batch with
  sync on, when the package is importable (they are not project dependencies:
  `pip install --target DIR lmdb rocksdict` and put DIR on PYTHONPATH);
- `file_append`: a bare file, write + fdatasync, as a floor-of-the-stack
  reference (no index, no atomicity).

Recovery: `DiskStorage.open` on a log of L live entries, and on a log whose
history is 10x longer but compacted down to L (restart time must follow the
live log, not history).

    python benchmarks/storage.py            # full
    python benchmarks/storage.py --quick    # < 1 minute
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    emit_json,
    format_number,
    format_table,
    git_revision,
    machine_info,
    say,
    source_digest,
)

from chainfire_core.raft.messages import ConfState, Entry, HardState
from chainfire_core.types import Index, NodeId, Term
from real.storage import DiskStorage, StorageOptions

PAYLOAD = bytes(range(128))
BATCHES = (1, 16, 256)
# A run of an engine at a batch size: (ops done, wall seconds).
Writer = Callable[[Path, int, int], tuple[int, float]]


# -- engines ----------------------------------------------------------------------


def write_disk_storage(directory: Path, batch: int, commits: int) -> tuple[int, float]:
    storage = DiskStorage.open(directory)
    next_index = 1
    start = time.perf_counter()
    for _ in range(commits):
        entries = [Entry(term=Term(1), index=Index(next_index + k), data=PAYLOAD)
                   for k in range(batch)]
        next_index += batch
        storage.save(HardState(term=Term(1), vote=NodeId(1), commit=Index(next_index - 1)),
                     entries, None)
        storage.sync()
    seconds = time.perf_counter() - start
    storage.close()
    return batch * commits, seconds


def _write_sqlite(directory: Path, batch: int, commits: int, mode: str) -> tuple[int, float]:
    connection = sqlite3.connect(directory / "bench.db", isolation_level=None)
    connection.execute(f"PRAGMA journal_mode={mode}")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE entries (idx INTEGER PRIMARY KEY, term INTEGER, "
                       "record BLOB, crc INTEGER)")
    next_index = 1
    start = time.perf_counter()
    for _ in range(commits):
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO entries VALUES (?, 1, ?, 0)",
                               [(next_index + k, PAYLOAD) for k in range(batch)])
        connection.execute("COMMIT")
        next_index += batch
    seconds = time.perf_counter() - start
    connection.close()
    return batch * commits, seconds


def write_sqlite_wal(directory: Path, batch: int, commits: int) -> tuple[int, float]:
    return _write_sqlite(directory, batch, commits, "WAL")


def write_sqlite_rollback(directory: Path, batch: int, commits: int) -> tuple[int, float]:
    return _write_sqlite(directory, batch, commits, "TRUNCATE")


def write_lmdb(directory: Path, batch: int, commits: int) -> tuple[int, float]:
    import lmdb  # type: ignore[import-not-found]

    environment = lmdb.open(str(directory), map_size=1 << 31, sync=True, metasync=True)
    next_index = 1
    start = time.perf_counter()
    for _ in range(commits):
        with environment.begin(write=True) as txn:
            for k in range(batch):
                txn.put(struct.pack(">Q", next_index + k), PAYLOAD, append=True)
        next_index += batch
    seconds = time.perf_counter() - start
    environment.close()
    return batch * commits, seconds


def write_rocksdb(directory: Path, batch: int, commits: int) -> tuple[int, float]:
    from rocksdict import Rdict, WriteBatch, WriteOptions  # type: ignore[import-not-found]

    database = Rdict(str(directory / "rocks"))
    options = WriteOptions()
    options.sync = True
    next_index = 1
    start = time.perf_counter()
    for _ in range(commits):
        write_batch = WriteBatch()
        for k in range(batch):
            write_batch.put(struct.pack(">Q", next_index + k), PAYLOAD)
        database.write(write_batch, options)
        next_index += batch
    seconds = time.perf_counter() - start
    database.close()
    return batch * commits, seconds


def write_file_append(directory: Path, batch: int, commits: int) -> tuple[int, float]:
    header = struct.Struct(">QI")
    next_index = 1
    with (directory / "log").open("ab") as log:
        start = time.perf_counter()
        for _ in range(commits):
            log.write(b"".join(header.pack(next_index + k, len(PAYLOAD)) + PAYLOAD
                               for k in range(batch)))
            log.flush()
            os.fdatasync(log.fileno())
            next_index += batch
        seconds = time.perf_counter() - start
    return batch * commits, seconds


ENGINES: dict[str, tuple[Writer, str | None]] = {
    "disk_storage": (write_disk_storage, None),
    "sqlite_wal": (write_sqlite_wal, None),
    "sqlite_rollback": (write_sqlite_rollback, None),
    "lmdb": (write_lmdb, "lmdb"),
    "rocksdb": (write_rocksdb, "rocksdict"),
    "file_append": (write_file_append, None),
}


def available(module: str | None) -> bool:
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def scratch(parent: Path) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="cf-bench-storage-", dir=parent))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def bench_appends(parent: Path, engines: list[str], commits: dict[int, int],
                  runs: int) -> dict[str, dict[str, Any]]:
    """Engines interleaved run by run, so a noisy moment hits them all alike."""
    rates: dict[str, dict[int, list[float]]] = {e: {b: [] for b in BATCHES} for e in engines}
    for _ in range(runs):
        for batch in BATCHES:
            for engine in engines:
                with scratch(parent) as directory:
                    ops, seconds = ENGINES[engine][0](directory, batch, commits[batch])
                rates[engine][batch].append(ops / seconds)
    return {engine: {f"batch_{batch}": {
        "entries_per_s": round(statistics.median(per_batch[batch])),
        "commits_per_s": round(statistics.median(per_batch[batch]) / batch),
        "run_rates_per_s": [round(rate) for rate in per_batch[batch]],
    } for batch in BATCHES} for engine, per_batch in rates.items()}


# -- recovery ------------------------------------------------------------------------


def build_log(directory: Path, live: int, history: int) -> None:
    """`history` entries written, then compacted down to the last `live`."""
    storage = DiskStorage.open(directory, StorageOptions(unsafe_no_fsync=True))
    for first in range(1, history + 1, 1000):
        last = min(first + 999, history)
        storage.save(HardState(term=Term(1), commit=Index(last)),
                     [Entry(term=Term(1), index=Index(i), data=PAYLOAD)
                      for i in range(first, last + 1)], None)
        storage.sync()
    if history > live:
        storage.create_snapshot(Index(history - live), ConfState(voters=(NodeId(1),)),
                                PAYLOAD * 100)
        storage.compact(Index(history - live))
    storage.close()


def time_open(directory: Path, runs: int) -> float:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        storage = DiskStorage.open(directory)
        seconds.append(time.perf_counter() - start)
        assert storage.last_index() > 0
        storage.close()
    return statistics.median(seconds)


def bench_recovery(parent: Path, lengths: list[int], runs: int) -> list[dict[str, Any]]:
    rows = []
    for live in lengths:
        row: dict[str, Any] = {"live_entries": live}
        for label, history in (("open_ms", live), ("open_ms_after_10x_history", 10 * live)):
            with scratch(parent) as directory:
                build_log(directory, live, history)
                row[label] = round(time_open(directory, runs) * 1000, 2)
        rows.append(row)
    return rows


# -- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="where scratch data directories go (its file system is measured)")
    args = parser.parse_args()
    quiet = args.json_only
    engines = [name for name, (_, module) in ENGINES.items() if available(module)]
    missing = [name for name in ENGINES if name not in engines]
    if args.quick:
        commits, runs, lengths, open_runs = {1: 150, 16: 100, 256: 20}, 3, [1_000, 10_000], 3
    else:
        commits, runs, lengths, open_runs = ({1: 1000, 16: 500, 256: 100}, 5,
                                             [1_000, 10_000, 100_000], 5)
    say(f"storage benchmark on {args.dir} (engines: {', '.join(engines)}; "
        f"not importable: {', '.join(missing) or 'none'})", quiet=quiet)
    appends = bench_appends(args.dir, engines, commits, runs)
    headers = ["engine", *(f"batch {b} entries/s" for b in BATCHES), "batch 1 commits/s"]
    say(format_table(headers, [
        [engine, *(format_number(appends[engine][f"batch_{b}"]["entries_per_s"])
                   for b in BATCHES),
         format_number(appends[engine]["batch_1"]["commits_per_s"])]
        for engine in engines]), quiet=quiet)
    recovery = bench_recovery(args.dir, lengths, open_runs)
    say("", quiet=quiet)
    say(format_table(["live entries", "open ms", "open ms (10x history, compacted)"], [
        [format_number(row["live_entries"]), format_number(row["open_ms"], 2),
         format_number(row["open_ms_after_10x_history"], 2)] for row in recovery]), quiet=quiet)
    emit_json({
        "benchmark": "storage",
        "quick": args.quick,
        "machine": machine_info(),
        "git": git_revision(),
        "source_digest": source_digest("real/storage"),
        "entry_bytes": len(PAYLOAD),
        "commits_per_run": {str(b): c for b, c in commits.items()},
        "runs": runs,
        "engines_missing": missing,
        "appends": appends,
        "recovery": recovery,
    })


if __name__ == "__main__":
    main()
