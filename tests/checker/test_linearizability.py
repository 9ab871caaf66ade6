"""checker.linearizability: verdicts, explanations, budgets, and agreement with brute force."""

from __future__ import annotations

import random
from typing import Any

import pytest
from brute_force import linearizable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.history import HistoryError, Operation
from checker.linearizability import check_operations, normalize, verify
from checker.models import FAIL, OK, KVModel, PowerSetModel, RegisterModel
from checker.problem import place_free
from checker.result import Verdict
from checker.search import search

REGISTER = RegisterModel()
KV = KVModel()


def done(id: int, input: Any, output: Any, call: float, ret: float, *,
         client: int = 0) -> Operation:
    return Operation(id=id, client=client, input=input, call=call, output=output,
                     return_time=ret)


def lost(id: int, input: Any, call: float) -> Operation:
    return Operation(id=id, client=id, input=input, call=call, unknown=True)


def read(id: int, value: Any, call: float, ret: float) -> Operation:
    return done(id, ("read",), ("value", value), call, ret)


def write(id: int, value: Any, call: float, ret: float) -> Operation:
    return done(id, ("write", value), OK, call, ret)


# -- small cases ------------------------------------------------------------------


def test_empty_history_is_ok() -> None:
    result = check_operations([], REGISTER)
    assert result.verdict is Verdict.OK and result.model == "register"


def test_concurrent_write_and_reads_are_ok() -> None:
    ops = [write(0, 1, 0, 10), read(1, None, 1, 2), read(2, 1, 3, 4), read(3, 1, 11, 12)]
    result = check_operations(ops, REGISTER)
    assert result.verdict is Verdict.OK
    (part,) = result.partitions
    assert sorted(part.linearization) == [0, 1, 2, 3]
    assert part.linearization.index(1) < part.linearization.index(0)


def test_stale_read_is_illegal_with_its_explanation() -> None:
    ops = [write(0, 1, 0, 1), write(1, 2, 2, 3), read(2, 1, 4, 5), read(3, 2, 6, 7)]
    result = check_operations(ops, REGISTER)
    assert result.verdict is Verdict.ILLEGAL
    (part,) = result.failing
    assert set(part.explanation) == {0, 1, 2}
    assert "operation 2 (read() -> 1)" in part.reason
    assert part.linearization == (0, 1), "the longest prefix avoiding the stale read"


def test_unknown_write_may_have_happened_or_not() -> None:
    maybe = lost(0, ("write", 7), 0)
    assert check_operations([maybe, read(1, 7, 5, 6)], REGISTER).verdict is Verdict.OK
    assert check_operations([maybe, read(1, None, 5, 6)], REGISTER).verdict is Verdict.OK
    seen = [maybe, read(1, 7, 5, 6), read(2, None, 7, 8)]
    assert check_operations(seen, REGISTER).verdict is Verdict.ILLEGAL


def test_timed_out_read_constrains_nothing_but_keeps_its_place() -> None:
    ops = [write(0, 1, 0, 1), done(1, ("read",), None, 2, 3), read(2, 1, 4, 5)]
    result = check_operations(ops, REGISTER)
    assert result.verdict is Verdict.OK
    assert result.partitions[0].linearization == (0, 1, 2)


def test_cas_chain_with_failed_cas() -> None:
    ops = [write(0, 1, 0, 1), done(1, ("cas", 1, 2), OK, 2, 5),
           done(2, ("cas", 1, 3), FAIL, 3, 4), read(3, 2, 6, 7)]
    assert check_operations(ops, REGISTER).verdict is Verdict.OK
    bad = [*ops[:3], read(3, 3, 6, 7)]
    assert check_operations(bad, REGISTER).verdict is Verdict.ILLEGAL


def test_kv_checks_keys_separately_and_stops_at_the_first_illegal() -> None:
    ops = [done(0, ("put", "a", "x"), OK, 0, 1), done(1, ("get", "a"), ("value", "x"), 2, 3),
           done(2, ("append", "b", "y"), OK, 0, 1), done(3, ("get", "b"), ("value", "z"), 2, 3),
           done(4, ("get", "c"), ("value", ""), 0, 1)]
    result = check_operations(ops, KV)
    assert result.verdict is Verdict.ILLEGAL
    assert [p.name for p in result.partitions] == ["key 'a'", "key 'b'"]
    ok = check_operations([o for o in ops if o.id != 3], KV)
    assert ok.verdict is Verdict.OK and len(ok.partitions) == 3


