"""Frozen, validated limits of the state machine.

Every queue and loop in the MVCC store, the watchable store and the lessor
has its bound here, named with its unit last. Related limits assert their
relations when the config is built, so a bad config fails at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainfire_core.errors import InvalidRequest

# etcd's limit on a lease TTL: about 285 years, in seconds.
MAX_LEASE_TTL_S = 9_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class StateMachineConfig:
    # etcd's --max-txn-ops default.
    max_txn_ops: int = 128
    # etcd's --max-request-bytes default (1.5 MiB).
    max_request_bytes: int = 1_572_864
    # Smallest TTL a lease may have; shorter grants are raised to it (etcd's rule).
    min_lease_ttl_s: int = 1
    max_lease_ttl_s: int = MAX_LEASE_TTL_S
    # Watchers per store, and events buffered per watcher before it is moved
    # to the unsynced set and catches up from history instead.
    max_watchers: int = 100_000
    watcher_buffer_events: int = 1_024
    # Events one catch-up pass may read from history for one watcher.
    watcher_catchup_batch_events: int = 1_000
    # Largest sub-revision a single transaction can produce; bounds the
    # packed revision encoding (see mvcc/revision.py).
    max_sub_revisions: int = 1 << 20
    # Leases revoked per expiry pass (etcd's leaseRevokeRate idea).
    max_expired_leases_per_pass: int = 1_000
    # Simple auth tokens (auth/tokens.py): lifetime since last use on this
    # member (etcd's default 5 minutes), how many one member holds, and
    # whether a token carries the auth revision it was issued at (refused
    # after any auth change) or is checked at the current one.
    auth_token_ttl_ms: int = 300_000
    max_auth_tokens: int = 100_000
    auth_token_binds_revision: bool = True

    def __post_init__(self) -> None:
        positive = ("max_txn_ops", "max_request_bytes", "min_lease_ttl_s", "max_lease_ttl_s",
                    "max_watchers", "watcher_buffer_events", "watcher_catchup_batch_events",
                    "max_sub_revisions", "max_expired_leases_per_pass", "auth_token_ttl_ms",
                    "max_auth_tokens")
        for name in positive:
            if getattr(self, name) <= 0:
                raise InvalidRequest(f"config: {name} must be > 0")
        if self.min_lease_ttl_s > self.max_lease_ttl_s:
            raise InvalidRequest("config: min_lease_ttl_s must be <= max_lease_ttl_s")
        if self.max_lease_ttl_s > MAX_LEASE_TTL_S:
            raise InvalidRequest(f"config: max_lease_ttl_s must be <= {MAX_LEASE_TTL_S}")
        if self.max_txn_ops >= self.max_sub_revisions:
            raise InvalidRequest("config: max_txn_ops must be < max_sub_revisions")
        if self.max_sub_revisions > 1 << 20:
            raise InvalidRequest("config: max_sub_revisions must be <= 2**20")


__all__ = ["MAX_LEASE_TTL_S", "StateMachineConfig"]
