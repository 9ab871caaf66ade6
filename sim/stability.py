"""Leader stability under partial partitions (the `stability` check).

Check-quorum gives Raft a leader lease: a peer that heard from its leader
within the election timeout ignores vote requests, and a leader that stops
hearing from a quorum steps down; pre-vote keeps a node that cannot win
from raising its term. Together they promise more than safety: a node that
sees only part of the cluster cannot depose a leader that still hears a
quorum. Without them a partial, non-transitive partition (`bridge`,
`majority_ring`, `one_way`) deposes leader after leader while it holds. The
liveness check cannot see that: it runs after the heal, when the whole
cluster elects a leader at once. This module looks while such a partition
holds.

A *stretch* is a time span in which
- a partition held whose graph is non-transitive (a one-way link, or some
  node reaches a node through a third that it cannot reach directly) and
  leaves at least one node linked both ways with a quorum of the nodes it
  was drawn over;
- no other fault was in effect: no node crashed, paused or with a changed
  clock, and no membership change begun (from the first one on, the voter
  set may differ from the nodes the partition was drawn over); a node
  whose disk was corrupted stays down until replaced, so it ends stretches
  for good. A stretch that another fault interrupted resumes when it ends.

After a settling grace (`GRACE_ELECTION_TIMEOUTS`), the leader in office,
or else the first leader elected, that is linked both ways with a quorum
in the partition's graph is *settled*: with check-quorum it cannot lose
that quorum while the graph holds, and no peer of that quorum grants a
vote while it hears from it. So no leader may be elected after it in the
stretch (`ALLOWED_SUCCESSORS`). A violation names the partition, the
stretch, the settled leader, the successors and how far the term rose.

Everything is computed after the run from what the world records anyway:
the trace's summary records (partition, heal and phase times, every role
change with its term) and the nemesis's applied events (the partition
graphs and the other faults' hold times). Nothing here runs inside the
simulation, so the check changes no run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from sim import partitions
from sim.schedule import FaultEvent

# The grace after a stretch begins, in base election timeouts (stretched by
# the slowest drifted clock): enough for a leader cut off from its quorum to
# step down (check-quorum) and for a term raised before the partition to
# reach the leader; a successor elected later still counts as the settled
# leader. Measured with the protections on, no stretch changed leader once
# settled, even with a quarter of this grace (docs/sim.md).
GRACE_ELECTION_TIMEOUTS = 2.0
# Leaders that may be elected after a settled leader in one stretch.
ALLOWED_SUCCESSORS = 0
FOREVER_MS = float("inf")


@dataclass(frozen=True, slots=True, kw_only=True)
class Stretch:
    """A span where only a partial partition held (see the module docstring)."""

    spec: partitions.PartitionSpec
    start_ms: float
    end_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Churn:
    """Leadership in a stretch after its grace: the settled leader (the
    first in office that was linked with a quorum) and every leader elected
    after it."""

    stretch: Stretch
    leader: int
    leader_term: int
    settled_ms: float  # the grace's end, or the settled leader's election
    successors: tuple[tuple[float, int, int], ...]  # (time ms, node, term) of each later leader
    term_after: int  # the highest term any role change showed by the stretch's end

    def describe(self) -> str:
        spec = self.stretch.spec
        sides = "|".join(",".join(str(n) for n in group) for group in spec.groups)
        shape = f"{spec.shape} {spec.direction}" if spec.direction else spec.shape
        where = (f"{shape} partition {{{sides}}} (alone {self.stretch.start_ms / 1000:.2f}s-"
                 f"{self.stretch.end_ms / 1000:.2f}s)")
        if not self.successors:
            return f"leader {self.leader} (term {self.leader_term}) stayed under {where}"
        first_ms, first_node, first_term = self.successors[0]
        span_s = (self.successors[-1][0] - self.settled_ms) / 1000
        return (f"leader {self.leader} (term {self.leader_term}) was linked with a quorum under "
                f"{where}, yet {len(self.successors)} leader(s) followed it within "
                f"{span_s:.2f}s (first node {first_node}, term {first_term}, at "
                f"{first_ms / 1000:.2f}s); term rose {self.leader_term} -> {self.term_after}: "
                f"leader churn")


def is_partial(graph: nx.DiGraph) -> bool:
    """Whether reachability is not an equivalence: a one-way link, or u->v->w without u->w."""
    for u, v in sorted(graph.edges()):
        if u == v:
            continue
        if not graph.has_edge(v, u):
            return True
        for w in sorted(graph.successors(v)):
            if w not in (u, v) and not graph.has_edge(u, w):
                return True
    return False


def _partition_spans(records: Sequence[dict[str, Any]], events: Sequence[FaultEvent],
                     safety_end_ms: float) -> Iterator[tuple[partitions.PartitionSpec, float,
                                                             float]]:
    """Each applied partition with the time it actually held: until the next
    partition replaced it, a heal (any pending undo timer heals whatever
    partition is in place) or the end of the safety phase."""
    specs = [e.partition for e in events if e.kind == "partition" and e.partition is not None]
    starts = [r["t"] for r in records if r["ev"] == "fault" and r["kind"] == "partition"]
    assert len(specs) == len(starts), "every applied partition has one fault record"
    ends = sorted(r["t"] for r in records
                  if (r["ev"] == "fault" and r["kind"] in ("partition", "heal"))
                  or (r["ev"] == "phase" and r["phase"] == "heal"))
    for spec, start in zip(specs, starts, strict=True):
        end = next((t for t in ends if t > start), safety_end_ms)
        yield spec, start, min(end, safety_end_ms)


def _disturbances(events: Sequence[FaultEvent]) -> list[tuple[float, float]]:
    """The spans in which another fault was in effect."""
    spans = []
    for event in events:
        if event.kind == "member" or (event.kind == "crash" and event.corrupt):
            spans.append((event.at_ms, FOREVER_MS))
        elif event.kind in ("crash", "pause", "clock"):
            spans.append((event.at_ms, event.at_ms + event.hold_ms))
    return sorted(spans)


def stretches(records: Sequence[dict[str, Any]], events: Sequence[FaultEvent],
              safety_end_ms: float) -> list[Stretch]:
    """The spans where a partial partition leaving a quorum held, alone."""
    disturbed = _disturbances(events)
    found = []
    for spec, start, end in _partition_spans(records, events, safety_end_ms):
        graph = partitions.graph(spec)
        if not (is_partial(graph) and quorum_holders(graph)):
            continue
        cursor = start
        for lo, hi in disturbed:
            if hi <= cursor or lo >= end:
                continue
            if lo > cursor:
                found.append(Stretch(spec=spec, start_ms=cursor, end_ms=lo))
            cursor = max(cursor, hi)
        if cursor < end:
            found.append(Stretch(spec=spec, start_ms=cursor, end_ms=end))
    return found


def quorum_holders(graph: nx.DiGraph) -> list[int]:
    """The nodes linked both ways with a quorum of the graph's nodes (themselves included)."""
    nodes = sorted(graph.nodes())
    quorum = len(nodes) // 2 + 1
    return [u for u in nodes if 1 + sum(1 for v in nodes if v != u and graph.has_edge(u, v)
                                        and graph.has_edge(v, u)) >= quorum]


