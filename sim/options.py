"""What a run is made of: the options a user gives (`RunOptions`) and the
parameters drawn from the seed (`SimParams`).

Everything a run does follows from these two objects, and both are printed
first and written into the trace's first record, so a trace names the one
command that replays it. Durations are simulated milliseconds.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from chainfire_core.bugs import BUGS
from chainfire_core.errors import InvalidRequest
from sim.rng import RngTree

FAULT_KINDS = ("partition", "crash", "pause", "clock", "loss", "dup", "reorder", "membership")
# What each fault class does, for --help and the docs.
FAULT_HELP = {
    "partition": "network partitions drawn as graphs (halves, isolate one, isolate leader, "
                 "majority ring, bridge, one-way links), each held for a drawn duration",
    "crash": "crash/restart (unsynced disk writes lost; torn tail), leader-targeted kills",
    "pause": "pause/resume: a frozen process that wakes up later with stale state",
    "clock": "per-node clock rate changes (bounded drift) feeding the tick rate",
    "loss": "random message loss",
    "dup": "random message duplication",
    "reorder": "random extra delay so later messages overtake earlier ones; delay spikes",
    "membership": "add, remove and replace a member during the run",
}


class OptionError(InvalidRequest):
    """A run option is malformed; the message names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    seed: int = 0
    nodes: int = 5
    duration_ms: int = 60_000
    clients: int = 10
    faults: tuple[str, ...] = FAULT_KINDS
    # The liveness phase: after healing, the cluster must elect a leader and
    # complete every client's next request within this budget.
    liveness_budget_ms: int = 15_000
    # Linearizable reads: "safe" (ReadIndex) or "lease" (the leader's lease).
    read_mode: str = "safe"
    # Mean client think time between operations; None: drawn from the seed.
    think_ms: float | None = None
    # Planted bugs to reintroduce (chainfire_core/bugs.py); none by default.
    bugs: tuple[str, ...] = ()
    # Write the full trace (every message) to the trace sink.
    full_trace: bool = True
    # Raft pre-vote on or off; None: drawn from the seed (on for 4 seeds in 5).
    pre_vote: bool | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 15:
            raise OptionError(f"--nodes must be in 1..15, got {self.nodes}")
        if self.clients < 1:
            raise OptionError(f"--clients must be >= 1, got {self.clients}")
        if self.duration_ms < 100:
            raise OptionError(f"--duration must be at least 100ms, got {self.duration_ms}ms")
        if self.liveness_budget_ms < 1000:
            raise OptionError("the liveness budget must be at least 1s")
        for fault in self.faults:
            if fault not in FAULT_KINDS:
                raise OptionError(f"unknown fault {fault!r}; known: {', '.join(FAULT_KINDS)}")
        if list(self.faults) != sorted(set(self.faults), key=FAULT_KINDS.index):
            raise OptionError("faults must be unique and in canonical order (use parse_faults)")
        unknown_bugs = sorted(set(self.bugs) - BUGS.keys())
        if unknown_bugs:
            raise OptionError(f"unknown bug(s) {', '.join(unknown_bugs)}; "
                              "see chainfire-sim hunt --list")
        if list(self.bugs) != sorted(set(self.bugs)):
            raise OptionError("bugs must be unique and sorted (use parse_bugs)")
        if self.think_ms is not None and self.think_ms < 0:
            raise OptionError(f"--think must be >= 0, got {self.think_ms}")
        if self.read_mode not in ("safe", "lease"):
            raise OptionError(f"read mode must be safe or lease, got {self.read_mode!r}")

    def has(self, fault: str) -> bool:
        return fault in self.faults

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["faults"] = list(self.faults)
        out["bugs"] = list(self.bugs)
        return out

    @classmethod
    def from_json(cls, value: Any) -> RunOptions:
        if not isinstance(value, dict):
            raise OptionError("run options must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise OptionError(f"unknown run options: {', '.join(unknown)}")
        data = dict(value)
        if "faults" in data:
            data["faults"] = parse_faults(",".join(data["faults"]))
        if "bugs" in data:
            data["bugs"] = parse_bugs(",".join(data["bugs"]))
        try:
            return cls(**data)
        except TypeError as error:
            raise OptionError(f"bad run options: {error}") from None


def parse_faults(text: str) -> tuple[str, ...]:
    """`partition,crash` -> canonical tuple; `all` and `none` are accepted."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    if text == "all":
        return FAULT_KINDS
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    for fault in wanted:
        if fault not in FAULT_KINDS:
            raise OptionError(f"unknown fault {fault!r}; known: {', '.join(FAULT_KINDS)}")
    return tuple(f for f in FAULT_KINDS if f in wanted)


def parse_bugs(text: str) -> tuple[str, ...]:
    """`figure8_commit,stale_local_reads` -> a sorted tuple of known bug names."""
    wanted = sorted({part.strip() for part in text.split(",") if part.strip()})
    unknown = [name for name in wanted if name not in BUGS]
    if unknown:
        raise OptionError(f"unknown bug(s) {', '.join(unknown)}; see chainfire-sim hunt --list")
    return tuple(wanted)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration_ms(text: str) -> int:
    """`60s`, `1500ms`, `2m` or a bare number of seconds -> milliseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise OptionError(f"bad duration {text!r}: use e.g. 60s, 1500ms or 2m")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return int(number * {"ms": 1, "s": 1000, "m": 60_000}[unit])


@dataclass(frozen=True, slots=True, kw_only=True)
class SimParams:
    """Parameters drawn from the seed (see `draw_params`)."""

    tick_ms: int
    election_ticks: int
    pre_vote: bool
    check_quorum: bool
    forward_requests: bool
    request_timeout_ticks: int
    snapshot_every_entries: int
    snapshot_catchup_entries: int
    # Raft flow control: the soft limit on the entry bytes of one append
    # (etcd's MaxSizePerMsg; see `draw_append_size_limit`).
    max_size_per_msg_bytes: int
    # network
    latency_ms: tuple[float, float]  # each link's base latency is drawn from this range
    jitter: float  # each message: base * uniform(1, 1 + jitter)
    loss: float
    duplicate: float
    reorder: float
    reorder_delay_ms: float
    spike: float
    spike_ms: tuple[float, float]
    # disk
    fsync_ms: tuple[float, float]
    torn_writes: bool
    # the chance that a crash also corrupts a durable record (the node then
    # refuses to start: it stays failed until the nemesis replaces it)
    corrupt_on_crash: float
    # clocks: every node's rate is drawn in [1 - drift, 1 + drift]; clock faults
    # change one node's rate to a value in [1/max_rate, max_rate].
    drift: float
    max_clock_rate: float
    # nemesis: a fault every `fault_every_ms` (exponential), held `fault_hold_ms`
    fault_every_ms: float
    fault_hold_ms: tuple[float, float]
    # workload
    keys: int
    think_ms: float
    client_timeout_ms: float
    lease_ttl_s: tuple[int, int]
    watchers: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# The default append size limit (RaftConfig's), and the small ones a third
# of the seeds draw instead. Client entries are some 20 to 80 bytes, so a
# small limit carries one to a few entries per append.
MAX_SIZE_PER_MSG_BYTES = 1 << 20
SMALL_MAX_SIZE_PER_MSG_BYTES = (64, 128, 256, 512)


def draw_append_size_limit(rng: random.Random) -> int:
    """The append size limit: mostly etcd's generous default (a lagging
    follower catches up in one append), but one seed in three a limit of a
    few entries, so catch-up is paginated: a follower acknowledges an old
    leader's entries page by page before it reaches the new leader's own."""
    if rng.random() < 1 / 3:
        return rng.choice(SMALL_MAX_SIZE_PER_MSG_BYTES)
    return MAX_SIZE_PER_MSG_BYTES


def _chosen(option: bool | None, drawn: bool) -> bool:
    """The option when set, else the draw (made either way: no later draw shifts)."""
    return drawn if option is None else option


def draw_params(options: RunOptions, rng: random.Random) -> SimParams:
    """The seed's choices. Only the faults the options enable get nonzero rates.

    The append size limit comes from its own child stream ("flow"), so it
    shifted none of the draws made from `rng`."""
    has = options.has
    tick_ms = rng.choice((20, 50, 100))
    flow = RngTree(options.seed).child("flow")
    return SimParams(
        tick_ms=tick_ms,
        election_ticks=rng.choice((10, 15, 20)),
        pre_vote=_chosen(options.pre_vote, rng.random() < 0.8),
        check_quorum=True if options.read_mode == "lease" else rng.random() < 0.8,
        forward_requests=rng.random() < 0.5,
        request_timeout_ticks=max(10, 2000 // tick_ms),
        snapshot_every_entries=rng.choice((50, 200, 1000)),
        snapshot_catchup_entries=rng.choice((0, 10, 50)),
        max_size_per_msg_bytes=draw_append_size_limit(flow),
        latency_ms=(round(rng.uniform(0.2, 1.0), 3), round(rng.uniform(1.0, 5.0), 3)),
        jitter=round(rng.uniform(0.0, 1.0), 3),
        loss=round(rng.uniform(0.0, 0.05), 4) if has("loss") else 0.0,
        duplicate=round(rng.uniform(0.0, 0.03), 4) if has("dup") else 0.0,
        reorder=round(rng.uniform(0.0, 0.1), 4) if has("reorder") else 0.0,
        reorder_delay_ms=round(rng.uniform(5.0, 50.0), 3),
        spike=round(rng.uniform(0.0, 0.005), 5) if has("reorder") else 0.0,
        spike_ms=(50.0, round(rng.uniform(100.0, 600.0), 3)),
        fsync_ms=(round(rng.uniform(0.1, 0.5), 3), round(rng.uniform(0.5, 5.0), 3)),
        torn_writes=has("crash") and rng.random() < 0.5,
        corrupt_on_crash=rng.choice((0.0, 0.0, 0.1, 0.3)) if has("crash") else 0.0,
        drift=round(rng.uniform(0.0, 0.001), 6),
        max_clock_rate=round(rng.uniform(1.05, 1.25), 4) if has("clock") else 1.0,
        fault_every_ms=round(rng.uniform(1000.0, 5000.0), 3),
        fault_hold_ms=(500.0, round(rng.uniform(2000.0, 8000.0), 3)),
        keys=rng.randint(3, 10),
        think_ms=(round(rng.uniform(20.0, 400.0), 3) if options.think_ms is None
                  else options.think_ms),
        client_timeout_ms=float(rng.choice((1000, 2000, 3000))),
        lease_ttl_s=(2, rng.randint(3, 8)),
        watchers=min(options.clients, rng.randint(1, 3)),
    )


__all__ = [
    "FAULT_HELP",
    "FAULT_KINDS",
    "OptionError",
    "RunOptions",
    "SimParams",
    "draw_append_size_limit",
    "draw_params",
    "parse_bugs",
    "parse_duration_ms",
    "parse_faults",
]
