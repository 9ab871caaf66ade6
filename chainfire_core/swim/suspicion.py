"""Suspicion timeouts, fixed (SWIM) or shrinking with confirmations (Lifeguard).

Theory of operation
-------------------
A suspected member has a while to refute before whoever holds the
suspicion declares it dead. SWIM uses one timeout, scaled with the group
size so that a refutation has time to spread:

    min_ms = suspicion_mult * max(1, log10 n) * protocol_period_ms

Lifeguard (LHA-Suspicion) starts higher, at `max_ms = suspicion_max_mult *
min_ms`, and shrinks as independent members confirm the suspicion: with C
confirmations out of the K expected,

    timeout(C) = max(min_ms, max_ms - (max_ms - min_ms) * log(C + 1) / log(K + 1))

so a lone accuser (perhaps a slow one, whose own timeouts are the problem)
gives the suspect six times longer to refute, while a member that several
others cannot reach either is declared dead almost as fast as in SWIM. A
confirmation is a `Suspect` at the same incarnation from an accuser not yet
counted; only the first K count. The deadline only ever moves earlier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from chainfire_core.swim.config import SwimConfig
from chainfire_core.swim.messages import Incarnation
from chainfire_core.types import NodeId


def suspicion_bounds_ms(config: SwimConfig, group_size: int) -> tuple[int, int]:
    """(min, max) suspicion timeout for a group of `group_size` members."""
    scale = max(1.0, math.log10(max(1, group_size)))
    low = math.ceil(config.suspicion_mult * scale * config.protocol_period_ms)
    high = low * config.suspicion_max_mult if config.dynamic_suspicion else low
    return low, high


def suspicion_timeout_ms(low: int, high: int, confirmations: int, expected: int) -> int:
    """Lifeguard's log-scaled timeout after `confirmations` of `expected`."""
    assert 0 <= low <= high and confirmations >= 0 and expected >= 1
    if confirmations >= expected:
        return low
    fraction = math.log(confirmations + 1) / math.log(expected + 1)
    return max(low, math.floor(high - (high - low) * fraction))


@dataclass(slots=True, kw_only=True)
class Suspicion:
    member: NodeId
    incarnation: Incarnation
    started_ms: int
    low_ms: int
    high_ms: int
    expected: int
    # The first accuser, then each independent confirmer (at most `expected`).
    accusers: list[NodeId] = field(default_factory=list)

    @property
    def confirmations(self) -> int:
        return max(0, len(self.accusers) - 1)

    @property
    def deadline_ms(self) -> int:
        timeout = suspicion_timeout_ms(self.low_ms, self.high_ms, self.confirmations,
                                       self.expected)
        return self.started_ms + timeout

    def confirm(self, accuser: NodeId) -> bool:
        """Count `accuser` if new and still useful; was it counted?"""
        if accuser in self.accusers or self.confirmations >= self.expected:
            return False
        self.accusers.append(accuser)
        return True

    def check_invariants(self) -> None:
        assert 0 < self.low_ms <= self.high_ms
        assert 1 <= len(self.accusers) <= self.expected + 1
        assert len(set(self.accusers)) == len(self.accusers)
        assert self.started_ms + self.low_ms <= self.deadline_ms <= self.started_ms + self.high_ms


__all__ = ["Suspicion", "suspicion_bounds_ms", "suspicion_timeout_ms"]
