"""The model protocol: a sequential specification the checker searches against.

A model is pure. `init()` gives the initial state; `step(state, input,
output)` says whether an operation with that input may return that output
in that state, and the state after it. States must be hashable and compare
by value (the search caches (linearized set, state) pairs). `partition`
splits a history into independent sub-histories (P-compositionality: a
history is linearizable iff each partition is), e.g. by key. `describe_*`
render operations and states for people (CLI, HTML, notebooks).

Nondeterministic models (an outcome that leaves several possible states)
return a frozenset of states as their state: `step` keeps every successor
state consistent with the output, and the operation is legal when that set
is non-empty (Porcupine's NondeterministicModel, as a power-set model).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Protocol

from checker.history import Operation


class Model(Protocol):
    name: str

    def init(self) -> Hashable: ...

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]: ...

    def partition(self, operations: Sequence[Operation]) -> list[tuple[str, list[Operation]]]:
        """(name, operations) per independent partition."""
        ...

    def describe_operation(self, input: Any, output: Any) -> str: ...

    def describe_state(self, state: Any) -> str: ...


__all__ = ["Model"]
