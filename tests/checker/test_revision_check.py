"""The witness-based etcd checker: hand-built Ok and Illegal histories,
generated histories (always Ok) and mutations of them (Illegal)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.etcd_model import ALL_KEYS, MutableStore, serve, simulate_history
from checker.history import UNKNOWN_RETURN, Operation, freeze
from checker.result import Verdict
from checker.revision_check import analyze_etcd_history, check_etcd_history


def op(id: int, input: Any, output: Any, call: float, ret: float) -> Operation:
    return Operation(id=id, client=id, input=input, call=call, output=output, return_time=ret)


def unknown(id: int, input: Any, call: float) -> Operation:
    return Operation(id=id, client=id, input=input, call=call, unknown=True,
                     return_time=UNKNOWN_RETURN)


def put(key: str, value: str, lease: int = 0) -> dict[str, Any]:
    return {"f": "put", "key": key, "value": value, "lease": lease}


def get(key: str, range_end: str = "") -> dict[str, Any]:
    return {"f": "range", "key": key, "range_end": range_end}


def verdict(history: list[Operation], **options: Any) -> Verdict:
    return check_etcd_history(history, **options).verdict


def illegal(history: list[Operation], **options: Any) -> tuple[tuple[int, ...], str]:
    result = check_etcd_history(history, **options)
    assert result.verdict == Verdict.ILLEGAL, result
    partition = result.partitions[0]
    return partition.explanation, partition.reason


# -- hand-built histories --------------------------------------------------------------


def test_sequential_history_is_ok_with_a_full_linearization() -> None:
    history = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
               op(2, get("a"), {"revision": 2, "kvs": [["a", "1", 2]]}, 2, 3),
               op(3, put("b", "2"), {"revision": 3}, 4, 5),
               op(4, get("a", ALL_KEYS), {"revision": 3, "kvs": [["a", "1", 2], ["b", "2", 3]]},
                  6, 7)]
    result = check_etcd_history(history)
    assert result.verdict == Verdict.OK and result.model == "etcd"
    assert result.partitions[0].linearization == (1, 2, 3, 4)


def test_concurrent_reads_may_see_either_side_of_a_write() -> None:
    history = [op(1, put("a", "1"), {"revision": 2}, 0, 10),
               op(2, get("a"), {"revision": 1, "kvs": []}, 1, 9),
               op(3, get("a"), {"revision": 2, "kvs": [["a", "1", 2]]}, 2, 8)]
    assert verdict(history) == Verdict.OK


def test_frozen_histories_are_accepted() -> None:
    history = [op(1, freeze(put("a", "1")), freeze({"revision": 2}), 0, 1),
               op(2, freeze(get("a")), freeze({"revision": 2, "kvs": [["a", "1", 2]]}), 2, 3)]
    assert verdict(history) == Verdict.OK


def test_stale_read_is_illegal_and_names_the_read_and_the_write() -> None:
    history = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
               op(2, put("a", "2"), {"revision": 3}, 2, 3),
               op(3, get("a"), {"revision": 2, "kvs": [["a", "1", 2]]}, 4, 5)]
    explanation, reason = illegal(history)
    assert set(explanation) == {2, 3}
    assert "real time" in reason


def test_read_with_current_revision_but_old_value_is_illegal() -> None:
    history = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
               op(2, put("a", "2"), {"revision": 3}, 2, 3),
               op(3, get("a"), {"revision": 3, "kvs": [["a", "1", 2]]}, 4, 5)]
    explanation, _ = illegal(history)
    assert 3 in explanation
    result = check_etcd_history(history)
    assert result.partitions[0].linearization == (1,)  # the longest consistent prefix


def test_lost_write_is_illegal() -> None:
    history = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
               op(2, put("b", "1"), {"revision": 3}, 2, 3),
               op(3, get("a", ALL_KEYS), {"revision": 3, "kvs": [["b", "1", 3]]}, 4, 5)]
    explanation, _ = illegal(history)
    assert 3 in explanation and 1 in explanation


def test_two_writes_claiming_one_revision_are_illegal() -> None:
    history = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
               op(2, put("b", "1"), {"revision": 2}, 0, 1)]
    explanation, reason = illegal(history)
    assert set(explanation) == {1, 2} and "claim" in reason


def test_revision_order_against_real_time_is_illegal() -> None:
    history = [op(1, put("a", "1"), {"revision": 3}, 0, 1),   # returned first ...
               op(2, put("b", "1"), {"revision": 2}, 2, 3)]   # ... yet a lower revision
    explanation, _ = illegal(history)
    assert set(explanation) == {1, 2}


def test_read_from_the_future_is_illegal() -> None:
    history = [op(1, get("a"), {"revision": 2, "kvs": [["a", "1", 2]]}, 0, 1),
               op(2, put("a", "1"), {"revision": 2}, 2, 3)]
    explanation, _ = illegal(history)
    assert set(explanation) == {1, 2}


def test_wrong_txn_branch_is_illegal() -> None:
    cas = {"f": "txn", "compare": [{"key": "a", "target": "value", "result": "=", "value": "1"}],
           "success": [put("a", "2")], "failure": [get("a")]}
    ok = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
          op(2, cas, {"revision": 3, "succeeded": True, "responses": [{"revision": 3}]}, 2, 3)]
    assert verdict(ok) == Verdict.OK
    wrong = [op(1, put("a", "0"), {"revision": 2}, 0, 1),
             op(2, cas, {"revision": 3, "succeeded": True, "responses": [{"revision": 3}]}, 2, 3)]
    explanation, reason = illegal(wrong)
    assert 2 in explanation and "revision 2" in reason
    failed = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
              op(2, cas, {"revision": 2, "succeeded": False,
                          "responses": [{"kvs": [["a", "1", 2]]}]}, 2, 3)]
    assert verdict(failed) == Verdict.ILLEGAL


def test_multi_key_txn_joins_keys_in_one_revision() -> None:
    txn = {"f": "txn", "compare": [], "success": [put("a", "1"), put("b", "1")], "failure": []}
    history = [op(1, txn, {"revision": 2, "succeeded": True, "responses": [{}, {}]}, 0, 1),
               op(2, get("a", ALL_KEYS), {"revision": 2, "kvs": [["a", "1", 2, 2, 1, 0],
                                                                ["b", "1", 2, 2, 1, 0]]}, 2, 3)]
    assert verdict(history) == Verdict.OK
    half = [history[0], op(2, get("a", ALL_KEYS), {"revision": 2, "kvs": [["a", "1", 2]]}, 2, 3)]
    assert verdict(half) == Verdict.ILLEGAL


def test_unknown_write_fills_a_gap() -> None:
    history = [unknown(1, put("a", "x"), 0),
               op(2, put("b", "1"), {"revision": 3}, 1, 2),
               op(3, get("a"), {"revision": 3, "kvs": [["a", "x", 2]]}, 3, 4)]
    result = check_etcd_history(history)
    assert result.verdict == Verdict.OK
    assert result.partitions[0].linearization[:2] == (1, 2)


def test_unknown_write_that_never_happened_is_ok() -> None:
    history = [unknown(1, put("a", "x"), 0),
               op(2, get("a"), {"revision": 1, "kvs": []}, 5, 6)]
    assert verdict(history) == Verdict.OK


def test_gap_without_a_filler_is_illegal() -> None:
    history = [op(1, put("a", "1"), {"revision": 3}, 0, 1)]
    _, reason = illegal(history)
    assert "revision 2 was created by no acknowledged write" in reason
    called_too_late = [op(1, put("a", "1"), {"revision": 3}, 0, 1),
                       unknown(2, put("b", "1"), 5)]
    assert verdict(called_too_late) == Verdict.ILLEGAL


def test_gap_filled_by_a_value_no_write_has_is_illegal() -> None:
    history = [unknown(1, put("a", "x"), 0),
               op(2, get("a"), {"revision": 2, "kvs": [["a", "y", 2]]}, 1, 2)]
    explanation, _ = illegal(history)
    assert explanation == (2,)


def test_failed_write_must_not_take_effect() -> None:
    history = [op(1, put("a", "x"), {"error": "not_leader"}, 0, 1),
               op(2, get("a"), {"revision": 2, "kvs": [["a", "x", 2]]}, 2, 3)]
    assert verdict(history) == Verdict.ILLEGAL


def test_lease_expiry_fills_a_gap() -> None:
    history = [op(1, {"f": "lease_grant", "ttl_s": 1}, {"revision": 1, "id": 5, "ttl_s": 1}, 0, 1),
               op(2, put("a", "1", 5), {"revision": 2}, 2, 3),
               op(3, get("a"), {"revision": 3, "kvs": []}, 10, 11)]
    analysis = analyze_etcd_history(history)
    assert analysis.result.verdict == Verdict.OK
    assert analysis.creators[3] == "expire:5"
    assert analysis.changes[3] == (("a", None),)


def test_lease_revoke_either_creates_or_observes() -> None:
    grant = op(1, {"f": "lease_grant", "ttl_s": 9}, {"revision": 1, "id": 5, "ttl_s": 9}, 0, 1)
    with_keys = [grant, op(2, put("a", "1", 5), {"revision": 2}, 2, 3),
                 op(3, {"f": "lease_revoke", "id": 5}, {"revision": 3}, 4, 5),
                 op(4, get("a"), {"revision": 3, "kvs": []}, 6, 7)]
    assert verdict(with_keys) == Verdict.OK
    without = [grant, op(2, put("a", "1"), {"revision": 2}, 2, 3),
               op(3, {"f": "lease_revoke", "id": 5}, {"revision": 2}, 4, 5)]
    assert verdict(without) == Verdict.OK
    # a revoke that claims a revision it cannot have created
    bogus = [grant, op(2, put("a", "1"), {"revision": 2}, 2, 3),
             op(3, {"f": "lease_revoke", "id": 5}, {"revision": 3}, 4, 5)]
    assert verdict(bogus) == Verdict.ILLEGAL


def test_historical_and_serializable_reads() -> None:
    base = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
            op(2, put("a", "2"), {"revision": 3}, 2, 3)]
    old = {"f": "range", "key": "a", "revision": 2}
    assert verdict([*base, op(3, old, {"revision": 3, "kvs": [["a", "1", 2]]}, 4, 5)]) == \
        Verdict.OK
    assert verdict([*base, op(3, old, {"revision": 3, "kvs": [["a", "2", 3]]}, 4, 5)]) == \
        Verdict.ILLEGAL
    weak = {"f": "range", "key": "a", "serializable": True}
    # a serializable read may be stale, but must match the revision it reports
    assert verdict([*base, op(3, weak, {"revision": 2, "kvs": [["a", "1", 2]]}, 4, 5)]) == \
        Verdict.OK
    assert verdict([*base, op(3, weak, {"revision": 2, "kvs": [["a", "2", 3]]}, 4, 5)]) == \
        Verdict.ILLEGAL


def test_reads_without_a_revision_are_placed() -> None:
    base = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
            op(2, put("a", "2"), {"revision": 3}, 5, 6)]
    assert verdict([*base, op(3, get("a"), {"kvs": [["a", "1", 2]]}, 2, 7)]) == Verdict.OK
    assert verdict([*base, op(3, get("a"), {"kvs": [["a", "2", 3]]}, 2, 7)]) == Verdict.OK
    # called after revision 3 was acknowledged: only the new value is possible
    assert verdict([*base, op(3, get("a"), {"kvs": [["a", "1", 2]]}, 8, 9)]) == Verdict.ILLEGAL
    assert verdict([*base, op(3, get("a"), {"kvs": [["a", "3", 3]]}, 2, 7)]) == Verdict.ILLEGAL


def test_writes_without_a_revision_fill_gaps_or_come_last() -> None:
    gap = [op(1, put("a", "1"), {}, 0, 2), op(2, put("b", "1"), {"revision": 3}, 1, 3)]
    assert verdict(gap) == Verdict.OK
    last = [op(1, put("b", "1"), {"revision": 2}, 0, 1), op(2, put("a", "1"), {}, 2, 3)]
    assert verdict(last) == Verdict.OK
    impossible = [op(1, put("a", "1"), {}, 0, 1), op(2, put("b", "1"), {"revision": 2}, 2, 3)]
    assert verdict(impossible) == Verdict.ILLEGAL


def test_ambiguous_revisionless_operations_fall_back() -> None:
    history = [op(1, {"f": "lease_revoke", "id": 1}, {}, 0, 1)]
    result = check_etcd_history(history, fallback=False)
    assert result.verdict == Verdict.UNKNOWN and "ambiguous" in result.partitions[0].reason


def test_initial_revision_and_bad_revisions() -> None:
    # An empty store is at revision 1 (etcd's and Chainfire's): the first write
    # creates 2, and nothing can create 1. A history may start on a store with
    # data: then it names the revision it started at.
    history = [op(1, put("a", "1"), {"revision": 2}, 0, 1)]
    assert verdict(history) == verdict(history, initial_revision=1) == Verdict.OK
    assert verdict([op(1, put("a", "1"), {"revision": 1}, 0, 1)]) == Verdict.ILLEGAL
    assert verdict([op(1, put("a", "1"), {"revision": 8}, 0, 1)], initial_revision=7) == \
        Verdict.OK
    assert verdict([op(1, get("a"), {"revision": 7, "kvs": []}, 0, 1)], initial_revision=7) == \
        Verdict.OK


def test_unknown_delay_bounds_when_an_unknown_write_can_happen() -> None:
    history = [unknown(1, put("a", "x"), 0),
               op(2, put("b", "1"), {"revision": 2}, 50, 51),
               op(3, get("a"), {"revision": 3, "kvs": [["a", "x", 3]]}, 60, 61)]
    assert verdict(history) == Verdict.OK
    assert verdict(history, unknown_delay=10) == Verdict.ILLEGAL


def test_budget_exhaustion_is_unknown() -> None:
    history = simulate_history(random.Random(3), operations=300, keys=2, window=30.0,
                               unknown_rate=0.3)
    result = check_etcd_history(history, max_backtracks=0)
    assert result.verdict in (Verdict.OK, Verdict.UNKNOWN)
    result = check_etcd_history(history, timeout_s=0.0)
    assert result.verdict in (Verdict.OK, Verdict.UNKNOWN)


# -- the reconstruction ---------------------------------------------------------------------


def test_reconstruction_matches_the_server() -> None:
    store = MutableStore(track_leases=True)
    history = []
    requests = [put("a", "1"), put("b", "2"), {"f": "delete", "key": "a"},
                {"f": "txn", "compare": [], "success": [put("c", "3"), put("b", "4")],
                 "failure": []}]
    for index, request in enumerate(requests):
        history.append(op(index, request, serve(store, request), 2 * index, 2 * index + 1))
    analysis = analyze_etcd_history(history)
    assert analysis.result.verdict == Verdict.OK
    assert analysis.last_revision == 5
    for revision in range(2, 6):
        assert analysis.changes[revision] == tuple(store.changes_at(revision))
    assert analysis.creators == {2: 0, 3: 1, 4: 2, 5: 3}


# -- generated histories ----------------------------------------------------------------------

HISTORIES = st.builds(
    dict, seed=st.integers(0, 2**32), operations=st.sampled_from([30, 80, 200]),
    keys=st.sampled_from([1, 2, 5]), window=st.sampled_from([0.0, 2.0, 10.0]),
    unknown_rate=st.sampled_from([0.0, 0.05, 0.15]),
    revisionless_rate=st.sampled_from([0.0, 0.03]),
    expiry_rate=st.sampled_from([0.0, 0.05]))


def _generate(params: dict[str, Any]) -> list[Operation]:
    params = dict(params)
    rng = random.Random(params.pop("seed"))
    return simulate_history(rng, **params)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HISTORIES)
def test_generated_histories_are_ok(params: dict[str, Any]) -> None:
    result = check_etcd_history(_generate(params), timeout_s=30)
    assert result.verdict == Verdict.OK, result.partitions[0].reason


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HISTORIES, st.randoms(use_true_random=False))
def test_a_mutated_read_is_illegal(params: dict[str, Any], rng: random.Random) -> None:
    history = _generate(params)
    reads = [i for i, o in enumerate(history)
             if not o.unknown and isinstance(o.output, dict) and o.output.get("kvs")]
    if not reads:
        return
    index = rng.choice(reads)
    output = dict(history[index].output)
    kvs = [list(entry) for entry in output["kvs"]]
    kvs[rng.randrange(len(kvs))][1] = "never written"
    output["kvs"] = kvs
    history[index] = dataclasses.replace(history[index], output=output)
    result = check_etcd_history(history, timeout_s=30)
    assert result.verdict == Verdict.ILLEGAL
    assert history[index].id in result.partitions[0].explanation


@pytest.mark.parametrize("seed", range(4))
def test_generated_histories_are_well_formed(seed: int) -> None:
    history = simulate_history(random.Random(seed), operations=50)
    assert sorted(o.id for o in history) == list(range(50))
    assert all(o.call <= o.return_time for o in history)


def test_txn_whose_output_does_not_say_whether_it_wrote() -> None:
    txn = {"f": "txn", "compare": [], "success": [{"f": "delete", "key": "a"}], "failure": []}
    wrote = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
             op(2, txn, {"revision": 3, "succeeded": True}, 2, 3),
             op(3, get("a"), {"revision": 3, "kvs": []}, 4, 5)]
    assert verdict(wrote) == Verdict.OK
    nothing = [op(1, txn, {"revision": 1, "succeeded": True}, 0, 1)]
    assert verdict(nothing) == Verdict.OK
    claimed = [op(1, txn, {"revision": 2, "succeeded": True}, 0, 1)]  # nothing to delete
    assert verdict(claimed) == Verdict.ILLEGAL


def test_illegal_analysis_keeps_the_checked_prefix() -> None:
    history = [op(1, put("a", "1"), {"revision": 2}, 0, 1),
               op(2, put("a", "2"), {"revision": 3}, 2, 3),
               op(3, get("a"), {"revision": 3, "kvs": [["a", "1", 2]]}, 4, 5)]
    analysis = analyze_etcd_history(history)
    assert analysis.result.verdict == Verdict.ILLEGAL
    assert analysis.last_revision == 2 and analysis.changes == {2: (("a", ("1", 2, 2, 1, 0)),)}
