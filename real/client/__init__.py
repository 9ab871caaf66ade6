"""real.client: sync and asyncio clients for Chainfire (and etcd) over the
etcd v3 gRPC API.

`AsyncClient` (real/client/aio.py) does the work; `Client` (sync.py) runs
one on a private event loop thread. Both share the endpoint pool and its
failover rules (pool.py, errors.py), the txn builder and compare-and-swap
(txn.py), the resuming watch (watch.py) and leases with keepalive
(lease.py). See docs/real-client.md.
"""

from real.client.aio import AsyncClient
from real.client.errors import (
    ClientError,
    CompactedError,
    ConnectionLostError,
    EndpointUnreachableError,
    LeaseNotFoundError,
    NoLeaderError,
    NotLeaderError,
    RequestTimeoutError,
    ServerError,
    ServerStoppedError,
)
from real.client.lease import AsyncLease
from real.client.pool import CallKind, EndpointPool, RetryPolicy
from real.client.sync import Client, Lease, Watch
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
    "AsyncClient",
    "AsyncLease",
    "AsyncWatch",
    "CallKind",
    "CasOutcome",
    "Client",
    "ClientError",
    "CompactedError",
    "ConnectionLostError",
    "EndpointPool",
    "EndpointUnreachableError",
    "Lease",
    "LeaseNotFoundError",
    "NoLeaderError",
    "NotLeaderError",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServerError",
    "ServerStoppedError",
    "Txn",
    "Watch",
    "create_revision",
    "lease_of",
    "mod_revision",
    "op_delete",
    "op_get",
    "op_put",
    "op_txn",
    "value",
    "version",
]
