"""Is a history linearizable? The public entry point of the checker.

`check_operations(operations, model)` splits the history with
`model.partition` (P-compositionality: a history is linearizable iff each
partition is), searches each partition (checker.search) and combines the
verdicts: one Illegal partition makes the history Illegal, else one
Unknown makes it Unknown.

Each partition is decided the cheapest way that works: a plain replay when
no two of its operations overlap in time; else a dive of the search without
the value-flow analysis, which finds most linearizations at once; else the
full search. Partitions are checked in order, first each with a small node
budget so a quick Illegal anywhere is found before a hard partition uses up
the time, then the undecided ones with the rest of the time. The first
Illegal ends the check (partitions not yet decided are left out of the
result).
With `jobs > 1` they are checked in that many worker processes instead,
and the first Illegal stops the others.

Every Ok is replayed against the model and real time before it is
returned; the assertion stays on. For an Illegal partition the result
carries the longest linearizable prefix found and a small explanation
(checker.explain). Running out of time, or of cache entries (the bound on
memory), gives Unknown with the reason.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from checker.explain import explain
from checker.history import HistoryError, Operation
from checker.model import Model
from checker.result import CheckResult, PartitionResult, Verdict, combine
from checker.search import Outcome, Problem, Search, sequential

FIRST_PASS_NODES = 4_000  # per partition, before any partition gets the rest of the time
DIVE_NODES = 16  # beyond one node per operation, for the dive without value flow
POLL_S = 0.5  # how often the parent looks at its worker processes


def check_operations(operations: Sequence[Operation], model: Model, *,
                     timeout_s: float | None = None, cache_budget_entries: int = 2_000_000,
                     jobs: int = 1) -> CheckResult:
    """Check a history against a model; see the module docstring."""
    assert timeout_s is None or timeout_s >= 0, "timeout_s must be >= 0"
    assert cache_budget_entries > 0 and jobs >= 1
    started = time.perf_counter()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    if len({op.id for op in operations}) != len(operations):
        raise HistoryError("operation ids must be unique")
    partitions = model.partition(normalize(operations, model))
    if jobs > 1 and len(partitions) > 1:
        results = _check_parallel(partitions, model, deadline, cache_budget_entries, jobs)
    else:
        results = _check_in_order(partitions, model, deadline, cache_budget_entries)
    return CheckResult(verdict=combine([r.verdict for r in results]), partitions=tuple(results),
                       elapsed_s=time.perf_counter() - started, model=model.name)


def normalize(operations: Sequence[Operation], model: Any) -> list[Operation]:
    """Operations with JSON-form inputs/outputs parsed by the model (if it can).
    Compact forms are tuples that start with a string; when every input and
    output is one (or None), nothing is copied."""
    parse_input = getattr(model, "parse_input", None)
    parse_output = getattr(model, "parse_output", None)
    ops = list(operations)
    if parse_input is None or parse_output is None:
        return ops
    values = [op.input for op in ops] + [op.output for op in ops if op.output is not None]
    if set(map(type, values)) <= {tuple} and all(values) \
            and set(map(type, [v[0] for v in values])) <= {str}:
        return ops
    result = []
    for op in ops:
        if _compact(op.input) and (op.output is None or _compact(op.output)):
            result.append(op)
        else:
            output = None if op.unknown else parse_output(op.output)
            result.append(replace(op, input=parse_input(op.input), output=output))
    return result


def _compact(value: Any) -> bool:
    return type(value) is tuple and len(value) > 0 and type(value[0]) is str


def decide(ops: list[Operation], model: Model, deadline: float | None, budget: int,
           node_limit: int | None = None) -> Outcome | None:
    """Search one partition: a replay if nothing overlaps, else a quick dive
    without the value-flow analysis (enough for most linearizable
    histories), else the full search. None if `node_limit` nodes of the
    full search were not enough."""
    outcome = sequential(ops, model)
    if outcome is not None:
        return outcome
    problem = Problem(ops, model)
    if problem.hinted:
        dive = Search(problem, deadline=deadline, cache_budget=budget, prune=False)
        outcome = dive.run(len(ops) + DIVE_NODES)
        if outcome is not None and outcome.ok is not False:
            return outcome
    return Search(problem, deadline=deadline, cache_budget=budget).run(node_limit)


def _check_in_order(partitions: list[tuple[str, list[Operation]]], model: Model,
                    deadline: float | None, budget: int) -> list[PartitionResult]:
    results: dict[int, PartitionResult] = {}
    undecided: list[int] = []
    first_pass = FIRST_PASS_NODES if len(partitions) > 1 else None
    for index, (name, ops) in enumerate(partitions):
        started = time.perf_counter()
        outcome = decide(ops, model, deadline, budget, first_pass)
        if outcome is None:
            undecided.append(index)  # dropped: memory stays with one search at a time
            continue
        results[index] = finish(name, ops, model, outcome,
                                elapsed_s=time.perf_counter() - started, deadline=deadline)
        if results[index].verdict is Verdict.ILLEGAL:
            return [results[i] for i in sorted(results)]
    for index in undecided:
        name, ops = partitions[index]
        results[index] = check_partition(name, ops, model, deadline, budget)
        if results[index].verdict is Verdict.ILLEGAL:
            break
    return [results[i] for i in sorted(results)]


def check_partition(name: str, ops: list[Operation], model: Model, deadline: float | None,
                    budget: int) -> PartitionResult:
    """Search, verify and explain one partition."""
    started = time.perf_counter()
    outcome = decide(ops, model, deadline, budget)
    assert outcome is not None
    return finish(name, ops, model, outcome, elapsed_s=time.perf_counter() - started,
                  deadline=deadline)


def finish(name: str, ops: list[Operation], model: Model, outcome: Outcome, *,
           elapsed_s: float, deadline: float | None) -> PartitionResult:
    """The PartitionResult of a search outcome: verified if Ok, explained if Illegal."""
    if outcome.ok:
        if not outcome.verified:
            verify(ops, outcome.order, model)
        return PartitionResult(name=name, verdict=Verdict.OK, operations=len(ops),
                               linearization=tuple(outcome.order), elapsed_s=elapsed_s,
                               states_explored=outcome.nodes)
    if outcome.ok is None:
        return PartitionResult(name=name, verdict=Verdict.UNKNOWN, operations=len(ops),
                               linearization=tuple(outcome.order), reason=outcome.reason,
                               elapsed_s=elapsed_s, states_explored=outcome.nodes)
    started = time.perf_counter()
    prefix, core, reason = explain(ops, model, outcome, deadline)
    return PartitionResult(name=name, verdict=Verdict.ILLEGAL, operations=len(ops),
                           linearization=tuple(prefix), explanation=tuple(core), reason=reason,
                           elapsed_s=elapsed_s + time.perf_counter() - started,
                           states_explored=outcome.nodes)


def verify(ops: Sequence[Operation], order: Sequence[int], model: Model) -> None:
    """Assert that `order` linearizes `ops`: each once, real time kept, model agrees."""
    by_id = {op.id: op for op in ops}
    assert len(order) == len(by_id) == len(set(order)) and set(order) == set(by_id), \
        "a linearization holds every operation once"
    state = model.init()
    latest_call = -math.inf
    for op_id in order:
        op = by_id[op_id]
        assert op.return_time >= latest_call, \
            f"operation {op_id} returned before an operation placed ahead of it was called"
        latest_call = max(latest_call, op.call)
        ok, state = model.step(state, op.input, op.output)
        assert ok, f"the model rejects operation {op_id} where the linearization puts it"


# -- worker processes --------------------------------------------------------------


def _worker(tasks: Any, results: Any, model: Model, deadline: float | None,
            budget: int) -> None:
    while True:
        task = tasks.get()
        if task is None:
            return
        index, name, ops = task
        results.put((index, check_partition(name, ops, model, deadline, budget)))


def _check_parallel(partitions: list[tuple[str, list[Operation]]], model: Model,
                    deadline: float | None, budget: int, jobs: int) -> list[PartitionResult]:
    methods = multiprocessing.get_all_start_methods()
    context: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    tasks, answers = context.Queue(), context.Queue()
    for index, (name, ops) in enumerate(partitions):
        tasks.put((index, name, ops))
    workers = [context.Process(target=_worker, args=(tasks, answers, model, deadline, budget),
                               daemon=True) for _ in range(min(jobs, len(partitions)))]
    for _ in workers:
        tasks.put(None)
    for worker in workers:
        worker.start()
    results: dict[int, PartitionResult] = {}
    try:
        while len(results) < len(partitions):
            try:
                index, result = answers.get(timeout=POLL_S)
            except queue.Empty:
                if not any(worker.is_alive() for worker in workers):
                    raise RuntimeError("every checker worker process exited early") from None
                continue
            results[index] = result
            if result.verdict is Verdict.ILLEGAL:
                break
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        for worker in workers:
            worker.join()
        for channel in (tasks, answers):  # nothing left to flush at exit
            channel.cancel_join_thread()
            channel.close()
    return [results[i] for i in sorted(results)]


__all__ = ["check_operations", "check_partition", "normalize", "verify"]
