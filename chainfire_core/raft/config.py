"""The frozen, validated configuration of one Raft peer.

Every timeout is in ticks (the driver decides how long a tick is) and every
size and queue has its named bound. Related settings assert their relations
when the config is built: an election timeout no longer than the heartbeat
would elect constantly; lease-based reads without check-quorum are unsafe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

from chainfire_core.bugs import check_bugs
from chainfire_core.errors import InvalidRequest
from chainfire_core.types import Index, NodeId


class ReadOnlyOption(IntEnum):
    """How the leader serves linearizable reads (etcd's ReadOnlyOption)."""

    # A heartbeat round confirms leadership before the read is served (ReadIndex).
    SAFE = 0
    # The leader's lease stands in for the round. Relies on bounded clock
    # drift between peers: a deposed leader whose clock runs slow may serve a
    # stale read. Only allowed with check_quorum. The lease is counted from
    # the heartbeats a quorum acknowledged (`RaftConfig.lease_ticks`); when
    # it has lapsed the read falls back to the ReadIndex round.
    LEASE_BASED = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftConfig:
    id: NodeId
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    # Soft limit on the entry bytes in one append message (at least one entry
    # is always sent).
    max_size_per_msg_bytes: int = 1 << 20
    # Limit on the entry bytes handed out to apply and not yet applied.
    max_committed_size_per_ready_bytes: int = 1 << 26
    # Limit on the leader's appended but uncommitted entry bytes; proposals
    # beyond it are dropped (0 = no limit).
    max_uncommitted_entries_bytes: int = 1 << 30
    # Append messages in flight per follower, and their bytes (0 = no limit).
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 0
    check_quorum: bool = True
    pre_vote: bool = True
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE
    disable_proposal_forwarding: bool = False
    # The index already applied by the state machine when the peer starts.
    applied: Index = Index(0)  # noqa: RUF009  (NewType call is free)
    # Pending ReadIndex requests the leader queues (a bound, not a rate).
    max_pending_read_index: int = 4_096
    # The bound on clock drift that lease-based reads assume: every peer's
    # clock runs at a rate within [1 / max_clock_drift, max_clock_drift] of
    # real time. It shortens the lease (`lease_ticks`).
    max_clock_drift: float = 1.1
    # Planted bugs (chainfire_core/bugs.py): simulation only, empty by default.
    bugs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.id <= 0:
            raise InvalidRequest(f"raft config: id must be > 0, got {self.id}")
        if self.heartbeat_ticks <= 0:
            raise InvalidRequest("raft config: heartbeat_ticks must be > 0")
        if self.election_ticks <= self.heartbeat_ticks:
            raise InvalidRequest("raft config: election_ticks must be > heartbeat_ticks")
        for name in ("max_size_per_msg_bytes", "max_committed_size_per_ready_bytes",
                     "max_inflight_msgs", "max_pending_read_index"):
            if getattr(self, name) <= 0:
                raise InvalidRequest(f"raft config: {name} must be > 0")
        if self.max_uncommitted_entries_bytes < 0 or self.max_inflight_bytes < 0:
            raise InvalidRequest("raft config: byte limits must be >= 0")
        if not math.isfinite(self.max_clock_drift) or self.max_clock_drift < 1.0:
            raise InvalidRequest("raft config: max_clock_drift must be a finite ratio >= 1.0")
        check_bugs(self.bugs)
        # planted bug: lease_reads_no_check_quorum -- the one config it lets through.
        if self.read_only_option == ReadOnlyOption.LEASE_BASED and not self.check_quorum \
                and "lease_reads_no_check_quorum" not in self.bugs:
            raise InvalidRequest("raft config: lease-based reads need check_quorum")
        if self.applied < 0:
            raise InvalidRequest("raft config: applied must be >= 0")

    @property
    def lease_ticks(self) -> int:
        """How many of its own ticks after sending a heartbeat a leader may
        serve lease reads on a quorum's acknowledgement of it (0: never).

        A follower that got the heartbeat ignores vote requests for
        `election_ticks` of its ticks, at least `election_ticks - 1` tick
        periods of its clock, so at least `(election_ticks - 1) / drift` of
        real time. A read at leader tick `sent + lease_ticks - 1` happens less
        than `lease_ticks * drift` after the send; `election_ticks / drift**2
        - 1` keeps that below the follower's bound for any drift >= 1."""
        return max(0, math.floor(self.election_ticks / self.max_clock_drift ** 2) - 1)


__all__ = ["RaftConfig", "ReadOnlyOption"]
