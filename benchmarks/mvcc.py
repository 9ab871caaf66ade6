"""Throughput and memory of the MVCC store (MvccStore over MemoryBackend).

Usage (from the repository root):

    .venv/bin/python benchmarks/mvcc.py --quick      # N = 10^4, 10^5; < 1 minute
    .venv/bin/python benchmarks/mvcc.py              # N = 10^4, 10^5, 10^6; minutes
    .venv/bin/python benchmarks/mvcc.py --sizes 1000,50000 --runs 5
    .venv/bin/python benchmarks/mvcc.py --json-only  # just the JSON line
    .venv/bin/python benchmarks/mvcc.py --profile puts   # cProfile, top by tottime

What is measured
----------------
Single thread, memory backend, 16-byte keys (b"k" + 15 zero-padded digits, so
byte order is numeric order) and 100-byte values, at each store size N:

* puts/s (load): N fresh keys put one by one into an empty store, in a
  seeded random order; the rate is N / time. Each run loads a new store.
* overwrites/s: puts of random existing keys (new values) into the loaded
  store, in a seeded random order (every put reads the previous record,
  bumps the version and adds a revision).
* point gets/s: RangeRequest(key=k) for random existing keys, in a random
  order drawn from a seeded random.Random.
  Gets and overwrites do a fixed count per run at every N (distinct keys
  while the count is <= N, whole shuffled passes over the keys beyond).
* 1000-key ranges/s: RangeRequest(key=k_i, range_end=k_{i+1000}) for random
  i, which selects exactly 1000 consecutive live keys.
* limit ranges/s (extra, no target): RangeRequest(key=k_i, range_end=b"\\0",
  limit=1000), i.e. "the next 1000 keys", which is how clients paginate.
  This returns the same 1000 key-values, but see its scaling. The starts i
  are spread evenly over the key space (the same ones in every run), so on
  average N/2 keys lie after the start.
* bytes/key: memory overhead per live key beyond its key and value bytes.

Gets and ranges run on the store of the last load run, before the
overwrites, so every key has exactly one revision when read.

Timing method: requests are built outside the timed region in chunks of
10,000 (see _common.timed_calls), so a figure is the cost of the store call
plus a Python `for` loop. Each figure is the median of --runs runs (3 by
default) with the collector enabled and a gc.collect() before each run. Fewer
operations per run in --quick mode. Per-op cost (ns/op) should grow no faster
than log N: the "scaling" table compares ns/op at the largest N with the
smallest, against log2(N_max)/log2(N_min).

Memory method (a separate pass, since tracemalloc slows everything down):
tracemalloc is started first, then an empty store is created and N fresh keys
are loaded, with every key and value bytes object allocated while tracing is
on (objects allocated before tracemalloc.start() would not be traced). Only
what the store still references afterwards stays traced: the PutRequests,
responses and the value objects (the store copies values into its backend
records) are freed again. After gc.collect(),

    overhead per key = (traced bytes now - traced bytes before the store) / N
                       - (16 + 100)

i.e. the 16 + 100 payload bytes of each key and value count as "key and value
bytes"; everything else is overhead: bytes object headers, the copy of the key
and the record header inside the backend record, the 8-byte backend key,
dict/list/SortedList slots, the packed-revision int and its list. The seeded
order list is built before tracing starts, so it is not counted. The same
pass reports the traced bytes per key by the file that allocated them.
Memory is measured after loading (one revision per key, nothing compacted);
overwrites keep history until compaction, so they add to it.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

try:
    from benchmarks import _common
except ImportError:  # run as a script: benchmarks/ is sys.path[0]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common  # type: ignore[import-not-found,no-redef]

from chainfire_core.mvcc.messages import ALL_KEYS, PutRequest, RangeRequest
from chainfire_core.mvcc.store import KEY_BUCKET, MvccStore
from chainfire_core.storage import MemoryBackend

KEY_BYTES = 16
VALUE_BYTES = 100
PAYLOAD_BYTES = KEY_BYTES + VALUE_BYTES
RANGE_KEYS = 1000
CHUNK = 10_000
DEFAULT_SEED = 20240601

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)

# The targets: (JSON key, target, at_least: a floor, else a ceiling).
TARGETS: tuple[tuple[str, float, bool], ...] = (
    ("puts_per_s", 100_000, True),
    ("overwrites_per_s", 100_000, True),  # a put is a put: same floor
    ("gets_per_s", 300_000, True),
    ("range_1000_per_s", 2_000, True),
    ("bytes_per_key", 400, False),
)


def key_of(i: int) -> bytes:
    return b"k%015d" % i


def value_of(i: int, generation: int = 0) -> bytes:
    return (b"v%07d%08d" % (generation, i)) * 6 + b"vvvv"


assert len(key_of(0)) == KEY_BYTES and len(value_of(0)) == VALUE_BYTES
assert key_of(999) < key_of(1000)


@dataclass(frozen=True, slots=True)
class Plan:
    """How much work each figure does at one N."""

    overwrites: int
    gets: int
    ranges: int
    limit_ranges: int


def plan_for(n: int, quick: bool) -> Plan:
    # Gets and overwrites do the same count at every N (keys repeat when the
    # count exceeds N), so small stores still give runs long enough to time.
    if quick:
        return Plan(
            overwrites=30_000,
            gets=50_000,
            ranges=40,
            # A limit range walks to the end of the key space (see the
            # docstring), so its count shrinks as N grows.
            limit_ranges=max(2, min(20, 300_000 // n)),
        )
    return Plan(
        overwrites=100_000,
        gets=200_000,
        ranges=200,
        limit_ranges=max(3, min(50, 1_000_000 // n)),
    )


# -- the timed figures -------------------------------------------------------------


def put_chunks(indices: Sequence[int], generation: int = 0) -> Iterator[list[PutRequest]]:
    for start in range(0, len(indices), CHUNK):
        yield [
            PutRequest(key=key_of(i), value=value_of(i, generation))
            for i in indices[start : start + CHUNK]
        ]


def get_chunks(indices: Sequence[int]) -> Iterator[list[RangeRequest]]:
    for start in range(0, len(indices), CHUNK):
        yield [RangeRequest(key=key_of(i)) for i in indices[start : start + CHUNK]]


def random_keys(rng: random.Random, n: int, count: int) -> list[int]:
    """`count` key indices below `n` in random order: distinct when
    count <= n, else whole shuffled passes over all keys and a partial one."""
    chosen: list[int] = []
    while len(chosen) < count:
        chosen += rng.sample(range(n), min(n, count - len(chosen)))
    return chosen


def new_store() -> MvccStore:
    return MvccStore(MemoryBackend())


def load(store: MvccStore, order: Sequence[int]) -> tuple[int, float, float]:
    return _common.timed_calls(store.put, put_chunks(order))


def check_store(store: MvccStore, n: int) -> None:
    """Spot-check that the loaded store answers what the benchmark assumes."""
    for i in (0, n // 2, n - 1):
        response = store.range(RangeRequest(key=key_of(i)))
        assert len(response.kvs) == 1 and response.kvs[0].value == value_of(i), i
    start = max(0, n - RANGE_KEYS) // 2
    response = store.range(RangeRequest(key=key_of(start), range_end=key_of(start + RANGE_KEYS)))
    assert response.count == RANGE_KEYS and len(response.kvs) == RANGE_KEYS
    assert response.kvs[0].key == key_of(start)
    assert response.kvs[-1].key == key_of(start + RANGE_KEYS - 1)
    response = store.range(RangeRequest(key=key_of(start), range_end=ALL_KEYS, limit=RANGE_KEYS))
    assert len(response.kvs) == RANGE_KEYS and response.kvs[-1].key == key_of(start + 999)


def bench_size(n: int, *, quick: bool, runs: int, seed: int, quiet: bool) -> dict[str, Any]:
    """Every figure at store size N: the timing pass, then the memory pass."""
    assert n >= RANGE_KEYS + 1, f"N must be > {RANGE_KEYS}"
    rng = random.Random(seed ^ n)
    order = list(range(n))
    rng.shuffle(order)
    started = time.perf_counter()
    figures = time_size(n, order, rng, plan_for(n, quick), runs)
    timed_s = time.perf_counter() - started
    _common.say(f"  N={n:,}: timing done in {timed_s:.1f}s; memory pass...", quiet=quiet)
    memory = measure_memory(n, order)
    result: dict[str, Any] = {name: round(m.rate, 1) for name, m in figures.items()}
    result["bytes_per_key"] = memory["bytes_per_key"]
    result["ns_per_op"] = {name: round(m.ns_per_op, 1) for name, m in figures.items()}
    result["detail"] = {name: m.as_json() for name, m in figures.items()}
    result["memory"] = memory
    result["seconds"] = {"timing": round(timed_s, 1), "memory": memory["seconds"]}
    return result


def time_size(
    n: int, order: Sequence[int], rng: random.Random, plan: Plan, runs: int
) -> dict[str, _common.Measurement]:
    figures: dict[str, _common.Measurement] = {}

    holder: list[MvccStore] = []

    def load_run() -> tuple[int, float, float]:
        holder.clear()  # free the previous run's store before building the next
        store = new_store()
        holder.append(store)
        return load(store, order)

    figures["puts_per_s"] = _common.measure(load_run, runs)
    store = holder[0]
    check_store(store, n)

    def gets_run() -> tuple[int, float, float]:
        indices = random_keys(rng, n, plan.gets)
        return _common.timed_calls(store.range, get_chunks(indices))

    figures["gets_per_s"] = _common.measure(gets_run, runs)

    def ranges_run() -> tuple[int, float, float]:
        requests = []
        for _ in range(plan.ranges):
            i = rng.randrange(n - RANGE_KEYS + 1)
            requests.append(RangeRequest(key=key_of(i), range_end=key_of(i + RANGE_KEYS)))
        return _common.timed_calls(store.range, [requests])

    figures["range_1000_per_s"] = _common.measure(ranges_run, runs)

    # The cost of a limit range depends on where it starts (it walks to the
    # end of the key space), so every run uses the same evenly spread starts:
    # on average N/2 keys from the end.
    limit_requests = [
        RangeRequest(key=key_of((2 * k + 1) * (n - RANGE_KEYS) // (2 * plan.limit_ranges)),
                     range_end=ALL_KEYS, limit=RANGE_KEYS)
        for k in range(plan.limit_ranges)
    ]

    def limit_ranges_run() -> tuple[int, float, float]:
        return _common.timed_calls(store.range, [limit_requests])

    figures["range_limit_1000_per_s"] = _common.measure(limit_ranges_run, runs)

    generation = [0]

    def overwrites_run() -> tuple[int, float, float]:
        generation[0] += 1
        indices = random_keys(rng, n, plan.overwrites)
        return _common.timed_calls(store.put, put_chunks(indices, generation[0]))

    figures["overwrites_per_s"] = _common.measure(overwrites_run, runs)
    assert store.range(RangeRequest(key=key_of(0))).count == 1
    holder.clear()
    return figures  # the store goes with this frame, before the memory pass


# -- memory ------------------------------------------------------------------------


def measure_memory(n: int, order: Sequence[int]) -> dict[str, Any]:
    """Traced bytes per key of a store loaded with N fresh keys (see the
    module docstring for the method)."""
    started = time.perf_counter()
    gc.collect()
    tracemalloc.start(1)
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = new_store()
        put = store.put
        for i in order:
            # key_of/value_of run with tracing on: the key object kept by
            # the store is counted, header and payload.
            put(PutRequest(key=key_of(i), value=value_of(i)))
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert store.backend.count(KEY_BUCKET) == n
    del store
    by_file: dict[str, float] = {}
    for stat in snapshot.statistics("filename"):
        name = Path(stat.traceback[0].filename).name
        if name == Path(__file__).name:
            name += " (key objects)"
        per_key = stat.size / n
        if per_key >= 0.5:
            by_file[name] = round(by_file.get(name, 0.0) + per_key, 1)
    del snapshot
    total = (after - before) / n
    return {
        "bytes_per_key": round(total - PAYLOAD_BYTES, 1),
        "traced_bytes_per_key": round(total, 1),
        "peak_traced_mb": round(peak / 2**20, 1),
        "traced_bytes_per_key_by_file": dict(
            sorted(by_file.items(), key=lambda item: -item[1])
        ),
        "seconds": round(time.perf_counter() - started, 1),
    }


# -- report ------------------------------------------------------------------------

LABELS = {
    "puts_per_s": "puts/s (load, fresh keys)",
    "overwrites_per_s": "puts/s (overwrite existing)",
    "gets_per_s": "point gets/s",
    "range_1000_per_s": "1000-key ranges/s",
    "range_limit_1000_per_s": "limit=1000 ranges/s (extra)",
    "bytes_per_key": "overhead bytes/key",
}
TIMED = ("puts_per_s", "overwrites_per_s", "gets_per_s", "range_1000_per_s",
         "range_limit_1000_per_s")


def scaling(by_n: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """ns/op at the largest N over the smallest, against the log N bound."""
    sizes = sorted(by_n)
    if len(sizes) < 2:
        return {}
    small, large = sizes[0], sizes[-1]
    log_ratio = math.log2(large) / math.log2(small)
    out: dict[str, Any] = {"from_n": small, "to_n": large, "log_ratio": round(log_ratio, 2)}
    for name in TIMED:
        ratio = by_n[large]["ns_per_op"][name] / by_n[small]["ns_per_op"][name]
        out[name] = round(ratio, 2)
    out["bytes_per_key"] = round(by_n[large]["bytes_per_key"] / by_n[small]["bytes_per_key"], 2)
    return out


def report(by_n: dict[int, dict[str, Any]], scale: dict[str, Any], quiet: bool) -> None:
    sizes = sorted(by_n)
    largest = sizes[-1]
    targets = {name: (target, at_least) for name, target, at_least in TARGETS}
    headers = ["figure", *(f"N={n:,}" for n in sizes), "target", f"at N={largest:,}"]
    rows = []
    for name, label in LABELS.items():
        row = [label, *(_common.format_number(by_n[n][name]) for n in sizes)]
        if name in targets:
            target, at_least = targets[name]
            ok = _common.check_target(by_n[largest][name], target, at_least=at_least)
            row += [_common.describe_target(target, at_least=at_least),
                    "ok" if ok else "MISSED"]
        else:
            row += ["-", "-"]
        rows.append(row)
    _common.say("", quiet=quiet)
    _common.say(_common.format_table(headers, rows), quiet=quiet)

    # ns/op per N with the spread of the runs, the growth from the smallest
    # to the largest N, and wall/CPU time at the largest N (> 1: the run
    # waited for a core, i.e. the machine was busy).
    headers = ["ns/op (spread of runs)", *(f"N={n:,}" for n in sizes)]
    if scale:
        headers.append(f"x{scale['to_n'] // scale['from_n']:,} N")
    headers.append("wall/cpu")
    rows = []
    for name in TIMED:
        row = [LABELS[name]]
        for n in sizes:
            detail = by_n[n]["detail"][name]
            row.append(f"{detail['ns_per_op']:,.0f} ({detail['spread']:.0%})")
        if scale:
            row.append(f"x{scale[name]:.2f}")
        detail = by_n[largest]["detail"][name]
        row.append(f"{detail['cpu_rate_per_s'] / detail['rate_per_s']:.2f}")
        rows.append(row)
    if scale:
        rows.append(["log2 N bound", *("" for _ in sizes), f"x{scale['log_ratio']:.2f}", ""])
    _common.say("", quiet=quiet)
    _common.say(_common.format_table(headers, rows), quiet=quiet)

    _common.say("", quiet=quiet)
    for n in sizes:
        memory = by_n[n]["memory"]
        parts = ", ".join(f"{k} {v:,.0f}"
                          for k, v in memory["traced_bytes_per_key_by_file"].items())
        _common.say(f"memory N={n:,}: traced {memory['traced_bytes_per_key']:,.0f} B/key "
                    f"(payload {PAYLOAD_BYTES}); by allocating file: {parts}", quiet=quiet)
    _common.say("", quiet=quiet)


# -- profiling ---------------------------------------------------------------------


def profile(kind: str, ops: int, n: int, seed: int, top: int) -> dict[str, Any]:
    """cProfile `ops` operations of `kind`; print the top functions by tottime."""
    rng = random.Random(seed)
    store = new_store()
    order = list(range(max(n, ops) if kind == "puts" else n))
    rng.shuffle(order)
    profiler = cProfile.Profile()
    if kind == "puts":
        order = order[:ops]
        for chunk in put_chunks(order):
            profiler.runcall(_run_all, store.put, chunk)
    else:
        load(store, order)
        if kind == "gets":
            indices = [rng.randrange(n) for _ in range(ops)]
            for gets in get_chunks(indices):
                profiler.runcall(_run_all, store.range, gets)
        elif kind == "overwrites":
            indices = [rng.randrange(n) for _ in range(ops)]
            for chunk in put_chunks(indices, 1):
                profiler.runcall(_run_all, store.put, chunk)
        else:  # range: ops counts key-values returned, in 1000-key ranges
            ranges = []
            for _ in range(max(1, ops // RANGE_KEYS)):
                i = rng.randrange(n - RANGE_KEYS + 1)
                ranges.append(RangeRequest(key=key_of(i), range_end=key_of(i + RANGE_KEYS)))
            profiler.runcall(_run_all, store.range, ranges)
    # Aggregate from the raw entries rather than with pstats: pstats names a
    # function by (file, line, name), so every dataclass __init__ is
    # "<string>:2(__init__)" and all but one of them are lost. co_qualname
    # tells them apart (KeyValue.__init__, ResponseHeader.__init__, ...).
    # Generated __init__s all share one qualname too, so name them by class.
    generated = _generated_inits()
    table: dict[str, list[float]] = {}
    for entry in profiler.getstats():
        code = entry.code
        if isinstance(code, str):
            label = code
        elif code in generated:
            label = f"{generated[code]}.__init__ (dataclass)"
        else:
            label = f"{Path(code.co_filename).name}:{code.co_firstlineno}({code.co_qualname})"
        row = table.setdefault(label, [0, 0.0, 0.0])
        row[0] += entry.callcount
        row[1] += entry.inlinetime
        row[2] += entry.totaltime
    total = sum(row[1] for row in table.values())
    ranked = sorted(table.items(), key=lambda item: -item[1][1])[:top]
    headers = ["function (by tottime)", "ncalls", "tottime s", "share", "ns/op", "cumtime s"]
    lines = [
        [label, _common.format_number(calls), f"{tottime:.3f}", f"{tottime / total:.1%}",
         _common.format_number(tottime / ops * 1e9), f"{cumtime:.3f}"]
        for label, (calls, tottime, cumtime) in ranked
    ]
    print(f"cProfile of {ops:,} {kind} (store of {n:,} keys): {total:.2f}s profiled; "
          f"ns/op = the function's tottime per benchmark operation, with profiler overhead")
    print(_common.format_table(headers, lines))
    rows = [
        {"function": label, "ncalls": int(calls), "tottime_s": round(tottime, 4),
         "tottime_share": round(tottime / total, 3) if total else None,
         "cumtime_s": round(cumtime, 4)}
        for label, (calls, tottime, cumtime) in ranked
    ]
    return {"benchmark": "mvcc-profile", "kind": kind, "ops": ops, "store_n": n,
            "total_s": round(total, 3), "top_by_tottime": rows,
            "machine": _common.machine_info()}


def _generated_inits() -> dict[Any, str]:
    """code object -> class name, for the dataclass __init__s of every loaded
    chainfire_core module."""
    found: dict[Any, str] = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("chainfire_core"):
            continue
        for value in vars(module).values():
            init = getattr(value, "__init__", None) if isinstance(value, type) else None
            code = getattr(init, "__code__", None)
            if code is not None and code.co_filename == "<string>":
                found[code] = value.__qualname__
    return found


def _run_all(call: Callable[[Any], object], args: Sequence[Any]) -> None:
    for arg in args:
        call(arg)


# -- main --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="N = 10^4 and 10^5 with fewer operations (< 1 minute)")
    parser.add_argument("--sizes", help="comma-separated store sizes N, e.g. 10000,100000")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (median)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    parser.add_argument("--profile", choices=("puts", "overwrites", "gets", "range"),
                        help="cProfile one operation kind instead of benchmarking")
    parser.add_argument("--profile-ops", type=int, default=200_000,
                        help="operations to profile (for range: key-values returned)")
    parser.add_argument("--profile-n", type=int, default=100_000,
                        help="store size for profiling gets/overwrites/range")
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args(argv)
    if args.sizes:
        try:
            args.size_list = sorted({int(s.replace("_", "")) for s in args.sizes.split(",")})
        except ValueError:
            parser.error("--sizes takes comma-separated integers")
        if any(n <= RANGE_KEYS for n in args.size_list):
            parser.error(f"every size must be > {RANGE_KEYS}")
    else:
        args.size_list = list(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        _common.emit_json(profile(args.profile, args.profile_ops, args.profile_n, args.seed,
                                  args.profile_top))
        return 0
    quiet = args.json_only
    # Taken before the run: a file edited during it makes the digest stale.
    source = _common.source_digest("chainfire_core")
    mode = "custom" if args.sizes else ("quick" if args.quick else "full")
    started = time.perf_counter()
    _common.say(f"mvcc benchmark ({mode}): sizes {', '.join(f'{n:,}' for n in args.size_list)}; "
                f"{KEY_BYTES}-byte keys, {VALUE_BYTES}-byte values; median of {args.runs} runs",
                quiet=quiet)
    by_n: dict[int, dict[str, Any]] = {}
    for n in args.size_list:
        by_n[n] = bench_size(n, quick=args.quick, runs=args.runs, seed=args.seed, quiet=quiet)
    scale = scaling(by_n)
    report(by_n, scale, quiet)

    largest = max(by_n)
    top = by_n[largest]
    meets = {
        name: _common.check_target(top[name], target, at_least=at_least)
        for name, target, at_least in TARGETS
    }
    elapsed = time.perf_counter() - started
    _common.say(f"total {elapsed:.1f}s", quiet=quiet)
    result: dict[str, Any] = {
        "benchmark": "mvcc",
        "mode": mode,
        "n": largest,
        "puts_per_s": top["puts_per_s"],
        "overwrites_per_s": top["overwrites_per_s"],
        "gets_per_s": top["gets_per_s"],
        "range_1000_per_s": top["range_1000_per_s"],
        "range_limit_1000_per_s": top["range_limit_1000_per_s"],
        "bytes_per_key": top["bytes_per_key"],
        "targets": {name: {"target": target, "at_least": at_least}
                    for name, target, at_least in TARGETS},
        "meets_targets": meets,
        "all_targets_met": all(meets.values()),
        "scaling": scale,
        "by_n": {str(n): by_n[n] for n in sorted(by_n)},
        "config": {"runs": args.runs, "seed": args.seed, "quick": args.quick,
                   "key_bytes": KEY_BYTES, "value_bytes": VALUE_BYTES,
                   "range_keys": RANGE_KEYS},
        "machine": _common.machine_info(),
        "packages": {"sortedcontainers": metadata.version("sortedcontainers")},
        "git": _common.git_revision(),
        "source_digest": source,
        "elapsed_s": round(elapsed, 1),
    }
    _common.emit_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
