"""Fault schedules: what the nemesis did, as data and as a readable file.

Every fault the nemesis injects is a `FaultEvent` with everything concrete
(time, node, partition sides, hold time), so the same world replays it
without drawing anything. A `Schedule` is the run options plus the events
plus the check the run is expected to fail (or `ok`); its text form is the
replay script `chainfire-sim shrink` writes and `chainfire-sim replay` runs:

    # chainfire-sim schedule v1
    seed 17
    nodes 3
    clients 2
    duration 8000ms
    faults partition,crash
    bugs figure8_commit
    expect invariant

    at 1200ms partition halves 1,2|3 hold 3000ms
    at 1500ms partition majority_ring 1,3,5,2,4 hold 800ms
    at 1900ms partition one_way 3|1,2 out hold 800ms
    at 5100ms crash 2 hold 300ms corrupt
    at 6000ms pause 1 hold 800ms
    at 7000ms clock 3 rate 1.2 hold 1000ms
    at 7500ms member add
    at 7600ms member remove 2

Times are simulated milliseconds with at most three decimals. Optional
header lines: `think`, `read-mode`, `pre-vote`, `liveness-budget`, `bugs`. Lines
starting with `#` are comments. docs/sim-schedule.md has the full format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from chainfire_core.types import NodeId
from sim.options import (
    OptionError,
    RunOptions,
    parse_bugs,
    parse_duration_ms,
    parse_faults,
)
from sim.partitions import SHAPES, PartitionSpec

HEADER = "# chainfire-sim schedule v1"
KINDS = ("partition", "crash", "pause", "clock", "member")
ACTIONS = ("add", "remove", "replace")


class ScheduleError(OptionError):
    """A malformed schedule file; the message names the line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultEvent:
    at_ms: float
    kind: str
    hold_ms: float = 0.0
    node: NodeId | None = None
    partition: PartitionSpec | None = None
    rate: float = 1.0
    action: str = ""
    corrupt: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.at_ms < 0 or self.hold_ms < 0:
            raise ValueError("fault times must be >= 0")
        if self.kind == "partition" and self.partition is None:
            raise ValueError("a partition event needs its partition")
        if self.kind in ("crash", "pause", "clock") and self.node is None:
            raise ValueError(f"a {self.kind} event needs a node")
        if self.kind == "member" and self.action not in ACTIONS:
            raise ValueError(f"a member event needs an action in {ACTIONS}")
        if self.kind == "member" and self.action != "add" and self.node is None:
            raise ValueError(f"member {self.action} needs a node")

    def to_text(self) -> str:
        at = f"at {_ms(self.at_ms)}"
        hold = f" hold {_ms(self.hold_ms)}"
        match self.kind:
            case "partition":
                spec = self.partition
                assert spec is not None
                sides = "|".join(",".join(str(n) for n in g) for g in spec.groups)
                direction = f" {spec.direction}" if spec.direction else ""
                return f"{at} partition {spec.shape} {sides}{direction}{hold}"
            case "crash":
                return f"{at} crash {self.node}{hold}" + (" corrupt" if self.corrupt else "")
            case "pause":
                return f"{at} pause {self.node}{hold}"
            case "clock":
                return f"{at} clock {self.node} rate {self.rate:g}{hold}"
        target = "" if self.action == "add" else f" {self.node}"
        return f"{at} member {self.action}{target}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    options: RunOptions
    events: tuple[FaultEvent, ...]
    expect: str  # the check expected to fail, or "ok"

    def to_text(self) -> str:
        o = self.options
        lines = [HEADER, "# replay: chainfire-sim replay FILE", f"seed {o.seed}",
                 f"nodes {o.nodes}", f"clients {o.clients}", f"duration {_ms(o.duration_ms)}",
                 f"faults {','.join(o.faults) or 'none'}"]
        if o.bugs:
            lines.append(f"bugs {','.join(o.bugs)}")
        if o.think_ms is not None:
            lines.append(f"think {_ms(o.think_ms)}")
        if o.read_mode != "safe":
            lines.append(f"read-mode {o.read_mode}")
        if o.pre_vote is not None:
            lines.append(f"pre-vote {'on' if o.pre_vote else 'off'}")
        if o.liveness_budget_ms != RunOptions().liveness_budget_ms:
            lines.append(f"liveness-budget {_ms(o.liveness_budget_ms)}")
        lines += [f"expect {self.expect}", ""]
        lines += [event.to_text() for event in sorted(self.events, key=lambda e: e.at_ms)]
        return "\n".join(lines) + "\n"


def _ms(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text}ms"


def round_ms(value: float) -> float:
    """The precision schedules keep: what the text form can say exactly."""
    return round(value, 3)


