"""Shared runs for the view tests: one small healthy run, and one run with a
planted bug that fails linearizability (built once per session)."""

from __future__ import annotations

import pytest

from sim.options import RunOptions, parse_faults
from sim.tracedata import TraceData, TracedRun, load_trace, run_traced

SMALL = RunOptions(seed=3, nodes=3, duration_ms=3000, clients=3)
# stale_local_reads serves a read from a deposed leader: seed 1 fails its
# linearizability check at about 1.37 s (ops 61 and 63), in about 2 s of wall time.
ILLEGAL = RunOptions(seed=1, nodes=5, duration_ms=5000, clients=8,
                     faults=parse_faults("partition"), bugs=("stale_local_reads",))


@pytest.fixture(scope="session")
def small_run() -> TracedRun:
    return run_traced(SMALL)


@pytest.fixture(scope="session")
def small_data(small_run: TracedRun) -> TraceData:
    return load_trace(small_run)


@pytest.fixture(scope="session")
def illegal_run() -> TracedRun:
    return run_traced(ILLEGAL)


@pytest.fixture(scope="session")
def illegal_data(illegal_run: TracedRun) -> TraceData:
    return load_trace(illegal_run)
