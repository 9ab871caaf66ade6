"""A brute-force linearizability checker, the reference for small histories.

It tries every order of the operations that respects real time (an
operation may come next only if no other remaining operation returned
before it was called) and asks the model about each step: no cache, no
hints, no pruning. Every operation is linearized, unknown outcomes too
(with output None, which the models accept in any state), exactly as
Porcupine defines it. Each partition of `model.partition` is checked on its
own. Exponential: keep histories to about 8 operations per partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from checker.history import Operation


def linearizable(operations: Sequence[Operation], model: Any) -> bool:
    return all(_partition(ops, model) for _, ops in model.partition(list(operations)))


def _partition(ops: list[Operation], model: Any) -> bool:
    def extend(remaining: tuple[Operation, ...], state: Any) -> bool:
        if not remaining:
            return True
        for op in remaining:
            if any(other.return_time < op.call for other in remaining if other is not op):
                continue
            ok, after = model.step(state, op.input, op.output)
            if ok and extend(tuple(o for o in remaining if o is not op), after):
                return True
        return False

    return extend(tuple(ops), model.init())


__all__ = ["linearizable"]
