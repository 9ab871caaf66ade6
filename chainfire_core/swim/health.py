"""Local health: Lifeguard's measure of how far to trust one's own timeouts.

Theory of operation
-------------------
A member that is slow itself (CPU-starved, paused, its inbound queue
backed up) sees the symptoms of failure everywhere: its acks arrive "late"
and it suspects healthy members. Lifeguard (LHA-Probe) keeps a saturating
counter, the local health multiplier (LHM), in [0, local_health_max]:

    +1  a probe failed (no ack, direct or relayed, by the period's end)
    +1  per nack expected from a ping-req relay that never came
    +1  one had to refute a suspicion about oneself
    -1  a probe was acknowledged

and stretches its own probe timeout and protocol period by `LHM + 1`. A
healthy member sits at 0 and behaves exactly as SWIM; a slow one probes
less often and waits longer before it accuses anyone. With `local_health`
off the score stays 0.
"""

from __future__ import annotations


class LocalHealth:
    def __init__(self, max_score: int, *, enabled: bool) -> None:
        assert max_score >= 0
        self.max_score = max_score
        self.enabled = enabled
        self.score = 0

    def apply(self, delta: int) -> None:
        if self.enabled:
            self.score = min(self.max_score, max(0, self.score + delta))

    def scale(self, duration_ms: int) -> int:
        """`duration_ms` stretched by the multiplier (LHM + 1)."""
        return duration_ms * (self.score + 1)

    def check_invariants(self) -> None:
        assert 0 <= self.score <= self.max_score
        assert self.enabled or self.score == 0


__all__ = ["LocalHealth"]
