"""Tests of the sans-IO lessor and its expiry queue."""

from __future__ import annotations

import ast
import inspect
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import chainfire_core.lease as lease_pkg
from chainfire_core.config import MAX_LEASE_TTL_S, StateMachineConfig
from chainfire_core.errors import (
    CorruptSnapshot,
    InvalidRequest,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    RequestError,
)
from chainfire_core.lease import (
    DEFAULT_EXPIRY_RETRY_MS,
    MAX_LEASE_ID,
    ExpiryQueue,
    LeaseGrant,
    LeaseRecord,
    LeaseTimeToLive,
    Lessor,
    NotPrimaryLessor,
)
from chainfire_core.lease import expiry_queue as expiry_queue_module
from chainfire_core.lease import lessor as lessor_module
from chainfire_core.types import NO_LEASE, LeaseId

L1, L2, L3, L4 = LeaseId(1), LeaseId(2), LeaseId(3), LeaseId(4)


def make(*, primary: bool = False, now_ms: int = 0, retry_ms: int = DEFAULT_EXPIRY_RETRY_MS,
         **config: int) -> Lessor:
    lessor = Lessor(StateMachineConfig(**config), expiry_retry_ms=retry_ms)
    if primary:
        lessor.promote(now_ms)
    return lessor


def test_public_names_are_exported() -> None:
    for name in lease_pkg.__all__:
        assert hasattr(lease_pkg, name), name


@pytest.mark.parametrize("module", [lessor_module, expiry_queue_module])
def test_module_is_sans_io(module: object) -> None:
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    forbidden = {"time", "random", "os", "asyncio", "logging", "threading", "socket", "simpy"}
    assert not imported & forbidden


def test_retry_interval_must_be_positive() -> None:
    with pytest.raises(InvalidRequest):
        Lessor(StateMachineConfig(), expiry_retry_ms=0)


# --- grant ---------------------------------------------------------------------


@pytest.mark.parametrize("lease_id", [0, -1, MAX_LEASE_ID + 1])
def test_grant_rejects_out_of_range_id(lease_id: int) -> None:
    lessor = make()
    with pytest.raises(InvalidRequest):
        lessor.grant(LeaseId(lease_id), 10, now_ms=0)
    assert lessor.leases() == ()


def test_grant_accepts_largest_id() -> None:
    lessor = make()
    assert lessor.grant(LeaseId(MAX_LEASE_ID), 10, now_ms=0).id == MAX_LEASE_ID


def test_grant_existing_id_raises_lease_exists() -> None:
    lessor = make()
    lessor.grant(L1, 10, now_ms=0)
    with pytest.raises(LeaseExists) as info:
        lessor.grant(L1, 20, now_ms=0)
    assert info.value.grpc_code == "FAILED_PRECONDITION"
    assert lessor.time_to_live(L1, now_ms=0).granted_ttl_s == 10


def test_grant_ttl_too_large() -> None:
    lessor = make(max_lease_ttl_s=100)
    assert lessor.grant(L1, 100, now_ms=0).ttl_s == 100
    with pytest.raises(LeaseTTLTooLarge):
        lessor.grant(L2, 101, now_ms=0)
    assert not lessor.exists(L2)


def test_grant_checks_ttl_before_existence() -> None:
    lessor = make(max_lease_ttl_s=100)
    lessor.grant(L1, 10, now_ms=0)
    with pytest.raises(LeaseTTLTooLarge):
        lessor.grant(L1, 101, now_ms=0)


@pytest.mark.parametrize(("asked_s", "granted_s"), [(-3, 5), (0, 5), (4, 5), (5, 5), (6, 6)])
def test_grant_raises_ttl_to_minimum(asked_s: int, granted_s: int) -> None:
    lessor = make(min_lease_ttl_s=5)
    assert lessor.grant(L1, asked_s, now_ms=0) == LeaseGrant(id=L1, ttl_s=granted_s)
    assert lessor.to_records() == (LeaseRecord(id=L1, ttl_s=granted_s),)


def test_grant_on_primary_starts_the_clock_and_follower_never_expires() -> None:
    primary = make(primary=True)
    follower = make()
    for lessor in (primary, follower):
        lessor.grant(L1, 10, now_ms=1_000)
    info = primary.lookup(L1)
    assert info is not None and info.expiry_ms == 11_000
    info = follower.lookup(L1)
    assert info is not None and info.expiry_ms is None
    assert follower.expired(now_ms=10**15) == ()


