"""A three-process `chainfire serve` cluster for tests that need their own
(tests/real/test_real_maintenance.py, test_real_auth.py): start it with any
extra flags, find the leader through Maintenance.Status, stop it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from test_real_runtime_server import ROOT, STARTUP_TIMEOUT_S, free_ports

from real.etcdpb import rpc_pb2, rpc_pb2_grpc


@dataclass
class Cluster:
    procs: list[subprocess.Popen[bytes]]
    endpoints: list[str]
    argvs: list[list[str]]

    def stub(self, i: int) -> rpc_pb2_grpc.MaintenanceStub:
        return rpc_pb2_grpc.MaintenanceStub(grpc.insecure_channel(self.endpoints[i]))

    def kv(self, i: int) -> rpc_pb2_grpc.KVStub:
        return rpc_pb2_grpc.KVStub(grpc.insecure_channel(self.endpoints[i]))

    def statuses(self) -> list[rpc_pb2.StatusResponse]:
        return [self.stub(i).Status(rpc_pb2.StatusRequest(), timeout=2)
                for i in range(len(self.endpoints))]

    def leader(self) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                statuses = self.statuses()
                ids = [s.header.member_id for s in statuses]
                leaders = {s.leader for s in statuses}
                if len(leaders) == 1 and statuses[0].leader in ids:
                    return ids.index(statuses[0].leader)
            except grpc.RpcError:
                pass
            for proc in self.procs:
                assert proc.poll() is None, f"a server exited: {proc.args}"
            assert time.monotonic() < deadline, "no agreed leader"
            time.sleep(0.1)


def cluster_argvs(base: Path, names: list[str], *extra: str
                  ) -> tuple[list[list[str]], list[str]]:
    ports = free_ports(2 * len(names))
    n = len(names)
    peers = ",".join(f"{name}=http://127.0.0.1:{ports[n + i]}" for i, name in enumerate(names))
    argvs = [["--name", name, "--data-dir", str(base / name), "--initial-cluster", peers,
              "--listen-client-urls", f"http://127.0.0.1:{ports[i]}",
              "--listen-peer-urls", f"http://127.0.0.1:{ports[n + i]}",
              "--heartbeat-interval-ms", "50", "--election-timeout-ms", "500", *extra]
             for i, name in enumerate(names)]
    return argvs, [f"127.0.0.1:{port}" for port in ports[:n]]


def spawn(base: Path, argvs: list[list[str]], endpoints: list[str]) -> Cluster:
    """Start the processes (logs in base/serveN.log); do not wait for them."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = []
    for number, argv in enumerate(argvs):
        with (base / f"serve{number}.log").open("ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "real.server", "serve", *argv],
                                          cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
    return Cluster(procs, endpoints, argvs)


def start(base: Path, argvs: list[list[str]], endpoints: list[str]) -> Cluster:
    """`spawn`, then wait until the members agree on a leader (plain-text clients)."""
    cluster = spawn(base, argvs, endpoints)
    cluster.leader()
    return cluster


def stop(cluster: Cluster) -> None:
    for proc in cluster.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
