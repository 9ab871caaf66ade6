"""The search for a linearization of one partition.

Theory of operation
-------------------
This is Wing & Gong's search as Lowe and Porcupine run it: operations wait
in doubly linked lists (by call time, and by return time for the ones that
must be linearized), a node of the search is (the set of operations
linearized so far, the model state), and a move *lifts* one candidate, an
operation whose call comes before the earliest return still pending, when
the model accepts it. Reaching that earliest return with its operation
unlifted is a dead end, and the search backtracks. A cache of (linearized
set, state) pairs keeps it from exploring a node twice; only nodes that
failed go in it, since the linearized set grows along a path, so a node
met again that has not failed would have to be its own ancestor.

On top of that, with the `Flow` hints a model may give (checker.flow):

1. *Closure.* A read-only operation that the current state accepts is
   lifted at once, with no branch: moving it earlier in any linearization
   changes nothing else. Runs of concurrent reads cost one pass.
2. *Optional unknowns.* An operation whose outcome is unknown never has to
   be linearized: if it took no visible effect it can go last. It is only
   tried when it changes the state, and the move after it must use that
   change (an operation the new state accepts and the old one did not, or
   one whose effect differs); otherwise the pair is skipped.
3. *Value flow.* A consumer that has lost all its eligible producers
   (checker.valueflow) can only be served by the current state, so the
   node is dead if the state differs, and no move may change it otherwise.
   With appends, a candidate read whose value does not extend the state is
   dead unless a put can still come first.
4. *Ordering, lazily.* The operation with the earliest return is tried
   first, and the other moves are only worked out if that fails: then the
   producers of the value it needs, then the rest by return time.
5. *Compact cache keys.* One integer per node: the linearized bits above
   the first unlinearized operation, the optional bits, the state's index;
   a key is only built when a failed node had as many operations
   linearized.

Every Ok is replayed against the model and real time by the caller.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from typing import Any

from checker.flow import ANY, BLIND
from checker.history import Operation
from checker.lifting import SearchState
from checker.problem import Outcome, Problem

CLOCK_EVERY = 512  # nodes between deadline checks

Move = tuple[int, Any]  # (required index i, or ~j for optional j; the state after)


class Search(SearchState):
    """One depth-first search over a Problem (see the module docstring)."""

    def __init__(self, problem: Problem, *, deadline: float | None, cache_budget: int,
                 prune: bool = True) -> None:
        super().__init__(problem, prune=prune)
        self.deadline = deadline
        self.cache_budget = cache_budget
        self.nodes = 0
        self.best: list[int] = []
        self.best_state: Any = None
        self.recorded = False
        self.cache: set[int] = set()  # keys of nodes that failed
        self.depths: set[int] = set()  # how many ops those nodes had linearized
        # A frame: [move that led here, state before it, closure lifts, moves,
        # next move, state, more moves to work out, restricted].
        self.frames: list[list[Any]] = []
        self.resume: tuple[Any, int | None, Any, bool] = (problem.model.init(), None, None,
                                                           False)

    def _allowed(self, move: Move, state: Any, before: Any, restricted: bool) -> bool:
        """Value flow and optional-unknown rules on one move."""
        if self.pruning and self.zero.get(state) and move[1] != state \
                and not self._last_doomed(move[0], state):
            return False
        return not restricted or self._uses(move, before, state)

    def first_move(self, state: Any, before: Any, restricted: bool) -> Move | None:
        """The earliest-returning operation, if it can go now."""
        f = self.rnxt[self.n]
        if self.ro[f] or (self.need[f] is not ANY and self.need[f] != state):
            return None
        ok, after = self.step(state, self.inp[f], self.out[f])
        if not ok or not self._allowed((f, after), state, before, restricted):
            return None
        return (f, after)

    def moves(self, state: Any, before: Any, restricted: bool, skip: int) -> list[Move]:
        """Every allowed move but `skip`, best first."""
        n, m, nxt, call, ret = self.n, self.m, self.knxt, self.call, self.ret
        need, ro, inp, out, watch = self.need, self.ro, self.inp, self.out, self.watch
        step = self.step
        frontier_op = self.rnxt[n]
        frontier = ret[frontier_op]
        found: list[Move] = []
        watched: set[Hashable] = set()
        watch_any = False
        i = nxt[n]
        while i != n and call[i] <= frontier:
            if not ro[i] and i != skip:
                needed = need[i]
                if needed is ANY or needed == state:
                    ok, after = step(state, inp[i], out[i])
                    if ok:
                        found.append((i, after))
            if m:
                w = watch[i]
                if w is ANY:
                    watch_any = True
                elif w is not BLIND:
                    watched.add(w)
            i = nxt[i]
        if m:
            self._optional_moves(state, frontier, watched, watch_any, found)
        found = [c for c in found if self._allowed(c, state, before, restricted)]
        if len(found) > 1:
            needed = need[frontier_op]
            ucall = self.ucall

            def priority(move: Move) -> tuple[int, float]:
                ref, after = move
                if ref == frontier_op:
                    return (0, 0.0)
                rank = 1 if needed is not ANY and after == needed else 2
                return (rank, ret[ref]) if ref >= 0 else (rank + 2, ucall[~ref])

            found.sort(key=priority)
        return found

    def _optional_moves(self, state: Any, frontier: float, watched: set[Hashable],
                        watch_any: bool, found: list[Move]) -> None:
        m, nxt, ucall, uinp, uwatch = self.m, self.unxt, self.ucall, self.uinp, self.uwatch
        j = nxt[m]
        while j != m and ucall[j] <= frontier:
            w = uwatch[j]
            if w is ANY:
                watch_any = True
            elif w is not BLIND:
                watched.add(w)
            j = nxt[j]
        useful = watch_any or state in watched
        j = nxt[m]
        while j != m and ucall[j] <= frontier:
            ok, after = self.step(state, uinp[j], None)
            if ok and after != state and (useful or after in watched):
                found.append((~j, after))
            j = nxt[j]

    def _last_doomed(self, ref: int, state: Any) -> bool:
        """Is this the one consumer left that only the current state can serve?"""
        return (ref >= 0 and self.zero[state] == 1 and self.need[ref] == state
                and self.eligible[ref] == 0)

    def _uses(self, move: Move, before: Any, state: Any) -> bool:
        """Does this move depend on the change (before -> state) the optional
        op just made? If it would leave the same state from `before`, the
        optional op was wasted (it can go last); if it keeps both states, the
        two commute (the optional op can go after it)."""
        ref, after = move
        if ref >= 0:
            ok, then = self.step(before, self.inp[ref], self.out[ref])
        else:
            ok, then = self.step(before, self.uinp[~ref], None)
        return not ok or not (then == after or (then == before and after == state))

    # -- the search ------------------------------------------------------------

    def run(self, node_limit: int | None = None) -> Outcome | None:
        """Search on; None if `node_limit` more nodes were not enough (call
        again to go on from there)."""
        cache, frames, n, depths = self.cache, self.frames, self.n, self.depths
        limit = math.inf if node_limit is None else self.nodes + node_limit
        state, ref, before, restricted = self.resume
        while True:
            if self.nodes >= limit:
                self.resume = (state, ref, before, restricted)
                return None
            self.nodes += 1
            if self.nodes % CLOCK_EVERY == 0 and self.deadline is not None \
                    and time.monotonic() > self.deadline:
                return self._stopped("timeout")
            lifted = self.closure(state)
            if self.rnxt[n] == n:
                return Outcome(ok=True, order=self.linearization(), nodes=self.nodes)
            if lifted:
                restricted = False
            moves: list[Move] = []
            more = False
            if not (len(self.path) in depths and self.key(state, before, restricted) in cache) \
                    and not (self.pruning and self.dead(state)):
                first = self.first_move(state, before, restricted)
                more = first is not None
                moves = [first] if first is not None else self.moves(
                    state, before, restricted, -1)
            frames.append([ref, before, lifted, moves, 0, state, more, restricted])
            while frames:
                frame = frames[-1]
                moves, k = frame[3], frame[4]
                if k == len(moves) and frame[6]:
                    frame[6] = False
                    moves += self.moves(frame[5], frame[1], frame[7], moves[0][0])
                if k < len(moves):
                    frame[4] = k + 1
                    ref, state = moves[k]
                    self.lift(ref)
                    before = frame[5]
                    restricted = ref < 0
                    break
                if len(self.path) > len(self.best) or not self.recorded:
                    self.recorded = True
                    self._record(frame[5])
                # Only failed nodes are cached: a node seen before and not failed
                # is an ancestor, and the linearized set grows along a path.
                depths.add(len(self.path))
                cache.add(self.key(frame[5], frame[1], frame[7]))
                if len(cache) > self.cache_budget:
                    return self._stopped(f"cache budget of {self.cache_budget:,} entries "
                                         f"exceeded")
                frames.pop()
                for r in reversed(frame[2]):
                    self.unlift(r)
                if frame[0] is not None:
                    self.unlift(frame[0])
            else:
                return Outcome(ok=False, order=self._ids(self.best), culprit=self.culprit(),
                               nodes=self.nodes)

    def _record(self, state: Any) -> None:
        """Remember the deepest dead end (its culprit is worked out at the end)."""
        self.best = list(self.path)
        self.best_state = state

    def culprit(self) -> int | None:
        """The id of the operation that stopped the deepest dead end: replay
        its path on a fresh search and look there."""
        if not self.recorded:
            return None
        replay = Search(self.p, deadline=None, cache_budget=1, prune=self.pruning)
        for ref in self.best:
            replay.lift(ref)
        if replay.rnxt[replay.n] == replay.n:
            return None
        return self.p.required[replay._culprit(self.best_state)].id

    def _culprit(self, state: Any) -> int:
        n = self.n
        if self.zeros:  # a consumer that has lost its producers, other value first
            bits = self.linearized
            doomed = [r for r in range(n) if self.eligible[r] == 0 and self.need[r] is not ANY
                      and not (bits >> r) & 1]
            for r in doomed:
                if self.need[r] != state:
                    return r
            if doomed:
                return doomed[0]
        if self.extended is not None and isinstance(state, str):
            i, frontier = self.knxt[n], self.ret[self.rnxt[n]]
            while i != n and self.call[i] <= frontier:
                value = self.extended[i]
                if value is not None and not value.startswith(state):
                    return i
                i = self.knxt[i]
        return self.rnxt[n]

    def _stopped(self, reason: str) -> Outcome:
        best = self.best if len(self.best) >= len(self.path) else self.path
        return Outcome(ok=None, order=self._ids(best), reason=reason, nodes=self.nodes)

    def _ids(self, refs: list[int]) -> list[int]:
        req, opt = self.p.required, self.p.optional
        return [req[r].id if r >= 0 else opt[~r].id for r in refs]

    def linearization(self) -> list[int]:
        req, opt = self.p.required, self.p.optional
        path = [req[r] if r >= 0 else opt[~r] for r in self.path]
        return self.p.linearization(path, {opt[~r].id for r in self.path if r < 0})


def sequential(ops: Sequence[Operation], model: Any) -> Outcome | None:
    """When no two operations overlap in time (one client, say), the only
    order is the call order: replay it against the model, which is also its
    verification. None if some do overlap."""
    step = model.step
    state = model.init()
    returned = -math.inf
    for k, op in enumerate(ops):
        if op.call <= returned:
            return None
        returned = op.return_time
        ok, state = step(state, op.input, op.output)
        if not ok:
            for later in ops[k + 1:]:
                if later.call <= returned:
                    return None
                returned = later.return_time
            return Outcome(ok=False, order=[o.id for o in ops[:k]], culprit=op.id, nodes=k + 1)
    return Outcome(ok=True, order=[op.id for op in ops], nodes=len(ops), verified=True)


def search(ops: Sequence[Operation], model: Any, *, deadline: float | None,
           cache_budget: int, hints: bool = True, prune: bool = True) -> Outcome:
    """Search one partition for a linearization."""
    outcome = Search(Problem(ops, model, hints=hints), deadline=deadline,
                     cache_budget=cache_budget, prune=prune).run()
    assert outcome is not None, "no node limit"
    return outcome


__all__ = ["Move", "Outcome", "Problem", "Search", "search", "sequential"]
