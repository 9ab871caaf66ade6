"""The lessor: leases with a TTL, the keys attached to them, expiry and checkpoints.

Theory of operation
-------------------
A lease is an id, a granted TTL in seconds and a set of attached keys; when it
is revoked the state machine deletes its keys in one revision. This follows
etcd's lessor as a sans-IO object: it never reads a clock (calls that need the
time take an integer `now_ms`) and it returns every decision as data.

*Replicated* calls run on every replica as Raft entries are applied, so every
replica reaches the same state: `allocate_id`, `grant`, `revoke`, `attach`,
`detach`, `apply_checkpoint`, `restore`. *Leader-local* calls change no
replicated state: `renew` (keepalive), `expired`, `checkpoints_due`,
`promote`, `demote`, and the queries.

Expiry. Only the primary lessor (the leader's, after `promote`) keeps time:
each lease has `expiry_ms = now_ms + ttl_s * 1000` from its grant or last
renewal. A non-primary keeps every expiry at "forever" (None). Expiry is not
carried out here: `expired(now_ms)` lists leases with `expiry_ms <= now_ms`,
the leader proposes their revokes through Raft, and `revoke`, once applied,
removes them. A proposal can be lost, so a reported lease is reported again
once `now_ms >= reported_at_ms + expiry_retry_ms`, not before. The expiry
queue (expiry_queue.py) holds each lease at its due time (expiry, or retry
time once reported); a pass pops at most `max_expired_leases_per_pass`,
earliest due first, and returns them sorted by `(expiry_ms, id)`. Renewing a
lease whose expiry has passed raises `LeaseNotFound`: its revoke may already
be in the log, and etcd answers the same once that revoke lands.

Checkpoints. `promote(now_ms, extend_ms)` gives every lease `expiry_ms = now_ms
+ ttl * 1000 + extend_ms`, ttl being its checkpointed remaining TTL if any,
else its granted TTL: never less than it had left. Without checkpoints a long
lease would start over at every leader change, so the leader proposes them:
`checkpoints_due(now_ms, interval_ms)` lists `(id, remaining_ttl_s)` for leases
last checkpointed (or granted, renewed, promoted) at least `interval_ms` ago,
skipping those where it would not change what `promote` uses, and
`apply_checkpoint` records them everywhere. A checkpoint leaves out the
extension (handover grace, not lease time: kept in, it would grow the lease
at every leader change) and is at least 1 s. `renew` drops the leader's
checkpoint at once and leaves a clear `(id, 0)` pending; the node takes it
(`take_pending_clear`) and answers the keepalive only once the clear has
committed, so a renewed lease gets its full TTL on any later leader.

Ids and snapshots. `allocate_id` counts up, skipping ids in use, so the same
applied entries give the same ids everywhere. The counter (`next_id`) and the
leases (`to_records`: id, granted TTL, checkpointed TTL) are the snapshot
state; after `restore`, the state machine re-attaches keys from its KV data.
A key belongs to at most one lease: attaching it to a second one without
detaching it first is a state machine bug, hence an assertion.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from chainfire_core.config import MAX_LEASE_TTL_S, StateMachineConfig
from chainfire_core.errors import (
    CorruptSnapshot,
    InvalidRequest,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    RequestError,
)
from chainfire_core.lease.expiry_queue import ExpiryQueue
from chainfire_core.types import NO_LEASE, LeaseId

# etcd lease ids are int64; 0 means "no lease".
MAX_LEASE_ID = (1 << 63) - 1
DEFAULT_EXPIRY_RETRY_MS = 3_000
MS_PER_S = 1_000


class NotPrimaryLessor(RequestError):
    """Only the leader's (primary) lessor renews leases."""

    grpc_code = "UNAVAILABLE"  # etcd answers "not leader" with UNAVAILABLE; clients retry

    def __init__(self) -> None:
        super().__init__("etcdserver: not leader")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseGrant:
    id: LeaseId
    # The granted TTL, after raising it to the configured minimum.
    ttl_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTimeToLive:
    id: LeaseId
    # Remaining TTL, rounded up to whole seconds; 0 once expired but not yet revoked.
    ttl_s: int
    granted_ttl_s: int
    keys: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseInfo:
    id: LeaseId
    ttl_s: int
    # Checkpointed remaining TTL; 0 means none.
    remaining_ttl_s: int
    # None means "forever" (a non-primary lessor).
    expiry_ms: int | None
    keys: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    """One lease in a snapshot."""

    id: LeaseId
    ttl_s: int
    # Checkpointed remaining TTL; 0 means none.
    remaining_ttl_s: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.id <= MAX_LEASE_ID:
            raise CorruptSnapshot(f"lease record: bad id {self.id}")
        if not 0 < self.ttl_s <= MAX_LEASE_TTL_S:
            raise CorruptSnapshot(f"lease record {self.id}: bad ttl_s {self.ttl_s}")
        if not 0 <= self.remaining_ttl_s <= MAX_LEASE_TTL_S:
            raise CorruptSnapshot(f"lease record {self.id}: bad remaining_ttl_s")


