"""Raft's safety properties, watched from outside while the run goes on.

- Election safety: at most one leader per term.
- State machine safety: no two nodes apply different entries at one index
  (a restarted node re-applying its log must apply the same entries again).

A violation is recorded with the simulated time and both witnesses; the run
reports it as an `invariant` failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from chainfire_core.raft.messages import Entry
from chainfire_core.types import Index, NodeId


class SafetyMonitor:
    def __init__(self) -> None:
        self.leaders: dict[int, NodeId] = {}
        self.entries: dict[Index, tuple[NodeId, Entry]] = {}
        self.violations: list[str] = []

    def leader(self, term: int, node: NodeId, now_ms: float) -> None:
        known = self.leaders.setdefault(term, node)
        if known != node:
            self.violations.append(f"election safety: nodes {known} and {node} both led "
                                   f"term {term} (t={now_ms:.3f}ms)")

    def applied(self, node: NodeId, entries: Sequence[Entry], now_ms: float) -> None:
        for entry in entries:
            first = self.entries.get(entry.index)
            if first is None:
                self.entries[entry.index] = (node, entry)
            elif first[1] != entry:
                self.violations.append(
                    f"state machine safety: index {entry.index} applied as term "
                    f"{first[1].term} on node {first[0]} but term {entry.term} on node {node} "
                    f"(t={now_ms:.3f}ms)")


__all__ = ["SafetyMonitor"]
