"""Raft's data: log entries, durable state, snapshots, membership, messages.

Theory of operation
-------------------
Everything Raft hands out or takes in is one of these frozen, slotted,
keyword-only dataclasses. Raft is agnostic of what it replicates: an entry's
`data` is opaque bytes (the node encodes its commands); an entry may instead
carry a `ConfChange`, a membership change that Raft itself interprets when the
entry is applied.

Messages between peers are one dataclass per kind (etcd-io/raft uses one
struct with a type field; separate classes let `match` dispatch and let each
kind say exactly which fields it has). Every message names its `sender`, its
receiver `to`, and the sender's `term`. Local inputs (tick, campaign,
propose, transfer_leader, report_unreachable, ...) are method calls on the
node, not messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from chainfire_core.errors import InvalidRequest
from chainfire_core.types import Index, NodeId, Term

NO_NODE = NodeId(0)


class ConfChangeType(IntEnum):
    ADD_NODE = 0
    REMOVE_NODE = 1
    ADD_LEARNER = 2


class ConfChangeTransition(IntEnum):
    """How a multi-change ConfChange leaves its joint configuration (etcd's
    ConfChangeV2): automatically once entered, or on an explicit empty change."""

    AUTO = 0
    IMPLICIT = 1
    EXPLICIT = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfChangeSingle:
    type: ConfChangeType
    node_id: NodeId

    def __post_init__(self) -> None:
        if self.node_id <= 0:
            raise InvalidRequest(f"conf change: node id must be > 0, got {self.node_id}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfChange:
    """A membership change. One change: a simple change. Several: a change
    through a joint configuration. None: leave the current joint configuration."""

    changes: tuple[ConfChangeSingle, ...] = ()
    transition: ConfChangeTransition = ConfChangeTransition.AUTO
    context: bytes = b""

    @property
    def leaves_joint(self) -> bool:
        return not self.changes

    @property
    def enters_joint(self) -> bool:
        return len(self.changes) > 1 or self.transition != ConfChangeTransition.AUTO

    @property
    def auto_leave(self) -> bool:
        return self.enters_joint and self.transition != ConfChangeTransition.EXPLICIT


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfState:
    """The membership in force: voters (of the incoming config), learners, and
    while joint, the outgoing voters and the learners to be (learners_next)."""

    voters: tuple[NodeId, ...] = ()
    learners: tuple[NodeId, ...] = ()
    voters_outgoing: tuple[NodeId, ...] = ()
    learners_next: tuple[NodeId, ...] = ()
    auto_leave: bool = False

    def __post_init__(self) -> None:
        for name in ("voters", "learners", "voters_outgoing", "learners_next"):
            ids = getattr(self, name)
            assert list(ids) == sorted(set(ids)), f"ConfState.{name} must be sorted and unique"
        assert not set(self.voters) & set(self.learners), "a node is both voter and learner"

    @property
    def joint(self) -> bool:
        return bool(self.voters_outgoing)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    term: Term
    index: Index
    data: bytes = b""
    conf_change: ConfChange | None = None

    @property
    def size_bytes(self) -> int:
        """What flow control counts: the payload (etcd counts data bytes)."""
        return len(self.data) + (0 if self.conf_change is None else 16)


@dataclass(frozen=True, slots=True, kw_only=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: Term = Term(0)  # noqa: RUF009  (NewType call is free)
    vote: NodeId = NO_NODE
    commit: Index = Index(0)  # noqa: RUF009


EMPTY_HARD_STATE = HardState()


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotMetadata:
    index: Index
    term: Term
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    metadata: SnapshotMetadata
    data: bytes = b""


# -- peer messages -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEntries:
    """Replicate `entries` after (`index`, `log_term`); tell the commit index."""

    sender: NodeId
    to: NodeId
    term: Term
    log_term: Term
    index: Index
    entries: tuple[Entry, ...]
    commit: Index


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResponse:
    """Accepted: `index` is the follower's last index matching the leader.
    Rejected: `index` is the rejected probe index, and (`reject_hint`,
    `log_term`) the follower's guess of where the logs may agree (the
    fast back-off of the Raft thesis, section 5.3)."""

    sender: NodeId
    to: NodeId
    term: Term
    index: Index
    reject: bool = False
    reject_hint: Index = Index(0)  # noqa: RUF009
    log_term: Term = Term(0)  # noqa: RUF009


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestVote:
    """A (pre-)vote request. For a pre-vote, `term` is the term the candidate
    would campaign in; its own term is not bumped. `transfer` marks a campaign
    started by leadership transfer, which may disregard the leader lease."""

    sender: NodeId
    to: NodeId
    term: Term
    last_log_index: Index
    last_log_term: Term
    pre_vote: bool = False
    transfer: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteResponse:
    sender: NodeId
    to: NodeId
    term: Term
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshot:
    sender: NodeId
    to: NodeId
    term: Term
    snapshot: Snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """`commit` is capped at what the follower is known to hold; `context`
    carries a ReadIndex round's id so its acknowledgements can be counted."""

    sender: NodeId
    to: NodeId
    term: Term
    commit: Index
    context: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatResponse:
    sender: NodeId
    to: NodeId
    term: Term
    context: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNow:
    """Leadership transfer: campaign now, ignoring the election timeout."""

    sender: NodeId
    to: NodeId
    term: Term


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardedProposal:
    """A follower passing proposals on to the leader it knows."""

    sender: NodeId
    to: NodeId
    term: Term
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardedReadIndex:
    sender: NodeId
    to: NodeId
    term: Term
    context: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadIndexResponse:
    """The leader's answer to a forwarded ReadIndex: read once applied up to `index`."""

    sender: NodeId
    to: NodeId
    term: Term
    index: Index
    context: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardedTransfer:
    """A follower asking the leader to hand leadership to `sender`."""

    sender: NodeId
    to: NodeId
    term: Term


Message = (
    AppendEntries
    | AppendResponse
    | RequestVote
    | VoteResponse
    | InstallSnapshot
    | Heartbeat
    | HeartbeatResponse
    | TimeoutNow
    | ForwardedProposal
    | ForwardedReadIndex
    | ReadIndexResponse
    | ForwardedTransfer
)

__all__ = [
    "EMPTY_HARD_STATE",
    "NO_NODE",
    "AppendEntries",
    "AppendResponse",
    "ConfChange",
    "ConfChangeSingle",
    "ConfChangeTransition",
    "ConfChangeType",
    "ConfState",
    "Entry",
    "ForwardedProposal",
    "ForwardedReadIndex",
    "ForwardedTransfer",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "Message",
    "ReadIndexResponse",
    "RequestVote",
    "Snapshot",
    "SnapshotMetadata",
    "TimeoutNow",
    "VoteResponse",
]
