"""real.client: sync and asyncio clients for Chainfire (and etcd) over the
etcd v3 gRPC API.

`AsyncClient` (real/client/aio.py) does the work; `Client` (sync.py) runs
one on a private event loop thread. Both share the endpoint pool and its
failover rules (pool.py, errors.py), the txn builder and compare-and-swap
(txn.py), the resuming watch (watch.py) and leases with keepalive
(lease.py); TLS (tls.py), auth with token refresh (auth.py), user and
role administration (auth_admin.py), maintenance and quotas
(maintenance.py). See docs/real-client.md.
"""

from real.client.aio import AsyncClient
from real.client.auth_admin import AsyncAuthAdmin, AuthAdmin, permission
from real.client.errors import (
    AuthFailedError,
    AuthRevisionError,
    ClientError,
    CompactedError,
    ConnectionLostError,
    EndpointUnreachableError,
    InvalidTokenError,
    LeaseNotFoundError,
    NamespaceQuotaExceededError,
    NoLeaderError,
    NoSpaceError,
    NotLeaderError,
    PermissionDeniedError,
    RequestTimeoutError,
    ServerError,
    ServerStoppedError,
    UserEmptyError,
)
from real.client.lease import AsyncLease
from real.client.maintenance import HashKVResult
from real.client.pool import CallKind, EndpointPool, RetryPolicy
from real.client.sync import Client, Lease, Watch
from real.client.tls import ClientTLS
from real.client.txn import (
    CasOutcome,
    Txn,
    create_revision,
    lease_of,
    mod_revision,
    op_delete,
    op_get,
    op_put,
    op_txn,
    value,
    version,
)
from real.client.watch import AsyncWatch

__all__ = [
    "AsyncAuthAdmin",
    "AsyncClient",
    "AsyncLease",
    "AsyncWatch",
    "AuthAdmin",
    "AuthFailedError",
    "AuthRevisionError",
    "CallKind",
    "CasOutcome",
    "Client",
    "ClientError",
    "ClientTLS",
    "CompactedError",
    "ConnectionLostError",
    "EndpointPool",
    "EndpointUnreachableError",
    "HashKVResult",
    "InvalidTokenError",
    "Lease",
    "LeaseNotFoundError",
    "NamespaceQuotaExceededError",
    "NoLeaderError",
    "NoSpaceError",
    "NotLeaderError",
    "PermissionDeniedError",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServerError",
    "ServerStoppedError",
    "Txn",
    "UserEmptyError",
    "Watch",
    "create_revision",
    "lease_of",
    "mod_revision",
    "op_delete",
    "op_get",
    "op_put",
    "op_txn",
    "permission",
    "value",
    "version",
]
