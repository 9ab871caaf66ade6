"""Why a partition is Illegal: a long linearizable prefix and a small core.

The search names a *culprit*: the operation that could not be linearized at
its deepest dead end (or the read whose value no producer can still give).
From it:

- the prefix: the largest set of operations closed under real-time
  precedence that avoids the culprit (everything called before it
  returned) is searched on its own, with a small budget; if it is
  linearizable, its linearization is the prefix, else the search's own
  deepest path is;
- the explanation: for a read-like culprit (one that needs one state
  value, see checker.valueflow), the operations that could have left that
  value before it and the last overwriter that returned before it was
  called, which cuts off every producer that ended before it started;
  otherwise the culprit and the state-changing operations concurrent with
  it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from checker.flow import ANY, Suffix
from checker.history import Operation
from checker.search import Outcome, Problem, Search

PREFIX_NODES = 30_000  # search budget for the prefix
EFFORT_S = 0.5  # seconds, at most


def explain(ops: Sequence[Operation], model: Any, outcome: Outcome,
            deadline: float | None) -> tuple[list[int], list[int], str]:
    """(prefix ids in order, explanation ids, a sentence) for an Illegal outcome."""
    stop = time.monotonic() + EFFORT_S
    if deadline is not None:
        stop = min(stop, deadline)
    by_id = {op.id: op for op in ops}
    culprit = by_id.get(outcome.culprit) if outcome.culprit is not None else None
    if culprit is None:
        return list(outcome.order), [], "no linearization exists"
    prefix = _prefix(ops, model, culprit, outcome.order, stop)
    what = f"operation {culprit.id} ({model.describe_operation(culprit.input, culprit.output)})"
    flow_of = getattr(model, "flow", None)
    focused = _value_core(ops, flow_of, culprit) if flow_of is not None else None
    if focused is not None:
        producers, overwriter = focused
        core = sorted([culprit.id, *(p.id for p in producers),
                       *([overwriter.id] if overwriter else [])])
        return prefix, core, _value_story(model, what, producers, overwriter)
    concurrent = [op.id for op in ops if op is not culprit and op.call <= culprit.return_time
                  and op.return_time >= culprit.call
                  and (flow_of is None or not flow_of(op).read_only)]
    return prefix, sorted([culprit.id, *concurrent]), (
        f"{what} cannot be linearized after the longest prefix found; shown with the "
        f"state-changing operations concurrent with it")


def _prefix(ops: Sequence[Operation], model: Any, culprit: Operation, found: list[int],
            stop: float) -> list[int]:
    before = [op for op in ops if op.id != culprit.id and op.call <= culprit.return_time]
    if len(before) <= len(found) or time.monotonic() > stop:
        return list(found)
    outcome = Search(Problem(before, model), deadline=stop,
                     cache_budget=PREFIX_NODES * 4).run(PREFIX_NODES)
    if outcome is not None and outcome.ok:
        return outcome.order
    return list(found)


def _value_core(ops: Sequence[Operation], flow_of: Any, culprit: Operation
                ) -> tuple[list[Operation], Operation | None] | None:
    """For a read-like culprit: the producers of its value that could precede
    it (and the last one cut off), and the last overwriter that returned
    before it was called."""
    value = flow_of(culprit).needs
    if value is ANY:
        return None
    producers, overwriter = [], None
    for op in ops:
        f = flow_of(op)
        if op is culprit or f.read_only or op.call > culprit.return_time:
            continue
        if _may_leave(f.makes, value):
            producers.append(op)
        elif f.definite and op.return_time < culprit.call and (
                overwriter is None or op.call > overwriter.call):
            overwriter = op
    if overwriter is not None:  # producers that ended before it started: only the last
        latest = max((p for p in producers if p.return_time < overwriter.call),
                     key=lambda p: p.return_time, default=None)
        producers = [p for p in producers if p.return_time >= overwriter.call or p is latest]
    return producers, overwriter


def _value_story(model: Any, what: str, producers: list[Operation],
                 overwriter: Operation | None) -> str:
    def show(op: Operation) -> str:
        return f"{op.id} ({model.describe_operation(op.input, op.output)})"

    cut = [p for p in producers if overwriter is not None and p.return_time < overwriter.call]
    live = [p for p in producers if p not in cut]
    story = f"{what} cannot be linearized: "
    if cut and overwriter is not None:
        story += (f"the last operation before it that could leave the value it needs, "
                  f"{show(cut[-1])}, ended before {show(overwriter)} started, which ended "
                  f"before it began")
    elif overwriter is not None:
        story += (f"nothing could leave the value it needs after {show(overwriter)}, which "
                  f"ended before it began")
    elif not live:
        story += "nothing that could leave the value it needs was called before it returned"
    else:
        story += "the value it needs can only come from the operations below"
    if live:
        story += "; the operations that could still leave that value, " + ", ".join(
            show(p) for p in live) + ", cannot be ordered to"
    return story


def _may_leave(makes: Any, value: Any) -> bool:
    if isinstance(makes, Suffix):
        return isinstance(value, str) and value.endswith(makes.text)
    return bool(makes == value)


__all__ = ["explain"]
