"""Restart time vs history size, with and without the durable state machine backend.

A single node (in process, real.storage.DiskStorage + real.storage.mvcc_backend
on the scratch directory's file system, `unsafe_no_fsync` while building
the history only) applies H puts of 100-byte values over 10,000 keys, 256
puts per Ready, snapshotting every 10,000 entries (the default). Then it is
restarted, from the same data directory, three ways, and timed from
opening the storage until every committed entry is applied:

- `backend`: state.db holds the state: the key index, leases and members are
  rebuilt from it and the log after its applied index is replayed (the
  snapshot is not decoded);
- `snapshot`: no durable backend (the state machine in memory, as before
  this backend existed): decode the latest snapshot, replay the log after it;
- `rebuild`: state.db deleted: decode the snapshot into a new state.db,
  replay the log (the fallback).

Both paths are O(state): the in-memory key index must be rebuilt either way;
the durable backend saves decoding and copying the snapshot bytes.

    python benchmarks/restart.py            # full
    python benchmarks/restart.py --quick    # < 1 minute
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit_json, format_number, format_table, git_revision, machine_info, say

from chainfire_core.mvcc.messages import PutRequest
from chainfire_core.node import ChainfireNode
from real.bootstrap import build_node
from real.config import ServerConfig, load_config
from real.recovery import open_backend
from real.storage import DiskStorage, StorageOptions
from real.storage.mvcc_backend import STATE_DB_NAME, SqliteBackend

KEYS = 10_000
VALUE = b"v" * 100
PUTS_PER_READY = 256
SNAPSHOT_COUNT = 10_000


def config_for(data_dir: Path) -> ServerConfig:
    return load_config(["--name", "solo", "--data-dir", str(data_dir),
                        "--snapshot-count", str(SNAPSHOT_COUNT)], {})


def drive(node: ChainfireNode, storage: DiskStorage, backend: SqliteBackend | None) -> None:
    while node.has_ready():
        ready = node.ready()
        if ready.raft is not None:
            storage.save(ready.raft.hard_state, ready.raft.entries, ready.raft.snapshot)
            storage.sync()
        node.advance(ready)
        if backend is not None:
            backend.commit()


def build_history(directory: Path, puts: int) -> None:
    storage = DiskStorage.open(directory, StorageOptions(unsafe_no_fsync=True))
    backend = open_backend(directory)
    node = build_node(config_for(directory), storage, backend=backend, rng=random.Random(1))
    node.campaign()
    drive(node, storage, backend)
    for first in range(0, puts, PUTS_PER_READY):
        for i in range(first, min(puts, first + PUTS_PER_READY)):
            node.submit(i, PutRequest(key=b"key%05d" % (i % KEYS), value=VALUE))
        drive(node, storage, backend)
    backend.close()
    storage.close()


def time_restart(directory: Path, mode: str) -> tuple[float, int]:
    """Seconds from open to caught up, and the snapshot restores it took."""
    started = time.perf_counter()
    storage = DiskStorage.open(directory)
    backend = open_backend(directory) if mode != "snapshot" else None
    node = build_node(config_for(directory), storage, backend=backend, rng=random.Random(1))
    drive(node, storage, backend)
    assert node.sm.applied_index == storage.hard_state.commit, "not caught up"
    elapsed = time.perf_counter() - started
    restores = node.sm.snapshot_restores
    if backend is not None:
        backend.close()
    storage.close()
    return elapsed, restores


def bench(parent: Path, sizes: list[int], runs: int) -> list[dict[str, Any]]:
    rows = []
    for puts in sizes:
        with tempfile.TemporaryDirectory(dir=parent, prefix="restart-bench-") as name:
            directory = Path(name)
            built = time.perf_counter()
            build_history(directory, puts)
            row: dict[str, Any] = {"history_puts": puts,
                                   "build_s": round(time.perf_counter() - built, 2)}
            for mode in ("backend", "snapshot", "rebuild"):
                times = []
                for _ in range(runs):
                    if mode == "rebuild":
                        for suffix in ("", "-wal", "-shm"):
                            (directory / (STATE_DB_NAME + suffix)).unlink(missing_ok=True)
                    elapsed, restores = time_restart(directory, mode)
                    assert restores == (0 if mode == "backend" else 1), (mode, restores)
                    times.append(elapsed)
                row[f"{mode}_ms"] = round(statistics.median(times) * 1000, 1)
            row["state_db_mb"] = round((directory / STATE_DB_NAME).stat().st_size / 1e6, 1)
            rows.append(row)
            shutil.rmtree(directory, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="where scratch data directories go")
    args = parser.parse_args()
    sizes, runs = ([5_000, 25_000], 1) if args.quick else ([10_000, 50_000, 200_000], 3)
    say(f"restart benchmark on {args.dir}: history sizes {sizes}, {runs} run(s) each",
        quiet=args.json_only)
    rows = bench(args.dir, sizes, runs)
    say(format_table(
        ["history puts", "backend ms", "snapshot ms", "rebuild ms", "state.db MB"],
        [[format_number(row["history_puts"]), format_number(row["backend_ms"], 1),
          format_number(row["snapshot_ms"], 1), format_number(row["rebuild_ms"], 1),
          format_number(row["state_db_mb"], 1)] for row in rows]), quiet=args.json_only)
    emit_json({"benchmark": "restart", "quick": args.quick, "machine": machine_info(),
               "git": git_revision(), "keys": KEYS, "value_bytes": len(VALUE),
               "snapshot_count": SNAPSHOT_COUNT, "runs": runs, "restart": rows})


if __name__ == "__main__":
    main()
