"""A partition laid out for the search (checker.search), and its results.

With a model's `Flow` hints (checker.flow), operations fall in four groups:

- *free*: accepted in every state and read-only (a read that timed out):
  they constrain nothing, so the search never sees them; `place_free`
  puts each right after the last operation that returned before it was
  called, which real time always allows;
- *tail*: unknown outcome and read-only: they go last;
- *optional*: unknown outcome with an effect (a write that timed out):
  the search may linearize them, and never has to;
- *required*: everything else, which the search must linearize.

Without hints every operation is required, unknown outcomes included
(they return after everything), as in Porcupine.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from checker.flow import OPAQUE, Flow, Suffix
from checker.history import Operation
from checker.valueflow import ValueFlow, analyse

NO_FLOW = Flow()


@dataclass(slots=True)
class Outcome:
    """What a partition search found. `order` lists operation ids: a whole
    linearization when `ok`, else the longest linearizable prefix seen."""

    ok: bool | None  # None: stopped (timeout or budget)
    order: list[int] = field(default_factory=list)
    culprit: int | None = None  # op id: the one that could not be linearized next
    reason: str = ""
    nodes: int = 0
    verified: bool = False  # Ok found by replaying against the model and real time


class Problem:
    """A partition's operations, grouped and sorted by call time."""

    def __init__(self, ops: Sequence[Operation], model: Any, *, hints: bool = True) -> None:
        self.model = model
        flow_of = getattr(model, "flow", None) if hints else None
        self.free: list[Operation] = []
        self.tail: list[Operation] = []
        self.required: list[Operation] = []
        self.optional: list[Operation] = []
        self.req_flows: list[Flow] = []
        self.opt_flows: list[Flow] = []
        if flow_of is None:
            self.required = _by_call(list(ops))
            self.req_flows = [NO_FLOW] * len(ops)
        else:
            self._group(ops, flow_of)
        self.calls = [op.call for op in self.required]
        self.rets = [op.return_time for op in self.required]
        self.optional_calls = [op.call for op in self.optional]
        self.hinted = flow_of is not None
        self.appends = False
        self._flow: ValueFlow | None = None
        self._analysed = False

    def value_flow(self) -> ValueFlow | None:
        """The value-flow analysis (checker.valueflow), worked out on first use:
        None without hints or with an effect the flows do not describe."""
        if not self._analysed:
            self._analysed = True
            changes = [f.makes for f in (*self.req_flows, *self.opt_flows) if not f.read_only]
            if self.hinted and OPAQUE not in changes:
                self.appends = any(isinstance(makes, Suffix) for makes in changes)
                self._flow = analyse(self.calls, self.rets, self.req_flows,
                                     self.optional_calls, self.opt_flows)
        return self._flow

    def _group(self, ops: Sequence[Operation], flow_of: Any) -> None:
        required, optional = self.required, self.optional
        req_flows, opt_flows = self.req_flows, self.opt_flows
        for op in ops:
            f = flow_of(op)
            if f.free:
                self.free.append(op)
            elif not op.unknown:
                required.append(op)
                req_flows.append(f)
            elif f.read_only:
                self.tail.append(op)
            else:
                optional.append(op)
                opt_flows.append(f)
        for ops_, flows in ((required, req_flows), (optional, opt_flows)):
            calls = [op.call for op in ops_]
            if not all(map(operator.le, calls, calls[1:])):
                pairs = sorted(zip(ops_, flows, strict=True), key=lambda p: (p[0].call, p[0].id))
                ops_[:] = [op for op, _ in pairs]
                flows[:] = [f for _, f in pairs]

    def linearization(self, path: list[Operation], used: set[int]) -> list[int]:
        """Ids of a whole linearization: the search's path, the optional
        operations it did not use and the tail at the end, free ones placed."""
        ops = path + [op for op in self.optional if op.id not in used] + self.tail
        return [op.id for op in place_free(ops, self.free)]


def _by_call(ops: list[Operation]) -> list[Operation]:
    calls = [op.call for op in ops]
    if all(map(operator.le, calls, calls[1:])):
        return ops
    return sorted(ops, key=lambda op: (op.call, op.id))


def place_free(ops: list[Operation], free: list[Operation]) -> list[Operation]:
    """Insert operations that constrain nothing into a real-time-valid order:
    each right after the last operation that returned before its call."""
    if not free:
        return ops
    suffix_min = [math.inf] * (len(ops) + 1)
    for k in range(len(ops) - 1, -1, -1):
        suffix_min[k] = min(suffix_min[k + 1], ops[k].return_time)
    slots: dict[int, list[Operation]] = {}
    for op in sorted(free, key=lambda o: (o.call, o.id)):
        lo, hi = 0, len(ops)
        while lo < hi:  # first k with every later return >= op.call
            mid = (lo + hi) // 2
            if suffix_min[mid] >= op.call:
                hi = mid
            else:
                lo = mid + 1
        slots.setdefault(lo, []).append(op)
    placed: list[Operation] = []
    for k in range(len(ops) + 1):
        placed.extend(slots.get(k, ()))
        if k < len(ops):
            placed.append(ops[k])
    return placed


__all__ = ["NO_FLOW", "Outcome", "Problem", "place_free"]
