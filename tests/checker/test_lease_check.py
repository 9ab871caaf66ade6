"""Lease timing checks, each rule both ways. Times are milliseconds."""

from __future__ import annotations

from typing import Any

from checker.history import UNKNOWN_RETURN, Operation
from checker.lease_check import check_leases

TTL_S = 10
BOUNDS = {"clock_bound_ms": 500.0, "revoke_bound_ms": 2_000.0}


def op(id: int, input: Any, output: Any, call: float, ret: float) -> Operation:
    return Operation(id=id, client=id, input=input, call=call, output=output, return_time=ret)


def grant(call: float = 0, ret: float = 10) -> Operation:
    return op(1, {"f": "lease_grant", "ttl_s": TTL_S}, {"revision": 0, "id": 7, "ttl_s": TTL_S},
              call, ret)


def attach(call: float = 20, ret: float = 30) -> Operation:
    return op(2, {"f": "put", "key": "k", "value": "v", "lease": 7}, {"revision": 1}, call, ret)


def read(id: int, at: float, present: bool, *, full: bool = True) -> Operation:
    entry = ["k", "v", 1, 1, 1, 7] if full else ["k", "v", 1]
    return op(id, {"f": "range", "key": "k"}, {"revision": 1 if present else 2,
                                               "kvs": [entry] if present else []}, at, at + 5)


def keepalive(id: int, call: float, ret: float, ttl: int = TTL_S) -> Operation:
    return op(id, {"f": "lease_keepalive", "id": 7}, {"revision": 1, "ttl_s": ttl}, call, ret)


def kinds(history: list[Operation], **options: Any) -> list[str]:
    return [v.kind for v in check_leases(history, **{**BOUNDS, **options})]


# -- rule 1: no key disappears before its lease could have expired -----------------------


def test_key_gone_before_the_ttl_is_an_early_expiry() -> None:
    found = check_leases([grant(), attach(), read(3, 5_000, present=False)], **BOUNDS)
    assert [v.kind for v in found] == ["early_expiry"]
    assert found[0].key == "k" and found[0].lease == 7
    assert set(found[0].operations) == {1, 2, 3}


def test_key_gone_after_the_ttl_is_fine() -> None:
    assert kinds([grant(), attach(), read(3, 9_600, present=False)]) == []  # within the bound
    assert kinds([grant(), attach(), read(3, 20_000, present=False)]) == []


def test_keepalive_moves_the_earliest_expiry() -> None:
    history = [grant(), attach(), keepalive(4, 8_000, 8_100), read(3, 12_000, present=False)]
    assert kinds(history) == ["early_expiry"]
    failed = op(4, {"f": "lease_keepalive", "id": 7}, {"error": "lease_not_found"}, 8_000, 8_100)
    assert kinds([grant(), attach(), failed, read(3, 12_000, present=False)]) == []


def test_other_removals_excuse_a_disappearance() -> None:
    delete = op(5, {"f": "delete", "key": "a", "range_end": "z"}, {"revision": 2, "deleted": 1},
                1_000, 1_100)
    assert kinds([grant(), attach(), delete, read(3, 5_000, present=False)]) == []
    revoke = Operation(id=5, client=5, input={"f": "lease_revoke", "id": 7}, call=1_000,
                       unknown=True, return_time=UNKNOWN_RETURN)
    assert kinds([grant(), attach(), revoke, read(3, 5_000, present=False)]) == []
    # a removal that finished before the key was attached excuses nothing
    early_delete = op(5, {"f": "delete", "key": "k"}, {"revision": 1, "deleted": 0}, 0, 5)
    assert kinds([grant(), attach(), early_delete, read(3, 5_000, present=False)]) == \
        ["early_expiry"]


def test_a_read_concurrent_with_the_attach_proves_nothing() -> None:
    assert kinds([grant(), attach(20, 6_000), read(3, 5_000, present=False)]) == []


# -- rule 2: an unrenewed lease's keys go within TTL plus the bounds -------------------------


def test_key_outliving_its_lease_is_a_late_expiry() -> None:
    found = check_leases([grant(), attach(), read(3, 13_000, present=True)], **BOUNDS)
    assert [v.kind for v in found] == ["late_expiry"]
    assert set(found[0].operations) == {2, 3}


def test_key_within_ttl_and_bounds_is_fine() -> None:
    assert kinds([grant(), attach(), read(3, 12_000, present=True)]) == []


def test_renewed_lease_keeps_its_keys() -> None:
    history = [grant(), attach(), keepalive(4, 9_000, 9_100), read(3, 13_000, present=True)]
    assert kinds(history) == []


def test_key_identified_by_mod_revision_when_the_lease_field_is_missing() -> None:
    assert kinds([grant(), attach(), read(3, 13_000, present=True, full=False)]) == \
        ["late_expiry"]
    overwritten = op(3, {"f": "range", "key": "k"},
                     {"revision": 5, "kvs": [["k", "w", 5]]}, 13_000, 13_005)
    assert kinds([grant(), attach(), overwritten]) == []


def test_unknown_keepalive_suspends_the_rule_or_counts_with_a_bound() -> None:
    pending = Operation(id=4, client=4, input={"f": "lease_keepalive", "id": 7}, call=5_000,
                        unknown=True, return_time=UNKNOWN_RETURN)
    history = [grant(), attach(), pending, read(3, 18_000, present=True)]
    assert kinds(history) == []
    # renewed by 5_100 at the latest: due at 15_100, plus the bounds 17_600
    assert kinds(history, unknown_renewal_ms=100.0) == ["late_expiry"]
    assert kinds(history, unknown_renewal_ms=1_000.0) == []


def test_time_units() -> None:
    history = [grant(0, 0.01), attach(0.02, 0.03), read(3, 3.0, present=False)]
    assert kinds(history, time_unit_ms=1000.0) == ["early_expiry"]  # times in seconds
