"""checker.models: the register, kv and power-set models, their JSON forms and flows."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.flow import ANY, BLIND, KEEPS, OPAQUE, Flow, Suffix
from checker.history import UNKNOWN_RETURN, HistoryError, Operation, freeze
from checker.model import Model
from checker.models import FAIL, MODELS, OK, KVModel, PowerSetModel, RegisterModel

REGISTER = RegisterModel()
KV = KVModel()


def op(input: Any, output: Any = OK, *, unknown: bool = False, id: int = 0) -> Operation:
    if unknown:
        return Operation(id=id, client=0, input=input, call=0, unknown=True)
    return Operation(id=id, client=0, input=input, call=0, output=output, return_time=1)


def test_models_table_holds_register_and_kv() -> None:
    assert MODELS["register"].name == "register"
    assert MODELS["kv"].name == "kv"
    model: Model = PowerSetModel(REGISTER)
    assert model.name == "powerset(register)"


@pytest.mark.parametrize(("state", "input", "output", "expected"), [
    (None, ("read",), ("value", None), (True, None)),
    (None, ("read",), ("value", 3), (False, None)),
    (3, ("read",), ("value", 3), (True, 3)),
    (3, ("read",), None, (True, 3)),
    (3, ("write", 1), OK, (True, 1)),
    (3, ("write", 1), None, (True, 1)),
    (3, ("cas", 3, 4), OK, (True, 4)),
    (3, ("cas", 3, 4), FAIL, (False, 4)),
    (2, ("cas", 3, 4), FAIL, (True, 2)),
    (2, ("cas", 3, 4), OK, (False, 2)),
    (3, ("cas", 3, 4), None, (True, 4)),
    (2, ("cas", 3, 4), None, (True, 2)),
])
def test_register_step(state: Any, input: Any, output: Any, expected: tuple[bool, Any]) -> None:
    ok, after = REGISTER.step(state, input, output)
    assert ok == expected[0]
    if ok:
        assert after == expected[1]


@pytest.mark.parametrize(("state", "input", "output", "expected"), [
    ("", ("get", "k"), ("value", ""), (True, "")),
    ("a", ("get", "k"), ("value", ""), (False, "a")),
    ("a", ("get", "k"), None, (True, "a")),
    ("a", ("put", "k", "b"), OK, (True, "b")),
    ("a", ("append", "k", "b"), OK, (True, "ab")),
    ("a", ("delete", "k"), OK, (True, "")),
    ("a", ("cas", "k", "a", "c"), OK, (True, "c")),
    ("a", ("cas", "k", "b", "c"), FAIL, (True, "a")),
    ("a", ("cas", "k", "b", "c"), OK, (False, "a")),
    ("b", ("cas", "k", "b", "c"), None, (True, "c")),
])
def test_kv_step(state: Any, input: Any, output: Any, expected: tuple[bool, Any]) -> None:
    ok, after = KV.step(state, input, output)
    assert ok == expected[0]
    if ok:
        assert after == expected[1]


def test_kv_partitions_by_key_in_key_order() -> None:
    ops = [Operation(id=i, client=0, input=("put", key, "v"), call=i, output=OK,
                     return_time=i + 0.5) for i, key in enumerate(["b", "a", "b"])]
    parts = KV.partition(ops)
    assert [name for name, _ in parts] == ["key 'a'", "key 'b'"]
    assert [o.id for o in parts[1][1]] == [0, 2]
    assert REGISTER.partition(ops) == [("register", ops)]


@pytest.mark.parametrize(("json_input", "compact"), [
    ({"f": "read"}, ("read",)),
    ({"f": "write", "value": 3}, ("write", 3)),
    ({"f": "cas", "from": 1, "to": 2}, ("cas", 1, 2)),
])
def test_register_parses_json_inputs(json_input: dict[str, Any], compact: Any) -> None:
    assert REGISTER.parse_input(json_input) == compact
    assert REGISTER.parse_input(freeze(json_input)) == compact
    assert REGISTER.parse_input(compact) == compact


@pytest.mark.parametrize(("json_input", "compact"), [
    ({"f": "get", "key": "a"}, ("get", "a")),
    ({"f": "put", "key": "a", "value": "x"}, ("put", "a", "x")),
    ({"f": "append", "key": "a", "value": "x"}, ("append", "a", "x")),
    ({"f": "delete", "key": "a"}, ("delete", "a")),
    ({"f": "cas", "key": "a", "from": "x", "to": "y"}, ("cas", "a", "x", "y")),
])
def test_kv_parses_json_inputs(json_input: dict[str, Any], compact: Any) -> None:
    assert KV.parse_input(json_input) == compact
    assert KV.parse_input(freeze(json_input)) == compact
    assert KV.parse_input(compact) == compact


@pytest.mark.parametrize(("json_output", "compact"), [
    ({"value": 3}, ("value", 3)),
    ({"value": None}, ("value", None)),
    ({}, OK),
    ({"ok": True}, OK),
    ({"ok": False}, FAIL),
    ({"unknown": True}, None),
    (None, None),
    (("value", "x"), ("value", "x")),
])
def test_outputs_parse_for_both_models(json_output: Any, compact: Any) -> None:
    for model in (REGISTER, KV):
        assert model.parse_output(json_output) == compact
        if isinstance(json_output, dict):
            assert model.parse_output(freeze(json_output)) == compact


@pytest.mark.parametrize("bad", [{"f": "jump"}, {"value": 3}, {"f": "write"}, 7, "read"])
def test_bad_register_inputs_raise_history_error(bad: Any) -> None:
    with pytest.raises(HistoryError):
        REGISTER.parse_input(bad)


@pytest.mark.parametrize("bad", [{"f": "get"}, {"f": "put", "key": "a"}, {"f": "x", "key": "a"}])
def test_bad_kv_inputs_raise_history_error(bad: Any) -> None:
    with pytest.raises(HistoryError):
        KV.parse_input(bad)


def test_bad_outputs_raise_history_error() -> None:
    with pytest.raises(HistoryError):
        REGISTER.parse_output({"weird": 1})
    with pytest.raises(HistoryError):
        KV.parse_output(5)


def test_descriptions() -> None:
    assert REGISTER.describe_operation(("read",), ("value", None)) == "read() -> nil"
    assert REGISTER.describe_operation(("read",), None) == "read() -> ?"
    assert REGISTER.describe_operation(("write", 3), OK) == "write(3)"
    assert REGISTER.describe_operation(("cas", 1, 2), FAIL) == "cas(1, 2) -> fail"
    assert REGISTER.describe_state(None) == "nil"
    assert KV.describe_operation(("get", "k"), ("value", "x")) == "get('k') -> 'x'"
    assert KV.describe_operation(("append", "k", "x"), OK) == "append('k', 'x')"
    assert KV.describe_operation(("cas", "k", "a", "b"), OK) == "cas('k', 'a', 'b') -> ok"
    assert KV.describe_operation(("delete", "k"), OK) == "delete('k')"
    assert KV.describe_state("ab") == "'ab'"
    assert PowerSetModel(REGISTER).describe_state(frozenset({1, None})) == "{1 | nil}"


# -- flows tell the truth about step ----------------------------------------------

REGISTER_VALUES = [None, 0, 1, 2]
KV_VALUES = ["", "a", "b", "ab", "ba"]


def register_ops() -> st.SearchStrategy[Operation]:
    value = st.sampled_from(REGISTER_VALUES[1:])
    inputs = st.one_of(st.just(("read",)), st.tuples(st.just("write"), value),
                       st.tuples(st.just("cas"), value, value))
    return st.builds(_with_output, inputs, st.sampled_from(REGISTER_VALUES),
                     st.sampled_from(["ok", "fail", "unknown", "lost"]))


def kv_ops() -> st.SearchStrategy[Operation]:
    value = st.sampled_from(KV_VALUES)
    inputs = st.one_of(st.tuples(st.just("get"), st.just("k")),
                       st.tuples(st.just("put"), st.just("k"), value),
                       st.tuples(st.just("append"), st.just("k"), value),
                       st.tuples(st.just("delete"), st.just("k")),
                       st.tuples(st.just("cas"), st.just("k"), value, value))
    return st.builds(_with_output, inputs, st.sampled_from(KV_VALUES),
                     st.sampled_from(["ok", "fail", "unknown", "lost"]))


def _with_output(input: Any, read: Any, outcome: str) -> Operation:
    if outcome == "lost":
        return op(input, unknown=True)
    if outcome == "unknown":
        return op(input, None)
    if input[0] in ("read", "get"):
        return op(input, ("value", read))
    return op(input, FAIL if outcome == "fail" and input[0] == "cas" else OK)


def check_flow(model: Any, operation: Operation, states: list[Any]) -> None:
    f: Flow = model.flow(operation)
    f.check()
    results = [model.step(s, operation.input, operation.output) for s in states]
    for state, (ok, after) in zip(states, results, strict=True):
        if operation.output is None:
            assert ok, "unknown outcomes are accepted in every state"
        if not ok:
            if f.free:
                raise AssertionError("a free operation is accepted everywhere")
            continue
        if f.read_only:
            assert after == state
        if f.needs is not ANY:
            assert state == f.needs
        if after != state:
            assert f.makes not in (KEEPS,)
            if isinstance(f.makes, Suffix):
                assert after == state + f.makes.text
            elif f.makes is not OPAQUE:
                assert after == f.makes
        if f.definite:
            if isinstance(f.makes, Suffix):
                assert after == state + f.makes.text
            else:
                assert after == f.makes
    if f.watch is BLIND:
        assert len({(ok, after) for ok, after in results}) == 1


@given(register_ops())
@settings(max_examples=300, deadline=None)
def test_register_flows_agree_with_step(operation: Operation) -> None:
    check_flow(REGISTER, operation, [*REGISTER_VALUES, 4])


@given(kv_ops())
@settings(max_examples=300, deadline=None)
def test_kv_flows_agree_with_step(operation: Operation) -> None:
    check_flow(KV, operation, [*KV_VALUES, "abab"])


def test_unknown_outcome_op_has_unknown_return() -> None:
    lost = op(("write", 1), unknown=True)
    assert lost.return_time == UNKNOWN_RETURN
    assert not REGISTER.flow(lost).definite
    assert REGISTER.flow(op(("write", 1))).definite


# -- the power-set model ----------------------------------------------------------


class Coin:
    """A nondeterministic toy: 'flip' lands on 0 or 1; 'look' sees the coin."""

    name = "coin"

    def init(self) -> Any:
        return 0

    def step_all(self, state: Any, input: Any, output: Any) -> list[Any]:
        if input == ("flip",):
            return [0, 1]
        return [state] if output is None or output == ("value", state) else []

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        raise AssertionError("the power set model uses step_all")

    def partition(self, operations: Any) -> list[tuple[str, list[Operation]]]:
        return [("coin", list(operations))]

    def describe_operation(self, input: Any, output: Any) -> str:
        return f"{input[0]} -> {output}"

    def describe_state(self, state: Any) -> str:
        return str(state)


def test_power_set_model_keeps_every_possible_state() -> None:
    model = PowerSetModel(Coin())
    state = model.init()
    assert state == frozenset({0})
    ok, state = model.step(state, ("flip",), OK)
    assert ok and state == frozenset({0, 1})
    ok, narrowed = model.step(state, ("look",), ("value", 1))
    assert ok and narrowed == frozenset({1})
    ok, _ = model.step(narrowed, ("look",), ("value", 0))
    assert not ok
    assert model.partition([]) == [("coin", [])]
    assert model.describe_operation(("look",), 1) == "look -> 1"


def test_power_set_of_a_deterministic_model_passes_parsing_through() -> None:
    model = PowerSetModel(REGISTER)
    assert model.parse_input({"f": "write", "value": 1}) == ("write", 1)
    assert model.parse_output({"ok": True}) == OK
    ok, state = model.step(model.init(), ("write", 1), OK)
    assert ok and state == frozenset({1})
    assert PowerSetModel(Coin()).parse_input(("look",)) == ("look",)
