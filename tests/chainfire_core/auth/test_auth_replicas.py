"""Replicas that apply the same commands hold the same auth, alarm and quota
state and give the same answers (a property test); snapshots carry that
state, format-1 snapshots still restore, and malformed auth records in a
snapshot are refused without changing anything."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace

import pytest
from auth_helpers import Driver, prefix_perm, user_add, with_root_and_app
from hypothesis import given, settings
from hypothesis import strategies as st

from chainfire_core.alarms import AlarmAction, AlarmRequest, AlarmType
from chainfire_core.auth import (
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateCommand,
    AuthorizedCommand,
    Permission,
    PermissionType,
    RoleAddRequest,
    RoleDeleteRequest,
    RoleGrantPermissionRequest,
    RoleRevokePermissionRequest,
    UserAddCommand,
    UserChangePasswordCommand,
    UserDeleteRequest,
    UserGrantRoleRequest,
    UserRevokeRoleRequest,
)
from chainfire_core.errors import ChainfireError, CorruptSnapshot
from chainfire_core.mvcc.messages import DeleteRangeRequest, PutRequest, prefix_end
from chainfire_core.quota import QuotaDeleteRequest, QuotaSetRequest
from chainfire_core.state_machine import Command, StateMachine
from chainfire_core.storage import MemoryBackend
from chainfire_core.types import NodeId

USERS = ("root", "alice", "bob")
ROLES = ("root", "app", "ops")
KEYS = (b"/a/1", b"/a/2", b"/b", b"/c/x")
# Hashes are computed once: the property draws which one a command carries.
HASHES = {name: user_add(name, f"{name}-pw", salt=f"salt-of-{name}!!".encode()).password_hash
          for name in USERS}
assert all(h is not None for h in HASHES.values())

names = st.sampled_from(USERS)
roles = st.sampled_from(ROLES)
keys = st.sampled_from(KEYS)
revisions = st.integers(min_value=1, max_value=12)
permission = st.builds(
    Permission, perm_type=st.sampled_from(PermissionType),
    key=st.sampled_from((b"/a/", b"/b", b"/c/")),
    range_end=st.sampled_from((b"", b"/a0", b"\0", prefix_end(b"/c/"))))
kv = st.one_of(
    st.builds(PutRequest, key=keys, value=st.binary(max_size=6)),
    st.builds(DeleteRangeRequest, key=keys, range_end=st.sampled_from((b"", b"\0"))))
auth_change = st.one_of(
    st.builds(lambda n: UserAddCommand(name=n, password_hash=HASHES[n]), names),
    st.builds(UserDeleteRequest, name=names),
    st.builds(lambda n: UserChangePasswordCommand(name=n, password_hash=HASHES["bob"]), names),
    st.builds(UserGrantRoleRequest, user=names, role=roles),
    st.builds(UserRevokeRoleRequest, name=names, role=roles),
    st.builds(RoleAddRequest, name=roles),
    st.builds(RoleDeleteRequest, role=roles),
    st.builds(RoleGrantPermissionRequest, name=roles, perm=permission),
    st.builds(RoleRevokePermissionRequest, role=roles, key=st.sampled_from((b"/a/", b"/b")),
              range_end=st.sampled_from((b"", b"/a0"))),
    st.just(AuthEnableRequest()), st.just(AuthDisableRequest()),
    st.builds(AuthenticateCommand, name=names, token_prefix=st.sampled_from(("tok", "xyz")),
              checked_revision=revisions),
)
other = st.one_of(
    st.builds(QuotaSetRequest, prefix=st.sampled_from((b"/a/", b"/c/")),
              max_keys=st.integers(1, 3), max_bytes=st.integers(0, 40)),
    st.builds(QuotaDeleteRequest, prefix=st.sampled_from((b"/a/", b"/c/"))),
    st.builds(AlarmRequest, action=st.sampled_from((AlarmAction.ACTIVATE, AlarmAction.DEACTIVATE)),
              member_id=st.sampled_from((NodeId(1), NodeId(2))),
              alarm=st.sampled_from((AlarmType.NOSPACE, AlarmType.CORRUPT))),
)
plain = st.one_of(auth_change, kv, other)


def _wrapped(command: Command) -> st.SearchStrategy[tuple[Command, bool]]:
    """The command, maybe sent as a user; True: its auth revision is to be
    the store's current one when it applies (filled in by `_concrete`)."""
    current = st.booleans()
    if isinstance(command, AuthenticateCommand):
        return st.tuples(st.just(command), current)
    as_user = st.builds(lambda user, revision, c=command: AuthorizedCommand(
        user=user, auth_revision=revision, command=c), names, revisions)
    return st.one_of(st.tuples(st.just(command), st.just(False)), st.tuples(as_user, current))


