"""The etcd model: schema parsing, semantics, the Model protocol, conformance
with chainfire_core's state machine, and agreement with the generic search."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.etcd_model import (
    ALL_KEYS,
    Compare,
    Delete,
    EtcdModel,
    EtcdState,
    LeaseNotFound,
    LeaseRevoke,
    MutableStore,
    Put,
    Range,
    SchemaError,
    Txn,
    as_object,
    describe_operation,
    execute,
    parse_request,
    response_mismatch,
    revision_role,
    serve,
    simulate_history,
    txn_writes,
)
from checker.history import Operation, freeze

# -- helpers ------------------------------------------------------------------------


def run(model: EtcdModel, steps: list[tuple[Any, Any]]) -> tuple[bool, Any]:
    """Step the model through (input, output) pairs in order."""
    state: Any = model.init()
    for input, output in steps:
        ok, state = model.step(state, input, output)
        if not ok:
            return False, state
    return True, state


def put(key: str, value: str, lease: int = 0) -> dict[str, Any]:
    return {"f": "put", "key": key, "value": value, "lease": lease}


def get(key: str, range_end: str = "") -> dict[str, Any]:
    return {"f": "range", "key": key, "range_end": range_end}


# -- parsing -----------------------------------------------------------------------------


def test_parse_every_request_kind() -> None:
    assert parse_request(put("a", "1", 3)) == Put(key="a", value="1", lease=3)
    assert parse_request({"f": "get", "key": "a"}) == Range(key="a")
    assert parse_request({"f": "delete", "key": "a", "range_end": "c"}) == \
        Delete(key="a", range_end="c")
    txn = parse_request({"f": "txn", "compare": [
        {"key": "a", "target": "mod_revision", "result": "==", "value": 2}],
        "success": [put("a", "x")], "failure": [get("a")]})
    assert txn == Txn(compare=(Compare(key="a", target="mod", result="=", value=2),),
                      success=(Put(key="a", value="x"),), failure=(Range(key="a"),))
    assert parse_request({"f": "lease_grant", "ttl_s": 5}).ttl_s == 5  # type: ignore[union-attr]
    assert parse_request({"f": "lease_revoke", "id": 4}) == LeaseRevoke(id=4)


def test_frozen_inputs_parse_like_dicts() -> None:
    request = {"f": "txn", "compare": [{"key": "a", "target": "value", "result": "=",
                                        "value": "x"}],
               "success": [put("a", "y")], "failure": []}
    assert parse_request(freeze(request)) == parse_request(request)
    assert as_object(freeze({"revision": 3})) == {"revision": 3}


@pytest.mark.parametrize("bad", [
    {"f": "nope"},
    {"f": "put", "key": ""},
    {"f": "put", "key": "a", "lease": "x"},
    {"f": "txn", "compare": [{"key": "a", "target": "size", "result": "=", "value": 1}]},
    {"f": "txn", "compare": [{"key": "a", "target": "value", "result": "=", "value": 1}]},
    {"f": "txn", "success": [{"f": "lease_grant", "ttl_s": 1}]},
    ["not", "an", "object"],
])
def test_schema_errors(bad: Any) -> None:
    with pytest.raises(SchemaError):
        parse_request(bad)


def test_roles_follow_the_output() -> None:
    assert revision_role(Put(key="a"), {"revision": 1}) == "creates"
    assert revision_role(Range(key="a"), {"revision": 1}) == "observes"
    assert revision_role(Range(key="a", revision=1), {"revision": 4}) == "historical"
    assert revision_role(Range(key="a", serializable=True), {"revision": 4}) == "weak"
    assert revision_role(Delete(key="a"), {"revision": 2, "deleted": 0}) == "observes"
    assert revision_role(Delete(key="a"), {"revision": 2, "deleted": 1}) == "creates"
    assert revision_role(LeaseRevoke(id=1), {"revision": 2}) == "either"
    txn = Txn(success=(Delete(key="a"),), failure=(Put(key="b"),))
    assert txn_writes(txn, {"succeeded": False}) is True
    assert txn_writes(txn, {"succeeded": True, "responses": [{"deleted": 0}]}) is False
    assert txn_writes(txn, {"succeeded": True}) is None


# -- semantics -----------------------------------------------------------------------------


def test_put_range_delete_revisions_and_versions() -> None:
    store = MutableStore(track_leases=True)
    assert serve(store, put("a", "1")) == {"revision": 2}
    assert serve(store, put("a", "2")) == {"revision": 3}
    assert serve(store, put("b", "x")) == {"revision": 4}
    assert serve(store, get("a", ALL_KEYS))["kvs"] == [["a", "2", 3, 2, 2, 0],
                                                       ["b", "x", 4, 4, 1, 0]]
    assert serve(store, {"f": "delete", "key": "c"}) == {"revision": 4, "deleted": 0}
    assert serve(store, {"f": "delete", "key": "a", "range_end": "z", "prev_kv": True}) == \
        {"revision": 5, "deleted": 2, "prev_kvs": [["a", "2", 3, 2, 2, 0],
                                                  ["b", "x", 4, 4, 1, 0]]}
    assert serve(store, put("a", "3")) == {"revision": 6}
    assert serve(store, get("a"))["kvs"] == [["a", "3", 6, 6, 1, 0]]  # a new generation
    assert serve(store, {"f": "range", "key": "a", "revision": 3})["kvs"] == \
        [["a", "2", 3, 2, 2, 0]]
    # The empty store's revision 1 is readable, and empty.
    assert serve(store, {"f": "range", "key": "a", "revision": 1})["kvs"] == []
    limited = serve(store, {"f": "range", "key": "a", "range_end": ALL_KEYS, "limit": 1})
    assert limited["count"] == 1 and limited["more"] is False


def test_txn_compares_see_the_state_before_and_reads_see_the_branch() -> None:
    store = MutableStore(track_leases=True)
    serve(store, put("a", "1"))
    txn = {"f": "txn",
           "compare": [{"key": "a", "target": "version", "result": "=", "value": 1}],
           "success": [put("a", "2"), get("a"),
                       {"f": "txn", "compare": [{"key": "a", "target": "value", "result": "=",
                                                 "value": "1"}],
                        "success": [put("b", "nested")], "failure": []}],
           "failure": []}
    response = serve(store, txn)
    assert response["revision"] == 3 and response["succeeded"] is True
    assert response["responses"][1]["kvs"] == [["a", "2", 3, 2, 2, 0]]
    assert response["responses"][2]["succeeded"] is True  # nested compare: state before
    assert serve(store, get("b"))["kvs"][0][1] == "nested"
    read_only = {"f": "txn", "compare": [{"key": "zz", "target": "value", "result": "=",
                                          "value": ""}],
                 "success": [put("c", "no")], "failure": [get("a")]}
    response = serve(store, read_only)
    assert response["succeeded"] is False and response["revision"] == 3  # missing key: VALUE fails


@pytest.mark.parametrize(("target", "result", "value", "holds"), [
    ("version", "=", 2, True), ("version", ">", 1, True), ("version", "<", 2, False),
    ("create", "=", 2, True), ("mod", "!=", 3, False), ("value", ">", "a", True),
    ("lease", "=", 0, True),
])
def test_compare_targets(target: str, result: str, value: Any, holds: bool) -> None:
    store = MutableStore(track_leases=True)
    serve(store, put("k", "x"))
    serve(store, put("k", "y"))
    txn = {"f": "txn", "compare": [{"key": "k", "target": target, "result": result,
                                    "value": value}], "success": [], "failure": []}
    assert serve(store, txn)["succeeded"] is holds


def test_leases_attach_and_revoke_deletes_in_one_revision() -> None:
    store = MutableStore(track_leases=True)
    grant = serve(store, {"f": "lease_grant", "ttl_s": 10})
    lease = grant["id"]
    serve(store, put("a", "1", lease))
    serve(store, put("b", "2", lease))
    assert serve(store, put("c", "3", 99)) == {"error": "lease_not_found"}
    assert serve(store, {"f": "lease_ttl", "id": lease, "keys": True})["keys"] == ["a", "b"]
    assert serve(store, {"f": "lease_revoke", "id": lease}) == {"revision": 4}
    assert serve(store, get("a", ALL_KEYS))["kvs"] == []
    with pytest.raises(LeaseNotFound):
        execute(LeaseRevoke(id=lease), store)


def test_response_mismatch_checks_what_is_recorded() -> None:
    expected = {"revision": 3, "kvs": (("a", "1", 2, 2, 1, 0),), "count": 1, "more": False}
    assert response_mismatch(expected, {"revision": 3, "kvs": [["a", "1", 2]]}) is None
    assert response_mismatch(expected, {"kvs": [["a", "1", 2, 2, 1, 0]]}) is None
    assert "kvs" in (response_mismatch(expected, {"kvs": [["a", "2", 2]]}) or "")
    assert "revision" in (response_mismatch(expected, {"revision": 4}) or "")
    assert response_mismatch(expected, {"revision": 4}, check_revision=False) is None


# -- the model --------------------------------------------------------------------------------


def test_model_accepts_a_correct_sequence_and_checks_revisions() -> None:
    model = EtcdModel()
    ok, _ = run(model, [(put("a", "1"), {"revision": 2}),
                        (get("a"), {"revision": 2, "kvs": [["a", "1", 2]]}),
                        (put("a", "2"), {"revision": 3})])
    assert ok
    assert not run(model, [(put("a", "1"), {"revision": 3})])[0]  # skipped a revision
    assert not run(model, [(put("a", "1"), {"revision": 2}),
                           (get("a"), {"revision": 2, "kvs": []})])[0]  # stale read
    assert not run(model, [(put("a", "1"), {"revision": 2}),
                           (get("a"), {"revision": 1, "kvs": []})])[0]  # revision going back


def test_model_lets_a_lease_expire_when_a_revision_needs_it() -> None:
    model = EtcdModel()
    steps = [({"f": "lease_grant", "ttl_s": 5}, {"revision": 1, "id": 7, "ttl_s": 5}),
             (put("a", "1", 7), {"revision": 2}),
             (get("a"), {"revision": 3, "kvs": []})]  # revision 3: the lease expired
    ok, state = run(model, steps)
    assert ok and all(7 not in s.leases for s in state)
    # with nothing attached to a lease, no revision can appear out of nowhere
    assert not run(model, [(put("a", "1"), {"revision": 2}),
                           (get("a"), {"revision": 3, "kvs": []})])[0]
    # a keyless lease may vanish silently: a keepalive that finds it gone is fine
    assert run(model, [({"f": "lease_grant", "ttl_s": 5}, {"revision": 1, "id": 3, "ttl_s": 5}),
                       ({"f": "lease_keepalive", "id": 3}, {"error": "lease_not_found"})])[0]


def test_model_unknown_outcomes_may_or_may_not_happen() -> None:
    model = EtcdModel()
    for seen in ([], [["a", "1", 2]]):
        revision = 2 if seen else 1
        ok, _ = run(model, [(put("a", "1"), None), (get("a"), {"revision": revision,
                                                               "kvs": seen})])
        assert ok
    assert run(model, [(put("a", "1"), {"error": "not_leader"}),
                       (get("a"), {"revision": 1, "kvs": []})])[0]
    assert not run(model, [(put("a", "1"), {"error": "not_leader"}),
                           (get("a"), {"revision": 2, "kvs": [["a", "1", 2]]})])[0]


def test_model_historical_and_serializable_reads() -> None:
    model = EtcdModel()
    base = [(put("a", "1"), {"revision": 2}), (put("a", "2"), {"revision": 3})]
    old = {"f": "range", "key": "a", "revision": 2}
    assert run(model, [*base, (old, {"revision": 2, "kvs": [["a", "1", 2]]})])[0]
    assert run(model, [*base, (old, {"revision": 3, "kvs": [["a", "1", 2]]})])[0]
    assert not run(model, [*base, (old, {"revision": 3, "kvs": [["a", "2", 3]]})])[0]
    weak = {"f": "range", "key": "a", "serializable": True}
    assert run(model, [*base, (weak, {"revision": 2, "kvs": [["a", "1", 2]]})])[0]
    assert not run(model, [*base, (weak, {"revision": 2, "kvs": [["a", "2", 3]]})])[0]


def test_model_partition_and_descriptions() -> None:
    model = EtcdModel()
    ops = [Operation(id=1, client=0, input=put("a", "1"), call=0, output={"revision": 2},
                     return_time=1)]
    assert model.partition(ops) == [("etcd", ops)]
    assert describe_operation(put("a", "1"), {"revision": 2}) == "put a='1' -> r2"
    assert "revision 1" in model.describe_state(model.init())
    assert EtcdState.empty() == EtcdState.empty() and hash(EtcdState.empty()) == \
        hash(EtcdState.empty())


def _replay_sequentially(history: list[Operation]) -> bool:
    """Step the model through a simulated history in the order it ran (ids are
    that order); unknown outcomes are given as None."""
    model = EtcdModel()
    state: Any = model.init()
    for op in sorted(history, key=lambda o: o.id):
        ok, state = model.step(state, op.input, None if op.unknown else op.output)
        if not ok:
            return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.sampled_from([1, 2, 4]), st.sampled_from([0.0, 0.1]))
def test_model_accepts_every_sequential_execution(seed: int, keys: int, expiry: float) -> None:
    history = simulate_history(random.Random(seed), operations=40, keys=keys, window=0,
                               unknown_rate=0.0, expiry_rate=expiry)
    assert _replay_sequentially(history)


# -- conformance with chainfire_core ----------------------------------------------------------


def _core_round_trip(seed: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Random requests served by chainfire_core's StateMachine, recorded in
    the schema."""
    core = pytest.importorskip("chainfire_core")
    sm = core.StateMachine()
    sm.lessor.promote(now_ms=0)
    rng = random.Random(seed)
    leases: list[int] = []
    recorded = []
    for step in range(60):
        key = rng.choice(["a", "b", "c"]).encode()
        roll = rng.random()
        entry = lambda kv: [kv.key.decode(), kv.value.decode(), kv.mod_revision,  # noqa: E731
                            kv.create_revision, kv.version, kv.lease]
        if roll < 0.35:
            lease = rng.choice(leases) if leases and rng.random() < 0.3 else 0
            response = sm.apply(core.PutRequest(key=key, value=f"v{step}".encode(), lease=lease,
                                                prev_kv=True), now_ms=0)
            recorded.append(({"f": "put", "key": key.decode(), "value": f"v{step}",
                              "lease": lease, "prev_kv": True},
                             {"revision": response.header.revision,
                              "prev_kv": None if response.prev_kv is None
                              else entry(response.prev_kv)}))
        elif roll < 0.6:
            response = sm.range(core.RangeRequest(key=b"a", range_end=b"\0"))
            recorded.append(({"f": "range", "key": "a", "range_end": ALL_KEYS},
                             {"revision": response.header.revision,
                              "kvs": [entry(kv) for kv in response.kvs],
                              "count": response.count}))
        elif roll < 0.7:
            response = sm.apply(core.DeleteRangeRequest(key=key), now_ms=0)
            recorded.append(({"f": "delete", "key": key.decode()},
                             {"revision": response.header.revision,
                              "deleted": response.deleted}))
        elif roll < 0.85:
            version = rng.randint(0, 2)
            compare = core.Compare(key=key, target=core.CompareTarget.VERSION,
                                   result=core.CompareResult.EQUAL, value=version)
            response = sm.apply(core.TxnRequest(
                compare=(compare,), success=(core.PutRequest(key=key, value=b"t"),),
                failure=(core.DeleteRangeRequest(key=b"c"),)), now_ms=0)
            inner = [{"deleted": r.deleted} if hasattr(r, "deleted") else {}
                     for r in response.responses]
            recorded.append(({"f": "txn", "compare": [{"key": key.decode(),
                                                       "target": "version", "result": "=",
                                                       "value": version}],
                              "success": [put(key.decode(), "t")],
                              "failure": [{"f": "delete", "key": "c"}]},
                             {"revision": response.header.revision,
                              "succeeded": response.succeeded, "responses": inner}))
        elif roll < 0.93 or not leases:
            response = sm.apply(core.LeaseGrantRequest(ttl_s=30), now_ms=0)
            leases.append(response.id)
            recorded.append(({"f": "lease_grant", "ttl_s": 30},
                             {"revision": response.header.revision, "id": response.id,
                              "ttl_s": response.ttl_s}))
        else:
            lease = leases.pop(rng.randrange(len(leases)))
            response = sm.apply(core.LeaseRevokeRequest(id=lease), now_ms=0)
            recorded.append(({"f": "lease_revoke", "id": lease},
                             {"revision": response.header.revision}))
    return recorded


@pytest.mark.parametrize("seed", range(8))
def test_model_agrees_with_chainfire_core(seed: int) -> None:
    recorded = _core_round_trip(seed)
    ok, _ = run(EtcdModel(), recorded)
    assert ok
    # and a mutated read is refused
    reads = [i for i, (request, output) in enumerate(recorded)
             if request["f"] == "range" and output["kvs"]]
    if reads:
        i = reads[0]
        request, output = recorded[i]
        bad = {**output, "kvs": [[*output["kvs"][0][:1], "zzz", *output["kvs"][0][2:]],
                                 *output["kvs"][1:]]}
        assert not run(EtcdModel(), [*recorded[:i], (request, bad)])[0]


# -- against the generic search ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_model_under_the_generic_search_agrees_with_the_witness_checker(seed: int) -> None:
    linearizability = pytest.importorskip("checker.linearizability")
    from checker.revision_check import check_etcd_history

    rng = random.Random(seed)
    history = simulate_history(rng, operations=20, keys=2, window=3.0, unknown_rate=0.1,
                               expiry_rate=0.05)
    searched = linearizability.check_operations(history, EtcdModel(), timeout_s=20)
    assert searched.verdict.value == "Ok"
    assert check_etcd_history(history).verdict.value == "Ok"
