"""Requests and responses of the lease API (etcd's Lease service).

Grant, revoke and checkpoint change replicated state and go through the log;
keepalive, time-to-live and list are answered by the leader's lessor alone
(keepalive because renewals are leader-local in etcd; the others are reads).
"""

from __future__ import annotations

from dataclasses import dataclass

from chainfire_core.errors import InvalidRequest
from chainfire_core.mvcc.messages import ResponseHeader
from chainfire_core.types import LeaseId


def _check_id(lease_id: int, *, allow_zero: bool = False) -> None:
    if lease_id < 0 or (lease_id == 0 and not allow_zero):
        raise InvalidRequest(f"lease id must be > 0, got {lease_id}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseGrantRequest:
    """Grant a lease of `ttl_s` seconds; `id` 0 lets the store choose one."""

    ttl_s: int
    id: LeaseId = LeaseId(0)  # noqa: RUF009  (NewType call is free)

    def __post_init__(self) -> None:
        _check_id(self.id, allow_zero=True)
        if self.ttl_s <= 0:
            raise InvalidRequest(f"lease TTL must be > 0 seconds, got {self.ttl_s}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseGrantResponse:
    header: ResponseHeader
    id: LeaseId
    ttl_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRevokeRequest:
    id: LeaseId

    def __post_init__(self) -> None:
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRevokeResponse:
    header: ResponseHeader


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseCheckpoint:
    id: LeaseId
    remaining_ttl_s: int

    def __post_init__(self) -> None:
        _check_id(self.id)
        if self.remaining_ttl_s < 0:
            raise InvalidRequest("remaining TTL must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseCheckpointRequest:
    """The leader's record of remaining TTLs, replicated so that a new leader
    does not hand long-lived leases their full TTL again."""

    checkpoints: tuple[LeaseCheckpoint, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseCheckpointResponse:
    header: ResponseHeader


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseKeepAliveRequest:
    id: LeaseId

    def __post_init__(self) -> None:
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseKeepAliveResponse:
    header: ResponseHeader
    id: LeaseId
    ttl_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTimeToLiveRequest:
    id: LeaseId
    keys: bool = False

    def __post_init__(self) -> None:
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTimeToLiveResponse:
    """`ttl_s` is the remaining TTL, -1 when the lease does not exist (etcd)."""

    header: ResponseHeader
    id: LeaseId
    ttl_s: int
    granted_ttl_s: int
    keys: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseLeasesRequest:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseLeasesResponse:
    header: ResponseHeader
    leases: tuple[LeaseId, ...]


__all__ = [
    "LeaseCheckpoint",
    "LeaseCheckpointRequest",
    "LeaseCheckpointResponse",
    "LeaseGrantRequest",
    "LeaseGrantResponse",
    "LeaseKeepAliveRequest",
    "LeaseKeepAliveResponse",
    "LeaseLeasesRequest",
    "LeaseLeasesResponse",
    "LeaseRevokeRequest",
    "LeaseRevokeResponse",
    "LeaseTimeToLiveRequest",
    "LeaseTimeToLiveResponse",
]
