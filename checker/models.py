"""Sequential specifications the linearizability checker searches against.

Every model here is pure and implements `checker.model.Model`. Inputs and
outputs are compact tuples (what the readers in `checker.readers` produce);
`parse_input` / `parse_output` turn the JSON forms of a JSONL history into
them (and pass compact tuples through unchanged, so they are idempotent).
An output of `None` means "outcome unknown" (the call timed out or the
client crashed): the operation is accepted in every state and, for a write
or cas, may take effect, which is Porcupine's treatment of unknown outcomes.

JSON schema, per model (`input` / `output` of a JSONL "op" line):

register (Porcupine's etcd register: one value, initially nil = null)
    {"f": "read"}                      -> {"value": 3} or {"value": null}
    {"f": "write", "value": 3}         -> {}
    {"f": "cas", "from": 1, "to": 2}   -> {"ok": true} or {"ok": false}
    any output may be {"unknown": true} (or null): outcome unknown.

kv (a map from string keys to strings, missing = "", partitioned by key)
    {"f": "get", "key": "a"}                          -> {"value": "x"}
    {"f": "put", "key": "a", "value": "x"}            -> {}
    {"f": "append", "key": "a", "value": "x"}         -> {}
    {"f": "delete", "key": "a"}                       -> {}
    {"f": "cas", "key": "a", "from": "x", "to": "y"}  -> {"ok": true} or {"ok": false}
    any output may be {"unknown": true} (or null): outcome unknown.

Compact forms: register inputs ("read",), ("write", v), ("cas", a, b); kv
inputs ("get", k), ("put", k, v), ("append", k, v), ("delete", k),
("cas", k, a, b); outputs ("value", v) for reads, ("ok",) for writes and a
successful cas, ("fail",) for a failed cas, None when unknown.

Models with a `flow(op)` method tell the search how an operation moves the
state (see `checker.flow.Flow`); the search uses it to prune, and never
needs it to be right about anything `step` does not also enforce.

`PowerSetModel(model)` turns a nondeterministic model (one with
`step_all(state, input, output) -> iterable of states` and optionally
`init_states()`) into a deterministic one whose states are frozensets
(Porcupine's NondeterministicModel).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from checker.flow import ANY, BLIND, KEEPS, Flow, Suffix
from checker.history import HistoryError, Operation
from checker.model import Model

OK: tuple[str] = ("ok",)
FAIL: tuple[str] = ("fail",)
UNKNOWN_OUTPUT = None


def _mapping(value: Any) -> dict[str, Any] | None:
    """A JSON object, also in `freeze`d form (a tuple of (key, value) pairs)."""
    if isinstance(value, dict):
        return value
    if (isinstance(value, tuple) and value and all(
            isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
            for item in value)):
        return dict(value)
    if value == ():
        return {}
    return None


def _parse_output(output: Any, reads: tuple[str, ...]) -> Any:
    """Shared output parsing: None/unknown, value, ok; compact forms pass through."""
    if output is None or (isinstance(output, tuple) and output and isinstance(output[0], str)
                          and output[0] in ("value", "ok", "fail")):
        return output
    record = _mapping(output)
    if record is None:
        raise HistoryError(f"output must be an object, not {output!r}")
    if record.get("unknown") is True:
        return None
    if "value" in record:
        return ("value", record["value"])
    if "ok" in record:
        return OK if record["ok"] else FAIL
    if not record:
        return OK
    raise HistoryError(f"output {record!r} is none of {reads}")


def _name(record: dict[str, Any]) -> str:
    f = record.get("f")
    if not isinstance(f, str):
        raise HistoryError(f"input needs a string field 'f': {record!r}")
    return f


class RegisterModel:
    """One register (Porcupine's etcd model): read, write, cas; initially nil."""

    name = "register"

    def init(self) -> Hashable:
        return None

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        kind = input[0]
        if kind == "read":
            return (output is None or output[1] == state), state
        if kind == "write":
            return True, input[1]
        if kind == "cas":
            if state == input[1]:
                return output is None or output[0] == "ok", input[2]
            return output is None or output[0] == "fail", state
        raise AssertionError(f"unknown register input {input!r}")

    def flow(self, op: Operation) -> Flow:
        kind, output = op.input[0], op.output
        if kind == "read":
            return _read_flow(output)
        if kind == "write":
            return Flow(makes=op.input[1], definite=not op.unknown, watch=BLIND)
        return _cas_flow(op.input[1], op.input[2], output)

    def partition(self, operations: Sequence[Operation]) -> list[tuple[str, list[Operation]]]:
        return [("register", list(operations))]

    def parse_input(self, value: Any) -> Any:
        if isinstance(value, tuple) and value and value[0] in ("read", "write", "cas") \
                and not isinstance(value[0], tuple):
            return value
        record = _mapping(value)
        if record is None:
            raise HistoryError(f"register input must be an object, not {value!r}")
        f = _name(record)
        try:
            if f == "read":
                return ("read",)
            if f == "write":
                return ("write", record["value"])
            if f == "cas":
                return ("cas", record["from"], record["to"])
        except KeyError as missing:
            raise HistoryError(f"register {f} input lacks {missing}") from None
        raise HistoryError(f"register input f must be read, write or cas, not {f!r}")

    def parse_output(self, value: Any) -> Any:
        return _parse_output(value, ("value", "ok"))

    def describe_operation(self, input: Any, output: Any) -> str:
        kind = input[0]
        if kind == "read":
            return "read() -> " + ("?" if output is None else _show(output[1]))
        if kind == "write":
            return f"write({_show(input[1])})"
        result = "?" if output is None else output[0]
        return f"cas({_show(input[1])}, {_show(input[2])}) -> {result}"

    def describe_state(self, state: Any) -> str:
        return _show(state)


def _read_flow(output: Any) -> Flow:
    if output is None:
        return Flow(read_only=True, free=True, makes=KEEPS)
    return Flow(read_only=True, needs=output[1], makes=KEEPS, watch=output[1])


def _cas_flow(old: Any, new: Any, output: Any) -> Flow:
    if output is None:
        if old == new:
            return Flow(read_only=True, free=True, makes=KEEPS)
        return Flow(makes=new, watch=old)
    if output[0] == "fail":
        return Flow(read_only=True, makes=KEEPS, watch=old)
    if old == new:
        return Flow(read_only=True, needs=old, makes=KEEPS, watch=old)
    return Flow(needs=old, makes=new, definite=True, watch=old)


def _show(value: Any) -> str:
    return "nil" if value is None else repr(value) if isinstance(value, str) else str(value)


class KVModel:
    """A string-to-string map; each key is its own partition, state a string."""

    name = "kv"

    def init(self) -> Hashable:
        return ""

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        kind = input[0]
        if kind == "get":
            return (output is None or output[1] == state), state
        if kind == "put":
            return True, input[2]
        if kind == "append":
            return True, state + input[2]
        if kind == "delete":
            return True, ""
        if kind == "cas":
            if state == input[2]:
                return output is None or output[0] == "ok", input[3]
            return output is None or output[0] == "fail", state
        raise AssertionError(f"unknown kv input {input!r}")

    def flow(self, op: Operation) -> Flow:
        kind, output = op.input[0], op.output
        if kind == "get":
            return _read_flow(output)
        if kind in ("put", "delete"):
            value = op.input[2] if kind == "put" else ""
            return Flow(makes=value, definite=not op.unknown, watch=BLIND)
        if kind == "append":
            if op.input[2] == "":
                return Flow(read_only=True, free=True, makes=KEEPS)
            return Flow(makes=Suffix(op.input[2]), definite=not op.unknown, watch=ANY)
        return _cas_flow(op.input[2], op.input[3], output)

    def partition(self, operations: Sequence[Operation]) -> list[tuple[str, list[Operation]]]:
        by_key: dict[str, list[Operation]] = {}
        for op in operations:
            by_key.setdefault(op.input[1], []).append(op)
        return [(f"key {key!r}", by_key[key]) for key in sorted(by_key)]

    def parse_input(self, value: Any) -> Any:
        if isinstance(value, tuple) and value and value[0] in (
                "get", "put", "append", "delete", "cas") and not isinstance(value[0], tuple):
            return value
        record = _mapping(value)
        if record is None:
            raise HistoryError(f"kv input must be an object, not {value!r}")
        f = _name(record)
        try:
            key = record["key"]
            if f in ("get", "delete"):
                return (f, key)
            if f in ("put", "append"):
                return (f, key, record["value"])
            if f == "cas":
                return ("cas", key, record["from"], record["to"])
        except KeyError as missing:
            raise HistoryError(f"kv {f} input lacks {missing}") from None
        raise HistoryError(f"kv input f must be get, put, append, delete or cas, not {f!r}")

    def parse_output(self, value: Any) -> Any:
        return _parse_output(value, ("value", "ok"))

    def describe_operation(self, input: Any, output: Any) -> str:
        kind, key = input[0], input[1]
        if kind == "get":
            return f"get({key!r}) -> " + ("?" if output is None else repr(output[1]))
        if kind in ("put", "append"):
            return f"{kind}({key!r}, {input[2]!r})"
        if kind == "delete":
            return f"delete({key!r})"
        result = "?" if output is None else output[0]
        return f"cas({key!r}, {input[2]!r}, {input[3]!r}) -> {result}"

    def describe_state(self, state: Any) -> str:
        return repr(state)


class PowerSetModel:
    """A deterministic view of a nondeterministic model: the state is the
    frozenset of every state the inner model may be in, and an operation is
    legal when at least one of them allows it."""

    def __init__(self, model: Any) -> None:
        self.inner = model
        self.name = f"powerset({model.name})"

    def init(self) -> Hashable:
        init_states = getattr(self.inner, "init_states", None)
        states = init_states() if init_states is not None else (self.inner.init(),)
        return frozenset(states)

    def _successors(self, state: Any, input: Any, output: Any) -> Iterable[Any]:
        step_all = getattr(self.inner, "step_all", None)
        if step_all is not None:
            return step_all(state, input, output)  # type: ignore[no-any-return]
        ok, after = self.inner.step(state, input, output)
        return (after,) if ok else ()

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        after = frozenset(s for each in state for s in self._successors(each, input, output))
        return bool(after), after

    def partition(self, operations: Sequence[Operation]) -> list[tuple[str, list[Operation]]]:
        return self.inner.partition(operations)  # type: ignore[no-any-return]

    def parse_input(self, value: Any) -> Any:
        parse = getattr(self.inner, "parse_input", None)
        return value if parse is None else parse(value)

    def parse_output(self, value: Any) -> Any:
        parse = getattr(self.inner, "parse_output", None)
        return value if parse is None else parse(value)

    def describe_operation(self, input: Any, output: Any) -> str:
        return self.inner.describe_operation(input, output)  # type: ignore[no-any-return]

    def describe_state(self, state: Any) -> str:
        shown = sorted(self.inner.describe_state(s) for s in state)
        return "{" + " | ".join(shown) + "}"


MODELS: dict[str, Model] = {"register": RegisterModel(), "kv": KVModel()}

__all__ = ["FAIL", "MODELS", "OK", "KVModel", "PowerSetModel", "RegisterModel"]