def test_results_are_frozen() -> None:
    grant = make().grant(L1, 10, now_ms=0)
    with pytest.raises(FrozenInstanceError):
        grant.ttl_s = 3  # type: ignore[misc]


# --- allocation ----------------------------------------------------------------


def test_allocate_counts_up_and_skips_ids_in_use() -> None:
    lessor = make()
    assert lessor.next_id == 1
    lessor.grant(L2, 10, now_ms=0)
    lessor.grant(L3, 10, now_ms=0)
    assert lessor.allocate_id() == 1
    lessor.grant(L1, 10, now_ms=0)
    assert lessor.allocate_id() == 4
    assert lessor.next_id == 5


def test_allocate_is_deterministic_across_replicas() -> None:
    replicas = [make(), make(primary=True)]
    results = []
    for lessor in replicas:
        ids = []
        for step in range(20):
            if step % 3 == 0:
                lessor.grant(LeaseId(2 * step + 5), 10, now_ms=step)
            lease_id = lessor.allocate_id()
            lessor.grant(lease_id, 10, now_ms=step)
            ids.append(lease_id)
        results.append((ids, lessor.next_id))
    assert results[0] == results[1]
    assert len(set(results[0][0])) == 20


def test_allocate_wraps_around_past_largest_id() -> None:
    lessor = make()
    lessor.restore((LeaseRecord(id=L1, ttl_s=5),), next_id=MAX_LEASE_ID)
    assert lessor.allocate_id() == MAX_LEASE_ID
    assert lessor.allocate_id() == 2  # 1 is in use
    assert lessor.next_id == 3


# --- revoke, attach, detach ----------------------------------------------------


def test_revoke_returns_sorted_keys_and_forgets_the_lease() -> None:
    lessor = make(primary=True)
    lessor.grant(L1, 10, now_ms=0)
    for key in (b"c", b"a", b"b"):
        lessor.attach(L1, key)
    assert lessor.revoke(L1) == (b"a", b"b", b"c")
    assert not lessor.exists(L1) and lessor.lookup(L1) is None
    assert lessor.lease_of(b"a") == NO_LEASE
    lessor.check_invariants()
    with pytest.raises(LeaseNotFound) as info:
        lessor.revoke(L1)
    assert info.value.grpc_code == "NOT_FOUND" and info.value.lease_id == L1


def test_attach_and_detach() -> None:
    lessor = make()
    lessor.grant(L1, 10, now_ms=0)
    lessor.attach(L1, b"k2")
    lessor.attach(L1, b"k1")
    lessor.attach(L1, b"k1")  # idempotent
    assert lessor.keys(L1) == (b"k1", b"k2")
    assert lessor.lease_of(b"k1") == L1
    lessor.detach(L1, b"k1")
    lessor.detach(L1, b"never-attached")
    assert lessor.keys(L1) == (b"k2",)
    assert lessor.lease_of(b"k1") == NO_LEASE
    lessor.check_invariants()


def test_detach_leaves_another_leases_key_alone() -> None:
    lessor = make()
    lessor.grant(L1, 10, now_ms=0)
    lessor.grant(L2, 10, now_ms=0)
    lessor.attach(L2, b"k")
    lessor.detach(L1, b"k")
    assert lessor.lease_of(b"k") == L2


def test_attach_detach_keys_on_missing_lease() -> None:
    lessor = make()
    for call in (lambda: lessor.attach(L1, b"k"), lambda: lessor.detach(L1, b"k"),
                 lambda: lessor.keys(L1)):
        with pytest.raises(LeaseNotFound):
            call()


def test_attaching_a_key_to_a_second_lease_is_a_bug() -> None:
    lessor = make()
    lessor.grant(L1, 10, now_ms=0)
    lessor.grant(L2, 10, now_ms=0)
    lessor.attach(L1, b"k")
    with pytest.raises(AssertionError):
        lessor.attach(L2, b"k")
    lessor.detach(L1, b"k")
    lessor.attach(L2, b"k")
    assert lessor.lease_of(b"k") == L2


