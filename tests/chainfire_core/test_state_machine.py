"""StateMachine: snapshots, corrupt snapshots, leases meeting keys, applied index."""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Callable

import pytest

from chainfire_core.config import StateMachineConfig
from chainfire_core.errors import (
    ChainfireError,
    Compacted,
    CorruptSnapshot,
    DataError,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
)
from chainfire_core.lease.lessor import NotPrimaryLessor
from chainfire_core.lease.messages import (
    LeaseCheckpoint,
    LeaseCheckpointRequest,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
)
from chainfire_core.mvcc.messages import (
    ALL_KEYS,
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    EventType,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from chainfire_core.state_machine import Command, StateMachine
from chainfire_core.types import LeaseId

EVERYTHING = RangeRequest(key=ALL_KEYS, range_end=ALL_KEYS)

# The snapshot frame, as documented in state_machine.py: magic, format
# version (2; 1 is still read), SHA-256 of the body, body length; then the body.
FRAME = struct.Struct(">4sH32sQ")
BODY_HEADER = struct.Struct(">QQQ")  # applied index, next lease id, lease count
LEASE_RECORD = struct.Struct(">qqq")  # id, granted ttl, checkpointed ttl
BACKEND_LEN = struct.Struct(">Q")


def lease(lease_id: int) -> LeaseId:
    return LeaseId(lease_id)


class Driver:
    """Applies commands with consecutive log indexes at a given time."""

    def __init__(self, sm: StateMachine | None = None) -> None:
        self.sm = sm or StateMachine()
        self.now_ms = 0

    def __call__(self, command: Command) -> object:
        return self.sm.apply(command, now_ms=self.now_ms, index=self.sm.applied_index + 1)

    def attempt(self, command: Command) -> object:
        try:
            return self(command)
        except ChainfireError as exc:
            return type(exc)


def random_command(rng: random.Random, sm: StateMachine) -> Command:
    key = rng.choice([b"a", b"b", b"c", b"d", b"e/1", b"e/2"])
    leases = [0, 0, *sm.lessor.leases()]
    choice = rng.randrange(9)
    if choice <= 2:
        return PutRequest(key=key, value=rng.randbytes(rng.randrange(4)),
                          lease=lease(rng.choice(leases)))
    if choice == 3:
        return DeleteRangeRequest(key=key, range_end=rng.choice([b"", b"e", ALL_KEYS]))
    if choice == 4:
        compare = Compare(key=key, target=CompareTarget.VERSION, result=CompareResult.GREATER,
                          value=rng.randrange(3))
        return TxnRequest(compare=(compare,), success=(PutRequest(key=key, value=b"t"),),
                          failure=(DeleteRangeRequest(key=b"e/", range_end=b"e0"),
                                   PutRequest(key=b"d", value=b"f")))
    if choice == 5:
        return CompactionRequest(revision=rng.randrange(sm.revision + 1))
    if choice == 6:
        return LeaseGrantRequest(id=lease(rng.choice([0, 0, 5, 6])), ttl_s=rng.randrange(1, 30))
    if choice == 7:
        return LeaseRevokeRequest(id=lease(rng.choice([1, 2, 5, 6])))
    checkpoints = tuple(
        LeaseCheckpoint(id=lease_id, remaining_ttl_s=rng.randrange(20))
        for lease_id in sm.lessor.leases()[:2]
    )
    return LeaseCheckpointRequest(checkpoints=checkpoints)


def busy_state_machine(seed: int, steps: int = 120) -> Driver:
    rng = random.Random(seed)
    driver = Driver()
    driver.sm.lessor.promote(0)
    for _ in range(steps):
        driver.now_ms += rng.randrange(200)
        driver.attempt(random_command(rng, driver.sm))
    driver.sm.check_invariants(deep=True)
    return driver


def assert_same_state(ours: StateMachine, theirs: StateMachine) -> None:
    assert ours.revision == theirs.revision
    assert ours.store.compact_revision == theirs.store.compact_revision
    assert ours.applied_index == theirs.applied_index
    assert ours.leases() == theirs.leases()
    assert ours.store.hash_kv() == theirs.store.hash_kv()
    for at in range(ours.store.compact_revision, ours.revision + 1):
        request = RangeRequest(key=ALL_KEYS, range_end=ALL_KEYS, revision=at)
        assert ours.range(request) == theirs.range(request)
    for lease_id in ours.lessor.leases():
        assert ours.lessor.keys(lease_id) == theirs.lessor.keys(lease_id)
    assert ours.lessor.to_records() == theirs.lessor.to_records()


# -- snapshots --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_snapshot_restore_snapshot_is_byte_identical(seed: int) -> None:
    driver = busy_state_machine(seed)
    data = driver.sm.snapshot()
    assert driver.sm.snapshot() == data  # deterministic
    restored = StateMachine()
    restored.restore(data)
    restored.check_invariants(deep=True)
    assert restored.snapshot() == data
    assert_same_state(driver.sm, restored)
    # Both carry on alike: same responses, same ids allocated, same bytes.
    rng = random.Random(seed + 1000)
    follower = Driver(restored)
    follower.now_ms = driver.now_ms
    for _ in range(40):
        command = random_command(rng, driver.sm)
        assert follower.attempt(command) == driver.attempt(command)
    assert restored.snapshot() == driver.sm.snapshot()


def test_snapshot_has_a_workload_in_it() -> None:
    # The random workload is not trivial: keys, leases with keys, compaction.
    sm = busy_state_machine(3).sm
    assert sm.range(EVERYTHING).count > 0
    assert sm.store.compact_revision > 0
    assert any(kv.lease for kv in sm.range(EVERYTHING).kvs)


def test_restore_replaces_everything_in_a_used_state_machine() -> None:
    source = Driver()
    source(LeaseGrantRequest(id=lease(1), ttl_s=10))
    source(PutRequest(key=b"a", value=b"1", lease=lease(1)))
    target = Driver()
    for index in range(5):
        target(LeaseGrantRequest(id=lease(10 + index), ttl_s=10))
        target(PutRequest(key=b"z%d" % index, lease=lease(10 + index)))
    target(CompactionRequest(revision=3))
    target.sm.restore(source.sm.snapshot())
    target.sm.check_invariants(deep=True)
    assert_same_state(source.sm, target.sm)
    assert target.sm.leases().leases == (1,)
    assert target.sm.lessor.lease_of(b"z0") == 0


def test_restore_demotes_the_lessor() -> None:
    driver = busy_state_machine(1)
    target = StateMachine()
    target.lessor.promote(0)
    target.restore(driver.sm.snapshot())
    assert not target.lessor.is_primary
    assert target.expired_leases(10**12) == ()


def _corruptions(data: bytes) -> dict[str, bytes]:
    body_at = FRAME.size

    def flip(position: int) -> bytes:
        return data[:position] + bytes((data[position] ^ 0x01,)) + data[position + 1 :]

    return {
        "flip-magic": flip(0),
        "flip-version": flip(5),
        "flip-digest": flip(10),
        "flip-length": flip(body_at - 1),
        "flip-applied-index": flip(body_at + 7),
        "flip-middle": flip(len(data) // 2),
        "flip-last": flip(len(data) - 1),
        "wrong-magic": b"CFSX" + data[4:],
        "etcd-magic": b"\x00\x00\x00\x00" + data[4:],
        "wrong-version": data[:4] + (3).to_bytes(2, "big") + data[6:],
        "version-zero": data[:4] + (0).to_bytes(2, "big") + data[6:],
        "empty": b"",
        "frame-only": data[:body_at],
        "short-frame": data[: body_at - 1],
        "truncated-by-one": data[:-1],
        "truncated-half": data[: len(data) // 2],
        "trailing-byte": data + b"\x00",
        "backend-snapshot-alone": data[body_at:],
    }


def _state_of(sm: StateMachine) -> tuple[object, ...]:
    """The replicated state, and whether the lessor keeps time (the leader's)."""
    return (*_replicated_state_of(sm), sm.lessor.is_primary)


def _replicated_state_of(sm: StateMachine) -> tuple[object, ...]:
    return (sm.snapshot(), sm.leases(), sm.applied_index, sm.store.hash_kv(),
            tuple(sm.lessor.keys(lease_id) for lease_id in sm.lessor.leases()))


@pytest.mark.parametrize("kind", sorted(_corruptions(b"\0" * 100)))
def test_a_corrupt_snapshot_is_refused_and_changes_nothing(kind: str) -> None:
    data = busy_state_machine(5).sm.snapshot()
    corrupt = _corruptions(data)[kind]
    assert corrupt != data
    target = busy_state_machine(6).sm
    before = _state_of(target)
    with pytest.raises(CorruptSnapshot) as caught:
        target.restore(corrupt)
    assert isinstance(caught.value, DataError)
    assert caught.value.grpc_code == "DATA_LOSS"
    assert _state_of(target) == before
    target.check_invariants(deep=True)


def _split(data: bytes) -> tuple[int, int, list[tuple[int, int, int]], bytes]:
    """(applied index, next id, lease records, backend bytes) of a snapshot."""
    body = data[FRAME.size :]
    applied, next_id, count = BODY_HEADER.unpack_from(body)
    offset = BODY_HEADER.size
    records = []
    for _ in range(count):
        records.append(LEASE_RECORD.unpack_from(body, offset))
        offset += LEASE_RECORD.size
    (backend_len,) = BACKEND_LEN.unpack_from(body, offset)
    backend = body[offset + BACKEND_LEN.size :]
    assert len(backend) == backend_len
    return applied, next_id, records, backend


def _frame(applied: int, next_id: int, records: list[tuple[int, int, int]], backend: bytes,
           *, lease_count: int | None = None, backend_len: int | None = None) -> bytes:
    """A snapshot with a valid frame and checksum around whatever body we like."""
    body = BODY_HEADER.pack(applied, next_id, len(records) if lease_count is None else lease_count)
    body += b"".join(LEASE_RECORD.pack(*record) for record in records)
    body += BACKEND_LEN.pack(len(backend) if backend_len is None else backend_len) + backend
    return _wrap(body)


def _wrap(body: bytes) -> bytes:
    return FRAME.pack(b"CFSM", 2, hashlib.sha256(body).digest(), len(body)) + body


def test_the_snapshot_layout_helpers_round_trip() -> None:
    data = busy_state_machine(2).sm.snapshot()
    assert _frame(*_split(data)) == data


def _leased_source() -> StateMachine:
    driver = Driver()
    driver(LeaseGrantRequest(id=lease(1), ttl_s=10))
    driver(LeaseGrantRequest(id=lease(2), ttl_s=10))
    driver(PutRequest(key=b"a", lease=lease(1)))
    driver(PutRequest(key=b"b"))
    return driver.sm


CHECKSUMMED_CORRUPTIONS: dict[str, Callable[[int, int, list[tuple[int, int, int]], bytes], bytes]]
CHECKSUMMED_CORRUPTIONS = {
    "lease-ttl-zero": lambda a, n, rs, b: _frame(a, n, [(rs[0][0], 0, 0), *rs[1:]], b),
    "lease-id-zero": lambda a, n, rs, b: _frame(a, n, [(0, 5, 0), *rs], b),
    "lease-negative-remaining": lambda a, n, rs, b: _frame(a, n, [(rs[0][0], 5, -1)], b),
    "leases-unsorted": lambda a, n, rs, b: _frame(a, n, rs[::-1], b),
    "leases-duplicated": lambda a, n, rs, b: _frame(a, n, [rs[0], rs[0]], b),
    "next-id-zero": lambda a, n, rs, b: _frame(a, 0, rs, b),
    "more-leases-than-records": lambda a, n, rs, b: _frame(a, n, rs, b, lease_count=len(rs) + 9),
    "backend-length-too-long": lambda a, n, rs, b: _frame(a, n, rs, b, backend_len=len(b) + 1),
    "backend-length-too-short": lambda a, n, rs, b: _frame(a, n, rs, b, backend_len=len(b) - 1),
    "body-cut-in-header": lambda a, n, rs, b: _wrap(BODY_HEADER.pack(a, n, len(rs))[:10]),
    "empty-body": lambda a, n, rs, b: _wrap(b""),
    # One byte short inside a well-framed backend section.
    "backend-malformed": lambda a, n, rs, b: _frame(a, n, rs, b"CFMB" + b[4:-1]),
    # Key `a` is attached to lease 1, whose record is dropped.
    "key-names-a-missing-lease": lambda a, n, rs, b: _frame(
        a, n, [record for record in rs if record[0] != 1], b
    ),
}
# backend-malformed, key-names-a-missing-lease, leases-duplicated, leases-unsorted
# and next-id-zero are only found while installing (and must be rolled back);
# the rest fail to decode and touch nothing.


@pytest.mark.parametrize("kind", sorted(CHECKSUMMED_CORRUPTIONS))
def test_a_checksummed_but_malformed_snapshot_is_refused_and_changes_nothing(kind: str) -> None:
    corrupt = CHECKSUMMED_CORRUPTIONS[kind](*_split(_leased_source().snapshot()))
    target = busy_state_machine(7).sm
    before = _replicated_state_of(target)
    with pytest.raises(CorruptSnapshot):
        target.restore(corrupt)
    assert _replicated_state_of(target) == before
    target.check_invariants(deep=True)


@pytest.mark.parametrize("kind", sorted(CHECKSUMMED_CORRUPTIONS))
def test_a_refused_snapshot_leaves_a_leaders_lessor_keeping_time(kind: str) -> None:
    corrupt = CHECKSUMMED_CORRUPTIONS[kind](*_split(_leased_source().snapshot()))
    driver = Driver()
    driver.sm.lessor.promote(0)
    driver(LeaseGrantRequest(id=lease(1), ttl_s=5))
    with pytest.raises(CorruptSnapshot):
        driver.sm.restore(corrupt)
    assert driver.sm.lessor.is_primary
    assert driver.sm.expired_leases(5_000) == (LeaseRevokeRequest(id=lease(1)),)


# -- leases meet keys ----------------------------------------------------------------------


def test_revoke_deletes_every_attached_key_in_one_revision() -> None:
    driver = Driver()
    driver(LeaseGrantRequest(id=lease(1), ttl_s=10))
    for key in (b"c", b"a", b"b"):
        driver(PutRequest(key=key, lease=lease(1)))
    driver(PutRequest(key=b"d"))
    driver(PutRequest(key=b"e", lease=lease(1)))
    driver(PutRequest(key=b"e", value=b"detached"))  # an overwrite without a lease detaches
    before = driver.sm.revision
    assert driver.sm.lessor.keys(lease(1)) == (b"a", b"b", b"c")
    response = driver(LeaseRevokeRequest(id=lease(1)))
    assert driver.sm.revision == before + 1
    assert response.header.revision == before + 1
    assert [kv.key for kv in driver.sm.range(EVERYTHING).kvs] == [b"d", b"e"]
    events = list(driver.sm.store.events_between(before + 1, before + 1))
    assert [(e.type, e.kv.key) for e in events] == [
        (EventType.DELETE, b"a"), (EventType.DELETE, b"b"), (EventType.DELETE, b"c")
    ]
    assert driver.sm.leases().leases == ()
    driver.sm.check_invariants(deep=True)


@pytest.mark.parametrize("keys_deleted_first", [False, True])
def test_revoke_of_a_lease_without_keys_does_not_bump_the_revision(
    keys_deleted_first: bool,
) -> None:
    driver = Driver()
    driver(PutRequest(key=b"x"))
    driver(LeaseGrantRequest(id=lease(4), ttl_s=10))
    if keys_deleted_first:
        driver(PutRequest(key=b"a", lease=lease(4)))
        driver(DeleteRangeRequest(key=b"a"))
    before = driver.sm.revision
    response = driver(LeaseRevokeRequest(id=lease(4)))
    assert response.header.revision == driver.sm.revision == before
    assert driver.sm.leases().leases == ()


def test_revoke_of_an_unknown_lease_is_refused() -> None:
    driver = Driver()
    with pytest.raises(LeaseNotFound) as caught:
        driver(LeaseRevokeRequest(id=lease(3)))
    assert caught.value.lease_id == 3
    assert caught.value.grpc_code == "NOT_FOUND"


def test_put_with_an_unknown_or_revoked_lease_is_refused() -> None:
    driver = Driver()
    with pytest.raises(LeaseNotFound):
        driver(PutRequest(key=b"a", lease=lease(1)))
    driver(LeaseGrantRequest(id=lease(1), ttl_s=10))
    driver(PutRequest(key=b"a", lease=lease(1)))
    driver(LeaseRevokeRequest(id=lease(1)))
    with pytest.raises(LeaseNotFound):
        driver(PutRequest(key=b"a", lease=lease(1)))
    assert driver.sm.range(EVERYTHING).count == 0


def test_time_to_live_of_a_missing_lease_is_minus_one() -> None:
    sm = StateMachine()
    response = sm.time_to_live(LeaseTimeToLiveRequest(id=lease(9), keys=True), now_ms=0)
    assert (response.id, response.ttl_s, response.granted_ttl_s, response.keys) == (9, -1, 0, ())


def test_time_to_live_reports_remaining_time_and_keys() -> None:
    driver = Driver()
    driver.sm.lessor.promote(0)
    driver(LeaseGrantRequest(id=lease(1), ttl_s=10))
    driver(PutRequest(key=b"b", lease=lease(1)))
    driver(PutRequest(key=b"a", lease=lease(1)))
    found = driver.sm.time_to_live(LeaseTimeToLiveRequest(id=lease(1), keys=True), now_ms=2_500)
    assert (found.ttl_s, found.granted_ttl_s, found.keys) == (8, 10, (b"a", b"b"))
    quiet = driver.sm.time_to_live(LeaseTimeToLiveRequest(id=lease(1)), now_ms=2_500)
    assert quiet.keys == ()


def test_grant_allocates_ids_and_refuses_reuse_and_huge_ttls() -> None:
    driver = Driver(StateMachine(StateMachineConfig(min_lease_ttl_s=5, max_lease_ttl_s=100)))
    driver(PutRequest(key=b"a"))
    explicit = driver(LeaseGrantRequest(id=lease(2), ttl_s=50))
    assert explicit == LeaseGrantResponse(header=explicit.header, id=lease(2), ttl_s=50)
    assert explicit.header.revision == 2  # a grant writes no key
    first = driver(LeaseGrantRequest(ttl_s=1))
    second = driver(LeaseGrantRequest(ttl_s=7))
    assert isinstance(first, LeaseGrantResponse) and isinstance(second, LeaseGrantResponse)
    assert (first.id, first.ttl_s) == (1, 5)  # raised to the minimum TTL
    assert (second.id, second.ttl_s) == (3, 7)  # 2 is taken
    with pytest.raises(LeaseExists):
        driver(LeaseGrantRequest(id=lease(2), ttl_s=5))
    with pytest.raises(LeaseTTLTooLarge):
        driver(LeaseGrantRequest(id=lease(8), ttl_s=101))
    assert driver.sm.leases().leases == (1, 2, 3)


def test_expiry_is_the_leaders_business() -> None:
    driver = Driver()
    driver(LeaseGrantRequest(id=lease(1), ttl_s=3))
    assert driver.sm.expired_leases(10**9) == ()  # a follower never expires leases
    with pytest.raises(NotPrimaryLessor):
        driver.sm.keepalive(LeaseKeepAliveRequest(id=lease(1)), now_ms=0)
    driver.sm.lessor.promote(1_000)
    assert driver.sm.expired_leases(3_999) == ()
    kept, clear = driver.sm.keepalive(LeaseKeepAliveRequest(id=lease(1)), now_ms=2_000)
    assert (kept.id, kept.ttl_s, clear) == (1, 3, None)
    assert driver.sm.expired_leases(4_999) == ()
    (revoke,) = driver.sm.expired_leases(5_000)
    assert revoke == LeaseRevokeRequest(id=lease(1))
    driver(revoke)
    assert driver.sm.leases().leases == ()


def test_a_checkpointed_ttl_survives_a_snapshot() -> None:
    driver = Driver()
    driver(LeaseGrantRequest(id=lease(1), ttl_s=60))
    driver(LeaseCheckpointRequest(checkpoints=(LeaseCheckpoint(id=lease(1), remaining_ttl_s=2),)))
    restored = StateMachine()
    restored.restore(driver.sm.snapshot())
    restored.lessor.promote(0)
    assert restored.expired_leases(1_999) == ()
    assert restored.expired_leases(2_000) == (LeaseRevokeRequest(id=lease(1)),)


# -- applied index ------------------------------------------------------------------------------


def test_applied_index_tracks_every_applied_entry() -> None:
    sm = StateMachine()
    assert sm.applied_index == 0
    sm.apply(PutRequest(key=b"a"), now_ms=0, index=1)
    assert sm.applied_index == 1
    sm.apply(PutRequest(key=b"b"), now_ms=0)  # no index given: unchanged
    assert sm.applied_index == 1
    sm.mark_applied(4)  # a no-op or membership entry
    assert sm.applied_index == 4
    # A command that fails was still applied: its entry is consumed.
    with pytest.raises(Compacted):
        sm.apply(CompactionRequest(revision=0), now_ms=0, index=5)
    assert sm.applied_index == 5
    with pytest.raises(AssertionError):
        sm.apply(PutRequest(key=b"c"), now_ms=0, index=5)
    with pytest.raises(AssertionError):
        sm.mark_applied(3)
    assert sm.applied_index == 5
    restored = StateMachine()
    restored.restore(sm.snapshot())
    assert restored.applied_index == 5


def test_a_renewal_of_a_checkpointed_lease_clears_the_checkpoint_first() -> None:
    driver = Driver()
    driver(LeaseGrantRequest(id=lease(1), ttl_s=10))
    driver.sm.lessor.promote(0)
    driver(LeaseCheckpointRequest(checkpoints=(LeaseCheckpoint(id=lease(1), remaining_ttl_s=4),)))
    kept, clear = driver.sm.keepalive(LeaseKeepAliveRequest(id=lease(1)), now_ms=1_000)
    assert kept.ttl_s == 10
    # The renewal must not be acknowledged before this clear commits: a new
    # leader would otherwise restore the lease with 4 s left.
    assert clear == LeaseCheckpointRequest(
        checkpoints=(LeaseCheckpoint(id=lease(1), remaining_ttl_s=0),))
    assert driver.sm.checkpoints_due(1_000, 10**9) is None  # not proposed twice
    _, again = driver.sm.keepalive(LeaseKeepAliveRequest(id=lease(1)), now_ms=2_000)
    assert again is None  # nothing left to clear


def test_state_machine_over_a_used_backend_starts_where_it_was() -> None:
    """Durable progress (progress.py): applied index and term, lease records
    and id counter are in the backend, so a new StateMachine over it carries on."""
    from chainfire_core.storage import MemoryBackend

    backend = MemoryBackend()
    first = StateMachine(backend=backend)
    first.apply(LeaseGrantRequest(ttl_s=60), now_ms=0, index=3, term=2)
    first.apply(PutRequest(key=b"a", value=b"1", lease=1), now_ms=0, index=4, term=2)
    first.apply(LeaseGrantRequest(ttl_s=30, id=9), now_ms=0, index=5, term=2)
    first.apply(LeaseRevokeRequest(id=9), now_ms=0, index=6, term=2)
    first.mark_applied(7, 3)
    second = StateMachine(backend=backend)
    assert (second.applied_index, second.applied_term) == (7, 3)
    assert second.lessor.to_records() == first.lessor.to_records()
    assert second.lessor.next_id == first.lessor.next_id
    assert second.lessor.keys(1) == (b"a",)
    assert second.snapshot() == first.snapshot()
    second.check_invariants(deep=True)
    # A replica restored from the snapshot holds the same backend, byte for byte.
    restored = StateMachine()
    restored.restore(first.snapshot())
    assert restored.store.backend.snapshot() == backend.snapshot()
    assert restored.applied_term == 3
