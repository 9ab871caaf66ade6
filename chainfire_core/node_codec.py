"""The codec of everything a node writes into its Raft log and snapshots.

The order of the list is the wire format: append new types at the end only.
"""

from __future__ import annotations

from chainfire_core.alarms import AlarmRequest
from chainfire_core.auth.messages import (
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateCommand,
    AuthorizedCommand,
    PasswordHash,
    Permission,
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
from chainfire_core.codec import Codec
from chainfire_core.lease.messages import (
    LeaseCheckpoint,
    LeaseCheckpointRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
)
from chainfire_core.mvcc.messages import (
    CompactionRequest,
    Compare,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from chainfire_core.node_messages import Member, MemberChangeContext, NodeSnapshot, Proposal
from chainfire_core.quota import QuotaDeleteRequest, QuotaSetRequest

NODE_CODEC = Codec([
    Proposal,
    PutRequest,
    DeleteRangeRequest,
    RangeRequest,
    Compare,
    TxnRequest,
    CompactionRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    LeaseCheckpoint,
    LeaseCheckpointRequest,
    Member,
    MemberChangeContext,
    NodeSnapshot,
    # Alarms, namespace quotas and auth (issue 9).
    AlarmRequest,
    QuotaSetRequest,
    QuotaDeleteRequest,
    PasswordHash,
    Permission,
    AuthEnableRequest,
    AuthDisableRequest,
    AuthenticateCommand,
    UserAddCommand,
    UserDeleteRequest,
    UserChangePasswordCommand,
    UserGrantRoleRequest,
    UserRevokeRoleRequest,
    RoleAddRequest,
    RoleDeleteRequest,
    RoleGrantPermissionRequest,
    RoleRevokePermissionRequest,
    AuthorizedCommand,
])

__all__ = ["NODE_CODEC"]
