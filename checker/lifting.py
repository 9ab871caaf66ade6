"""The state of one partition search: what is linearized, what waits.

Operations wait in doubly linked lists (index n / m is a list's head):
the required ones by call and by return time, the optional ones by call.
Lifting an operation unlinks it, sets its bit in an integer bitset and
updates the value-flow counters (checker.valueflow); unlifting undoes all of
that, in exactly the reverse order (dancing links). `closure` lifts the
read-only operations the state accepts, `key` packs a node into one
integer for the cache, and `dead` applies the value-flow rules.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from checker.flow import ANY, Suffix
from checker.problem import Problem


class SearchState:
    """Lists, bitsets and counters of a search over one Problem."""

    def __init__(self, problem: Problem, *, prune: bool = True) -> None:
        self.p = problem
        self.step = problem.model.step
        req, opt = problem.required, problem.optional
        n = self.n = len(req)
        m = self.m = len(opt)
        self.call = [*problem.calls, math.inf]
        self.ret = [*problem.rets, math.inf]
        self.inp = [op.input for op in req]
        self.out = [op.output for op in req]
        self.ro = [f.read_only for f in problem.req_flows]
        self.need = [f.needs for f in problem.req_flows]
        self.watch = [f.watch for f in problem.req_flows]
        self.ucall = [*problem.optional_calls, math.inf]
        self.uinp = [op.input for op in opt]
        self.uwatch = [f.watch for f in problem.opt_flows]
        self.knxt: list[int] = [*range(1, n + 1), 0]
        self.kprv: list[int] = [n, *range(n)]
        by_ret = sorted(range(n), key=self.ret.__getitem__)
        self.rnxt = [0] * (n + 1)
        self.rprv = [0] * (n + 1)
        for a, b in zip([n, *by_ret], [*by_ret, n], strict=True):
            self.rnxt[a] = b
            self.rprv[b] = a
        self.unxt: list[int] = [*range(1, m + 1), 0]
        self.uprv: list[int] = [m, *range(m)]
        self._value_flow(problem if prune else None)
        self.linearized = 0  # bits of required ops
        self.optional_bits = 0
        self.path: list[int] = []  # required i as i, optional j as ~j
        self.state_ids: dict[Hashable, int] = {}

    def _value_flow(self, problem: Problem | None) -> None:
        flow = problem.value_flow() if problem is not None else None
        self.pruning = flow is not None
        self.eligible = list(flow.eligible) if flow is not None else []
        self.users_required = flow.users_required if flow is not None else []
        self.users_optional = flow.users_optional if flow is not None else []
        self.zero: dict[Hashable, int] = {}
        self.zeros = 0
        for r in range(self.n) if flow is not None else ():
            if self.need[r] is not ANY and self.eligible[r] == 0:
                self._zero_add(self.need[r], 1)
        # Appends: consumers' string values, and the operations that reset.
        self.extended: list[str | None] | None = None
        self.resets: list[tuple[float, int]] = []
        if problem is not None and flow is not None and problem.appends:
            self.extended = [v if isinstance(v, str) else None for v in self.need]
            self.resets = sorted(
                [(self.call[i], i) for i, f in enumerate(problem.req_flows)
                 if not f.read_only and not isinstance(f.makes, Suffix)]
                + [(self.ucall[j], ~j) for j, f in enumerate(problem.opt_flows)
                   if not f.read_only and not isinstance(f.makes, Suffix)])

    # -- lifting ---------------------------------------------------------------

    def _zero_add(self, value: Hashable, delta: int) -> None:
        self.zero[value] = self.zero.get(value, 0) + delta
        self.zeros += delta

    def lift(self, ref: int) -> None:
        self.path.append(ref)
        if ref >= 0:
            i = ref
            self.linearized |= 1 << i
            nxt, prv = self.knxt, self.kprv
            nxt[prv[i]] = nxt[i]
            prv[nxt[i]] = prv[i]
            nxt, prv = self.rnxt, self.rprv
            nxt[prv[i]] = nxt[i]
            prv[nxt[i]] = prv[i]
            if not self.pruning:
                return
            if self.eligible[i] == 0 and self.need[i] is not ANY:
                self._zero_add(self.need[i], -1)
            users = self.users_required[i]
        else:
            j = ~ref
            self.optional_bits |= 1 << j
            nxt, prv = self.unxt, self.uprv
            nxt[prv[j]] = nxt[j]
            prv[nxt[j]] = prv[j]
            if not self.pruning:
                return
            users = self.users_optional[j]
        if users:
            eligible, bits, need = self.eligible, self.linearized, self.need
            for r in users:
                eligible[r] -= 1
                if eligible[r] == 0 and not (bits >> r) & 1:
                    self._zero_add(need[r], 1)

    def unlift(self, ref: int) -> None:
        popped = self.path.pop()
        assert popped == ref, "lifts are undone in reverse order"
        if self.pruning:
            users = self.users_required[ref] if ref >= 0 else self.users_optional[~ref]
            if users:
                eligible, bits, need = self.eligible, self.linearized, self.need
                for r in reversed(users):
                    if eligible[r] == 0 and not (bits >> r) & 1:
                        self._zero_add(need[r], -1)
                    eligible[r] += 1
        if ref >= 0:
            i = ref
            if self.pruning and self.eligible[i] == 0 and self.need[i] is not ANY:
                self._zero_add(self.need[i], 1)
            self.linearized ^= 1 << i
            self.knxt[self.kprv[i]] = i
            self.kprv[self.knxt[i]] = i
            self.rnxt[self.rprv[i]] = i
            self.rprv[self.rnxt[i]] = i
        else:
            j = ~ref
            self.optional_bits ^= 1 << j
            self.unxt[self.uprv[j]] = j
            self.uprv[self.unxt[j]] = j

    # -- one node --------------------------------------------------------------

    def closure(self, state: Any) -> list[int]:
        """Lift every candidate read-only operation the state accepts."""
        lifted: list[int] = []
        n, nxt, call, ret, rnxt = self.n, self.knxt, self.call, self.ret, self.rnxt
        ro, need, inp, out, step = self.ro, self.need, self.inp, self.out, self.step
        frontier = ret[rnxt[n]]
        i = nxt[n]
        while i != n and call[i] <= frontier:
            following = nxt[i]
            if ro[i]:
                needed = need[i]
                if (needed is ANY or needed == state) and step(state, inp[i], out[i])[0]:
                    self.lift(i)
                    lifted.append(i)
                    frontier = ret[rnxt[n]]
            i = following
        return lifted

    def key(self, state: Any, before: Any, restricted: bool) -> int:
        ids = self.state_ids
        sid = ids.get(state)
        if sid is None:
            sid = ids[state] = len(ids)
        tag = 0
        if restricted:  # a different node from the unrestricted one: tag it
            tag = ids.get(before, -1)
            if tag < 0:
                tag = ids[before] = len(ids)
            tag += 1
        lo = self.knxt[self.n]
        packed = ((self.linearized >> lo) << self.m) | self.optional_bits
        return (((packed << 32 | sid) << 32 | tag) << 32) | lo

    def dead(self, state: Any) -> bool:
        """Value flow: some consumer can no longer see its value."""
        if self.zeros > self.zero.get(state, 0):
            return True
        return self.extended is not None and isinstance(state, str) and self._off_prefix(state)

    def _off_prefix(self, state: str) -> bool:
        """With appends only, the state only grows: a candidate consumer whose
        value does not start with the state is lost unless a reset (a put)
        can come first."""
        reset = math.inf
        bits, optional_bits = self.linearized, self.optional_bits
        for call, ref in self.resets:
            if not ((bits >> ref) & 1 if ref >= 0 else (optional_bits >> ~ref) & 1):
                reset = call
                break
        n, nxt, call_of, ret, extended = self.n, self.knxt, self.call, self.ret, self.extended
        assert extended is not None
        frontier = ret[self.rnxt[n]]
        i = nxt[n]
        while i != n and call_of[i] <= frontier:
            value = extended[i]
            if value is not None and reset > ret[i] and not value.startswith(state):
                return True
            i = nxt[i]
        return False



__all__ = ["SearchState"]
