"""`python -m sim.swim_cli`: run one SWIM simulation from the command line.

Theory of operation
-------------------
Parses a run's options, prints them first (one JSON line), runs the world,
and prints what happened: member events by kind, detection of every
crashed member (in protocol periods), false positives per member-hour and
bytes per member per second; `--log` also prints every log record as JSON
lines. The last line is the command that replays the run exactly.

Faults are written `MEMBER@AT_MS` (crash, restart, leave),
`MEMBER@AT_MS+DURATION_MS` (pause) and `MEMBER@DELAY_MS` (slow for the
whole run).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections import Counter
from collections.abc import Sequence

from sim.swim_metrics import bytes_per_member_per_s, detection, false_positives
from sim.swim_world import (
    Crash,
    Fault,
    Leave,
    Pause,
    Restart,
    Slow,
    SwimSimOptions,
    run_swim,
)


def _pair(text: str) -> tuple[int, int]:
    member, _, rest = text.partition("@")
    return int(member), int(rest)


def parse(argv: Sequence[str]) -> tuple[SwimSimOptions, bool]:
    parser = argparse.ArgumentParser(prog="python -m sim.swim_cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--loss", type=float, default=0.0, help="datagram loss, 0..1")
    parser.add_argument("--latency-ms", type=int, nargs=2, default=(1, 10))
    parser.add_argument("--no-lifeguard", action="store_true", help="plain SWIM")
    parser.add_argument("--aligned", action="store_true", help="all periods start at 0")
    parser.add_argument("--crash", action="append", default=[], metavar="M@MS")
    parser.add_argument("--restart", action="append", default=[], metavar="M@MS")
    parser.add_argument("--leave", action="append", default=[], metavar="M@MS")
    parser.add_argument("--pause", action="append", default=[], metavar="M@MS+DUR")
    parser.add_argument("--slow", action="append", default=[], metavar="M@DELAY_MS")
    parser.add_argument("--log", action="store_true", help="print every log record")
    args = parser.parse_args(argv)
    duration_ms = int(args.duration_s * 1000)
    faults: list[Fault] = []
    faults += [Crash(member=m, at_ms=t) for m, t in map(_pair, args.crash)]
    faults += [Restart(member=m, at_ms=t) for m, t in map(_pair, args.restart)]
    faults += [Leave(member=m, at_ms=t) for m, t in map(_pair, args.leave)]
    for text in args.pause:
        head, _, duration = text.partition("+")
        member, at_ms = _pair(head)
        faults.append(Pause(member=member, at_ms=at_ms, duration_ms=int(duration)))
    faults += [Slow(member=m, at_ms=0, until_ms=duration_ms, delay_ms=d)
               for m, d in map(_pair, args.slow)]
    options = SwimSimOptions(seed=args.seed, members=args.members, duration_ms=duration_ms,
                             loss=args.loss, latency_ms=tuple(args.latency_ms),
                             lifeguard=not args.no_lifeguard, aligned=args.aligned,
                             faults=tuple(faults))
    return options, args.log


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options, show_log = parse(argv)
    print(options.describe(), flush=True)
    result = run_swim(options)
    if show_log:
        for line in list(result.lines())[1:-1]:
            print(line)
    kinds = Counter(record[2] for record in result.log)
    print("events:", ", ".join(f"{kind}={count}" for kind, count in sorted(kinds.items())))
    for fault in options.faults:
        if isinstance(fault, Crash):
            found = detection(result, fault.member, fault.at_ms)
            print(f"crash of {fault.member} at {fault.at_ms} ms: first suspected after "
                  f"{found.first_detection_periods} periods, first declared dead after "
                  f"{found.first_dead_periods}, known dead everywhere after "
                  f"{found.full_dissemination_periods}")
    counted = false_positives(result)
    print(f"false positives: {counted.total} ({counted.per_member_hour():.3f} per member-hour; "
          f"{counted.healthy_victim} of healthy members)")
    print(f"bytes per member per second: {bytes_per_member_per_s(result):.1f}")
    print(f"log digest: {result.digest()[:16]}")
    print("replay: python -m sim.swim_cli " + shlex.join(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
