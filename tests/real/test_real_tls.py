"""TLS: configuration errors, mutual TLS between PeerTransports, and a
three-process cluster with https peers and https clients (client
certificates required), reached through gRPC and etcdctl; a peer or client
without a certificate from the right CA is refused, logged, and changes
nothing. Certificates are made per test (tests/real/tls_certs.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from test_real_runtime_server import ROOT, STARTUP_TIMEOUT_S, free_ports
from test_real_transport_loopback import Node, run
from tls_certs import Authority, Pair, authority
from transport_samples import A, B

from chainfire_core.raft.messages import Heartbeat
from chainfire_core.types import Index, Term
from real.config import ConfigError, load_config
from real.etcdpb import rpc_pb2, rpc_pb2_grpc
from real.tls import TLSFiles

ETCDCTL = shutil.which("etcdctl")


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, object]:
    ca = authority(tmp_path / "pki", "cluster")
    rogue = authority(tmp_path / "pki", "rogue")
    return {"ca": ca, "rogue": rogue, "dir": tmp_path / "pki"}


# -- configuration ------------------------------------------------------------------


def config_error(argv: list[str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(argv, {})
    return caught.value


def test_tls_config_errors_name_the_field(pki: dict[str, object], tmp_path: Path) -> None:
    ca = pki["ca"]
    assert isinstance(ca, Authority)
    server = ca.issue(tmp_path / "pki", "server")
    other = ca.issue(tmp_path / "pki", "other")
    https = ["--listen-client-urls", "https://127.0.0.1:2379"]
    assert config_error(https).field == "listen-client-urls"
    assert config_error(["--cert-file", str(server.cert)]).field == "key-file"
    assert config_error([*https, "--cert-file", str(tmp_path / "nope.pem"), "--key-file",
                         str(server.key)]).field == "cert-file"
    mismatch = config_error([*https, "--cert-file", str(server.cert),
                             "--key-file", str(other.key)])
    assert mismatch.field == "cert-file/key-file" and "cannot load" in mismatch.reason
    assert config_error([*https, "--cert-file", str(server.cert), "--key-file",
                         str(server.key), "--client-cert-auth", "true"]
                        ).field == "trusted-ca-file"
    assert config_error(["--client-cert-auth", "maybe"]).field == "client-cert-auth"
    peers = ["--listen-peer-urls", "https://127.0.0.1:2380"]
    assert config_error(peers).field == "listen-peer-urls"
    assert config_error([*peers, "--peer-cert-file", str(server.cert), "--peer-key-file",
                         str(server.key)]).field == "peer-trusted-ca-file"
    assert config_error(["--name", "a", "--listen-peer-urls", "https://127.0.0.1:2380",
                         "--initial-cluster",
                         "a=https://127.0.0.1:2380,b=http://127.0.0.1:2480"]
                        ).field == "initial-cluster"
    assert config_error(["--peer-cert-file", str(server.cert), "--peer-key-file",
                         str(server.key), "--peer-trusted-ca-file", str(ca.cert)]
                        ).field == "peer-cert-file"
    good = load_config([*https, "--cert-file", str(server.cert), "--key-file", str(server.key),
                        *peers, "--peer-cert-file", str(server.cert), "--peer-key-file",
                        str(server.key), "--peer-trusted-ca-file", str(ca.cert)], {})
    assert good.listen_client_urls[0].tls and good.peer_tls().enabled


# -- mutual TLS between transports ---------------------------------------------------


def peer_files(ca: Authority, pair: Pair) -> TLSFiles:
    return TLSFiles(cert_file=pair.cert, key_file=pair.key, trusted_ca_file=ca.cert,
                    client_cert_auth=True, prefix="peer-")


def test_peer_transports_talk_over_mutual_tls_and_refuse_a_rogue(
        pki: dict[str, object], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca, rogue = pki["ca"], pki["rogue"]
    assert isinstance(ca, Authority) and isinstance(rogue, Authority)
    good_a = peer_files(ca, ca.issue(tmp_path / "pki", "a"))
    good_b = peer_files(ca, ca.issue(tmp_path / "pki", "b"))
    # The rogue trusts the cluster CA (it can verify the member) but its own
    # certificate comes from another CA: the member must refuse it.
    bad = TLSFiles(cert_file=rogue.issue(tmp_path / "pki", "r").cert,
                   key_file=tmp_path / "pki" / "r-key.pem", trusted_ca_file=ca.cert,
                   client_cert_auth=True, prefix="peer-")
    heartbeat = Heartbeat(sender=A, to=B, term=Term(3), commit=Index(0))

    async def scenario() -> None:
        b = await Node(B, server_ssl=good_b.peer_server_context(),
                       client_ssl=good_b.peer_client_context()).start()
        a = await Node(A, server_ssl=good_a.peer_server_context(),
                       client_ssl=good_a.peer_client_context()).start()
        intruder = await Node(A, server_ssl=bad.peer_server_context(),
                              client_ssl=bad.peer_client_context()).start()
        plain = await Node(A).start()
        try:
            for sender in (intruder, plain):
                sender.transport.set_peers({B: ("127.0.0.1", b.port)})
            deadline = time.monotonic() + 10
            while b.transport.tls_refused < 2:
                for sender in (intruder, plain):
                    sender.transport.send([heartbeat])
                assert time.monotonic() < deadline, b.transport.tls_refused
                await asyncio.sleep(0.05)
            assert b.received == []
            a.transport.set_peers({B: ("127.0.0.1", b.port)})
            while not b.received:
                a.transport.send([heartbeat])
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert b.received[0] == heartbeat
        finally:
            for node in (a, b, intruder, plain):
                await node.transport.close()

    with caplog.at_level(logging.WARNING, logger="real.transport.transport"):
        run(scenario)
    assert "TLS handshake failed" in caplog.text


# -- a TLS cluster --------------------------------------------------------------------


@dataclass
class TLSCluster:
    procs: list[subprocess.Popen[bytes]]
    endpoints: list[str]
    ca: Authority
    client: Pair
    base: Path
    peers: str

    def channel(self, i: int, pair: Pair | None = None) -> grpc.Channel:
        pair = pair or self.client
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca.cert_pem, private_key=pair.key.read_bytes(),
            certificate_chain=pair.cert.read_bytes())
        return grpc.secure_channel(self.endpoints[i], credentials)


def serve_argv(base: Path, name: str, ports: tuple[int, int], peers: str,
               certs: tuple[Authority, Pair], *extra: str) -> list[str]:
    ca, pair = certs
    client_port, peer_port = ports
    return [sys.executable, "-m", "real.server", "serve", "--name", name,
            "--data-dir", str(base / name), "--initial-cluster", peers,
            "--listen-client-urls", f"https://127.0.0.1:{client_port}",
            "--listen-peer-urls", f"https://127.0.0.1:{peer_port}",
            "--heartbeat-interval-ms", "50", "--election-timeout-ms", "500",
            "--cert-file", str(pair.cert), "--key-file", str(pair.key),
            "--trusted-ca-file", str(ca.cert), "--client-cert-auth", "true",
            "--peer-cert-file", str(pair.cert), "--peer-key-file", str(pair.key),
            "--peer-trusted-ca-file", str(ca.cert), *extra]


def spawn(base: Path, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with (base / f"{name}.log").open("ab") as log:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def tls_cluster(pki: dict[str, object], tmp_path: Path) -> Iterator[TLSCluster]:
    ca = pki["ca"]
    assert isinstance(ca, Authority)
    ports = free_ports(6)
    names = ["t1", "t2", "t3"]
    peers = ",".join(f"{name}=https://127.0.0.1:{ports[3 + i]}" for i, name in enumerate(names))
    procs = [spawn(tmp_path, name, serve_argv(tmp_path, name, (ports[i], ports[3 + i]), peers,
                                              (ca, ca.issue(tmp_path / "pki", name))))
             for i, name in enumerate(names)]
    cluster = TLSCluster(procs, [f"127.0.0.1:{port}" for port in ports[:3]], ca,
                         ca.issue(tmp_path / "pki", "client"), tmp_path, peers)
    try:
        wait_leader(cluster)
        yield cluster
    finally:
        for proc in cluster.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def wait_leader(cluster: TLSCluster) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            statuses = [rpc_pb2_grpc.MaintenanceStub(cluster.channel(i)).Status(
                rpc_pb2.StatusRequest(), timeout=2) for i in range(3)]
            leaders = {s.leader for s in statuses}
            ids = [s.header.member_id for s in statuses]
            if len(leaders) == 1 and statuses[0].leader in ids:
                return ids.index(statuses[0].leader)
        except grpc.RpcError:
            pass
        for proc in cluster.procs:
            assert proc.poll() is None, f"a server exited: {proc.args}"
        assert time.monotonic() < deadline, "no leader over TLS"
        time.sleep(0.1)


def test_tls_cluster_serves_clients_with_certificates_only(tls_cluster: TLSCluster,
                                                           pki: dict[str, object]) -> None:
    lead = wait_leader(tls_cluster)
    kv = rpc_pb2_grpc.KVStub(tls_cluster.channel(lead))
    kv.Put(rpc_pb2.PutRequest(key=b"secure", value=b"yes"), timeout=5)
    follower = (lead + 1) % 3
    got = rpc_pb2_grpc.KVStub(tls_cluster.channel(follower)).Range(
        rpc_pb2.RangeRequest(key=b"secure"), timeout=5)
    assert got.kvs[0].value == b"yes"
    # No client certificate, a certificate from another CA, plain text: refused.
    rogue = pki["rogue"]
    assert isinstance(rogue, Authority)
    rogue_pair = rogue.issue(tls_cluster.base / "pki", "rogue-client")
    no_cert = grpc.secure_channel(tls_cluster.endpoints[lead], grpc.ssl_channel_credentials(
        root_certificates=tls_cluster.ca.cert_pem))
    for channel in (no_cert, tls_cluster.channel(lead, rogue_pair),
                    grpc.insecure_channel(tls_cluster.endpoints[lead])):
        with pytest.raises(grpc.RpcError) as refused:
            rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"secure", value=b"no"),
                                             timeout=3)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert kv.Range(rpc_pb2.RangeRequest(key=b"secure"), timeout=5).kvs[0].value == b"yes"


@pytest.mark.skipif(ETCDCTL is None, reason="etcdctl not installed (run scripts/install-etcd)")
def test_etcdctl_over_tls(tls_cluster: TLSCluster) -> None:
    everyone = ",".join(f"https://{e}" for e in tls_cluster.endpoints)
    tls = [f"--cacert={tls_cluster.ca.cert}", f"--cert={tls_cluster.client.cert}",
           f"--key={tls_cluster.client.key}"]

    def etcdctl(*args: str) -> subprocess.CompletedProcess[str]:
        assert ETCDCTL is not None
        return subprocess.run([ETCDCTL, f"--endpoints={everyone}", "--dial-timeout=5s",
                               "--command-timeout=10s", *args], capture_output=True,
                              text=True, timeout=60, env=dict(os.environ, ETCDCTL_API="3"),
                              check=False)

    put = etcdctl(*tls, "put", "tls-key", "tls-value")
    assert put.returncode == 0 and put.stdout.strip() == "OK", put.stderr
    get = etcdctl(*tls, "get", "tls-key", "--print-value-only")
    assert get.stdout.strip() == "tls-value", get.stderr
    health = etcdctl(*tls, "endpoint", "health")
    assert health.returncode == 0, health.stderr
    assert (health.stdout + health.stderr).count("is healthy") == 3  # etcdctl prints to stderr
    no_cert = etcdctl(f"--cacert={tls_cluster.ca.cert}", "put", "tls-key", "stolen")
    assert no_cert.returncode != 0
    assert etcdctl(*tls, "get", "tls-key", "--print-value-only").stdout.strip() == "tls-value"


def test_a_peer_with_an_unknown_certificate_cannot_join(tls_cluster: TLSCluster,
                                                        pki: dict[str, object]) -> None:
    rogue = pki["rogue"]
    assert isinstance(rogue, Authority)
    lead = wait_leader(tls_cluster)
    client_port, peer_port = free_ports(2)
    url = f"https://127.0.0.1:{peer_port}"
    cluster = rpc_pb2_grpc.ClusterStub(tls_cluster.channel(lead))
    added = cluster.MemberAdd(rpc_pb2.MemberAddRequest(peerURLs=[url], isLearner=True),
                              timeout=5)
    before = rpc_pb2_grpc.MaintenanceStub(tls_cluster.channel(lead)).Status(
        rpc_pb2.StatusRequest(), timeout=5)
    # The intruder trusts the cluster's CA but its certificate is the rogue CA's.
    pair = rogue.issue(tls_cluster.base / "pki", "intruder")
    argv = serve_argv(tls_cluster.base, "intruder", (client_port, peer_port),
                      f"{tls_cluster.peers},intruder={url}", (tls_cluster.ca, pair),
                      "--initial-cluster-state", "existing")
    proc = spawn(tls_cluster.base, "intruder", argv)
    try:
        time.sleep(3)  # many heartbeat and append rounds
        assert proc.poll() is None, "the intruder exited"
        # Its client port serves the rogue certificate and asks for a client
        # certificate from the cluster CA (its --trusted-ca-file).
        client = tls_cluster.client
        intruder = grpc.secure_channel(f"127.0.0.1:{client_port}", grpc.ssl_channel_credentials(
            root_certificates=rogue.cert_pem, private_key=client.key.read_bytes(),
            certificate_chain=client.cert.read_bytes()))
        status = rpc_pb2_grpc.MaintenanceStub(intruder).Status(rpc_pb2.StatusRequest(),
                                                               timeout=5)
        # It never heard from the leader: no leader, nothing applied, no term.
        assert (status.leader, status.raftAppliedIndex, status.raftTerm) == (0, 0, 0)
        after = rpc_pb2_grpc.MaintenanceStub(tls_cluster.channel(lead)).Status(
            rpc_pb2.StatusRequest(), timeout=5)
        assert after.leader == before.leader and after.raftTerm == before.raftTerm
        logs = "".join((tls_cluster.base / f"{name}.log").read_text()
                       for name in ("t1", "t2", "t3"))
        assert "TLS handshake failed" in logs
    finally:
        proc.kill()
        proc.wait()
        cluster.MemberRemove(rpc_pb2.MemberRemoveRequest(ID=added.member.ID), timeout=5)


def test_a_follower_forwards_lease_calls_to_the_leader_over_tls(tls_cluster: TLSCluster) -> None:
    lead = wait_leader(tls_cluster)
    follower = (lead + 1) % 3
    lease = rpc_pb2_grpc.LeaseStub(tls_cluster.channel(follower))
    granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30), timeout=10)
    ttl = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=granted.ID), timeout=10)
    assert 0 < ttl.TTL <= 30
    answers = list(lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=granted.ID)] * 3),
                                        timeout=10))
    assert [answer.TTL for answer in answers] == [30, 30, 30]