def test_json_inputs_are_parsed_by_the_model() -> None:
    ops = [done(0, {"f": "write", "value": 3}, {}, 0, 1),
           done(1, {"f": "read"}, {"value": 3}, 2, 3)]
    assert [o.input for o in normalize(ops, REGISTER)] == [("write", 3), ("read",)]
    assert check_operations(ops, REGISTER).verdict is Verdict.OK


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(HistoryError, match="unique"):
        check_operations([write(0, 1, 0, 1), read(0, 1, 2, 3)], REGISTER)


def test_verify_rejects_bad_linearizations() -> None:
    ops = [write(0, 1, 0, 1), read(1, 1, 2, 3)]
    verify(ops, [0, 1], REGISTER)
    with pytest.raises(AssertionError, match="returned before"):
        verify([write(0, 1, 0, 1), read(1, None, 2, 3)], [1, 0], REGISTER)
    with pytest.raises(AssertionError, match="once"):
        verify(ops, [0], REGISTER)
    with pytest.raises(AssertionError, match="rejects"):
        verify([write(0, 1, 0, 1), read(1, 2, 2, 3)], [0, 1], REGISTER)


def test_free_operations_are_placed_after_what_returned_before_them() -> None:
    ops = [write(0, 1, 0, 1), write(1, 2, 5, 6)]
    free = [done(2, ("read",), None, 2, 3), done(3, ("read",), None, 0.5, 8)]
    assert [o.id for o in place_free(ops, free)] == [3, 0, 2, 1]


def test_power_set_model_agrees_with_the_deterministic_one() -> None:
    ops = [write(0, 1, 0, 10), read(1, 1, 1, 2), read(2, None, 3, 4)]
    assert check_operations(ops, PowerSetModel(REGISTER)).verdict is Verdict.ILLEGAL
    assert check_operations(ops[:2], PowerSetModel(REGISTER)).verdict is Verdict.OK


# -- budgets ------------------------------------------------------------------------


def hard_history(clients: int = 12, rounds: int = 6, seed: int = 1) -> list[Operation]:
    """Many overlapping writes and a final read of nil: Illegal, but only
    after a search over many orders when the hints are off."""
    rng = random.Random(seed)
    ops = []
    for k in range(clients * rounds):
        call = k // clients * 10 + rng.random()
        ops.append(write(k, rng.randrange(3), call, call + 25))
    ops.append(read(len(ops), 9, 1000, 1001))
    return ops


def test_timeout_gives_unknown_with_the_reason() -> None:
    outcome = search(hard_history(), REGISTER, deadline=0.0, cache_budget=10**6, hints=False)
    assert outcome.ok is None and outcome.reason == "timeout"
    result = check_operations(hard_history(), PowerSetModel(REGISTER), timeout_s=0.0)
    assert result.verdict is Verdict.UNKNOWN
    assert result.partitions[0].reason == "timeout"


def test_cache_budget_gives_unknown_with_the_reason() -> None:
    result = check_operations(hard_history(), PowerSetModel(REGISTER), cache_budget_entries=50)
    assert result.verdict is Verdict.UNKNOWN
    assert "cache budget of 50 entries exceeded" in result.partitions[0].reason


def test_hints_decide_the_hard_history_at_once() -> None:
    result = check_operations(hard_history(), REGISTER, cache_budget_entries=50)
    assert result.verdict is Verdict.ILLEGAL


def test_a_quick_illegal_partition_wins_over_a_hard_one() -> None:
    hard = [done(op.id, ("put", "a", str(op.input[1])), OK, op.call, op.return_time)
            for op in hard_history()[:-1]]
    hard.append(done(len(hard), ("get", "a"), ("value", "z"), 1000, 1001))
    bad = [done(1000, ("put", "b", "x"), OK, 0, 1), done(1001, ("get", "b"), ("value", "y"), 2, 3)]
    result = check_operations(hard + bad, PowerSetModel(KV), timeout_s=30)
    assert result.verdict is Verdict.ILLEGAL
    assert [p.name for p in result.partitions] == ["key 'b'"]


def test_without_hints_the_explanation_is_the_culprit_and_its_rivals() -> None:
    ops = [write(0, 1, 0, 10), write(1, 2, 0, 10), read(2, 3, 5, 6)]
    result = check_operations(ops, PowerSetModel(REGISTER))
    (failing,) = result.failing
    assert 2 in failing.explanation and "concurrent" in failing.reason
    assert set(failing.explanation) == {0, 1, 2}