# --- renew and time to live ----------------------------------------------------


def test_renew_on_non_primary_raises_not_primary() -> None:
    lessor = make()
    lessor.grant(L1, 10, now_ms=0)
    with pytest.raises(NotPrimaryLessor) as info:
        lessor.renew(L1, now_ms=0)
    assert isinstance(info.value, RequestError)
    assert info.value.grpc_code == "UNAVAILABLE"
    assert str(info.value) == "etcdserver: not leader"
    with pytest.raises(NotPrimaryLessor):
        lessor.renew(L2, now_ms=0)  # leadership is checked first, as in etcd


def test_renew_missing_lease() -> None:
    with pytest.raises(LeaseNotFound):
        make(primary=True).renew(L1, now_ms=0)


def test_renew_resets_expiry_and_returns_granted_ttl() -> None:
    lessor = make(primary=True)
    lessor.grant(L1, 10, now_ms=0)
    assert lessor.renew(L1, now_ms=9_000) == 10
    assert lessor.expired(now_ms=10_000) == ()
    assert lessor.time_to_live(L1, now_ms=10_000).ttl_s == 9
    assert lessor.expired(now_ms=19_000) == (L1,)
    lessor.check_invariants()


def test_renew_of_expired_lease_is_refused() -> None:
    lessor = make(primary=True)
    lessor.grant(L1, 10, now_ms=0)
    with pytest.raises(LeaseNotFound):
        lessor.renew(L1, now_ms=10_000)
    assert lessor.exists(L1)


def test_time_to_live_on_primary_rounds_up_and_stops_at_zero() -> None:
    lessor = make(primary=True)
    lessor.grant(L1, 10, now_ms=0)
    lessor.attach(L1, b"b")
    lessor.attach(L1, b"a")
    assert lessor.time_to_live(L1, now_ms=0) == LeaseTimeToLive(
        id=L1, ttl_s=10, granted_ttl_s=10, keys=(b"a", b"b"))
    assert lessor.time_to_live(L1, now_ms=1).ttl_s == 10
    assert lessor.time_to_live(L1, now_ms=1_000).ttl_s == 9
    assert lessor.time_to_live(L1, now_ms=9_999).ttl_s == 1
    assert lessor.time_to_live(L1, now_ms=10_000).ttl_s == 0
    assert lessor.time_to_live(L1, now_ms=50_000).ttl_s == 0


def test_time_to_live_on_non_primary_uses_checkpoint_else_granted() -> None:
    lessor = make()
    lessor.grant(L1, 10, now_ms=0)
    assert lessor.time_to_live(L1, now_ms=99_000).ttl_s == 10
    lessor.apply_checkpoint(L1, 4)
    assert lessor.time_to_live(L1, now_ms=99_000).ttl_s == 4
    with pytest.raises(LeaseNotFound):
        lessor.time_to_live(L2, now_ms=0)


def test_leases_are_sorted() -> None:
    lessor = make()
    for lease_id in (L3, L1, L2):
        lessor.grant(lease_id, 10, now_ms=0)
    assert lessor.leases() == (L1, L2, L3)


# --- expiry --------------------------------------------------------------------


def test_expired_orders_by_expiry_then_id_and_does_not_remove() -> None:
    lessor = make(primary=True)
    lessor.grant(L3, 5, now_ms=0)
    lessor.grant(L1, 7, now_ms=0)
    lessor.grant(L2, 5, now_ms=0)
    lessor.grant(L4, 9, now_ms=0)
    assert lessor.expired(now_ms=4_999) == ()
    assert lessor.expired(now_ms=7_000) == (L2, L3, L1)
    assert lessor.leases() == (L1, L2, L3, L4)
    lessor.check_invariants()


def test_expired_is_bounded_per_pass_earliest_first() -> None:
    lessor = make(primary=True, max_expired_leases_per_pass=2)
    for lease_id, ttl_s in ((L1, 4), (L2, 3), (L3, 2), (L4, 1)):
        lessor.grant(lease_id, ttl_s, now_ms=0)
    assert lessor.expired(now_ms=10_000) == (L4, L3)
    assert lessor.expired(now_ms=10_000) == (L2, L1)
    assert lessor.expired(now_ms=10_000) == ()


