"""Simple tokens: expiry on the member's clock (injected), refresh on use,
stale tokens after an auth change, invalidation, bounds."""

from __future__ import annotations

import pytest
from auth_helpers import Driver, user_add, with_root_and_app

from chainfire_core.auth import (
    AuthDisableRequest,
    AuthInfo,
    SimpleTokenStore,
    UserChangePasswordCommand,
    UserDeleteRequest,
    UserRevokeRoleRequest,
    hash_password,
    simple_token_index,
)
from chainfire_core.config import StateMachineConfig
from chainfire_core.errors import AuthOldRevision, InvalidAuthToken, PermissionDenied
from chainfire_core.mvcc.messages import PutRequest

TTL_MS = 10_000


def _driver(*, binds_revision: bool = True) -> Driver:
    driver = Driver(StateMachineConfig(auth_token_ttl_ms=TTL_MS,
                                       auth_token_binds_revision=binds_revision))
    with_root_and_app(driver)
    return driver


def test_a_token_is_prefix_dot_log_index_and_carries_its_revision() -> None:
    driver = _driver()
    token = driver.authenticate("alice", "alicepw", prefix="abcdefghijklmnop")
    assert token == f"abcdefghijklmnop.{driver.index}"
    assert simple_token_index(token) == driver.index
    assert driver.sm.auth_info(token, now_ms=0) == AuthInfo(user="alice",
                                                           revision=driver.sm.auth.revision)
    for not_a_token in ("abc", "abc.", ".12", "ab1.12", "abc.-1"):
        assert simple_token_index(not_a_token) is None


def test_an_unused_token_expires_after_its_ttl_on_the_injected_clock() -> None:
    driver = _driver()
    driver.now_ms = 1_000
    token = driver.authenticate("alice", "alicepw")
    driver.sm.auth_info(token, now_ms=1_000 + TTL_MS - 1)  # used: the TTL starts over
    driver.sm.auth_info(token, now_ms=1_000 + 2 * TTL_MS - 2)  # still alive
    with pytest.raises(InvalidAuthToken):
        driver.sm.auth_info(token, now_ms=1_000 + 3 * TTL_MS)
    with pytest.raises(InvalidAuthToken):  # gone for good
        driver.sm.auth_info(token, now_ms=0)


def test_an_unknown_token_is_refused() -> None:
    driver = _driver()
    with pytest.raises(InvalidAuthToken):
        driver.sm.auth_info("nosuchtoken.5", now_ms=0)


def test_a_token_issued_before_a_role_revoke_is_stale() -> None:
    driver = _driver()
    alice = driver.login("alice", "alicepw")
    driver.as_user(alice, PutRequest(key=b"/app/x", value=b"1"))
    written = driver.sm.revision
    root = driver.login("root", "rootpw")
    driver.as_user(root, UserRevokeRoleRequest(name="alice", role="app"))
    with pytest.raises(AuthOldRevision):
        driver.as_user(alice, PutRequest(key=b"/app/x", value=b"2"))
    # A fresh token is current, and the revoke shows.
    with pytest.raises(PermissionDenied):
        driver.as_user(driver.login("alice", "alicepw"), PutRequest(key=b"/app/x", value=b"2"))
    assert driver.sm.revision == written


def test_without_revision_binding_a_token_lives_on_and_the_revoke_shows() -> None:
    # etcd's simple-token behaviour: the token is checked at the current revision.
    driver = _driver(binds_revision=False)
    token = driver.authenticate("alice", "alicepw")
    driver.as_user(driver.login("root", "rootpw"),
                   UserRevokeRoleRequest(name="alice", role="app"))
    alice = driver.sm.auth_info(token, now_ms=0)
    assert alice.revision == driver.sm.auth.revision
    with pytest.raises(PermissionDenied):
        driver.as_user(alice, PutRequest(key=b"/app/x", value=b"2"))


def test_deleting_a_user_or_changing_its_password_drops_its_tokens() -> None:
    driver = _driver()
    driver(user_add("bob", "bobpw"))
    bob = driver.authenticate("bob", "bobpw", prefix="bob")
    alice = driver.authenticate("alice", "alicepw", prefix="alice")
    driver(UserChangePasswordCommand(name="alice", password_hash=hash_password(
        "new", salt=b"brand-new-salt-1", iterations=1_000)))
    with pytest.raises(InvalidAuthToken):
        driver.sm.auth_info(alice, now_ms=0)
    driver.sm.auth_info(bob, now_ms=0)
    driver(UserDeleteRequest(name="bob"))
    with pytest.raises(InvalidAuthToken):
        driver.sm.auth_info(bob, now_ms=0)


def test_disabling_auth_drops_every_token() -> None:
    driver = _driver()
    token = driver.authenticate("alice", "alicepw")
    driver(AuthDisableRequest())
    assert len(driver.sm.tokens) == 0
    with pytest.raises(InvalidAuthToken):
        driver.sm.auth_info(token, now_ms=0)


def test_tokens_are_not_replicated_state() -> None:
    driver = _driver()
    token = driver.authenticate("alice", "alicepw")
    twin = _driver()
    twin.authenticate("alice", "alicepw")
    twin.sm.tokens.clear()
    assert twin.sm.snapshot() == driver.sm.snapshot()  # the token is not in it
    other = Driver()
    other.sm.restore(driver.sm.snapshot())
    assert len(other.sm.tokens) == 0 and len(driver.sm.tokens) == 1
    with pytest.raises(InvalidAuthToken):
        other.sm.auth_info(token, now_ms=0)
    assert other.sm.auth.user_list() == driver.sm.auth.user_list()


def test_the_token_store_is_bounded_and_drops_the_expired_first() -> None:
    store = SimpleTokenStore(ttl_ms=100, max_tokens=2)
    store.assign("a.1", "u", 1, now_ms=0)
    store.assign("b.2", "u", 1, now_ms=50)
    store.assign("c.3", "u", 1, now_ms=120)  # a.1 expired at 100: dropped first
    assert len(store) == 2 and store.lookup("a.1", 120) is None
    store.assign("d.4", "u", 1, now_ms=130)  # none expired: b.2 (due at 150) goes
    assert len(store) == 2 and store.lookup("b.2", 130) is None
    assert store.lookup("c.3", 130) == store.lookup("d.4", 130) == ("u", 1)
    store.check_invariants()