def test_the_prefix_of_an_illegal_history_replays() -> None:
    ops = [write(0, 1, 0, 2), read(1, 1, 1, 3), write(2, 2, 4, 6), read(3, 2, 5, 7),
           read(4, 1, 8, 9), write(5, 3, 10, 11)]
    (failing,) = check_operations(ops, REGISTER).failing
    by_id = {op.id: op for op in ops}
    state = REGISTER.init()
    for op_id in failing.linearization:
        ok, state = REGISTER.step(state, by_id[op_id].input, by_id[op_id].output)
        assert ok
    assert failing.linearization == (0, 1, 2, 3)
    assert 4 in failing.explanation


def test_parallel_jobs_agree_and_illegal_wins() -> None:
    keys = "abcdef"
    ops = []
    for k, key in enumerate(keys):
        ops.append(done(2 * k, ("put", key, "v"), OK, 0, 1))
        ops.append(done(2 * k + 1, ("get", key), ("value", "w" if key == "d" else "v"), 2, 3))
    parallel = check_operations(ops, KV, jobs=2)
    assert parallel.verdict is Verdict.ILLEGAL
    assert [p.name for p in parallel.failing] == ["key 'd'"]
    good = [o for o in ops if o.id != 7]
    result = check_operations(good, KV, jobs=2)
    assert result.verdict is Verdict.OK and len(result.partitions) == len(keys)


# -- random histories ---------------------------------------------------------------


@st.composite
def sequential_history(draw: st.DrawFn, kv: bool, most: int = 40) -> list[Operation]:
    """A history from one sequential run of the model, each operation's
    interval stretched around its point in that run."""
    model = KV if kv else REGISTER
    count = draw(st.integers(1, most))
    states: dict[str, Any] = {}
    ops = []
    for k in range(count):
        key = draw(st.sampled_from("ab")) if kv else "r"
        state = states.get(key, model.init())
        input = _random_input(draw, kv, key, state)
        effect = draw(st.sampled_from(["done", "done", "done", "lost", "lost-no-effect",
                                       "timed-out"]))
        point = 10 * k + 5
        call = point - draw(st.integers(0, 40))
        if effect == "lost-no-effect":
            ops.append(lost(k, input, call))
            continue
        ok, after = model.step(state, input, None)
        assert ok
        output = _output(input, state, after)
        states[key] = after
        if effect == "lost":
            ops.append(lost(k, input, call))
        else:
            ret = point + draw(st.integers(0, 40))
            unknown_output = effect == "timed-out" and input[0] in ("read", "get", "cas")
            ops.append(done(k, input, None if unknown_output else output, call, ret, client=k))
    return ops


def _random_input(draw: st.DrawFn, kv: bool, key: str, state: Any) -> Any:
    if not kv:
        value = draw(st.integers(0, 3))
        old = draw(st.sampled_from([value, state if state is not None else 0]))
        return draw(st.sampled_from([("read",), ("write", value), ("cas", old, value)]))
    text = draw(st.sampled_from(["x", "y", "z", "xy"]))
    return draw(st.sampled_from([("get", key), ("put", key, text), ("append", key, text),
                                 ("delete", key), ("cas", key, state, text),
                                 ("cas", key, text, state)]))


def _output(input: Any, state: Any, after: Any) -> Any:
    if input[0] in ("read", "get"):
        return ("value", state)
    if input[0] == "cas":
        expected = input[1] if len(input) == 3 else input[2]
        return OK if state == expected else FAIL
    return OK


@given(sequential_history(kv=False))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_register_histories_from_a_sequential_run_are_ok(ops: list[Operation]) -> None:
    assert check_operations(ops, REGISTER).verdict is Verdict.OK


@given(sequential_history(kv=True))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_kv_histories_from_a_sequential_run_are_ok(ops: list[Operation]) -> None:
    assert check_operations(ops, KV).verdict is Verdict.OK


def _corrupt(draw: st.DrawFn, op: Operation, kv: bool) -> Operation:
    if op.unknown:
        return op
    if op.input[0] in ("read", "get"):
        values = ["", "x", "y", "xy", "z", "yx"] if kv else [None, 0, 1, 2, 3]
        output = ("value", draw(st.sampled_from(values)))
    elif op.input[0] == "cas":
        output = FAIL if op.output == OK else OK
    else:
        return op
    return done(op.id, op.input, output, op.call, op.return_time, client=op.client)


