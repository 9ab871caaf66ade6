"""A deterministic SimPy world of N SWIM members over a lossy network.

Theory of operation
-------------------
`SwimSimOptions` says everything about a run: the seed, the group size, the
SWIM config (Lifeguard on or off), the network (loss, latency) and a fault
schedule (`Crash`, `Restart`, `Pause`, `Slow`, `Leave`). `run_swim(options)`
builds the world, runs it to `duration_ms` (or until `stop_when` holds,
checked once per protocol period) and returns a `SwimRunResult`: the log of
every member event and fault, the bytes and datagrams each member sent, and
per-member counters.

Determinism: one seed; each component draws from its own child RNG derived
by name (sim/rng.py), so adding draws in one never shifts another; members
start with random protocol phases (or all at 0 with `aligned`, the setting
of SWIM's analysis); iteration is by member id. The same options give a
byte-identical log (`SwimRunResult.digest()`), which is tested.

This world is separate from the Raft simulation (sim/world.py): gossip only
informs, and nothing here touches a Raft voter set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import simpy

from chainfire_core.errors import InvalidRequest
from chainfire_core.swim import SwimConfig, SwimMessage, SwimNode, SwimStats
from chainfire_core.types import NodeId
from sim.rng import RngTree
from sim.swim_host import LogRecord, SwimHost
from sim.swim_network import SwimNetwork

MAX_MEMBERS = 4_096


@dataclass(frozen=True, slots=True, kw_only=True)
class Crash:
    member: int
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Restart:
    """A crashed member comes back as a fresh process and joins again."""

    member: int
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    member: int
    at_ms: int
    duration_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Slow:
    """Inbound datagrams are handled up to `delay_ms` late during [at, until)."""

    member: int
    at_ms: int
    until_ms: int
    delay_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave:
    """A graceful leave; the process stops `linger_ms` later."""

    member: int
    at_ms: int
    linger_ms: int = 3_000


Fault = Crash | Restart | Pause | Slow | Leave


def _sane(fault: Fault) -> bool:
    match fault:
        case Pause():
            return fault.duration_ms > 0
        case Slow():
            return fault.until_ms >= fault.at_ms and fault.delay_ms >= 0
        case Leave():
            return fault.linger_ms >= 0
        case Crash() | Restart():
            return True


@dataclass(frozen=True, slots=True, kw_only=True)
class SwimSimOptions:
    seed: int = 1
    members: int = 20
    duration_ms: int = 60_000
    loss: float = 0.0
    latency_ms: tuple[int, int] = (1, 10)
    lifeguard: bool = True
    # Settings for every member (member_id is replaced); None: the defaults.
    config: SwimConfig | None = None
    # All members start their protocol periods at 0 (SWIM's analysis);
    # otherwise each starts at a random phase.
    aligned: bool = False
    faults: tuple[Fault, ...] = ()
    check_invariants: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.members <= MAX_MEMBERS:
            raise InvalidRequest(f"swim sim: members must be in [1, {MAX_MEMBERS}]")
        if self.duration_ms <= 0:
            raise InvalidRequest("swim sim: duration_ms must be > 0")
        if not 0.0 <= self.loss < 1.0:
            raise InvalidRequest("swim sim: loss must be in [0, 1)")
        low, high = self.latency_ms
        if not 0 <= low <= high:
            raise InvalidRequest("swim sim: latency_ms must be (low, high) with 0 <= low <= high")
        for fault in self.faults:
            if not 1 <= fault.member <= self.members or fault.at_ms < 0 or not _sane(fault):
                raise InvalidRequest(f"swim sim: bad fault {fault}")

    def member_config(self, member: NodeId) -> SwimConfig:
        template = self.config or SwimConfig(member_id=NodeId(1))
        config = template.with_member(member, f"sim-{member}")
        return config if self.lifeguard else config.swim_only()

    def describe(self) -> str:
        """One line for the top of a run's output (options first)."""
        data = asdict(self)
        data["faults"] = [f"{type(f).__name__}({', '.join(map(str, asdict(f).values()))})"
                          for f in self.faults]
        if self.config is not None:
            data["config"] = {k: v for k, v in asdict(self.config).items() if k != "member_id"}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True, kw_only=True)
