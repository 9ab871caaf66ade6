"""Leader tenures and the lease revoke deadline (sim/tenures.py)."""

from __future__ import annotations

import math
from typing import Any

from sim.tenures import LeaseTiming, Tenure, leader_tenures, quorum_windows, revoke_deadline

RUN: dict[str, Any] = {"t": 0.0, "ev": "run", "nodes": [1, 2, 3]}


def role(t: float, node: int, name: str, term: int) -> dict[str, Any]:
    return {"t": t, "ev": "role", "node": node, "role": name, "term": term}


def fault(t: float, kind: str, node: int | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"t": t, "ev": "fault", "kind": kind}
    if node is not None:
        record["node"] = node
    return record


def test_a_tenure_runs_from_election_to_step_down_crash_or_pause() -> None:
    records = [RUN, role(100, 1, "leader", 2), role(900, 1, "follower", 3),
               role(1000, 2, "leader", 3), fault(1500, "pause", 2), fault(1700, "resume", 2),
               fault(2500, "crash", 2), role(2600, 3, "leader", 4)]
    assert leader_tenures(records, 3000) == [
        Tenure(1, 2, 100, 900), Tenure(2, 3, 1000, 1500), Tenure(2, 3, 1700, 2500),
        Tenure(3, 4, 2600, 3000)]


def test_tenures_are_cut_to_times_a_quorum_could_commit() -> None:
    records = [RUN, role(100, 1, "leader", 2), fault(500, "partition"), fault(800, "heal"),
               fault(1000, "crash", 2), fault(1100, "crash", 3), fault(1400, "restart", 3)]
    assert quorum_windows(records, 2000) == [(0.0, 500.0), (800.0, 1100.0), (1400.0, 2000.0)]
    assert leader_tenures(records, 2000) == [
        Tenure(1, 2, 100, 500), Tenure(1, 2, 800, 1100), Tenure(1, 2, 1400, 2000)]


def test_the_deadline_is_the_first_tenure_that_outlasts_the_lease() -> None:
    timing = LeaseTiming(extension_ms=500, rounding_ms=1000, staleness_ms=100, commit_ms=200,
                         max_clock_rate=1.0)
    tenures = [Tenure(1, 2, 0, 1200), Tenure(2, 3, 2000, 2500), Tenure(3, 4, 4000, 9000)]
    deadline = revoke_deadline(tenures, timing)
    # Renewed under leader 1, which stays long enough: TTL + extension + commit.
    assert deadline(100, 300) == 100 + 300 + 500 + 200
    # Leader 1 leaves too soon (1000 ms of the lease used, less the staleness),
    # leader 2 too (400 more); leader 3 starts it with 1600 + 1000 (rounding)
    # left, plus the extension: 4000 + 3100, then the commit.
    assert deadline(100, 3000) == 7300
    # Renewed under leader 3, which leaves before the lease runs out: no deadline.
    assert deadline(8000, 3000) == math.inf