def test_reported_leases_are_retried_after_the_retry_interval() -> None:
    lessor = make(primary=True, retry_ms=500)
    lessor.grant(L1, 1, now_ms=0)
    lessor.grant(L2, 1, now_ms=0)
    assert lessor.expired(now_ms=1_000) == (L1, L2)
    assert lessor.expired(now_ms=1_499) == ()
    lessor.revoke(L2)  # L1's revoke proposal was lost
    assert lessor.expired(now_ms=1_500) == (L1,)
    assert lessor.expired(now_ms=1_999) == ()
    lessor.check_invariants()


def test_reported_lease_is_retried_after_fresh_expiries_of_same_due_time() -> None:
    lessor = make(primary=True, retry_ms=1_000)
    lessor.grant(L2, 1, now_ms=0)
    assert lessor.expired(now_ms=1_000) == (L2,)
    lessor.grant(L1, 2, now_ms=0)
    assert lessor.expired(now_ms=2_000) == (L2, L1)  # sorted by (expiry, id)


# --- promote and demote ---------------------------------------------------------


def test_promote_gives_granted_ttl_without_checkpoint() -> None:
    lessor = make()
    lessor.grant(L1, 10, now_ms=0)
    lessor.promote(now_ms=50_000)
    assert lessor.is_primary
    info = lessor.lookup(L1)
    assert info is not None and info.expiry_ms == 60_000
    lessor.check_invariants()


def test_promote_uses_checkpointed_remaining_ttl_and_extension() -> None:
    lessor = make()
    lessor.grant(L1, 100, now_ms=0)
    lessor.grant(L2, 100, now_ms=0)
    lessor.apply_checkpoint(L1, 7)
    lessor.promote(now_ms=1_000, extend_ms=250)
    assert lessor.expired(now_ms=8_249) == ()
    assert lessor.expired(now_ms=8_250) == (L1,)
    assert lessor.time_to_live(L2, now_ms=1_000).ttl_s == 101


def test_promote_forgets_reported_state() -> None:
    lessor = make(primary=True)
    lessor.grant(L1, 1, now_ms=0)
    assert lessor.expired(now_ms=1_000) == (L1,)
    lessor.demote()
    lessor.promote(now_ms=1_000)
    assert lessor.expired(now_ms=2_000) == (L1,)


def test_promote_twice_is_a_bug() -> None:
    lessor = make(primary=True)
    with pytest.raises(AssertionError):
        lessor.promote(now_ms=0)


def test_demote_makes_every_expiry_forever() -> None:
    lessor = make(primary=True)
    lessor.grant(L1, 1, now_ms=0)
    lessor.demote()
    lessor.demote()  # idempotent
    assert not lessor.is_primary
    info = lessor.lookup(L1)
    assert info is not None and info.expiry_ms is None
    assert lessor.expired(now_ms=10**12) == ()
    assert lessor.checkpoints_due(now_ms=10**12, interval_ms=1) == ()
    assert lessor.time_to_live(L1, now_ms=10**12).ttl_s == 1
    with pytest.raises(NotPrimaryLessor):
        lessor.renew(L1, now_ms=0)
    lessor.check_invariants()


# --- checkpoints ----------------------------------------------------------------


def test_checkpoints_due_after_interval_sorted_by_id() -> None:
    lessor = make(primary=True)
    lessor.grant(L2, 100, now_ms=0)
    lessor.grant(L1, 100, now_ms=1_000)
    assert lessor.checkpoints_due(now_ms=9_999, interval_ms=10_000) == ()
    assert lessor.checkpoints_due(now_ms=10_000, interval_ms=10_000) == ((L2, 90),)
    assert lessor.checkpoints_due(now_ms=11_500, interval_ms=1_500) == ((L1, 90), (L2, 89))
    assert lessor.checkpoints_due(now_ms=11_500, interval_ms=1_500) == ()
    lessor.check_invariants()


def test_checkpoints_skip_unchanged_and_expired_leases() -> None:
    lessor = make(primary=True)
    lessor.grant(L1, 100, now_ms=0)
    lessor.grant(L2, 1, now_ms=0)
    lessor.apply_checkpoint(L1, 90)
    assert lessor.checkpoints_due(now_ms=10_000, interval_ms=1_000) == ()
    assert lessor.checkpoints_due(now_ms=11_000, interval_ms=1_000) == ((L1, 89),)
    lessor.check_invariants()


