"""Throughput of the sans-IO Raft core in an in-process pump (no simulator).

N RawNodes over MemoryStorage, driven by the Ready contract on one core:
persist entries and hard state, deliver messages, "apply" (count) committed
entries, advance. A cycle proposes `batch` entries of 128 bytes (a put's
size) at the leader (`propose` for one, `propose_batch` for 64: one log
append and one message per follower) and then pumps until every node has
applied them.

Figures: entries committed and applied on every node per second, for
unbatched (one proposal per cycle) and batched (64 per cycle) proposals,
at cluster sizes 3, 5, 7, 9. Median of several runs; per-run rates and CPU
rates are in the JSON.

    python benchmarks/raft.py            # full
    python benchmarks/raft.py --quick    # < 1 minute
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import deque
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    check_target,
    emit_json,
    format_number,
    format_table,
    git_revision,
    machine_info,
    measure,
    say,
    source_digest,
)

from chainfire_core.raft import (
    ConfState,
    MemoryStorage,
    Message,
    RaftConfig,
    RawNode,
    Snapshot,
    SnapshotMetadata,
)
from chainfire_core.types import Index, NodeId, Term

PAYLOAD = b"x" * 128
TARGETS = {"n3_unbatched_per_s": 20_000, "n3_batched_per_s": 150_000}


class Pump:
    """N RawNodes over an in-memory wire, following the Ready contract."""

    def __init__(self, size: int) -> None:
        ids = tuple(NodeId(i) for i in range(1, size + 1))
        self.nodes: dict[NodeId, RawNode] = {}
        self.storages: dict[NodeId, MemoryStorage] = {}
        self.applied: dict[NodeId, int] = dict.fromkeys(ids, 0)
        for node_id in ids:
            storage = MemoryStorage()
            storage.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
                index=Index(1), term=Term(1), conf_state=ConfState(voters=ids))))
            self.storages[node_id] = storage
            config = RaftConfig(id=node_id, max_inflight_msgs=4096)
            self.nodes[node_id] = RawNode(config, storage, random.Random(node_id))
        self.wire: deque[Message] = deque()
        self.leader = ids[0]
        self.nodes[self.leader].campaign()
        self.pump()

    def pump(self) -> None:
        nodes, storages, wire, applied = self.nodes, self.storages, self.wire, self.applied
        while True:
            moved = False
            for node_id, node in nodes.items():
                if not node.has_ready():
                    continue
                moved = True
                ready = node.ready()
                storage = storages[node_id]
                if ready.entries:
                    storage.append(ready.entries)
                if ready.hard_state is not None:
                    storage.set_hard_state(ready.hard_state)
                wire.extend(ready.messages)
                applied[node_id] += len(ready.committed_entries)
                node.advance(ready)
            while wire:
                moved = True
                message = wire.popleft()
                nodes[message.to].step(message)
            if not moved:
                return

    def cycle(self, batch: int) -> None:
        leader = self.nodes[self.leader]
        if batch == 1:
            leader.propose(PAYLOAD)
        else:
            leader.propose_batch([PAYLOAD] * batch)
        self.pump()


def run_cycles(size: int, batch: int, entries: int) -> tuple[int, float, float]:
    pump = Pump(size)
    before = min(pump.applied.values())
    cycles = entries // batch
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(cycles):
        pump.cycle(batch)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    done = min(pump.applied.values()) - before
    assert done == cycles * batch, (done, cycles * batch)
    return done, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer entries and sizes (< 1 min)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    quiet = args.json_only
    sizes = (3, 5) if args.quick else (3, 5, 7, 9)
    unbatched_entries = 2_000 if args.quick else 10_000
    batched_entries = 64 * (100 if args.quick else 400)
    results: dict[str, object] = {}
    rows = []
    for size in sizes:
        for label, batch, entries in (("unbatched", 1, unbatched_entries),
                                      ("batched", 64, batched_entries)):
            measured = measure(partial(run_cycles, size, batch, entries), args.runs)
            key = f"n{size}_{label}_per_s"
            results[key] = round(measured.rate, 1)
            results[f"{key}_detail"] = measured.as_json()
            rows.append([f"{size} nodes, {label} ({batch}/cycle)", format_number(measured.rate),
                         format_number(measured.cpu_rate),
                         format_number(TARGETS.get(key)) if key in TARGETS else "-"])
    say(format_table(["case", "entries/s", "entries/cpu-s", "target"], rows), quiet=quiet)
    meets = {key: check_target(float(str(results[key])), target, at_least=True)
             for key, target in TARGETS.items()}
    emit_json({"benchmark": "raft", "mode": "quick" if args.quick else "full", **results,
               "targets": TARGETS, "meets_targets": meets, "machine": machine_info(),
               "git": git_revision(), "source_digest": source_digest("chainfire_core")})


if __name__ == "__main__":
    main()