SETUP: list[tuple[Command, bool]] = [
    (UserAddCommand(name="root", password_hash=HASHES["root"]), False),
    (UserGrantRoleRequest(user="root", role="root"), False),
    (RoleAddRequest(name="app"), False),
    (RoleGrantPermissionRequest(name="app", perm=prefix_perm(b"/a/")), False),
    (UserAddCommand(name="alice", password_hash=HASHES["alice"]), False),
    (UserGrantRoleRequest(user="alice", role="app"), False),
    (AuthEnableRequest(), False),
]
templates = st.tuples(st.booleans(), st.lists(plain.flatmap(_wrapped), max_size=40)).map(
    lambda drawn: (SETUP if drawn[0] else []) + drawn[1])


def _run(sm: StateMachine, sequence: list[Command], start: int = 0) -> list[str]:
    outcomes = []
    for index, command in enumerate(sequence[start:], start=start + 1):
        try:
            outcomes.append(repr(sm.apply(command, now_ms=index * 100, index=index)))
        except ChainfireError as error:
            outcomes.append(repr(error))
    return outcomes


def _concrete(drawn: list[tuple[Command, bool]]) -> list[Command]:
    """Fill in "current" auth revisions by running a reference replica."""
    reference, sequence = StateMachine(), []
    for template, current in drawn:
        command = template
        if current and isinstance(template, AuthenticateCommand):
            command = replace(template, checked_revision=reference.auth.revision)
        elif current and isinstance(template, AuthorizedCommand):
            command = replace(template, auth_revision=reference.auth.revision)
        sequence.append(command)
        _run(reference, sequence, start=len(sequence) - 1)
    return sequence


@settings(max_examples=150, deadline=None)
@given(drawn=templates, cut=st.integers(min_value=0, max_value=50))
def test_replicas_applying_the_same_commands_agree(drawn: list[tuple[Command, bool]],
                                                   cut: int) -> None:
    sequence = _concrete(drawn)
    one, two = StateMachine(), StateMachine()
    assert _run(one, sequence) == _run(two, sequence)
    # A third replica joins from the second's snapshot part way through.
    cut = min(cut, len(sequence))
    donor, late = StateMachine(), StateMachine()
    _run(donor, sequence[:cut])
    late.restore(donor.snapshot())
    _run(late, sequence, start=cut)
    for replica in (two, late):
        assert replica.snapshot() == one.snapshot()
        assert (replica.auth.enabled, replica.auth.revision, replica.auth.user_list(),
                replica.auth.role_list()) == (one.auth.enabled, one.auth.revision,
                                              one.auth.user_list(), one.auth.role_list())
        assert replica.alarms.get() == one.alarms.get()
        assert replica.quotas.list(one._header()) == one.quotas.list(one._header())
        replica.check_invariants(deep=True)
    # Tokens are per member; members that applied the same log hold the same ones.
    assert sorted(one.tokens._tokens) == sorted(two.tokens._tokens)
    one.check_invariants(deep=True)


# -- snapshots -----------------------------------------------------------------------------


def _busy() -> Driver:
    driver = Driver()
    with_root_and_app(driver)
    driver(QuotaSetRequest(prefix=b"/app/", max_keys=5, max_bytes=100))
    driver(PutRequest(key=b"/app/x", value=b"12345"))
    driver(AlarmRequest(action=AlarmAction.ACTIVATE, member_id=NodeId(3), alarm=AlarmType.NOSPACE))
    return driver