def test_checkpoints_skip_a_lease_expiring_right_now() -> None:
    lessor = make(primary=True)
    lessor.grant(L1, 2, now_ms=0)
    assert lessor.checkpoints_due(now_ms=2_000, interval_ms=1_000) == ()
    assert lessor.expired(now_ms=2_000) == (L1,)


def test_checkpoints_are_bounded_per_call() -> None:
    lessor = make(primary=True, max_expired_leases_per_pass=2)
    for lease_id in (L1, L2, L3):
        lessor.grant(lease_id, 100, now_ms=0)
    assert lessor.checkpoints_due(now_ms=5_000, interval_ms=1_000) == ((L1, 95), (L2, 95))
    assert lessor.checkpoints_due(now_ms=5_000, interval_ms=1_000) == ((L3, 95),)


def test_checkpoint_interval_must_be_positive() -> None:
    with pytest.raises(InvalidRequest):
        make(primary=True).checkpoints_due(now_ms=0, interval_ms=0)


def test_apply_checkpoint_ignores_unknown_and_rejects_negative() -> None:
    lessor = make()
    lessor.apply_checkpoint(L1, 5)
    assert lessor.leases() == ()
    lessor.grant(L1, 10, now_ms=0)
    with pytest.raises(InvalidRequest):
        lessor.apply_checkpoint(L1, -1)


def test_renew_clears_checkpoint_everywhere() -> None:
    leader, follower = make(primary=True), make()
    for lessor in (leader, follower):
        lessor.grant(L1, 100, now_ms=0)
    for lease_id, remaining_s in leader.checkpoints_due(now_ms=60_000, interval_ms=1_000):
        for lessor in (leader, follower):
            lessor.apply_checkpoint(lease_id, remaining_s)
    assert follower.time_to_live(L1, now_ms=0).ttl_s == 40
    leader.renew(L1, now_ms=61_000)
    info = leader.lookup(L1)
    assert info is not None and info.remaining_ttl_s == 0
    assert leader.checkpoints_due(now_ms=61_000, interval_ms=1_000) == ((L1, 0),)
    follower.apply_checkpoint(L1, 0)
    follower.promote(now_ms=62_000)
    assert follower.time_to_live(L1, now_ms=62_000).ttl_s == 100
    leader.check_invariants()
    follower.check_invariants()


def test_renew_then_revoke_drops_pending_clear() -> None:
    lessor = make(primary=True)
    lessor.grant(L1, 100, now_ms=0)
    lessor.apply_checkpoint(L1, 50)
    lessor.renew(L1, now_ms=1_000)
    lessor.revoke(L1)
    assert lessor.checkpoints_due(now_ms=1_000, interval_ms=1_000) == ()
    lessor.check_invariants()


# --- snapshots ------------------------------------------------------------------


def test_records_round_trip() -> None:
    source = make(primary=True)
    source.grant(L3, 30, now_ms=0)
    source.grant(source.allocate_id(), 10, now_ms=0)
    source.apply_checkpoint(L3, 12)
    records = source.to_records()
    assert records == (LeaseRecord(id=L1, ttl_s=10), LeaseRecord(id=L3, ttl_s=30,
                                                                   remaining_ttl_s=12))
    target = make(primary=True)
    target.grant(L4, 5, now_ms=0)
    target.attach(L4, b"old")
    target.restore(records, next_id=source.next_id)
    assert not target.is_primary
    assert target.to_records() == records and target.next_id == source.next_id == 2
    assert target.lease_of(b"old") == NO_LEASE
    target.attach(L3, b"k")
    assert target.allocate_id() == source.allocate_id() == 2
    target.check_invariants()


@pytest.mark.parametrize("records", [
    (LeaseRecord(id=L2, ttl_s=5), LeaseRecord(id=L1, ttl_s=5)),
    (LeaseRecord(id=L1, ttl_s=5), LeaseRecord(id=L1, ttl_s=6)),
])
def test_restore_rejects_unsorted_or_duplicate_records(records: tuple[LeaseRecord, ...]) -> None:
    lessor = make(primary=True)
    lessor.grant(L4, 5, now_ms=0)
    with pytest.raises(CorruptSnapshot):
        lessor.restore(records, next_id=1)
    assert lessor.leases() == (L4,) and lessor.is_primary  # nothing changed