class SwimRunResult:
    options: SwimSimOptions
    end_ms: int
    log: tuple[LogRecord, ...]
    bytes_sent: tuple[int, ...]      # index: member id (0 unused)
    messages_sent: tuple[int, ...]
    dropped: int
    stats: tuple[SwimStats, ...]     # index: member id - 1 (the last life)
    max_local_health: tuple[int, ...]
    down: tuple[tuple[int, int, int], ...] = field(default=())  # (member, from, until)

    def lines(self) -> Iterator[str]:
        yield self.options.describe()
        for record in self.log:
            yield json.dumps(record, separators=(",", ":"))
        yield json.dumps({"end_ms": self.end_ms, "bytes": self.bytes_sent,
                          "dropped": self.dropped}, separators=(",", ":"))

    def digest(self) -> str:
        digest = hashlib.sha256()
        for line in self.lines():
            digest.update(line.encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def records(self, kind: str) -> list[LogRecord]:
        return [record for record in self.log if record[2] == kind]


class SwimWorld:
    def __init__(self, options: SwimSimOptions) -> None:
        self.options = options
        self.env = simpy.Environment()
        self.rngs = RngTree(options.seed)
        self.log: list[LogRecord] = []
        self.down: list[tuple[int, int, int]] = []
        self._down_since: dict[int, int] = {}
        self._lives = [0] * (options.members + 1)
        self.network = SwimNetwork(self.env, self.rngs.child("swim/network"),
                                   loss=options.loss, latency_ms=options.latency_ms,
                                   members=options.members, deliver=self._deliver)
        ids = [NodeId(m) for m in range(1, options.members + 1)]
        self.hosts = [SwimHost(self.env, self._new_node(m, ids), self.rngs.child(f"swim/host/{m}"),
                               send=self.network.send, log=self.log.append,
                               check_invariants=options.check_invariants) for m in ids]
        for fault in sorted(options.faults, key=lambda f: (f.at_ms, f.member)):
            self.env.timeout(fault.at_ms).callbacks.append(partial(self._apply, fault))

    def host(self, member: int) -> SwimHost:
        return self.hosts[member - 1]

    def _new_node(self, member: NodeId, ids: list[NodeId]) -> SwimNode:
        life = self._lives[member]
        self._lives[member] += 1
        rng = self.rngs.child(f"swim/node/{member}/{life}")
        config = self.options.member_config(member)
        now = int(self.env.now)
        if life == 0:
            first = 0 if self.options.aligned else None
            return SwimNode(config, rng, now_ms=now, first_probe_ms=first,
                            members=[(m, f"sim-{m}") for m in ids])
        return SwimNode(config, rng, now_ms=now)

    def _deliver(self, message: SwimMessage) -> None:
        self.host(message.to).receive(message)

    def _apply(self, fault: Fault, _event: simpy.Event) -> None:
        now = int(self.env.now)
        host = self.host(fault.member)
        self.log.append((now, fault.member, f"fault:{type(fault).__name__.lower()}",
                         fault.member, 0, 0))
        match fault:
            case Crash():
                self._stop(host, now)
            case Restart():
                if host.crashed:
                    self._restart(host, now)
            case Pause():
                host.pause(fault.duration_ms)
            case Slow():
                host.slow_delay_ms = fault.delay_ms
                self.env.timeout(max(0, fault.until_ms - fault.at_ms)).callbacks.append(
                    partial(self._end_slow, host))
            case Leave():
                host.leave()
                self.env.timeout(fault.linger_ms).callbacks.append(partial(self._linger, host))

    def _end_slow(self, host: SwimHost, _event: simpy.Event) -> None:
        host.slow_delay_ms = 0

    def _linger(self, host: SwimHost, _event: simpy.Event) -> None:
        self._stop(host, int(self.env.now))

    def _stop(self, host: SwimHost, now: int) -> None:
        if not host.crashed:
            host.crash()
            self._down_since[host.id] = now

    def _restart(self, host: SwimHost, now: int) -> None:
        self.down.append((host.id, self._down_since.pop(host.id), now))
        node = self._new_node(host.id, [])
        seeds = [h.id for h in self.hosts if not h.crashed and h.id != host.id][:3]
        if seeds:
            node.join(seeds, now)
        host.restart(node)

    def run(self, stop_when: Callable[[SwimWorld], bool] | None = None) -> SwimRunResult:
        options = self.options
        step_ms = options.member_config(NodeId(1)).protocol_period_ms
        until = 0
        while until < options.duration_ms:
            until = min(options.duration_ms, until + step_ms)
            self.env.run(until=until)
            if stop_when is not None and stop_when(self):
                break
        end = int(self.env.now)
        down = [*self.down, *((m, since, end) for m, since in sorted(self._down_since.items()))]
        return SwimRunResult(
            options=options, end_ms=end, log=tuple(self.log),
            bytes_sent=tuple(self.network.bytes_sent),
            messages_sent=tuple(self.network.messages_sent), dropped=self.network.dropped,
            stats=tuple(replace(h.node.stats) for h in self.hosts),
            max_local_health=tuple(h.max_local_health for h in self.hosts),
            down=tuple(sorted(down)),
        )


def run_swim(options: SwimSimOptions,
             stop_when: Callable[[SwimWorld], bool] | None = None) -> SwimRunResult:
    return SwimWorld(options).run(stop_when)


__all__ = ["Crash", "Fault", "Leave", "Pause", "Restart", "Slow", "SwimRunResult",
           "SwimSimOptions", "SwimWorld", "run_swim"]