def test_a_snapshot_round_trip_keeps_auth_quota_and_alarm_state() -> None:
    source = _busy().sm
    target = StateMachine()
    target.restore(source.snapshot())
    assert target.snapshot() == source.snapshot()
    assert target.auth.enabled and target.auth.revision == source.auth.revision
    assert target.auth.user_get("alice") == ("app",)
    assert target.auth.role_get("app") == (prefix_perm(b"/app/"),)
    target.auth.check_password("alice", "alicepw")
    assert target.alarms.get() == source.alarms.get() != ()
    usage = target.quotas.list(target._header()).quotas
    assert [(u.prefix, u.used_keys, u.used_bytes) for u in usage] == [(b"/app/", 1, 11)]
    assert target.backend_size_bytes == source.backend_size_bytes
    target.check_invariants(deep=True)


def _frame(body: bytes, version: int) -> bytes:
    return struct.pack(">4sH32sQ", b"CFSM", version, hashlib.sha256(body).digest(),
                       len(body)) + body


def test_a_format_1_snapshot_restores_without_auth_or_quotas() -> None:
    old = Driver()
    old(PutRequest(key=b"k", value=b"v"))
    body = old.sm.snapshot()[46:]  # the body is the same in both formats
    target = _busy().sm
    target.restore(_frame(body, 1))
    assert not target.auth.enabled and target.auth.user_list() == () and target.auth.revision == 1
    assert target.alarms.get() == () and target.quotas.list(target._header()).quotas == ()
    assert target.store.hash_kv() == old.sm.store.hash_kv()
    assert len(target.tokens) == 0


def _with_bucket_record(sm: StateMachine, bucket: str, key: bytes, value: bytes) -> bytes:
    """`sm`'s snapshot with one backend record replaced (and a valid checksum)."""
    body = sm.snapshot()[46:]
    backend_at = body.index(b"CFMB")
    backend = MemoryBackend()
    backend.restore(body[backend_at:])
    backend.put(bucket, key, value)
    data = backend.snapshot()
    head = body[:backend_at - 8] + struct.pack(">Q", len(data))
    return _frame(head + data, 2)


@pytest.mark.parametrize(("bucket", "key", "value"), [
    ("authUsers", b"alice", b"not a record"),
    ("authUsers", b"mallory", bytes.fromhex("01")),
    ("authRoles", b"app", b"\x01\x07\x02"),
    ("auth", b"authRevision", b"\x00"),
    ("auth", b"authEnabled", b"\x05"),
    ("alarm", b"short", b""),
    ("quota", b"/q/", b"\x00" * 16),
])
def test_a_snapshot_with_a_malformed_record_is_refused_and_changes_nothing(
        bucket: str, key: bytes, value: bytes) -> None:
    source = _busy().sm
    corrupt = _with_bucket_record(source, bucket, key, value)
    target = Driver()
    with_root_and_app(target, enable=False)
    before = (target.sm.snapshot(), target.sm.auth.user_list(), target.sm.backend_size_bytes)
    with pytest.raises(CorruptSnapshot):
        target.sm.restore(corrupt)
    assert (target.sm.snapshot(), target.sm.auth.user_list(),
            target.sm.backend_size_bytes) == before
    target.sm.check_invariants(deep=True)


def test_the_record_helper_builds_a_valid_snapshot() -> None:
    source = _busy().sm
    record = source.store.backend.get("authRoles", b"app")
    assert record is not None
    target = StateMachine()
    target.restore(_with_bucket_record(source, "authRoles", b"app", record))
    assert target.snapshot() == source.snapshot()


def test_a_record_under_another_name_is_refused() -> None:
    source = _busy().sm
    record = source.store.backend.get("authRoles", b"app")
    assert record is not None
    with pytest.raises(CorruptSnapshot):
        StateMachine().restore(_with_bucket_record(source, "authRoles", b"zz", record))