@pytest.mark.parametrize("next_id", [0, -1, MAX_LEASE_ID + 1])
def test_restore_rejects_bad_next_id(next_id: int) -> None:
    with pytest.raises(CorruptSnapshot):
        make().restore((), next_id=next_id)


@pytest.mark.parametrize(("lease_id", "ttl_s", "remaining_ttl_s"), [
    (0, 5, 0), (MAX_LEASE_ID + 1, 5, 0), (1, 0, 0), (1, MAX_LEASE_TTL_S + 1, 0), (1, 5, -1),
])
def test_record_rejects_bad_fields(lease_id: int, ttl_s: int, remaining_ttl_s: int) -> None:
    with pytest.raises(CorruptSnapshot):
        LeaseRecord(id=LeaseId(lease_id), ttl_s=ttl_s, remaining_ttl_s=remaining_ttl_s)


# --- expiry queue ---------------------------------------------------------------


def test_queue_pops_due_in_deadline_then_id_order() -> None:
    queue = ExpiryQueue()
    for lease_id, deadline_ms in ((L3, 5), (L1, 5), (L2, 3), (L4, 9)):
        queue.push(lease_id, deadline_ms)
    queue.push(L4, 1)  # moves L4 earlier; its old entry goes stale
    queue.remove(L2)
    queue.remove(L2)  # removing twice is harmless
    assert [queue.pop_due(5) for _ in range(4)] == [L4, L1, L3, None]
    assert len(queue) == 0 and L1 not in queue
    queue.check_invariants()


def test_queue_reset_and_clear() -> None:
    queue = ExpiryQueue()
    queue.push(L1, 1)
    queue.reset({L3: 3, L2: 2})
    assert queue.ids() == (L2, L3) and queue.deadline_ms(L3) == 3 and queue.deadline_ms(L1) is None
    queue.check_invariants()
    queue.clear()
    assert queue.heap_size == 0


def test_queue_compacts_stale_entries() -> None:
    queue = ExpiryQueue(stale_factor=2, stale_slack=4)
    queue.push(L1, 0)
    queue.push(L2, 0)
    for deadline_ms in range(1, 1_000):
        queue.push(L1, deadline_ms)
        assert queue.heap_size <= 3 * len(queue) + 4
        queue.check_invariants()
    assert queue.pop_due(10**6) == L2
    queue.check_invariants()


def test_renewing_forever_does_not_grow_the_heap() -> None:
    lessor = make(primary=True)
    lessor.grant(L1, 10, now_ms=0)
    for now_ms in range(0, 1_000_000, 1_000):
        lessor.renew(L1, now_ms=now_ms)
    lessor.check_invariants()
    assert lessor._expiry_queue.heap_size <= 3 + expiry_queue_module.STALE_SLACK


# --- model-based ------------------------------------------------------------------

RETRY_MS = 700
IDS = st.integers(min_value=1, max_value=4).map(LeaseId)
KEYS = st.sampled_from([b"a", b"b", b"c", b"d"])


