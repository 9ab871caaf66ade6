"""Per-node clocks: drift (a rate near 1) and skew (the phase of the first
tick). A node ticks every `tick_ms / rate` simulated milliseconds, so a fast
clock (rate > 1) makes its leases expire early and its elections start
early, by the factor `rate`.

`lease_clock_bound_ms` is how much earlier than its TTL a lease may expire
given the fastest clock the run allows: the checker's bound for lease
timing (checker/lease_check.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sim.options import SimParams


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSetting:
    rate: float
    phase_ms: float


def draw_clock(rng: random.Random, params: SimParams) -> ClockSetting:
    return ClockSetting(rate=1.0 + rng.uniform(-params.drift, params.drift),
                        phase_ms=rng.uniform(0.0, float(params.tick_ms)))


def draw_fault_rate(rng: random.Random, params: SimParams) -> float:
    """A clock fault's rate in [1/max_rate, max_rate] (fast or slow)."""
    factor = rng.uniform(1.0, params.max_clock_rate)
    return factor if rng.random() < 0.5 else 1.0 / factor


def lease_clock_bound_ms(params: SimParams) -> float:
    fastest = params.max_clock_rate * (1.0 + params.drift)
    slowest_tick_ms = params.tick_ms * params.max_clock_rate / (1.0 - params.drift)
    ttl_ms = params.lease_ttl_s[1] * 1000.0
    # A TTL counted on the fastest clock is short by ttl * (1 - 1/rate); the
    # lessor sees time in whole ticks, which costs up to two more ticks.
    return ttl_ms * (1.0 - 1.0 / fastest) + 2.0 * slowest_tick_ms


__all__ = ["ClockSetting", "draw_clock", "draw_fault_rate", "lease_clock_bound_ms"]
