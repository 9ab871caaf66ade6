"""gRPC servicers of etcd's v3 API over a `NodeHandle`, and `add_services`,
which registers all of them on a `grpc.aio.Server`.

Served: KV (kv.py), Watch (watch.py), Lease (lease.py), Cluster
(cluster.py), Maintenance (maintenance.py; all but Status and Alarm need
the `MaintenanceOps` the runtime passes), Auth (auth.py), and Chainfire's
own Quota service (quota.py, proto/chainfire.proto). Every servicer asks the
node with the caller's credentials (common.py). See docs/real-api.md for
the fields and the error table.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from real.api.forward import Forwarder
from real.api.handle import NodeHandle
from real.api.servicers.auth import AuthServicer
from real.api.servicers.cluster import ClusterServicer
from real.api.servicers.kv import KVServicer
from real.api.servicers.lease import LeaseServicer
from real.api.servicers.maintenance import ETCD_VERSION, MaintenanceServicer
from real.api.servicers.quota import QuotaServicer
from real.api.servicers.watch import DEFAULT_FRAGMENT_BYTES, WatchServicer
from real.etcdpb import chainfire_pb2_grpc, rpc_pb2_grpc
from real.maintenance import MaintenanceOps

# The gRPC service names registered, for health checks and reflection.
SERVICE_NAMES = ("etcdserverpb.KV", "etcdserverpb.Watch", "etcdserverpb.Lease",
                 "etcdserverpb.Cluster", "etcdserverpb.Maintenance", "etcdserverpb.Auth",
                 "chainfirepb.Quota")


def add_services(server: grpc.aio.Server, handle: NodeHandle, *, version: str = ETCD_VERSION,
                 fragment_bytes: int = DEFAULT_FRAGMENT_BYTES,
                 db_size_bytes: Callable[[], int] | None = None,
                 maintenance: MaintenanceOps | None = None,
                 forwarder: Forwarder | None = None) -> None:
    """Register every served etcd service on `server` (before it starts).
    Without `forwarder` a follower answers keepalives "not leader"."""
    rpc_pb2_grpc.add_KVServicer_to_server(KVServicer(handle), server)
    rpc_pb2_grpc.add_WatchServicer_to_server(
        WatchServicer(handle, fragment_bytes=fragment_bytes), server)
    rpc_pb2_grpc.add_LeaseServicer_to_server(LeaseServicer(handle, forwarder), server)
    rpc_pb2_grpc.add_ClusterServicer_to_server(ClusterServicer(handle), server)
    rpc_pb2_grpc.add_MaintenanceServicer_to_server(
        MaintenanceServicer(handle, version=version, db_size_bytes=db_size_bytes,
                            ops=maintenance), server)
    chainfire_pb2_grpc.add_QuotaServicer_to_server(QuotaServicer(handle), server)
    rpc_pb2_grpc.add_AuthServicer_to_server(AuthServicer(handle), server)


__all__ = [
    "AuthServicer",
    "SERVICE_NAMES",
    "ClusterServicer",
    "KVServicer",
    "LeaseServicer",
    "MaintenanceServicer",
    "QuotaServicer",
    "WatchServicer",
    "add_services",
]
