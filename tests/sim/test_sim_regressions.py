"""Replay scripts kept as regression tests.

Every `regressions/*.schedule` file (written by `chainfire-sim shrink`) is
replayed: the check named by its `expect` line must fail (or, for
`expect ok`, every check must pass). A schedule with planted bugs keeps
proving that the testbed still catches them; one without keeps a fixed
bug fixed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.run import simulate
from sim.schedule import ScheduleError, parse_schedule

SCHEDULES = sorted((Path(__file__).parent / "regressions").glob("*.schedule"))


@pytest.mark.parametrize("path", SCHEDULES, ids=[p.stem for p in SCHEDULES])
def test_schedule_still_behaves_as_recorded(path: Path) -> None:
    schedule = parse_schedule(path.read_text(encoding="utf-8"), str(path))
    report = simulate(schedule.options, script=schedule.events)
    failed = [c.name for c in report.checks if c.status != "pass"]
    if schedule.expect == "ok":
        assert not failed, report.checks
    else:
        assert schedule.expect in failed, report.checks
        # and with the planted bugs off, the same schedule passes
        from dataclasses import replace

        fixed = simulate(replace(schedule.options, bugs=()), script=schedule.events)
        assert fixed.ok, fixed.checks


def test_there_are_regressions_to_replay() -> None:
    assert SCHEDULES, "tests/sim/regressions/ holds at least one schedule"


def test_schedule_text_round_trips() -> None:
    for path in SCHEDULES:
        text = path.read_text(encoding="utf-8")
        assert parse_schedule(text).to_text() == text


@pytest.mark.parametrize(("text", "message"), [
    ("seed 1\n", "starts with"),
    ("# chainfire-sim schedule v1\nseed 1\n", "missing header"),
    ("# chainfire-sim schedule v1\nseed 1\nnodes 3\nclients 1\nduration 1s\nfaults crash\n"
     "expect ok\nat 10ms crash\n", ":8: crash needs one node"),
    ("# chainfire-sim schedule v1\nseed 1\nnodes 3\nclients 1\nduration 1s\nfaults crash\n"
     "expect ok\nat 10ms partition hexagon 1|2\n", ":8: partition needs a shape"),
    ("# chainfire-sim schedule v1\nseed 1\nnodes 3\nclients 1\nduration 1s\nfaults crash\n"
     "warp 9\nexpect ok\n", ":7: unknown header field 'warp'"),
])
def test_malformed_schedules_are_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(text)


def test_shrinking_a_failing_seed_keeps_the_failure_and_makes_it_smaller() -> None:
    from sim.options import RunOptions
    from sim.shrink import shrink_seed

    options = RunOptions(seed=7, nodes=3, duration_ms=20_000, clients=8, faults=("crash",),
                         bugs=("ack_before_fsync",))
    schedule, stats = shrink_seed(options, budget_runs=60)
    assert schedule.expect == "invariant" and stats.runs <= 60
    assert schedule.options.clients < options.clients
    assert schedule.options.duration_ms < options.duration_ms
    replayed = simulate(schedule.options, script=schedule.events)
    assert "invariant" in replayed.failed_checks
