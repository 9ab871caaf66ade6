"""Leases: grant, revoke, keepalive, time-to-live, attached keys, expiry and
checkpoints, as a sans-IO lessor. See lessor.py for the theory of operation."""

from __future__ import annotations

from chainfire_core.lease.expiry_queue import ExpiryQueue
from chainfire_core.lease.lessor import (
    DEFAULT_EXPIRY_RETRY_MS,
    MAX_LEASE_ID,
    LeaseGrant,
    LeaseInfo,
    LeaseRecord,
    LeaseTimeToLive,
    Lessor,
    NotPrimaryLessor,
)

__all__ = [
    "DEFAULT_EXPIRY_RETRY_MS",
    "MAX_LEASE_ID",
    "ExpiryQueue",
    "LeaseGrant",
    "LeaseInfo",
    "LeaseRecord",
    "LeaseTimeToLive",
    "Lessor",
    "NotPrimaryLessor",
]