def _in_office(roles: Sequence[dict[str, Any]], at_ms: float) -> tuple[int, int] | None:
    """(node, term) of the leader with the highest term among nodes whose
    last role change by `at_ms` made them leader."""
    last: dict[int, dict[str, Any]] = {}
    for record in roles:
        if record["t"] <= at_ms:
            last[record["node"]] = record
    leaders = [(r["term"], node) for node, r in sorted(last.items()) if r["role"] == "leader"]
    if not leaders:
        return None
    term, node = max(leaders)
    return node, term


def churn(records: Sequence[dict[str, Any]], stretch: Stretch, grace_ms: float) -> Churn | None:
    """The settled leader of `stretch` and the leaders elected after it;
    None if the stretch ended before any leader linked with a quorum was in
    office after the grace."""
    watched_from = stretch.start_ms + grace_ms
    if watched_from >= stretch.end_ms:
        return None
    holders = quorum_holders(partitions.graph(stretch.spec))
    roles = [r for r in records if r["ev"] == "role"]
    incumbent = _in_office(roles, watched_from)
    settled = None
    if incumbent is not None and incumbent[0] in holders:
        settled = (incumbent[0], incumbent[1], watched_from)
    successors = []
    for record in roles:
        if record["role"] != "leader" or not watched_from < record["t"] <= stretch.end_ms:
            continue
        if settled is not None:
            successors.append((record["t"], record["node"], record["term"]))
        elif record["node"] in holders:
            settled = (record["node"], record["term"], record["t"])
    if settled is None:
        return None
    term_after = max((r["term"] for r in roles if r["t"] <= stretch.end_ms), default=0)
    return Churn(stretch=stretch, leader=settled[0], leader_term=settled[1],
                 settled_ms=settled[2], successors=tuple(successors), term_after=term_after)


def grace_ms(election_ticks: int, tick_ms: float, drift: float) -> float:
    """GRACE_ELECTION_TIMEOUTS base election timeouts on the slowest drifted clock."""
    return GRACE_ELECTION_TIMEOUTS * election_ticks * tick_ms / (1 - drift)


def violations(records: Sequence[dict[str, Any]], events: Sequence[FaultEvent], *,
               safety_end_ms: float, grace: float,
               allowed: int = ALLOWED_SUCCESSORS) -> list[Churn]:
    """The stretches in which more than `allowed` leaders succeeded a settled one."""
    found = []
    for stretch in stretches(records, events, safety_end_ms):
        seen = churn(records, stretch, grace)
        if seen is not None and len(seen.successors) > allowed:
            found.append(seen)
    return found


__all__ = ["ALLOWED_SUCCESSORS", "GRACE_ELECTION_TIMEOUTS", "Churn", "Stretch", "churn",
           "grace_ms", "is_partial", "quorum_holders", "stretches", "violations"]
