"""The node-level API: membership and status requests, client responses,
and what the node replicates in its log entries.

Key-value and lease requests are the state machine's own (mvcc/messages.py,
lease/messages.py); these are the rest of what a client may ask a node.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from chainfire_core.alarms import AlarmRequest
from chainfire_core.auth.messages import (
    AuthCommand,
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateRequest,
    AuthorizedCommand,
    AuthStatusRequest,
    RoleAddRequest,
    RoleDeleteRequest,
    RoleGetRequest,
    RoleGrantPermissionRequest,
    RoleListRequest,
    RoleRevokePermissionRequest,
    UserAddRequest,
    UserChangePasswordRequest,
    UserDeleteRequest,
    UserGetRequest,
    UserGrantRoleRequest,
    UserListRequest,
    UserRevokeRoleRequest,
)
from chainfire_core.errors import ChainfireError, InvalidRequest
from chainfire_core.lease.messages import (
    LeaseCheckpointRequest,
    LeaseGrantRequest,
    LeaseKeepAliveRequest,
    LeaseLeasesRequest,
    LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
)
from chainfire_core.mvcc.messages import (
    CompactionRequest,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    ResponseHeader,
    TxnRequest,
)
from chainfire_core.quota import (
    QuotaDeleteRequest,
    QuotaListRequest,
    QuotaSetRequest,
)
from chainfire_core.types import Index, NodeId, Term

# The Auth service's requests (chainfire_core/auth/messages.py).
AuthRequest = (
    AuthEnableRequest | AuthDisableRequest | AuthStatusRequest | AuthenticateRequest
    | UserAddRequest | UserDeleteRequest | UserChangePasswordRequest | UserGrantRoleRequest
    | UserRevokeRoleRequest | UserGetRequest | UserListRequest | RoleAddRequest
    | RoleDeleteRequest | RoleGrantPermissionRequest | RoleRevokePermissionRequest
    | RoleGetRequest | RoleListRequest
)


class ReadConsistency(IntEnum):
    # Confirmed with the leader (ReadIndex, or its lease when configured): sees
    # every write acknowledged before the read began.
    LINEARIZABLE = 0
    # This node's applied state, at once: may be stale, never torn.
    SERIALIZABLE = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    id: NodeId
    name: str = ""
    peer_urls: tuple[str, ...] = ()
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberAddRequest:
    peer_urls: tuple[str, ...]
    is_learner: bool = False
    name: str = ""
    # 0: the node picks the next free id.
    id: NodeId = NodeId(0)  # noqa: RUF009  (NewType call is free)

    def __post_init__(self) -> None:
        if not self.peer_urls:
            raise InvalidRequest("etcdserver: member add needs at least one peer URL")


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberRemoveRequest:
    id: NodeId


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberPromoteRequest:
    id: NodeId


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberUpdateRequest:
    """Change a member's peer URLs (etcd's MemberUpdate): its name, client
    URLs and role stay. Committed as a conf change that leaves the
    configuration as it is and replaces the member's record; every node's
    transport then dials the member at its new address."""

    id: NodeId
    peer_urls: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.peer_urls:
            raise InvalidRequest("etcdserver: member update needs at least one peer URL")


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberPublishRequest:
    """A member tells the cluster its client URLs (etcd's "publish" of its
    attributes when it starts). Committed as a conf change that leaves the
    configuration as it is and replaces the member's record."""

    id: NodeId
    client_urls: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberListRequest:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberResponse:
    """The answer to add, remove, promote, update and list: the member
    concerned (None for list and remove) and every member after the change."""

    header: ResponseHeader
    member: Member | None
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRequest:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusResponse:
    header: ResponseHeader
    member_id: NodeId
    leader: NodeId
    raft_term: Term
    raft_index: Index
    raft_applied_index: Index
    revision: int
    compact_revision: int
    keys_total: int
    is_learner: bool


ClientRequest = (
    RangeRequest
    | PutRequest
    | DeleteRangeRequest
    | TxnRequest
    | CompactionRequest
    | LeaseGrantRequest
    | LeaseRevokeRequest
    | LeaseKeepAliveRequest
    | LeaseTimeToLiveRequest
    | LeaseLeasesRequest
    | MemberAddRequest
    | MemberRemoveRequest
    | MemberPromoteRequest
    | MemberUpdateRequest
    | MemberPublishRequest
    | MemberListRequest
    | StatusRequest
    | AlarmRequest
    | QuotaSetRequest
    | QuotaDeleteRequest
    | QuotaListRequest
    | AuthRequest
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientResponse:
    """The answer to request `request_id`: a response, or a typed error."""

    request_id: int
    response: object | None = None
    error: ChainfireError | None = None

    def __post_init__(self) -> None:
        assert (self.response is None) != (self.error is None), "exactly one of response/error"


Command = (
    PutRequest | DeleteRangeRequest | TxnRequest | CompactionRequest | LeaseGrantRequest
    | LeaseRevokeRequest | LeaseCheckpointRequest
    | AlarmRequest | QuotaSetRequest | QuotaDeleteRequest | AuthCommand | AuthorizedCommand
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """A log entry's payload: a state machine command and who asked.
    `request_id` 0 marks the node's own proposals (lease expiry, checkpoints)."""

    origin: NodeId
    request_id: int
    command: Command


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberChangeContext:
    """The context of a membership ConfChange entry."""

    origin: NodeId
    request_id: int
    member: Member


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSnapshot:
    """A Raft snapshot's data: the state machine and the member table."""

    state_machine: bytes
    members: tuple[Member, ...]


__all__ = [
    "AuthRequest",
    "ClientRequest",
    "ClientResponse",
    "Command",
    "Member",
    "MemberAddRequest",
    "MemberChangeContext",
    "MemberListRequest",
    "MemberPromoteRequest",
    "MemberRemoveRequest",
    "MemberResponse",
    "MemberUpdateRequest",
    "NodeSnapshot",
    "Proposal",
    "ReadConsistency",
    "StatusRequest",
    "StatusResponse",
]