_EVENT = re.compile(r"^at\s+(\S+)\s+(\w+)\s*(.*)$")


def parse_schedule(text: str, source: str = "schedule") -> Schedule:
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise ScheduleError(f"{source}:1: a schedule starts with {HEADER!r}")
    fields: dict[str, str] = {}
    events: list[FaultEvent] = []
    for number, raw in enumerate(lines[1:], 2):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            if line.startswith("at "):
                events.append(_parse_event(line))
            else:
                name, _, value = line.partition(" ")
                if name not in ("seed", "nodes", "clients", "duration", "faults", "bugs", "think",
                                "read-mode", "pre-vote", "liveness-budget", "expect"):
                    raise ScheduleError(f"unknown header field {name!r}")
                if name in fields:
                    raise ScheduleError(f"{name} given twice")
                fields[name] = value.strip()
        except (ValueError, OptionError) as error:
            raise ScheduleError(f"{source}:{number}: {error}") from None
    missing = [n for n in ("seed", "nodes", "clients", "duration", "faults", "expect")
               if n not in fields]
    if missing:
        raise ScheduleError(f"{source}: missing header field(s): {', '.join(missing)}")
    try:
        options = RunOptions(
            seed=int(fields["seed"]), nodes=int(fields["nodes"]), clients=int(fields["clients"]),
            duration_ms=parse_duration_ms(fields["duration"]),
            faults=parse_faults(fields["faults"]), bugs=parse_bugs(fields.get("bugs", "")),
            think_ms=(parse_duration_ms(fields["think"]) if "think" in fields else None),
            read_mode=fields.get("read-mode", "safe"),
            pre_vote=_on_off(fields["pre-vote"]) if "pre-vote" in fields else None,
            liveness_budget_ms=parse_duration_ms(fields.get("liveness-budget", "15s")))
    except ValueError as error:
        raise ScheduleError(f"{source}: {error}") from None
    return Schedule(options=options, events=tuple(events), expect=fields["expect"])


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise ScheduleError(f"pre-vote must be on or off, got {text!r}")
    return text == "on"


def _parse_ms(text: str) -> float:
    if not text.endswith("ms"):
        raise ScheduleError(f"time {text!r} must be in ms, e.g. 1200ms")
    return float(text[:-2])


def _nodes(text: str) -> tuple[NodeId, ...]:
    return tuple(NodeId(int(part)) for part in text.split(",") if part)


def _parse_event(line: str) -> FaultEvent:
    match = _EVENT.match(line)
    if match is None:
        raise ScheduleError(f"cannot read event {line!r}")
    at, kind, rest = _parse_ms(match.group(1)), match.group(2), match.group(3).split()
    hold = 0.0
    if "hold" in rest:
        position = rest.index("hold")
        hold = _parse_ms(rest[position + 1])
        rest = rest[:position] + rest[position + 2:]
    if kind == "partition":
        if len(rest) < 2 or rest[0] not in SHAPES:
            raise ScheduleError(f"partition needs a shape ({', '.join(SHAPES)}) and sides")
        groups = tuple(_nodes(side) for side in rest[1].split("|"))
        direction = rest[2] if len(rest) > 2 else ""
        return FaultEvent(at_ms=at, kind=kind, hold_ms=hold,
                          partition=PartitionSpec(shape=rest[0], groups=groups,
                                                  direction=direction))
    if kind in ("crash", "pause"):
        corrupt = "corrupt" in rest
        rest = [r for r in rest if r != "corrupt"]
        if len(rest) != 1:
            raise ScheduleError(f"{kind} needs one node")
        return FaultEvent(at_ms=at, kind=kind, hold_ms=hold, node=NodeId(int(rest[0])),
                          corrupt=corrupt and kind == "crash")
    if kind == "clock":
        if len(rest) != 3 or rest[1] != "rate":
            raise ScheduleError("clock needs: clock NODE rate R")
        return FaultEvent(at_ms=at, kind=kind, hold_ms=hold, node=NodeId(int(rest[0])),
                          rate=float(rest[2]))
    if kind == "member":
        if not rest or rest[0] not in ACTIONS:
            raise ScheduleError(f"member needs an action in {ACTIONS}")
        node = NodeId(int(rest[1])) if len(rest) > 1 else None
        return FaultEvent(at_ms=at, kind=kind, action=rest[0], node=node)
    raise ScheduleError(f"unknown event kind {kind!r}")


def with_events(schedule: Schedule, events: tuple[FaultEvent, ...]) -> Schedule:
    return replace(schedule, events=events)


__all__ = ["FaultEvent", "Schedule", "ScheduleError", "parse_schedule", "round_ms", "with_events"]
