"""Key-range permissions: single keys, prefixes, from-key ranges, merging
across roles, and which ops of a request need which permission."""

from __future__ import annotations

import itertools

import pytest
from auth_helpers import Driver, prefix_perm, user_add, with_root_and_app
from hypothesis import given
from hypothesis import strategies as st

from chainfire_core.auth import (
    AuthInfo,
    Permission,
    PermissionType,
    RangePermissions,
    RoleAddRequest,
    RoleGrantPermissionRequest,
    RoleRevokePermissionRequest,
    UserGrantRoleRequest,
)
from chainfire_core.auth.permissions import merge_spans, span_of
from chainfire_core.errors import AuthOldRevision, PermissionDenied
from chainfire_core.lease.messages import LeaseGrantRequest, LeaseRevokeRequest
from chainfire_core.mvcc.messages import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from chainfire_core.types import LeaseId

R, W, RW = PermissionType.READ, PermissionType.WRITE, PermissionType.READWRITE


def perms(*grants: tuple[PermissionType, bytes, bytes]) -> RangePermissions:
    return RangePermissions.of(Permission(perm_type=t, key=k, range_end=e) for t, k, e in grants)


def test_a_single_key_permission_covers_that_key_only() -> None:
    p = perms((RW, b"k", b""))
    assert p.allows(b"k", b"", R) and p.allows(b"k", b"", W)
    assert not p.allows(b"k0", b"", R) and not p.allows(b"j", b"", R)
    assert not p.allows(b"k", b"l", R)  # the range [k, l) holds more than k
    assert p.allows(b"k", b"k\0", R)  # [k, k\0) is exactly k


def test_a_prefix_permission_covers_the_prefix() -> None:
    p = perms((R, b"/app/", b"/app0"))
    assert p.allows(b"/app/", b"", R) and p.allows(b"/app/x/y", b"", R)
    assert p.allows(b"/app/a", b"/app/b", R)
    assert not p.allows(b"/app", b"", R) and not p.allows(b"/app0", b"", R)
    assert not p.allows(b"/app/", b"/app1", R)  # runs past the prefix
    assert not p.allows(b"/app/x", b"", W)  # READ only
    assert not p.allows(b"/app/x", b"", RW)


def test_a_from_key_permission_has_no_upper_bound() -> None:
    p = perms((W, b"m", b"\0"))
    assert p.allows(b"m", b"", W) and p.allows(b"\xff\xff", b"", W)
    assert p.allows(b"n", b"\0", W)  # from n on
    assert not p.allows(b"l", b"\0", W) and not p.allows(b"a", b"", W)


def test_the_empty_prefix_covers_every_key() -> None:
    # etcdctl role grant-permission --prefix r readwrite "": key b"", range_end b"\0".
    p = perms((RW, b"", b"\0"))
    assert p.allows(b"\0", b"\0", RW) and p.allows(b"anything", b"", RW)


def test_adjacent_grants_from_different_roles_cover_a_range_across_them() -> None:
    p = perms((R, b"a", b"c"), (R, b"c", b"e"))
    assert p.allows(b"b", b"d", R)
    assert not perms((R, b"a", b"c"), (R, b"c\0", b"e")).allows(b"b", b"d", R)  # a gap at c


def test_readwrite_counts_for_both_and_read_plus_write_makes_readwrite() -> None:
    p = perms((R, b"a", b"z"), (W, b"a", b"m"))
    assert p.allows(b"b", b"", RW) and not p.allows(b"n", b"", RW)


def test_an_empty_request_range_needs_its_key() -> None:
    p = perms((R, b"k", b""))
    assert p.allows(b"k", b"a", R)  # range_end below key: etcd reads nothing; we ask for k
    assert not perms((R, b"j", b"")).allows(b"k", b"a", R)


SMALL_KEY = st.binary(min_size=0, max_size=3)


@given(spans=st.lists(st.tuples(SMALL_KEY, st.one_of(st.none(), SMALL_KEY)), max_size=6),
       point=st.binary(min_size=1, max_size=4))
def test_merged_spans_cover_exactly_what_the_spans_cover(
        spans: list[tuple[bytes, bytes | None]], point: bytes) -> None:
    merged = merge_spans(spans)
    for (_, end), (start, _) in itertools.pairwise(merged):
        assert end is not None and end < start  # sorted, disjoint, not touching
    inside = any(s <= point and (e is None or point < e) for s, e in spans)
    assert inside == any(s <= point and (e is None or point < e) for s, e in merged)


