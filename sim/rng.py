"""One seed, one `random.Random`, a child RNG per component.

Children are derived from the root by name, not by draw order: adding a new
component (or drawing more numbers in one) never shifts another component's
stream, so traces stay comparable across small code changes.
"""

from __future__ import annotations

import hashlib
import random


class RngTree:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.root = random.Random(seed)

    def child(self, name: str) -> random.Random:
        digest = hashlib.sha256(f"{self.seed}/{name}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))


__all__ = ["RngTree"]