def _ceil_s(delta_ms: int) -> int:
    return -(-delta_ms // 1_000)


class LessorModel(RuleBasedStateMachine):
    """The lessor against plain dicts: expiry, retries, checkpoints, keys."""

    @initialize(min_ttl_s=st.integers(1, 3), primary=st.booleans(),
                grants=st.lists(st.tuples(IDS, st.integers(1, 8)), max_size=4))
    def setup(self, min_ttl_s: int, primary: bool, grants: list[tuple[LeaseId, int]]) -> None:
        self.lessor = Lessor(StateMachineConfig(min_lease_ttl_s=min_ttl_s, max_lease_ttl_s=8),
                             expiry_retry_ms=RETRY_MS)
        self.min_ttl_s = min_ttl_s
        self.now_ms = 0
        self.primary = False
        self.ttl: dict[LeaseId, int] = {}
        self.remaining: dict[LeaseId, int] = {}
        self.expiry: dict[LeaseId, int] = {}  # primary only
        self.extension: dict[LeaseId, int] = {}  # promote's grace inside expiry
        self.reported: dict[LeaseId, int] = {}
        self.base: dict[LeaseId, int] = {}  # last checkpoint time, primary only
        self.clears: set[LeaseId] = set()
        self.owner: dict[bytes, LeaseId] = {}
        if primary:
            self.promote(extend_ms=0)
        for lease_id, ttl_s in grants:
            self.grant(lease_id, ttl_s)

    @rule(delta_ms=st.integers(0, 4_000))
    def advance(self, delta_ms: int) -> None:
        self.now_ms += delta_ms

    @rule(delta_ms=st.integers(0, 2_000))
    def advance_and_expire(self, delta_ms: int) -> None:
        self.now_ms += delta_ms
        self.expired()

    @rule(lease_id=IDS, ttl_s=st.integers(-1, 10))
    def grant(self, lease_id: LeaseId, ttl_s: int) -> None:
        if ttl_s > 8:
            with pytest.raises(LeaseTTLTooLarge):
                self.lessor.grant(lease_id, ttl_s, self.now_ms)
        elif lease_id in self.ttl:
            with pytest.raises(LeaseExists):
                self.lessor.grant(lease_id, ttl_s, self.now_ms)
        else:
            self.ttl[lease_id] = max(ttl_s, self.min_ttl_s)
            assert self.lessor.grant(lease_id, ttl_s, self.now_ms).ttl_s == self.ttl[lease_id]
            if self.primary:
                self._start_clock(lease_id)

    def _start_clock(self, lease_id: LeaseId) -> None:
        self.expiry[lease_id] = self.now_ms + self.ttl[lease_id] * 1_000
        self.extension[lease_id] = 0
        self.reported.pop(lease_id, None)
        self.base[lease_id] = self.now_ms

    @rule(lease_id=IDS)
    def revoke(self, lease_id: LeaseId) -> None:
        if lease_id not in self.ttl:
            with pytest.raises(LeaseNotFound):
                self.lessor.revoke(lease_id)
            return
        expected = tuple(sorted(k for k, owner in self.owner.items() if owner == lease_id))
        assert self.lessor.revoke(lease_id) == expected
        for key in expected:
            del self.owner[key]
        for table in (self.ttl, self.remaining, self.expiry, self.reported, self.base):
            table.pop(lease_id, None)
        self.clears.discard(lease_id)

    @rule(lease_id=IDS)
    def renew(self, lease_id: LeaseId) -> None:
        if not self.primary:
            error: type[Exception] = NotPrimaryLessor
        elif lease_id not in self.ttl or self.expiry[lease_id] <= self.now_ms:
            error = LeaseNotFound
        else:
            assert self.lessor.renew(lease_id, self.now_ms) == self.ttl[lease_id]
            if self.remaining.pop(lease_id, 0) > 0:
                self.clears.add(lease_id)
            self._start_clock(lease_id)
            return
        with pytest.raises(error):
            self.lessor.renew(lease_id, self.now_ms)

    @rule(lease_id=IDS, key=KEYS)
    def attach(self, lease_id: LeaseId, key: bytes) -> None:
        if lease_id not in self.ttl:
            return
        if key in self.owner:
            self.lessor.detach(self.owner[key], key)
        self.lessor.attach(lease_id, key)
        self.owner[key] = lease_id

    @rule(key=KEYS)
    def detach(self, key: bytes) -> None:
        if key in self.owner:
            self.lessor.detach(self.owner.pop(key), key)

    @precondition(lambda self: not self.primary)
    @rule(extend_ms=st.integers(0, 1_500))
    def promote(self, extend_ms: int) -> None:
        self.lessor.promote(self.now_ms, extend_ms)
        self.primary = True
        for lease_id, granted_s in self.ttl.items():
            ttl_s = self.remaining.get(lease_id) or granted_s
            self.expiry[lease_id] = self.now_ms + ttl_s * 1_000 + extend_ms
            self.extension[lease_id] = extend_ms
            self.base[lease_id] = self.now_ms

    @rule(roll=st.integers(0, 3))
    def maybe_demote(self, roll: int) -> None:
        if roll == 0:
            self.demote()

    def demote(self) -> None:
        self.lessor.demote()
        self.primary = False
        self.expiry.clear()
        self.reported.clear()
        self.base.clear()
        self.clears.clear()

    @rule()
    def expired(self) -> None:
        due = [i for i, expiry_ms in self.expiry.items()
               if expiry_ms <= self.now_ms and self.now_ms >= self.reported.get(i, -RETRY_MS)
               + RETRY_MS]
        due.sort(key=lambda i: (self.expiry[i], i))
        assert self.lessor.expired(self.now_ms) == tuple(due)
        for lease_id in due:
            self.reported[lease_id] = self.now_ms

    @rule(interval_ms=st.integers(1, 5_000))
    def checkpoint(self, interval_ms: int) -> None:
        expected = dict.fromkeys(self.clears, 0)
        self.clears.clear()
        for lease_id, base_ms in sorted(self.base.items()):
            if base_ms > self.now_ms - interval_ms:
                continue
            if self.expiry[lease_id] <= self.now_ms:
                del self.base[lease_id]
                continue
            self.base[lease_id] = self.now_ms
            remaining_s = max(1, _ceil_s(self.expiry[lease_id] - self.extension[lease_id]
                                         - self.now_ms))
            if remaining_s != (self.remaining.get(lease_id) or self.ttl[lease_id]):
                expected.setdefault(lease_id, remaining_s)
        got = self.lessor.checkpoints_due(self.now_ms, interval_ms)
        assert got == tuple(sorted(expected.items()))
        for lease_id, remaining_s in got:
            self.lessor.apply_checkpoint(lease_id, remaining_s)
            self.remaining[lease_id] = remaining_s

    @rule()
    def snapshot_round_trip(self) -> None:
        records, next_id = self.lessor.to_records(), self.lessor.next_id
        replica = Lessor(StateMachineConfig(min_lease_ttl_s=self.min_ttl_s, max_lease_ttl_s=8))
        replica.restore(records, next_id=next_id)
        for key, lease_id in sorted(self.owner.items()):
            replica.attach(lease_id, key)
        replica.check_invariants()
        assert replica.to_records() == records and replica.next_id == next_id
        for lease_id in replica.leases():
            assert replica.keys(lease_id) == self.lessor.keys(lease_id)
            expected_s = self.remaining.get(lease_id) or self.ttl[lease_id]
            assert replica.time_to_live(lease_id, self.now_ms).ttl_s == expected_s
        assert replica.allocate_id() == self.lessor.allocate_id()

    @invariant()
    def matches_model(self) -> None:
        self.lessor.check_invariants()
        assert self.lessor.is_primary == self.primary
        assert self.lessor.leases() == tuple(sorted(self.ttl))
        for lease_id, ttl_s in self.ttl.items():
            ttl = self.lessor.time_to_live(lease_id, self.now_ms)
            assert ttl.granted_ttl_s == ttl_s
            if self.primary:
                assert ttl.ttl_s == max(0, _ceil_s(self.expiry[lease_id] - self.now_ms))
            else:
                assert ttl.ttl_s == (self.remaining.get(lease_id) or ttl_s)
        for key, lease_id in self.owner.items():
            assert self.lessor.lease_of(key) == lease_id


LessorModel.TestCase.settings = settings(max_examples=200, stateful_step_count=50,
                                         deadline=None)
test_lessor_model = LessorModel.TestCase


def test_a_clear_landing_on_a_primary_renews_the_lease_from_then() -> None:
    # A renewal taken by an earlier leader is acknowledged once its clear
    # commits; the new primary restored the lease from an older checkpoint.
    lessor = Lessor(StateMachineConfig())
    lessor.grant(L1, 10, now_ms=0)
    lessor.apply_checkpoint(L1, 2)
    lessor.promote(5_000)
    assert lessor.time_to_live(L1, 5_000).ttl_s == 2
    lessor.apply_checkpoint(L1, 0, now_ms=6_000)
    assert lessor.time_to_live(L1, 6_000).ttl_s == 10
    assert lessor.expired(15_999) == ()
    assert lessor.expired(16_000) == (L1,)
    # An expired lease stays expired (its revoke is pending).
    lessor.apply_checkpoint(L1, 0, now_ms=17_000)
    assert lessor.time_to_live(L1, 17_000).ttl_s == 0
    lessor.check_invariants()