def test_span_conventions() -> None:
    assert span_of(b"k", b"") == (b"k", b"k\0")
    assert span_of(b"k", b"\0") == (b"k", None)
    assert span_of(b"k", b"m") == (b"k", b"m")


# -- what each request needs ---------------------------------------------------------------


def _alice_with(*grants: Permission) -> tuple[Driver, AuthInfo]:
    driver = Driver()
    with_root_and_app(driver)
    driver(RoleAddRequest(name="extra"))
    for grant in grants:
        driver(RoleGrantPermissionRequest(name="extra", perm=grant))
    driver(UserGrantRoleRequest(user="alice", role="extra"))
    return driver, driver.login("alice", "alicepw")


def test_prev_kv_needs_read_as_well_as_write() -> None:
    driver, alice = _alice_with(Permission(perm_type=W, key=b"/w/", range_end=b"/w0"))
    driver.as_user(alice, PutRequest(key=b"/w/k", value=b"1"))
    with pytest.raises(PermissionDenied):
        driver.as_user(alice, PutRequest(key=b"/w/k", value=b"2", prev_kv=True))
    driver.as_user(alice, DeleteRangeRequest(key=b"/w/k"))
    with pytest.raises(PermissionDenied):
        driver.as_user(alice, DeleteRangeRequest(key=b"/w/", range_end=b"/w0",
                                                 prev_kv=True))
    with pytest.raises(PermissionDenied):
        driver.sm.serve_read(RangeRequest(key=b"/w/k"), alice)


def test_a_txn_needs_read_on_compares_and_each_op_on_both_branches() -> None:
    driver, alice = _alice_with(Permission(perm_type=R, key=b"/r/", range_end=b"/r0"))
    start = driver.sm.revision
    compare = Compare(key=b"/r/flag", target=CompareTarget.VERSION, result=CompareResult.EQUAL,
                      value=0)
    ok = TxnRequest(compare=(compare,), success=(PutRequest(key=b"/app/x", value=b"1"),),
                    failure=(RangeRequest(key=b"/r/", range_end=b"/r0"),))
    driver.as_user(alice, ok)
    bad_compare = Compare(key=b"/secret", target=CompareTarget.VERSION,
                          result=CompareResult.EQUAL, value=0)
    for txn in (TxnRequest(compare=(bad_compare,), success=ok.success),
                TxnRequest(success=ok.success, failure=(PutRequest(key=b"/r/x", value=b"1"),)),
                TxnRequest(success=(TxnRequest(success=(DeleteRangeRequest(key=b"/r/x"),)),))):
        with pytest.raises(PermissionDenied):
            driver.as_user(alice, txn)
    assert driver.sm.revision == start + 1  # only the first txn wrote


def test_leases_need_write_on_every_attached_key() -> None:
    driver, alice = _alice_with()
    root = driver.login("root", "rootpw")
    driver(LeaseGrantRequest(id=LeaseId(7), ttl_s=60))
    driver.as_user(root, PutRequest(key=b"/root-only", value=b"1", lease=LeaseId(7)))
    with pytest.raises(PermissionDenied):  # attaching to a lease alice could not revoke
        driver.as_user(alice, PutRequest(key=b"/app/k", value=b"1", lease=LeaseId(7)))
    with pytest.raises(PermissionDenied):
        driver.as_user(alice, LeaseRevokeRequest(id=LeaseId(7)))
    driver.as_user(root, LeaseRevokeRequest(id=LeaseId(7)))
    assert not driver.sm.lessor.exists(LeaseId(7))


def test_revoking_a_permission_takes_effect_for_new_tokens() -> None:
    driver, _ = _alice_with()
    driver(RoleRevokePermissionRequest(role="app", key=b"/app/", range_end=b"/app0"))
    with pytest.raises(PermissionDenied):
        driver.as_user(driver.login("alice", "alicepw"), PutRequest(key=b"/app/x", value=b"1"))


def test_a_permission_check_with_an_old_revision_is_refused() -> None:
    driver, alice = _alice_with()
    driver(user_add("bob"))  # an unrelated change still moves the revision on
    with pytest.raises(AuthOldRevision):
        driver.as_user(alice, PutRequest(key=b"/app/x", value=b"1"))
    granted = prefix_perm(b"/app/")
    assert driver.sm.auth.role_get("app") == (granted,)
