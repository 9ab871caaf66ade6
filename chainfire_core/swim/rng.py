"""The randomness the SWIM core needs, from an injected source.

Theory of operation
-------------------
The core never imports `random`: the driver hands in an object with
`randrange(start, stop)` (a `random.Random` child from the run's seed, in
practice), and the few draws SWIM makes are built on it here: the first
probe's phase, the shuffled round-robin order (Fisher-Yates) and the
ping-req relays (a partial Fisher-Yates). Same source state, same draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class RandomSource(Protocol):
    def randrange(self, start: int, stop: int) -> int: ...


def shuffle(rng: RandomSource, items: list[T]) -> None:
    """Shuffle `items` in place, uniformly."""
    for i in range(len(items) - 1, 0, -1):
        j = rng.randrange(0, i + 1)
        items[i], items[j] = items[j], items[i]


def sample(rng: RandomSource, items: Sequence[T], count: int) -> list[T]:
    """`count` distinct items drawn uniformly (all of them if fewer)."""
    pool = list(items)
    count = min(count, len(pool))
    for i in range(count):
        j = rng.randrange(i, len(pool))
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:count]


__all__ = ["RandomSource", "sample", "shuffle"]
