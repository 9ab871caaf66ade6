"""Value flow: which producers could still give each consumer the value it needs.

A *consumer* is a completed operation that is legal only in one state
value (a read that saw v, a successful cas from v). A *producer* of v is an
operation that may leave the state at v (a write of v, a cas to v, also
when its outcome is unknown). In every linearization the state a consumer r
sees was set by the last state-changing operation before it, so that
operation is a producer q of r's value with

- q.call <= r.return (q may precede r), and
- no *overwriter* w between them in real time: a completed operation that
  always leaves another value (a write of u != v, a successful cas to u)
  with q.return < w.call and w.return < r.call.

Such a q is *eligible* for r. This module computes the eligible producers
once; the search keeps, for each unlinearized consumer, how many of them
are still unlinearized, and prunes a node when some consumer has none left
and the current state is not its value (or, when it is its value, any move
that would change the state). The initial state needs no producer: at the
root it is simply the current state.

An append (`Suffix`) may leave v when v ends with its text, and is an
overwriter of every v that does not. The analysis holds only if every state
change is described: a partition with an OPAQUE effect gets none.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from checker.flow import ANY, Flow, Suffix


@dataclass(slots=True)
class ValueFlow:
    """Eligible producers per consumer, for a partition's searched operations.

    `needs[r]` is the value required operation r needs (ANY: not a consumer).
    `users_required[i]` / `users_optional[j]` list the consumers for which
    required op i / optional op j is an eligible producer; `eligible[r]`
    counts them.
    """

    needs: list[Any]
    eligible: list[int]
    users_required: list[list[int]]
    users_optional: list[list[int]]


def _may_leave(makes: Hashable, value: Hashable) -> bool:
    """Can an operation with this `makes` leave the state at `value`?"""
    if isinstance(makes, Suffix):
        return isinstance(value, str) and value.endswith(makes.text)
    return bool(makes == value)


class _Overwriters:
    """For a time t and a value v: the latest call among overwriters of v
    (completed ops that always leave a state other than v) that returned
    before t. Scans back by return time and stops once no earlier writer
    can have a later call."""

    def __init__(self, calls: Sequence[float], rets: Sequence[float],
                 flows: Sequence[Flow]) -> None:
        writers = sorted([i for i, f in enumerate(flows) if f.definite],
                         key=lambda i: (rets[i], calls[i]))
        self.returns = [rets[i] for i in writers]
        self.calls = [calls[i] for i in writers]
        self.makes = [flows[i].makes for i in writers]
        self.prefix_max = list(accumulate(self.calls, max))

    def latest_call(self, before: float, value: Hashable) -> float:
        k = bisect_left(self.returns, before) - 1
        best = -math.inf
        calls, makes, prefix_max = self.calls, self.makes, self.prefix_max
        while k >= 0 and prefix_max[k] > best:
            if calls[k] > best and not _may_leave(makes[k], value):
                best = calls[k]
            k -= 1
        return best


# Producers of one value (or suffix): sorted keys, the other times, indices,
# and the longest duration among them.
_Group = tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...], float]


def _group(items: list[tuple[float, float, int]]) -> _Group:
    if len(items) == 1:
        key, other, index = items[0]
        return (key,), (other,), (index,), key - other
    items.sort()
    keys, others, indices = zip(*items, strict=True)
    return keys, others, indices, max(k - o for k, o in zip(keys, others, strict=True))


class _Producers:
    """Operations that may leave each value: exact ones by value, appends by
    suffix, keyed by `keys` (returns for completed ones, calls for unknown
    ones; `others` are their calls)."""

    def __init__(self, flows: Sequence[Flow], keys: Sequence[float],
                 others: Sequence[float]) -> None:
        exact: dict[Hashable, list[tuple[float, float, int]]] = {}
        suffix: dict[str, list[tuple[float, float, int]]] = {}
        for index, f in enumerate(flows):
            if f.read_only:
                continue
            makes = f.makes
            table: dict[Any, list[tuple[float, float, int]]] = exact
            if isinstance(makes, Suffix):
                table, makes = suffix, makes.text
            found = table.get(makes)
            if found is None:
                table[makes] = [(keys[index], others[index], index)]
            else:
                found.append((keys[index], others[index], index))
        self.exact = {value: _group(items) for value, items in exact.items()}
        self.suffix = {text: _group(items) for text, items in suffix.items()}
        self.lengths = sorted({len(text) for text in self.suffix})

    def of(self, value: Hashable) -> list[_Group]:
        exact = self.exact.get(value)
        found = [exact] if exact is not None else []
        if self.lengths and isinstance(value, str):
            for length in self.lengths:
                if length > len(value):
                    break
                group = self.suffix.get(value[len(value) - length:])
                if group is not None:
                    found.append(group)
        return found


def analyse(calls: Sequence[float], rets: Sequence[float], flows: Sequence[Flow],
            optional_calls: Sequence[float], optional_flows: Sequence[Flow]) -> ValueFlow:
    """Eligible producers for every consumer among the required operations
    (`calls`, `rets`, `flows`); the optional ones (unknown outcomes, which
    may come at any time after their call) can produce too."""
    overwriters = _Overwriters(calls, rets, flows)
    known = _Producers(flows, rets, calls)
    maybe = _Producers(optional_flows, optional_calls, optional_calls)
    n = len(flows)
    flow = ValueFlow(needs=[f.needs for f in flows], eligible=[0] * n,
                     users_required=[[] for _ in range(n)],
                     users_optional=[[] for _ in optional_flows])
    users_required, users_optional, eligible = (flow.users_required, flow.users_optional,
                                                flow.eligible)
    for r, value in enumerate(flow.needs):
        if value is ANY:
            continue
        call, ret = calls[r], rets[r]
        latest = overwriters.latest_call(call, value)
        count = 0
        for group in known.of(value):
            producer_rets, producer_calls, indices, longest = group
            horizon = ret + longest
            for k in range(bisect_left(producer_rets, latest), len(producer_rets)):
                if producer_rets[k] > horizon:
                    break
                if producer_calls[k] <= ret and indices[k] != r:
                    users_required[indices[k]].append(r)
                    count += 1
        for group in maybe.of(value):
            for k in range(bisect_right(group[0], ret)):
                users_optional[group[2][k]].append(r)
                count += 1
        eligible[r] = count
    return flow


__all__ = ["ValueFlow", "analyse"]