@st.composite
def small_corrupted(draw: st.DrawFn, kv: bool) -> list[Operation]:
    ops = draw(sequential_history(kv=kv, most=7))
    k = draw(st.integers(0, len(ops) - 1))
    ops[k] = _corrupt(draw, ops[k], kv)
    return ops


@given(small_corrupted(kv=False))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_register_agrees_with_brute_force(ops: list[Operation]) -> None:
    expected = linearizable(ops, REGISTER)
    result = check_operations(ops, REGISTER)
    assert (result.verdict is Verdict.OK) == expected
    assert result.verdict is not Verdict.UNKNOWN
    plain = search(ops, REGISTER, deadline=None, cache_budget=10**6, hints=False)
    assert plain.ok == expected


@given(small_corrupted(kv=True))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_kv_agrees_with_brute_force(ops: list[Operation]) -> None:
    expected = linearizable(ops, KV)
    result = check_operations(ops, KV)
    assert (result.verdict is Verdict.OK) == expected
    assert result.verdict is not Verdict.UNKNOWN


@st.composite
def arbitrary_register(draw: st.DrawFn) -> list[Operation]:
    """Random operations with random outputs: mostly Illegal, sometimes not."""
    ops = []
    for k in range(draw(st.integers(1, 7))):
        call = draw(st.integers(0, 30))
        input = draw(st.sampled_from([("read",), ("write", 1), ("write", 2), ("cas", 1, 2),
                                      ("cas", 2, 1), ("cas", None, 1)]))
        if draw(st.integers(0, 4)) == 0:
            ops.append(lost(k, input, call))
            continue
        if input[0] == "read":
            output = ("value", draw(st.sampled_from([None, 1, 2])))
        elif input[0] == "cas":
            output = draw(st.sampled_from([OK, FAIL, None]))
        else:
            output = OK
        ops.append(done(k, input, output, call, call + draw(st.integers(0, 15))))
    return ops


@given(arbitrary_register())
@settings(max_examples=500, deadline=None)
def test_arbitrary_register_histories_agree_with_brute_force(ops: list[Operation]) -> None:
    expected = linearizable(ops, REGISTER)
    result = check_operations(ops, REGISTER)
    assert (result.verdict is Verdict.OK) == expected
    if expected:
        (part,) = result.partitions
        verify(ops, part.linearization, REGISTER)
    else:
        assert result.failing[0].explanation


@st.composite
def arbitrary_kv(draw: st.DrawFn) -> list[Operation]:
    """Random appends, puts and gets on one key with random outputs."""
    texts = ["", "x", "y", "xy", "yx", "xx"]
    ops = []
    for k in range(draw(st.integers(1, 7))):
        call = draw(st.integers(0, 30))
        text = draw(st.sampled_from(texts[1:3]))
        input = draw(st.sampled_from([("get", "k"), ("put", "k", text), ("append", "k", text),
                                      ("delete", "k"), ("cas", "k", text, "y")]))
        if draw(st.integers(0, 4)) == 0:
            ops.append(lost(k, input, call))
            continue
        if input[0] == "get":
            output = ("value", draw(st.sampled_from(texts)))
        elif input[0] == "cas":
            output = draw(st.sampled_from([OK, FAIL, None]))
        else:
            output = OK
        ops.append(done(k, input, output, call, call + draw(st.integers(0, 15))))
    return ops


@given(arbitrary_kv())
@settings(max_examples=500, deadline=None)
def test_arbitrary_kv_histories_agree_with_brute_force(ops: list[Operation]) -> None:
    expected = linearizable(ops, KV)
    assert (check_operations(ops, KV).verdict is Verdict.OK) == expected


@st.composite
def medium_corrupted(draw: st.DrawFn, kv: bool) -> list[Operation]:
    ops = draw(sequential_history(kv=kv, most=24))
    k = draw(st.integers(0, len(ops) - 1))
    ops[k] = _corrupt(draw, ops[k], kv)
    return ops


@pytest.mark.parametrize("kv", [False, True], ids=["register", "kv"])
def test_medium_histories_agree_with_the_plain_search(kv: bool) -> None:
    """Beyond brute force's reach: the plain Porcupine-style search (no hints,
    no pruning, every unknown outcome linearized) is the reference."""
    model = KV if kv else REGISTER

    @given(medium_corrupted(kv=kv))
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def agree(ops: list[Operation]) -> None:
        plain = all(search(part, model, deadline=None, cache_budget=10**7, hints=False).ok
                    for _, part in model.partition(ops))
        assert (check_operations(ops, model).verdict is Verdict.OK) == plain

    agree()
