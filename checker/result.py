"""What a check concludes, per partition and overall.

`Verdict` is Ok (a linearization exists), Illegal (none exists) or Unknown
(the time or memory budget ran out first). Across partitions Illegal wins
over Unknown, and Unknown over Ok: one illegal partition makes the history
illegal whatever the others say.

For an Illegal partition the result carries the longest linearizable prefix
the search found (operation ids in linearization order) and a minimal
explanation: the operations that cannot be ordered (the first operation
that no extension of that prefix can take, with the operations it
conflicts with).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    OK = "Ok"
    ILLEGAL = "Illegal"
    UNKNOWN = "Unknown"

    @property
    def exit_code(self) -> int:
        """chainfire-check's exit status: 0 Ok, 1 Illegal, 2 Unknown."""
        return {"Ok": 0, "Illegal": 1, "Unknown": 2}[self.value]


def combine(verdicts: list[Verdict]) -> Verdict:
    if Verdict.ILLEGAL in verdicts:
        return Verdict.ILLEGAL
    if Verdict.UNKNOWN in verdicts:
        return Verdict.UNKNOWN
    return Verdict.OK


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionResult:
    name: str
    verdict: Verdict
    operations: int
    # Ok: a full linearization (operation ids in order). Illegal: the longest
    # linearizable prefix found. Unknown: the best prefix so far.
    linearization: tuple[int, ...] = ()
    # Illegal: the operations that cannot be ordered (ids), smallest set found.
    explanation: tuple[int, ...] = ()
    reason: str = ""
    elapsed_s: float = 0.0
    states_explored: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    verdict: Verdict
    partitions: tuple[PartitionResult, ...] = field(default=())
    elapsed_s: float = 0.0
    model: str = ""

    @property
    def failing(self) -> tuple[PartitionResult, ...]:
        return tuple(p for p in self.partitions if p.verdict == Verdict.ILLEGAL)


__all__ = ["CheckResult", "PartitionResult", "Verdict", "combine"]
