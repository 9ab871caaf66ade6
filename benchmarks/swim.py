"""SWIM gossip with and without Lifeguard, in the deterministic simulator.

Every figure is simulated time (protocol periods of 1 s, latency 1-10 ms),
so it does not depend on the machine; only the run time does.

* Detection of a crash (`detection`): one member crashes in each trial; the
  time to the first suspicion (SWIM's "first detection"), to the first
  dead declaration and to full dissemination (every live member has it
  dead), in protocol periods, mean over trials, for 5 to 200 members.
  `aligned`: every member's period starts at the same instant and the crash
  lands on a period boundary, the model of SWIM's analysis (expected first
  detection e/(e-1) = 1.58 periods); `unaligned`: random phases and crash
  times, as in a real deployment.
* False positives (dead declarations of members that were up), per
  member-hour: under 5-20% datagram loss; with 2 of 20 members slow
  (inbound datagrams handled up to 1-8 s late, timers on time); with 2 of
  20 members pausing (stop-the-world) for 2-6 s every ~20 s. For slow
  members, each Lifeguard extension alone is measured too.
* Bytes per member per second (encoded datagrams, piggyback included),
  for 5 to 200 members, without faults and at 10% loss.

    python benchmarks/swim.py                      # full (several minutes)
    python benchmarks/swim.py --quick              # < 1 minute
    python benchmarks/swim.py --figure docs/img/swim.png
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import replace
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

from chainfire_core.swim import MemberState, SwimConfig, suspicion_bounds_ms
from chainfire_core.types import NodeId
from sim.swim_host import SwimHost
from sim.swim_metrics import bytes_per_member_per_s, detection, false_positives
from sim.swim_world import Crash, Fault, Pause, Slow, SwimSimOptions, SwimWorld, run_swim

PERIOD_MS = 1_000
E_OVER_E_MINUS_1 = math.e / (math.e - 1)
MODES = {"swim": False, "lifeguard": True}
ABLATIONS = ("local_health", "dynamic_suspicion", "nacks", "buddy_system")


# -- detection -----------------------------------------------------------------------


def detection_trial(members: int, seed: int, *, lifeguard: bool, aligned: bool) -> dict[str, Any]:
    rng = random.Random(seed * 7919 + members)
    victim = rng.randint(1, members)
    warmup_periods = 5
    crash_ms = warmup_periods * PERIOD_MS
    if not aligned:
        crash_ms += rng.randrange(PERIOD_MS)
    _, high_ms = suspicion_bounds_ms(SwimConfig(member_id=NodeId(1)), members)
    budget_ms = 4 * members * PERIOD_MS + 2 * high_ms
    options = SwimSimOptions(seed=seed, members=members, duration_ms=crash_ms + budget_ms,
                             lifeguard=lifeguard, aligned=aligned, check_invariants=False,
                             faults=(Crash(member=victim, at_ms=crash_ms),))

    def knows(host: SwimHost) -> bool:
        view = host.node.member(NodeId(victim))
        return view is not None and view.state in (MemberState.DEAD, MemberState.LEFT)

    def everyone_knows(world: SwimWorld) -> bool:
        return all(host.crashed or knows(host) for host in world.hosts)

    result = SwimWorld(options).run(stop_when=everyone_knows)
    found = detection(result, victim, crash_ms)
    return {"first": found.first_detection_periods, "dead": found.first_dead_periods,
            "full": found.full_dissemination_periods}


def detection_case(members: int, trials: int, *, lifeguard: bool,
                   aligned: bool) -> dict[str, Any]:
    runs = [detection_trial(members, seed, lifeguard=lifeguard, aligned=aligned)
            for seed in range(1, trials + 1)]
    out: dict[str, Any] = {"members": members, "trials": trials, "lifeguard": lifeguard,
                           "aligned": aligned}
    for key in ("first", "dead", "full"):
        values = [run[key] for run in runs if run[key] is not None]
        out[f"{key}_mean"] = round(statistics.fmean(values), 3) if values else None
        out[f"{key}_max"] = round(max(values), 3) if values else None
        out[f"{key}_missing"] = trials - len(values)
    return out


# -- false positives -------------------------------------------------------------------


def fp_run(options: SwimSimOptions) -> dict[str, Any]:
    start = time.perf_counter()
    result = run_swim(options)
    counted = false_positives(result)
    return {
        "members": options.members, "lifeguard": options.lifeguard, "loss": options.loss,
        "member_hours": round(counted.member_hours, 2), "false_positives": counted.total,
        "healthy_victims": counted.healthy_victim,
        "per_member_hour": round(counted.per_member_hour(), 4),
        "healthy_per_member_hour": round(counted.per_member_hour(counted.healthy_victim), 4),
        "suspicions": len(result.records("suspect")),
        "bytes_per_member_s": round(bytes_per_member_per_s(result), 1),
        "wall_s": round(time.perf_counter() - start, 2),
    }


def slow_faults(delay_ms: int, duration_ms: int) -> tuple[Fault, ...]:
    return tuple(Slow(member=m, at_ms=0, until_ms=duration_ms, delay_ms=delay_ms)
                 for m in (3, 7))


def pause_faults(pause_ms: int, duration_ms: int, seed: int) -> tuple[Fault, ...]:
    rng = random.Random(seed)
    faults: list[Fault] = []
    for member in (3, 7):
        at = rng.randrange(20_000)
        while at < duration_ms:
            faults.append(Pause(member=member, at_ms=at, duration_ms=pause_ms))
            at += pause_ms + rng.randint(15_000, 25_000)
    return tuple(faults)


def ablation_config(only: str) -> SwimConfig:
    return replace(SwimConfig(member_id=NodeId(1)).swim_only(), **{only: True})


# -- report ------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(swim: float, guard: float) -> str:
    if swim == 0:
        return "-"
    return f">{swim:.0f}x (0 left)" if guard == 0 else f"{swim / guard:.1f}x"


def run(quick: bool, quiet: bool) -> dict[str, Any]:
    sizes = (5, 20, 50) if quick else (5, 10, 20, 50, 100, 200)
    out: dict[str, Any] = {}

    say("== detection of a crashed member (protocol periods, mean over trials)", quiet=quiet)
    cases = []
    for members in sizes:
        trials = 30 if quick else (40 if members <= 50 else 20 if members <= 100 else 10)
        cases.append(detection_case(members, trials, lifeguard=False, aligned=True))
        cases.append(detection_case(members, trials, lifeguard=False, aligned=False))
        cases.append(detection_case(members, trials, lifeguard=True, aligned=False))
    rows = [[str(c["members"]), "lifeguard" if c["lifeguard"] else "swim",
             "aligned" if c["aligned"] else "unaligned", str(c["trials"]), fmt(c["first_mean"]),
             fmt(c["first_max"]), fmt(c["dead_mean"]), fmt(c["full_mean"]), fmt(c["full_max"])]
            for c in cases]
    say(format_table(["members", "mode", "phases", "trials", "first", "first max", "dead",
                      "everyone", "everyone max"], rows), quiet=quiet)
    out["detection"] = cases

    duration = 30 * 60_000 if quick else 2 * 3_600_000
    losses = (0.10,) if quick else (0.05, 0.10, 0.20)
    say("\n== false positives under datagram loss (20 members)", quiet=quiet)
    loss_runs = [fp_run(SwimSimOptions(seed=3, members=20, duration_ms=duration, loss=loss,
                                       lifeguard=guard, check_invariants=False))
                 for loss in losses for guard in MODES.values()]
    if not quick:
        for members in (5, 50, 200):  # about 40 member-hours each
            hours_ms = 40 * 3_600_000 // members
            loss_runs += [fp_run(SwimSimOptions(seed=3, members=members, duration_ms=hours_ms,
                                                loss=0.10, lifeguard=guard,
                                                check_invariants=False))
                          for guard in MODES.values()]
    say(format_table(["members", "loss", "mode", "member-h", "FPs", "per member-h",
                      "suspicions", "B/member/s"],
                     [[str(r["members"]), f"{r['loss']:.0%}",
                       "lifeguard" if r["lifeguard"] else "swim", fmt(r["member_hours"], 1),
                       str(r["false_positives"]), fmt(r["per_member_hour"], 3),
                       str(r["suspicions"]), fmt(r["bytes_per_member_s"], 0)]
                      for r in loss_runs]), quiet=quiet)
    out["loss"] = loss_runs

    gray_ms = 10 * 60_000 if quick else 3_600_000
    delays = (2_000,) if quick else (1_000, 2_000, 4_000, 8_000)
    say("\n== false positives with 2 of 20 members slow (inbound handled up to D late)",
        quiet=quiet)
    slow_runs = []
    for delay in delays:
        for name, guard in MODES.items():
            row = fp_run(SwimSimOptions(seed=2, members=20, duration_ms=gray_ms, lifeguard=guard,
                                        faults=slow_faults(delay, gray_ms),
                                        check_invariants=False))
            slow_runs.append({"delay_ms": delay, "mode": name, **row})
    if not quick:
        for only in ABLATIONS:
            row = fp_run(SwimSimOptions(seed=2, members=20, duration_ms=gray_ms,
                                        config=ablation_config(only),
                                        faults=slow_faults(2_000, gray_ms),
                                        check_invariants=False))
            slow_runs.append({"delay_ms": 2_000, "mode": f"only {only}", **row})
    say(format_table(["D", "mode", "FPs", "healthy victims", "per member-h", "healthy per m-h",
                      "suspicions", "B/member/s"],
                     [[f"{r['delay_ms'] / 1000:g} s", r["mode"], str(r["false_positives"]),
                       str(r["healthy_victims"]), fmt(r["per_member_hour"], 3),
                       fmt(r["healthy_per_member_hour"], 3), str(r["suspicions"]),
                       fmt(r["bytes_per_member_s"], 0)] for r in slow_runs]), quiet=quiet)
    out["slow"] = slow_runs

    pauses = (4_000,) if quick else (2_000, 4_000, 6_000)
    say("\n== false positives with 2 of 20 members pausing P every ~20 s", quiet=quiet)
    pause_runs = []
    for pause in pauses:
        for name, guard in MODES.items():
            row = fp_run(SwimSimOptions(seed=2, members=20, duration_ms=gray_ms, lifeguard=guard,
                                        faults=pause_faults(pause, gray_ms, seed=1),
                                        check_invariants=False))
            pause_runs.append({"pause_ms": pause, "mode": name, **row})
    say(format_table(["P", "mode", "FPs", "healthy victims", "per member-h", "suspicions"],
                     [[f"{r['pause_ms'] / 1000:g} s", r["mode"], str(r["false_positives"]),
                       str(r["healthy_victims"]), fmt(r["per_member_hour"], 3),
                       str(r["suspicions"])] for r in pause_runs]), quiet=quiet)
    out["pause"] = pause_runs

    say("\n== bytes per member per second (60 simulated s)", quiet=quiet)
    traffic = []
    for members in sizes:
        for loss in (0.0, 0.10):
            for name, guard in MODES.items():
                result = run_swim(SwimSimOptions(seed=1, members=members, duration_ms=60_000,
                                                 loss=loss, lifeguard=guard,
                                                 check_invariants=False))
                traffic.append({"members": members, "loss": loss, "mode": name,
                                "bytes_per_member_s": round(bytes_per_member_per_s(result), 1)})
    say(format_table(["members", "loss", "mode", "B/member/s"],
                     [[str(t["members"]), f"{t['loss']:.0%}", t["mode"],
                       format_number(t["bytes_per_member_s"])] for t in traffic]), quiet=quiet)
    out["traffic"] = traffic
    return out


def headline(out: dict[str, Any]) -> dict[str, Any]:
    aligned = [c for c in out["detection"] if c["aligned"]]
    unaligned = [c for c in out["detection"] if not c["aligned"] and c["lifeguard"]]
    at_10 = {r["lifeguard"]: r for r in out["loss"] if r["loss"] == 0.10 and r["members"] == 20}
    slow_2s = {r["mode"]: r for r in out["slow"] if r["delay_ms"] == 2_000}
    return {
        # SWIM's model (aligned periods): expected e/(e-1) = 1.582.
        "first_detection_periods": round(statistics.fmean(c["first_mean"] for c in aligned), 3),
        "first_detection_periods_unaligned": round(
            statistics.fmean(c["first_mean"] for c in unaligned), 3),
        "full_dissemination_periods_max_size": unaligned[-1]["full_mean"],
        "false_positives_at_10pct_loss": at_10[True]["false_positives"],
        "false_positives_at_10pct_loss_swim": at_10[False]["false_positives"],
        "member_hours_at_10pct_loss": at_10[True]["member_hours"],
        "slow_2s_healthy_fp_per_member_hour_swim": slow_2s["swim"]["healthy_per_member_hour"],
        "slow_2s_healthy_fp_per_member_hour_lifeguard":
            slow_2s["lifeguard"]["healthy_per_member_hour"],
        "bytes_per_member_s_20": next(t["bytes_per_member_s"] for t in out["traffic"]
                                      if t["members"] == 20 and t["loss"] == 0
                                      and t["mode"] == "lifeguard"),
    }


def figure(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0][0]
    for aligned, guard, label in ((True, False, "first suspicion, aligned (SWIM's model)"),
                                  (False, False, "first suspicion, unaligned, SWIM"),
                                  (False, True, "first suspicion, unaligned, Lifeguard")):
        cases = [c for c in out["detection"] if c["aligned"] == aligned and c["lifeguard"] == guard]
        ax.plot([c["members"] for c in cases], [c["first_mean"] for c in cases], "o-",
                label=label)
    full = [c for c in out["detection"] if not c["aligned"] and c["lifeguard"]]
    ax.plot([c["members"] for c in full], [c["full_mean"] for c in full], "s--",
            label="everyone knows it dead, Lifeguard")
    ax.axhline(E_OVER_E_MINUS_1, color="grey", linestyle=":", label="e/(e-1) = 1.58")
    ax.set(xscale="log", xlabel="members", ylabel="protocol periods after the crash",
           title="Detection of a crashed member")
    ax.legend(fontsize=7)

    ax = axes[0][1]
    for mode, style in (("swim", "o-"), ("lifeguard", "s-")):
        rows = [r for r in out["slow"] if r["mode"] == mode]
        ax.plot([r["delay_ms"] / 1000 for r in rows], [r["healthy_per_member_hour"] for r in rows],
                style, label=f"{mode}: healthy members declared dead")
        ax.plot([r["delay_ms"] / 1000 for r in rows], [r["per_member_hour"] for r in rows],
                style.replace("-", ":"), label=f"{mode}: all declarations")
    ax.set(yscale="symlog", xlabel="slow members' inbound delay D (s)",
           ylabel="false positives per member-hour",
           title="2 of 20 members slow")
    ax.legend(fontsize=7)

    ax = axes[1][0]
    for mode, guard in MODES.items():
        rows = [r for r in out["loss"] if r["lifeguard"] == guard and r["members"] == 20]
        ax.plot([r["loss"] * 100 for r in rows], [r["per_member_hour"] for r in rows], "o-",
                label=mode)
    ax.set(yscale="symlog", xlabel="datagram loss (%)", ylabel="false positives per member-hour",
           title="20 members, lossy network")
    ax.legend(fontsize=7)

    ax = axes[1][1]
    for mode in MODES:
        for loss in (0.0, 0.10):
            rows = [t for t in out["traffic"] if t["mode"] == mode and t["loss"] == loss]
            ax.plot([t["members"] for t in rows], [t["bytes_per_member_s"] for t in rows], "o-",
                    label=f"{mode}, loss {loss:.0%}")
    ax.set(xscale="log", xlabel="members", ylabel="bytes sent per member per second",
           title="Traffic")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter cases (< 1 min)")
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--figure", type=Path, help="write the figure (PNG) here")
    args = parser.parse_args()
    quiet = args.json_only
    say(f"git {git_revision()}, source {source_digest('chainfire_core/swim', 'sim')}, "
        f"{'quick' if args.quick else 'full'} run", quiet=quiet)
    start, cpu_start = time.perf_counter(), time.process_time()
    out = run(args.quick, quiet)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    result = {**headline(out), "quick": args.quick, "wall_s": round(wall, 1),
              "wall_per_cpu": round(wall / cpu, 2) if cpu else None,
              "git": git_revision(), "source": source_digest("chainfire_core/swim", "sim"),
              "machine": machine_info(), "cases": out}
    if args.figure is not None:
        figure(out, args.figure)
        say(f"figure: {args.figure}", quiet=quiet)
    say(f"\n{wall:.1f} s wall ({cpu:.1f} s CPU)", quiet=quiet)
    emit_json(result)


if __name__ == "__main__":
    main()
