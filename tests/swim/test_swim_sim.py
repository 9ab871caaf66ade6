"""SWIM in the deterministic simulator: detection, refutation, false positives,
determinism, and what Lifeguard changes with slow members."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chainfire_core.errors import InvalidRequest
from chainfire_core.swim import MemberState, SwimConfig, suspicion_bounds_ms
from chainfire_core.types import NodeId
from sim import swim_cli
from sim.swim_metrics import detection, false_positives
from sim.swim_world import (
    Crash,
    Leave,
    Pause,
    Restart,
    Slow,
    SwimSimOptions,
    SwimWorld,
    run_swim,
)

PERIOD_MS = 1_000


def detection_bound_ms(members: int, *, lifeguard: bool) -> int:
    """When every live member must have declared a crashed one dead, without
    relying on gossip at all: round-robin probing makes each member probe it
    within 2(n-1) periods (SWIM section 4.3), the failed probe ends one
    period later, and its own suspicion then lasts at most the maximum
    timeout. A failed probe stretches a Lifeguard member's next period by
    one more, so its periods are counted double."""
    config = SwimConfig(member_id=NodeId(1))
    if not lifeguard:
        config = config.swim_only()
    _, high_ms = suspicion_bounds_ms(config, members)
    periods = 2 * (members - 1) + 1
    return periods * PERIOD_MS * (2 if lifeguard else 1) + high_ms


@pytest.mark.parametrize("lifeguard", [True, False], ids=["lifeguard", "swim"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_crashed_member_is_declared_dead_by_everyone_within_the_bound(
        seed: int, lifeguard: bool) -> None:
    members, crash_ms = 20, 10_000 + seed * 777
    bound_ms = detection_bound_ms(members, lifeguard=lifeguard)
    options = SwimSimOptions(seed=seed, members=members, duration_ms=crash_ms + bound_ms + 1,
                             lifeguard=lifeguard, faults=(Crash(member=7, at_ms=crash_ms),))
    result = run_swim(options)
    found = detection(result, 7, crash_ms)
    assert found.first_suspect_ms is not None and found.full_dissemination_ms is not None
    assert crash_ms < found.first_suspect_ms <= found.full_dissemination_ms <= crash_ms + bound_ms
    assert false_positives(result).total == 0  # nobody else was declared dead


@pytest.mark.parametrize("lifeguard", [True, False], ids=["lifeguard", "swim"])
def test_a_paused_member_is_suspected_and_refutes_with_a_higher_incarnation(
        lifeguard: bool) -> None:
    # Paused for 3 s: longer than a probe, shorter than any suspicion timeout.
    options = SwimSimOptions(seed=5, members=10, duration_ms=30_000, lifeguard=lifeguard,
                             faults=(Pause(member=4, at_ms=10_000, duration_ms=3_000),))
    world = SwimWorld(options)
    result = world.run()
    suspected = [r for r in result.records("suspect") if r[3] == 4]
    refuted = [r for r in result.records("refute") if r[1] == 4]
    assert suspected and all(r[4] == 0 for r in suspected)
    assert refuted and refuted[0][0] >= 13_000 and refuted[0][4] >= 1
    assert not [r for r in result.records("dead") if r[3] == 4]
    own = world.host(4).node.incarnation
    assert own >= 1
    for host in world.hosts:
        view = host.node.member(NodeId(4))
        assert host.id == 4 or (view is not None and view.state == MemberState.ALIVE
                                and view.incarnation == own)


def test_a_restarted_member_refutes_its_death_and_is_alive_again() -> None:
    options = SwimSimOptions(seed=6, members=8, duration_ms=70_000,
                             faults=(Crash(member=3, at_ms=5_000), Restart(member=3, at_ms=40_000)))
    world = SwimWorld(options)
    result = world.run()
    assert len({r[1] for r in result.records("dead") if r[3] == 3}) == 7  # all others saw it
    assert [r for r in result.records("refute") if r[1] == 3 and r[0] >= 40_000]
    back = [r for r in result.records("alive") if r[3] == 3 and r[0] >= 40_000]
    assert len({r[1] for r in back}) == 7
    own = world.host(3).node.incarnation
    for host in world.hosts:
        view = host.node.member(NodeId(3))
        assert host.id == 3 or (view is not None and view.state == MemberState.ALIVE
                                and view.incarnation == own >= 1)
    assert len(world.host(3).node.members()) == 7  # it learned the group by joining
    assert false_positives(result).total == 0


def test_a_member_that_leaves_is_reported_left_never_dead() -> None:
    options = SwimSimOptions(seed=7, members=12, duration_ms=40_000, loss=0.05,
                             faults=(Leave(member=5, at_ms=10_000),))
    result = run_swim(options)
    assert len({r[1] for r in result.records("left") if r[3] == 5}) == 11
    assert not [r for r in result.records("dead") if r[3] == 5]


def run_loss(duration_ms: int, seed: int) -> None:
    result = run_swim(SwimSimOptions(seed=seed, members=20, duration_ms=duration_ms, loss=0.10,
                                     check_invariants=False))
    assert result.dropped > 0.09 * sum(result.messages_sent)
    assert len(result.records("suspect")) > 0  # loss did cause false suspicions...
    assert false_positives(result).total == 0  # ...and every one was refuted in time


def test_no_false_declaration_under_10pct_loss_in_20_members() -> None:
    run_loss(duration_ms=30 * 60_000, seed=11)  # 30 simulated minutes (10 member-hours)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_false_declaration_under_10pct_loss_in_20_members_for_6_hours(seed: int) -> None:
    run_loss(duration_ms=6 * 3_600_000, seed=seed)  # 120 member-hours per seed


def test_lifeguard_reduces_false_positives_with_slow_members() -> None:
    def run(lifeguard: bool) -> tuple[int, int]:
        slow = tuple(Slow(member=m, at_ms=0, until_ms=600_000, delay_ms=2_000) for m in (3, 7))
        result = run_swim(SwimSimOptions(seed=2, members=20, duration_ms=600_000, faults=slow,
                                         lifeguard=lifeguard, check_invariants=False))
        counted = false_positives(result)
        return counted.total, counted.healthy_victim

    swim_total, swim_healthy = run(lifeguard=False)
    guard_total, guard_healthy = run(lifeguard=True)
    # Slow members make plain SWIM declare healthy members dead; Lifeguard's
    # local health keeps the slow ones from accusing (see docs/gossip.md).
    assert swim_healthy >= 10 and guard_healthy == 0
    # The slow members themselves are still declared dead at times, by both
    # (they answer 2 s late and refute late); that is not what Lifeguard fixes.
    assert guard_total < 2 * swim_total


def test_same_seed_same_log_byte_for_byte() -> None:
    faults = (Crash(member=2, at_ms=8_000), Slow(member=5, at_ms=0, until_ms=20_000,
                                                 delay_ms=1_500),
              Pause(member=6, at_ms=12_000, duration_ms=2_500), Restart(member=2, at_ms=25_000))
    options = SwimSimOptions(seed=21, members=12, duration_ms=40_000, loss=0.1, faults=faults)
    first, second = run_swim(options), run_swim(options)
    assert list(first.lines()) == list(second.lines())
    assert first.digest() == second.digest()
    assert len(first.log) > 50
    other = run_swim(SwimSimOptions(seed=22, members=12, duration_ms=40_000, loss=0.1,
                                    faults=faults))
    assert other.digest() != first.digest()


def test_aligned_periods_and_options_are_printed_first() -> None:
    result = run_swim(SwimSimOptions(seed=1, members=4, duration_ms=3_000, aligned=True))
    first_line = next(result.lines())
    assert '"seed":1' in first_line and '"aligned":true' in first_line


def test_gossip_never_touches_raft_membership() -> None:
    """Gossip only informs: no SWIM module imports Raft or the member table."""
    root = Path(__file__).resolve().parents[2]
    paths = [*(root / "chainfire_core" / "swim").glob("*.py"), *(root / "sim").glob("swim*.py")]
    assert len(paths) > 10
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("chainfire_core.raft",
                                                   "chainfire_core.membership",
                                                   "chainfire_core.node")), path


@pytest.mark.parametrize("changes", [
    {"members": 0}, {"duration_ms": 0}, {"loss": 1.0}, {"loss": -0.1}, {"latency_ms": (5, 1)},
    {"faults": (Crash(member=9, at_ms=0),)}, {"faults": (Pause(member=1, at_ms=0, duration_ms=0),)},
    {"faults": (Slow(member=1, at_ms=5, until_ms=4, delay_ms=10),)},
])
def test_malformed_sim_options_are_typed_errors(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        SwimSimOptions(**{"members": 4, **changes})  # type: ignore[arg-type]


def test_cli_prints_options_first_and_a_replay_command_last(
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--members", "6", "--duration-s", "20", "--crash", "2@5000", "--seed", "4"]
    assert swim_cli.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("{") and '"seed":4' in lines[0]
    assert any(line.startswith("crash of 2 at 5000 ms: first suspected after") for line in lines)
    assert lines[-1] == "replay: python -m sim.swim_cli " + " ".join(argv)