@dataclass(slots=True, kw_only=True)
class _Lease:
    id: LeaseId
    ttl_s: int
    remaining_ttl_s: int = 0
    expiry_ms: int | None = None
    # The part of expiry_ms that promote's extension added: grace for the
    # handover, not lease time, so checkpoints leave it out (else every
    # leader change would add it to the lease for good).
    extension_ms: int = 0
    reported_at_ms: int | None = None
    keys: set[bytes] = field(default_factory=set)

    def promotion_ttl_s(self) -> int:
        """The TTL `promote` gives this lease."""
        return self.remaining_ttl_s if self.remaining_ttl_s > 0 else self.ttl_s


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


class Lessor:
    """Every lease of one replica; see the module docstring."""

    def __init__(
        self, config: StateMachineConfig, *, expiry_retry_ms: int = DEFAULT_EXPIRY_RETRY_MS
    ) -> None:
        if expiry_retry_ms <= 0:
            raise InvalidRequest("lessor: expiry_retry_ms must be > 0")
        self._config = config
        self._expiry_retry_ms = expiry_retry_ms
        self._leases: dict[LeaseId, _Lease] = {}
        self._key_leases: dict[bytes, LeaseId] = {}
        self._next_id = 1
        self._primary = False
        # Primary only: each lease at its due time (expiry, or retry once reported).
        self._expiry_queue = ExpiryQueue()
        # Primary only: each unexpired lease at the time of its last checkpoint.
        self._checkpoint_queue = ExpiryQueue()
        # Primary only: renewed leases whose checkpoint the followers still hold.
        self._pending_clears: set[LeaseId] = set()


    @property
    def is_primary(self) -> bool:
        return self._primary

    @property
    def next_id(self) -> int:
        return self._next_id

    def exists(self, lease_id: LeaseId) -> bool:
        return lease_id in self._leases

    def lookup(self, lease_id: LeaseId) -> LeaseInfo | None:
        lease = self._leases.get(lease_id)
        if lease is None:
            return None
        return LeaseInfo(id=lease.id, ttl_s=lease.ttl_s, remaining_ttl_s=lease.remaining_ttl_s,
                         expiry_ms=lease.expiry_ms, keys=tuple(sorted(lease.keys)))

    def keys(self, lease_id: LeaseId) -> tuple[bytes, ...]:
        return tuple(sorted(self._require(lease_id).keys))

    def lease_of(self, key: bytes) -> LeaseId:
        """The lease `key` is attached to, or NO_LEASE."""
        return self._key_leases.get(key, NO_LEASE)

    def leases(self) -> tuple[LeaseId, ...]:
        return tuple(sorted(self._leases))

    def time_to_live(self, lease_id: LeaseId, now_ms: int) -> LeaseTimeToLive:
        lease = self._require(lease_id)
        if lease.expiry_ms is None:
            remaining_s = lease.promotion_ttl_s()
        else:
            remaining_s = max(0, _ceil_div(lease.expiry_ms - now_ms, MS_PER_S))
        return LeaseTimeToLive(id=lease.id, ttl_s=remaining_s, granted_ttl_s=lease.ttl_s,
                               keys=tuple(sorted(lease.keys)))


    def allocate_id(self) -> LeaseId:
        """The next free id from the counter; the counter moves past it."""
        candidate = self._next_id
        for _ in range(len(self._leases) + 1):
            if candidate not in self._leases:
                self._next_id = candidate % MAX_LEASE_ID + 1
                return LeaseId(candidate)
            candidate = candidate % MAX_LEASE_ID + 1
        raise AssertionError("more leases than ids")  # pigeonhole: unreachable

    def grant(self, lease_id: LeaseId, ttl_s: int, now_ms: int) -> LeaseGrant:
        if not 0 < lease_id <= MAX_LEASE_ID:
            raise InvalidRequest(f"etcdserver: lease id {lease_id} out of range")
        if ttl_s > self._config.max_lease_ttl_s:
            raise LeaseTTLTooLarge(ttl_s, self._config.max_lease_ttl_s)
        if lease_id in self._leases:
            raise LeaseExists(lease_id)
        lease = _Lease(id=lease_id, ttl_s=max(ttl_s, self._config.min_lease_ttl_s))
        self._leases[lease_id] = lease
        if self._primary:
            self._start_clock(lease, now_ms)
        return LeaseGrant(id=lease.id, ttl_s=lease.ttl_s)

    def revoke(self, lease_id: LeaseId) -> tuple[bytes, ...]:
        """Remove the lease; return its keys, sorted, for the state machine to delete."""
        lease = self._require(lease_id)
        del self._leases[lease_id]
        for key in lease.keys:
            del self._key_leases[key]
        self._expiry_queue.remove(lease_id)
        self._checkpoint_queue.remove(lease_id)
        self._pending_clears.discard(lease_id)
        return tuple(sorted(lease.keys))

    def attach(self, lease_id: LeaseId, key: bytes) -> None:
        lease = self._require(lease_id)
        owner = self._key_leases.get(key, NO_LEASE)
        assert owner in (NO_LEASE, lease_id), f"key {key!r} already attached to lease {owner}"
        lease.keys.add(key)
        self._key_leases[key] = lease_id

    def detach(self, lease_id: LeaseId, key: bytes) -> None:
        """Detach `key`; a key not attached to this lease is ignored (etcd's rule)."""
        lease = self._require(lease_id)
        if key in lease.keys:
            lease.keys.remove(key)
            del self._key_leases[key]

    def apply_checkpoint(self, lease_id: LeaseId, remaining_ttl_s: int, *,
                         now_ms: int | None = None) -> None:
        """Record a checkpointed remaining TTL (0 clears it); unknown ids are
        ignored, since the lease may have been revoked since the proposal.

        A clear is a renewal's: the keepalive is acknowledged once it commits.
        When it lands on a primary (`now_ms` given) the lease lives at least
        its full TTL from now: the renewal may have been taken by an earlier
        leader, after this one restored the lease from an older checkpoint."""
        if remaining_ttl_s < 0:
            raise InvalidRequest(f"etcdserver: negative remaining TTL {remaining_ttl_s}")
        lease = self._leases.get(lease_id)
        if lease is None:
            return
        lease.remaining_ttl_s = remaining_ttl_s
        if remaining_ttl_s == 0 and now_ms is not None and self._primary:
            assert lease.expiry_ms is not None
            renewed_ms = now_ms + lease.ttl_s * MS_PER_S
            # An expired lease stays expired: its revoke is on its way.
            if now_ms < lease.expiry_ms < renewed_ms:
                self._start_clock(lease, now_ms)


    def renew(self, lease_id: LeaseId, now_ms: int) -> int:
        """Keepalive: the lease lives `ttl_s` from `now_ms`. Returns the granted TTL."""
        if not self._primary:
            raise NotPrimaryLessor()
        lease = self._require(lease_id)
        assert lease.expiry_ms is not None
        if lease.expiry_ms <= now_ms:
            raise LeaseNotFound(lease_id)  # expired: its revoke is pending
        if lease.remaining_ttl_s > 0:
            lease.remaining_ttl_s = 0
            self._pending_clears.add(lease_id)
        self._start_clock(lease, now_ms)
        return lease.ttl_s

    def take_pending_clear(self, lease_id: LeaseId) -> bool:
        """Whether a renewal of `lease_id` left a checkpoint clear to propose;
        the caller proposes it now (and the next checkpoint pass will not)."""
        if lease_id not in self._pending_clears:
            return False
        self._pending_clears.remove(lease_id)
        return True

    def expired(self, now_ms: int) -> tuple[LeaseId, ...]:
        """Leases to revoke, sorted by (expiry, id); see the module docstring."""
        if not self._primary:
            return ()
        batch: list[_Lease] = []
        while len(batch) < self._config.max_expired_leases_per_pass:
            lease_id = self._expiry_queue.pop_due(now_ms)
            if lease_id is None:
                break
            lease = self._leases[lease_id]
            lease.reported_at_ms = now_ms
            self._expiry_queue.push(lease_id, now_ms + self._expiry_retry_ms)
            batch.append(lease)
        batch.sort(key=lambda lease: (lease.expiry_ms, lease.id))
        return tuple(lease.id for lease in batch)

    def checkpoints_due(self, now_ms: int, interval_ms: int) -> tuple[tuple[LeaseId, int], ...]:
        """`(id, remaining_ttl_s)` pairs for the leader to propose, sorted by id:
        pending clears as `(id, 0)`, then leases last checkpointed at least
        `interval_ms` ago. At most `config.max_expired_leases_per_pass` leases
        are looked at per call."""
        if interval_ms <= 0:
            raise InvalidRequest("lessor: checkpoint interval_ms must be > 0")
        if not self._primary:
            return ()
        limit = self._config.max_expired_leases_per_pass
        due: dict[LeaseId, int] = {}
        for lease_id in sorted(self._pending_clears)[:limit]:
            self._pending_clears.remove(lease_id)
            due[lease_id] = 0
        for _ in range(limit - len(due)):
            popped_id = self._checkpoint_queue.pop_due(now_ms - interval_ms)
            if popped_id is None:
                break
            remaining_s = self._checkpoint_remaining_s(self._leases[popped_id], now_ms)
            if remaining_s is not None:
                due.setdefault(popped_id, remaining_s)
        return tuple(sorted(due.items()))

    def _checkpoint_remaining_s(self, lease: _Lease, now_ms: int) -> int | None:
        """The TTL to checkpoint for a due lease, or None to skip it. An expired
        lease leaves the checkpoint queue (promote re-queues it); any other
        lease is re-queued at `now_ms`."""
        assert lease.expiry_ms is not None
        if lease.expiry_ms <= now_ms:
            return None
        self._checkpoint_queue.push(lease.id, now_ms)
        # At least 1: a checkpoint of 0 would mean "no checkpoint" (full TTL).
        remaining_s = max(1, _ceil_div(lease.expiry_ms - lease.extension_ms - now_ms, MS_PER_S))
        return None if remaining_s == lease.promotion_ttl_s() else remaining_s

    def promote(self, now_ms: int, extend_ms: int = 0, *, full_ttl: bool = False) -> None:
        """Become primary: every lease lives its checkpointed remaining TTL (else
        its granted TTL) plus `extend_ms` from `now_ms`. `full_ttl` is the
        planted bug lease_reset_on_leader_change (simulation only): every
        lease starts over from its granted TTL, checkpoints ignored."""
        assert not self._primary, "promote on a primary lessor"
        assert extend_ms >= 0, extend_ms
        self._primary = True
        deadlines_ms: dict[LeaseId, int] = {}
        for lease in self._leases.values():
            ttl_s = lease.promotion_ttl_s()
            if full_ttl:
                ttl_s = lease.ttl_s  # planted bug: lease_reset_on_leader_change
            lease.expiry_ms = now_ms + ttl_s * MS_PER_S + extend_ms
            lease.extension_ms = extend_ms
            lease.reported_at_ms = None
            deadlines_ms[lease.id] = lease.expiry_ms
        self._expiry_queue.reset(deadlines_ms)
        self._checkpoint_queue.reset(dict.fromkeys(self._leases, now_ms))

    def demote(self) -> None:
        """Stop being primary: every expiry becomes "forever". Idempotent."""
        self._primary = False
        for lease in self._leases.values():
            lease.expiry_ms = None
            lease.reported_at_ms = None
        self._expiry_queue.clear()
        self._checkpoint_queue.clear()
        self._pending_clears.clear()

    def _start_clock(self, lease: _Lease, now_ms: int) -> None:
        lease.expiry_ms = now_ms + lease.ttl_s * MS_PER_S
        lease.extension_ms = 0
        lease.reported_at_ms = None
        self._expiry_queue.push(lease.id, lease.expiry_ms)
        self._checkpoint_queue.push(lease.id, now_ms)

    def _require(self, lease_id: LeaseId) -> _Lease:
        lease = self._leases.get(lease_id)
        if lease is None:
            raise LeaseNotFound(lease_id)
        return lease


    def to_records(self) -> tuple[LeaseRecord, ...]:
        return tuple(
            LeaseRecord(id=lease.id, ttl_s=lease.ttl_s, remaining_ttl_s=lease.remaining_ttl_s)
            for lease in sorted(self._leases.values(), key=lambda lease: lease.id)
        )

    def restore(self, records: tuple[LeaseRecord, ...], *, next_id: int) -> None:
        """Replace every lease by `records` (sorted by id) and demote; the state
        machine re-attaches keys afterwards. Nothing changes on CorruptSnapshot."""
        if not 0 < next_id <= MAX_LEASE_ID:
            raise CorruptSnapshot(f"lease snapshot: bad next_id {next_id}")
        for before, after in pairwise(records):
            if before.id >= after.id:
                raise CorruptSnapshot("lease snapshot: records not sorted by unique id")
        self.demote()
        self._key_leases.clear()
        self._leases = {r.id: _Lease(id=r.id, ttl_s=r.ttl_s, remaining_ttl_s=r.remaining_ttl_s)
                        for r in records}
        self._next_id = next_id

    def check_invariants(self) -> None:
        assert 0 < self._next_id <= MAX_LEASE_ID, self._next_id
        for lease_id, lease in self._leases.items():
            assert lease.id == lease_id and 0 < lease_id <= MAX_LEASE_ID
            assert lease.ttl_s > 0 and lease.remaining_ttl_s >= 0
            assert all(self._key_leases.get(key) == lease_id for key in lease.keys), lease_id
            assert self._due_ms(lease) == self._expiry_queue.deadline_ms(lease_id), lease_id
        for key, lease_id in self._key_leases.items():
            assert key in self._leases[lease_id].keys, f"key {key!r} is in its lease"
        if not self._primary:
            assert len(self._checkpoint_queue) == 0 and not self._pending_clears
        assert set(self._checkpoint_queue.ids()) <= self._leases.keys()
        assert self._pending_clears <= self._leases.keys()
        assert len(self._expiry_queue) == (len(self._leases) if self._primary else 0)
        self._expiry_queue.check_invariants()
        self._checkpoint_queue.check_invariants()

    def _due_ms(self, lease: _Lease) -> int | None:
        """Where the expiry queue must hold `lease`: None (not at all) on a non-primary."""
        assert (lease.expiry_ms is not None) == self._primary, lease.id
        if lease.expiry_ms is None or lease.reported_at_ms is None:
            assert lease.reported_at_ms is None, lease.id
            return lease.expiry_ms
        assert lease.reported_at_ms >= lease.expiry_ms, lease.id
        return lease.reported_at_ms + self._expiry_retry_ms


__all__ = [
    "DEFAULT_EXPIRY_RETRY_MS",
    "MAX_LEASE_ID",
    "LeaseGrant",
    "LeaseInfo",
    "LeaseRecord",
    "LeaseTimeToLive",
    "Lessor",
    "NotPrimaryLessor",
]
