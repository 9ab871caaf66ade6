"""Auth, RBAC, alarms and quotas end to end on a three-process cluster,
through etcd 3.4's etcdctl (when installed) and the generated stubs: users,
roles, permissions, auth enable/disable, and the security refusals the issue
lists — wrong password, expired token, revoked role, a key outside the
granted range, a request over the size limit, a caller without the root
role on every maintenance command — each refused with etcd's error, logged,
and nothing changed. Then the NOSPACE alarm (a tiny backend quota) and
per-namespace quotas."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from real_cluster_harness import Cluster, cluster_argvs, start, stop

from real.etcdpb import chainfire_pb2, chainfire_pb2_grpc, rpc_pb2, rpc_pb2_grpc
from real.server import main

ETCDCTL = shutil.which("etcdctl")
needs_etcdctl = pytest.mark.skipif(ETCDCTL is None,
                                   reason="etcdctl not installed (run scripts/install-etcd)")
TOKEN_TTL_S = 3


def running(tmp_path: Path, *flags: str) -> Iterator[Cluster]:
    argvs, endpoints = cluster_argvs(tmp_path, ["a1", "a2", "a3"], *flags)
    started = start(tmp_path, argvs, endpoints)
    try:
        yield started
    finally:
        stop(started)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from running(tmp_path, "--auth-token-ttl", str(TOKEN_TTL_S))


@pytest.fixture
def small_quota(tmp_path: Path) -> Iterator[Cluster]:
    yield from running(tmp_path, "--quota-backend-bytes", "200000")


def ctl(cluster: Cluster, *args: str, user: str | None = None,
        one: bool = False) -> subprocess.CompletedProcess[str]:
    """etcdctl against every member (`one`: only the first, for snapshot save)."""
    assert ETCDCTL is not None
    auth = [f"--user={user}"] if user else []
    endpoints = cluster.endpoints[:1] if one else cluster.endpoints
    return subprocess.run([ETCDCTL, f"--endpoints={','.join(endpoints)}",
                           "--dial-timeout=5s", "--command-timeout=15s", *auth, *args],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, ETCDCTL_API="3"), check=False)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.args, done.stdout, done.stderr)
    return done.stdout


def refused(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode != 0, (done.args, done.stdout)
    assert message in done.stderr, (done.args, done.stderr)


def logs(tmp_path: Path) -> str:
    return "".join(path.read_text() for path in sorted(tmp_path.glob("serve*.log")))


def set_up_users(cluster: Cluster) -> None:
    ok(ctl(cluster, "user", "add", "root:rootpw"))
    ok(ctl(cluster, "role", "add", "app"))
    ok(ctl(cluster, "role", "grant-permission", "app", "readwrite", "/app/", "--prefix"))
    ok(ctl(cluster, "role", "grant-permission", "app", "read", "/shared"))
    ok(ctl(cluster, "user", "add", "alice:alicepw"))
    ok(ctl(cluster, "user", "grant-role", "alice", "app"))
    ok(ctl(cluster, "user", "grant-role", "root", "root"))
    assert "Authentication Enabled" in ok(ctl(cluster, "auth", "enable"))


@needs_etcdctl
def test_etcdctl_users_roles_and_refusals(cluster: Cluster, tmp_path: Path) -> None:
    ok(ctl(cluster, "put", "/shared", "s0"))
    set_up_users(cluster)
    root, alice = "root:rootpw", "alice:alicepw"
    assert ok(ctl(cluster, "put", "/app/x", "1", user=alice)).strip() == "OK"
    assert ok(ctl(cluster, "get", "/app/x", "--print-value-only", user=alice)).strip() == "1"
    assert ok(ctl(cluster, "get", "/shared", "--print-value-only", user=alice)).strip() == "s0"
    # A key outside the granted range, write on a read-only key, no user, wrong password.
    refused(ctl(cluster, "put", "/etc/x", "1", user=alice), "etcdserver: permission denied")
    refused(ctl(cluster, "put", "/shared", "s1", user=alice), "etcdserver: permission denied")
    refused(ctl(cluster, "get", "/app/x"), "etcdserver: user name is empty")
    refused(ctl(cluster, "get", "/app/x", user="alice:wrong"),
            "etcdserver: authentication failed, invalid user ID or password")
    # Every admin command from a user without the root role.
    refused(ctl(cluster, "snapshot", "save", str(tmp_path / "s.db"), user=alice, one=True),
            "permission denied")
    for command in (["defrag"],
                    ["endpoint", "hashkv"], ["member", "add", "x", "--peer-urls=http://1.2.3.4:5"],
                    ["user", "add", "mallory:pw"], ["role", "add", "evil"],
                    ["user", "grant-role", "alice", "root"], ["auth", "disable"],
                    ["user", "list"], ["role", "list"]):
        refused(ctl(cluster, *command, user=alice), "permission denied")
    assert not (tmp_path / "s.db").exists()
    # What alice may see about herself; root sees everything.
    assert "Roles: app" in ok(ctl(cluster, "user", "get", "alice", user=alice))
    assert ok(ctl(cluster, "user", "list", user=root)).split() == ["alice", "root"]
    role = ok(ctl(cluster, "role", "get", "app", user=root))
    assert "[/app/, /app0) (prefix /app/)" in role and "/shared" in role
    # A revoked role: alice's next write is refused; nothing was written.
    ok(ctl(cluster, "user", "revoke-role", "alice", "app", user=root))
    refused(ctl(cluster, "put", "/app/x", "2", user=alice), "permission denied")
    assert ok(ctl(cluster, "get", "/app/x", "--print-value-only", user=root)).strip() == "1"
    # The refusals were logged by the members, with the user.
    text = logs(tmp_path)
    assert "refused PutRequest for user 'alice'" in text
    assert "refused AuthenticateRequest for user 'alice'" in text
    # Disable: anyone may write again.
    ok(ctl(cluster, "auth", "disable", user=root))
    assert ok(ctl(cluster, "put", "/etc/x", "1")).strip() == "OK"


def token_for(cluster: Cluster, i: int, name: str, password: str) -> str:
    auth = rpc_pb2_grpc.AuthStub(grpc.insecure_channel(cluster.endpoints[i]))
    return auth.Authenticate(rpc_pb2.AuthenticateRequest(name=name, password=password),
                             timeout=10).token


def grpc_error(call: object, *args: object, **kwargs: object) -> grpc.RpcError:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


@needs_etcdctl
def test_tokens_expire_go_stale_and_work_on_every_member(cluster: Cluster,
                                                         tmp_path: Path) -> None:
    set_up_users(cluster)
    lead = cluster.leader()
    token = token_for(cluster, lead, "alice", "alicepw")
    metadata = (("token", token),)
    # A token assigned through the log works on every member.
    for i in range(3):
        kv = rpc_pb2_grpc.KVStub(grpc.insecure_channel(cluster.endpoints[i]))
        kv.Range(rpc_pb2.RangeRequest(key=b"/app/x"), metadata=metadata, timeout=10)
    kv = cluster.kv(lead)
    # An auth change makes it stale; a fresh one works.
    ok(ctl(cluster, "role", "add", "other", user="root:rootpw"))
    stale = grpc_error(kv.Put, rpc_pb2.PutRequest(key=b"/app/y", value=b"1"),
                       metadata=metadata, timeout=10)
    assert stale.details() == "etcdserver: revision of auth store is old"
    metadata = (("token", token_for(cluster, lead, "alice", "alicepw")),)
    kv.Put(rpc_pb2.PutRequest(key=b"/app/y", value=b"1"), metadata=metadata, timeout=10)
    # Unused for longer than --auth-token-ttl: expired.
    time.sleep(TOKEN_TTL_S + 1)
    expired = grpc_error(kv.Put, rpc_pb2.PutRequest(key=b"/app/y", value=b"2"),
                         metadata=metadata, timeout=10)
    assert (expired.code(), expired.details()) == (grpc.StatusCode.UNAUTHENTICATED,
                                                   "etcdserver: invalid auth token")
    root = (("token", token_for(cluster, lead, "root", "rootpw")),)
    got = kv.Range(rpc_pb2.RangeRequest(key=b"/app/y"), metadata=root, timeout=10)
    assert got.kvs[0].value == b"1"
    # Requests over the size limit (etcd's 1.5 MiB, plus gRPC's 512 KiB allowance
    # for the message itself) change nothing either.
    over_limit = grpc_error(kv.Put, rpc_pb2.PutRequest(key=b"/app/y", value=b"x" * 1_700_000),
                            metadata=root, timeout=10)
    assert (over_limit.code(), over_limit.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                         "etcdserver: request is too large")
    over_grpc = grpc_error(kv.Put, rpc_pb2.PutRequest(key=b"/app/y", value=b"x" * 2_200_000),
                           metadata=root, timeout=10)
    assert over_grpc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert kv.Range(rpc_pb2.RangeRequest(key=b"/app/y"), metadata=root,
                    timeout=10).kvs[0].value == b"1"
    assert "refused PutRequest for user 'root': etcdserver: request is too large" in logs(
        tmp_path)


@needs_etcdctl
def test_nospace_alarm_list_and_disarm(small_quota: Cluster) -> None:
    cluster = small_quota
    value = "v" * 10_000
    written = 0
    while True:  # --quota-backend-bytes 200000: about 19 puts of 10 kB fit
        done = ctl(cluster, "put", f"/big/{written}", value)
        if done.returncode != 0:
            break
        written += 1
        assert written < 100, "the quota never refused a put"
    assert "etcdserver: mvcc: database space exceeded" in done.stderr
    alarms = ok(ctl(cluster, "alarm", "list"))
    assert "alarm:NOSPACE" in alarms
    # Writes stay refused on every member, reads and deletes are served.
    refused(ctl(cluster, "put", "/small", "1"), "database space exceeded")
    assert ok(ctl(cluster, "get", "/big/0", "--print-value-only")).strip() == value
    ok(ctl(cluster, "del", "/big/", "--prefix"))
    status = ok(ctl(cluster, "endpoint", "status", "-w", "json"))
    revision = int(status.split('"revision":')[1].split(",")[0])
    ok(ctl(cluster, "compact", str(revision)))
    refused(ctl(cluster, "put", "/small", "1"), "database space exceeded")  # still armed
    assert "alarm:NOSPACE" in ok(ctl(cluster, "alarm", "disarm"))
    assert ok(ctl(cluster, "alarm", "list")) == ""
    assert ok(ctl(cluster, "put", "/small", "1")).strip() == "OK"


def test_namespace_quota_through_the_cli(cluster: Cluster,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = ["--endpoint", cluster.endpoints[cluster.leader()]]
    assert main(["quota", "set", "/tenant/", "--max-keys", "2", "--max-bytes", "1KB",
                 *endpoint]) == 0
    kv = cluster.kv(cluster.leader())
    kv.Put(rpc_pb2.PutRequest(key=b"/tenant/1", value=b"a"), timeout=10)
    kv.Put(rpc_pb2.PutRequest(key=b"/tenant/2", value=b"b"), timeout=10)
    before = kv.Range(rpc_pb2.RangeRequest(key=b"/tenant/3"), timeout=10).header.revision
    txn = rpc_pb2.TxnRequest(success=[
        rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/other", value=b"x")),
        rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/tenant/3", value=b"c"))])
    error = grpc_error(kv.Txn, txn, timeout=10)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    after = kv.Range(rpc_pb2.RangeRequest(key=b"/other"), timeout=10)
    assert after.count == 0 and after.header.revision == before  # nothing partial
    capsys.readouterr()
    assert main(["quota", "list", "-w", "json", *endpoint]) == 0
    listed = capsys.readouterr().out
    assert '"usedKeys": 2' in listed and '"maxKeys": 2' in listed
    quota = chainfire_pb2_grpc.QuotaStub(grpc.insecure_channel(cluster.endpoints[0]))
    assert quota.List(chainfire_pb2.QuotaListRequest(), timeout=10).quotas[0].used_keys == 2
    assert main(["quota", "delete", "/tenant/", *endpoint]) == 0
    kv.Txn(txn, timeout=10)
    assert main(["quota", "set", "/x/", *endpoint]) == 2  # no limit given
