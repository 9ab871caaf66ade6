"""real.client against a three-process cluster serving clients over TLS with
client certificates: TLS settings and refusals; auth (users, roles, prefix
permissions, a stale token refreshed transparently, wrong password);
backups, HashKV, defragmentation and MoveLeader; namespace quotas; the
NOSPACE alarm (a tiny --quota-backend-bytes), listed and disarmed.

One cluster serves the module (its start is the slow part); each test puts
back what it changed (auth disabled, quotas deleted), and the NOSPACE test,
which fills the backend, runs last."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from real_cluster_harness import Cluster, cluster_argvs, spawn, stop
from test_real_runtime_server import STARTUP_TIMEOUT_S
from tls_certs import Authority, Pair, authority

from chainfire_core.alarms import AlarmType
from chainfire_core.auth import PermissionType
from chainfire_core.mvcc.messages import prefix_end
from real.backup import info, verify
from real.client import (
    AsyncClient,
    Client,
    ClientTLS,
    RetryPolicy,
    Txn,
    op_put,
)
from real.client import errors as E
from real.tls import TLSConfigError

POLICY = RetryPolicy(request_timeout_s=5.0, connect_timeout_s=2.0, retry_timeout_s=20.0)
# For clients that cannot connect: one attempt.
REFUSED = RetryPolicy(request_timeout_s=2.0, connect_timeout_s=1.0, retry_timeout_s=2.0,
                      max_attempts=1)
QUOTA_BACKEND_BYTES = 150_000
_T = TypeVar("_T")


@dataclass
class SecureCluster:
    cluster: Cluster
    ca: Authority
    client: Pair
    rogue: Authority
    base: Path

    @property
    def endpoints(self) -> list[str]:
        return self.cluster.endpoints

    @property
    def urls(self) -> list[str]:
        return [f"https://{endpoint}" for endpoint in self.endpoints]

    @property
    def tls(self) -> ClientTLS:
        return ClientTLS(ca_file=self.ca.cert, cert_file=self.client.cert,
                         key_file=self.client.key)

    def connect(self, *, user: str | None = None, password: str | None = None,
                policy: RetryPolicy = POLICY) -> Client:
        return Client(self.urls, policy, tls=self.tls, user=user, password=password)


def eventually(probe: Callable[[], _T | None], what: str, timeout_s: float = 20.0) -> _T:
    """`probe()`'s first answer that is not None, within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(0.1)


def agreed_leader(client: Client, endpoints: list[str]) -> int | None:
    try:
        statuses = [client.status(endpoint) for endpoint in endpoints]
    except E.ClientError:
        return None
    leaders = {status.leader for status in statuses}
    ids = {status.member_id for status in statuses}
    return statuses[0].leader if len(leaders) == 1 and leaders <= ids else None


def leader_endpoint(client: Client, endpoints: tuple[str, ...]) -> str:
    def probe() -> str | None:
        for endpoint in endpoints:
            status = client.status(endpoint)
            if status.leader and status.leader == status.member_id:
                return endpoint
        return None
    return eventually(probe, "leader endpoint")


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    base = tmp_path_factory.mktemp("secure")
    ca, rogue = authority(base / "pki", "cluster"), authority(base / "pki", "rogue")
    server = ca.issue(base / "pki", "server")
    argvs, endpoints = cluster_argvs(
        base, ["s1", "s2", "s3"], "--cert-file", str(server.cert), "--key-file",
        str(server.key), "--trusted-ca-file", str(ca.cert), "--client-cert-auth", "true",
        "--quota-backend-bytes", str(QUOTA_BACKEND_BYTES))
    for argv in argvs:  # clients over TLS; peers stay plain (tests/real/test_real_tls.py)
        flag = argv.index("--listen-client-urls") + 1
        argv[flag] = argv[flag].replace("http://", "https://")
    cluster = spawn(base, argvs, endpoints)
    secure = SecureCluster(cluster, ca, ca.issue(base / "pki", "client"), rogue, base)
    try:
        with secure.connect() as client:
            eventually(lambda: agreed_leader(client, endpoints), "agreed leader",
                       STARTUP_TIMEOUT_S)
        yield secure
    finally:
        stop(cluster)


# -- TLS ----------------------------------------------------------------------------------


def test_client_tls_settings_are_checked_when_the_client_is_made(tmp_path: Path) -> None:
    ca = authority(tmp_path, "unit")
    pair = ca.issue(tmp_path, "unit-client")
    with pytest.raises(TLSConfigError) as no_key:
        Client(["127.0.0.1:1"], tls=ClientTLS(ca_file=ca.cert, cert_file=pair.cert))
    assert no_key.value.field == "key_file"
    with pytest.raises(TLSConfigError) as missing:
        Client(["127.0.0.1:1"], tls=ClientTLS(ca_file=tmp_path / "nope.pem"))
    assert missing.value.field == "ca_file"
    with pytest.raises(ValueError, match="http://"):
        Client(["http://127.0.0.1:1"], tls=ClientTLS(ca_file=ca.cert))
    with pytest.raises(ValueError, match="http://"):
        Client(["https://127.0.0.1:1", "http://127.0.0.1:2"])
    with pytest.raises(ValueError, match="user and password"):
        Client(["127.0.0.1:1"], user="alice")
    with Client(["https://127.0.0.1:1"]) as implied:  # https: TLS with the system's roots
        assert implied.pool.tls == ClientTLS() and implied.pool.endpoints == ("127.0.0.1:1",)


def test_tls_client_with_its_certificate_and_refusals(secure: SecureCluster) -> None:
    with secure.connect() as client:
        client.put("tls/key", "yes")
        assert len({client.status(e).member_id for e in secure.endpoints}) == 3
    # host:port endpoints with tls= work too, from the asyncio client.
    async def body() -> None:
        async with AsyncClient(secure.endpoints, POLICY, tls=secure.tls) as client:
            kv = await client.get("tls/key")
            assert kv is not None and kv.value == b"yes"
    asyncio.run(body())
    rogue_pair = secure.rogue.issue(secure.base / "pki", "rogue-client")
    refused = [
        ClientTLS(ca_file=secure.ca.cert),  # no client certificate
        ClientTLS(ca_file=secure.ca.cert, cert_file=rogue_pair.cert,
                  key_file=rogue_pair.key),  # a certificate from another CA
        ClientTLS(ca_file=secure.rogue.cert, cert_file=secure.client.cert,
                  key_file=secure.client.key),  # the member's certificate is not trusted
    ]
    for tls in refused:
        with Client(secure.endpoints, REFUSED, tls=tls) as client, \
                pytest.raises((E.EndpointUnreachableError, E.ConnectionLostError)):
            client.put("tls/key", "stolen")
    with Client(secure.endpoints, REFUSED) as plain, \
            pytest.raises((E.EndpointUnreachableError, E.ConnectionLostError)):
        plain.put("tls/key", "stolen")
    with secure.connect() as client:
        kv = client.get("tls/key")
        assert kv is not None and kv.value == b"yes"
        client.delete("tls/key")


# -- auth ---------------------------------------------------------------------------------


def test_auth_prefix_role_stale_token_and_refusals(secure: SecureCluster) -> None:
    with secure.connect() as setup:
        setup.auth.user_add("root", "rootpw")
        setup.auth.user_grant_role("root", "root")
        setup.auth.role_add("app")
        setup.auth.role_grant_permission("app", "/app/", prefix=True)
        setup.auth.role_grant_permission("app", "/shared", perm_type=PermissionType.READ)
        setup.auth.user_add("alice", "alicepw")
        setup.auth.user_grant_role("alice", "app")
        setup.put("/shared", "s0")
        # Alice connects before auth is on: her calls go without a token.
        alice = secure.connect(user="alice", password="alicepw")
        alice.put("/app/early", "1")
        assert alice.pool.auth is not None and alice.pool.auth.authentications == 0
        setup.auth.auth_enable()
        with pytest.raises(E.UserEmptyError):
            setup.get("/app/early")
    root = secure.connect(user="root", password="rootpw")
    try:
        check_alice(alice, root)
        check_admin_api(root, alice)
        # Alice's password changes: her token is dropped and the old password fails.
        root.auth.user_change_password("alice", "changed")
        with pytest.raises(E.AuthFailedError):
            alice.get("/app/x")
        with secure.connect(user="alice", password="wrong") as wrong, \
                pytest.raises(E.AuthFailedError):
            wrong.get("/app/x")
        with secure.connect(user="alice", password="changed") as again:
            kv = again.get("/app/x")
            assert kv is not None and kv.value == b"2"
    finally:
        alice.close()
        root.auth.auth_disable()
        root.auth.user_delete("alice")
        root.auth.user_delete("root")
        root.auth.role_delete("app")
        root.delete_prefix("/app/")
        root.delete("/shared")
        root.close()


def check_alice(alice: Client, root: Client) -> None:
    auth = alice.pool.auth
    assert auth is not None
    # Auth is on now: the first call is refused for its missing token, the
    # client authenticates and the call goes through.
    alice.put("/app/x", "1")
    assert auth.authentications == 1
    shared = alice.get("/shared")
    assert shared is not None and shared.value == b"s0"
    for denied in (lambda: alice.put("/etc/x", "1"), lambda: alice.put("/shared", "s1"),
                   lambda: alice.get("/etc/x"), lambda: alice.snapshot(io.BytesIO()),
                   alice.auth.user_list):
        with pytest.raises(E.PermissionDeniedError):
            denied()
    assert root.get("/etc/x") is None
    # An auth change makes alice's token stale: the client authenticates
    # again and the write goes through once.
    root.auth.role_add("other")
    alice.put("/app/x", "2")
    assert auth.authentications == 2
    written = root.get("/app/x")
    assert written is not None and (written.value, written.version) == (b"2", 2)
    # Permissions taken away: refused (after another transparent refresh), nothing written.
    root.auth.role_revoke_permission("app", "/app/", prefix=True)
    with pytest.raises(E.PermissionDeniedError):
        alice.put("/app/x", "3")
    assert auth.authentications == 3
    root.auth.role_grant_permission("app", "/app/", prefix=True)
    kv = root.get("/app/x")
    assert kv is not None and kv.value == b"2"
    root.auth.role_delete("other")
    # Streams carry the token too; one refused for a stale token is opened again.
    with alice.watch_prefix("/app/") as watch:
        assert auth.authentications == 4
        root.put("/app/watched", "w")
        assert watch.next(timeout_s=10).kv.key == b"/app/watched"
        # On the leader: a follower of this cluster cannot forward keepalives to
        # it (the server's forwarder has no TLS credentials for https client URLs).
        alice.pool.use(leader_endpoint(root, alice.pool.endpoints))
        with alice.lease(10) as lease:
            alice.put("/app/leased", "1", lease=lease.id)
            assert lease.time_to_live(keys=True).keys == (b"/app/leased",)
            time.sleep(0.5)  # keepalives go out every ttl/3 s over their own stream
            assert not lease.expired
        assert watch.next(timeout_s=10).kv.key == b"/app/leased"
    assert root.get("/app/leased") is None  # revoked when the lease closed
    backup = io.BytesIO()
    root.snapshot(backup)  # a server stream, with root's token
    assert verify(backup.getvalue()).revision > 0


def check_admin_api(root: Client, alice: Client) -> None:
    assert root.auth.user_list() == ("alice", "root")
    assert root.auth.user_get("alice") == ("app",)
    assert alice.auth.user_get("alice") == ("app",)  # a user may read itself
    assert root.auth.role_list() == ("app",)  # the root role is built in, as etcd's
    perms = root.auth.role_get("app")
    assert {(p.key, p.range_end, p.perm_type) for p in perms} == {
        (b"/app/", prefix_end(b"/app/"), PermissionType.READWRITE),
        (b"/shared", b"", PermissionType.READ)}
    with pytest.raises(E.UserExistsError):
        root.auth.user_add("alice", "again")
    with pytest.raises(E.RoleNotFoundError):
        root.auth.user_grant_role("alice", "nope")
    with pytest.raises(E.InvalidAuthMgmtError):
        root.auth.user_delete("root")


# -- maintenance -------------------------------------------------------------------------


def test_snapshot_hash_kv_defragment_move_leader(secure: SecureCluster,
                                                 tmp_path: Path) -> None:
    with secure.connect() as client:
        head = 0
        for i in range(20):
            head = client.put(f"/snap/{i % 7}", f"{i}").header.revision
        path = tmp_path / "backup.db"
        size = client.snapshot(path)
        saved = info(path)
        assert saved.total_bytes == size and saved.revision >= head
        assert not (tmp_path / "backup.db.part").exists()
        buffer = io.BytesIO()
        assert client.snapshot(buffer, endpoint=secure.urls[1]) == len(buffer.getvalue())
        assert verify(buffer.getvalue()).revision >= head

        def hashes() -> set[tuple[int, int]] | None:
            try:
                return {(h.member_id, h.hash) for h in
                        (client.hash_kv(head, endpoint=e) for e in secure.endpoints)}
            except E.FutureRevisionError:  # a member has not applied `head` yet
                return None
        found = eventually(hashes, "hash from every member")
        assert len({member for member, _ in found}) == 3 and len({h for _, h in found}) == 1
        with pytest.raises(E.FutureRevisionError):
            client.hash_kv(head + 1000)
        for endpoint in secure.endpoints:
            client.defragment(endpoint)
        kv = client.get("/snap/6")
        assert kv is not None and kv.value == b"13"

        lead = client.leader()
        target = next(m.id for m in client.member_list() if m.id != lead)
        with pytest.raises(E.BadLeaderTransfereeError):
            client.move_leader(12345)
        client.move_leader(target)
        assert eventually(lambda: agreed_leader(client, secure.endpoints), "leader") == target
        client.delete_prefix("/snap/")


# -- quotas and alarms --------------------------------------------------------------------


def test_namespace_quota_refuses_a_txn_whole(secure: SecureCluster) -> None:
    with secure.connect() as client:
        (quota,) = client.quota_set("/tenant/", max_keys=2, max_bytes=1000)
        assert (quota.prefix, quota.max_keys, quota.max_bytes) == (b"/tenant/", 2, 1000)
        client.put("/tenant/1", "a")
        before = client.put("/tenant/2", "b").header.revision
        txn = Txn().then(op_put("/outside", "x"), op_put("/tenant/3", "c"))
        with pytest.raises(E.NamespaceQuotaExceededError):
            client.txn(txn)
        after = client.range("/outside")
        assert after.count == 0 and after.header.revision == before  # nothing partial
        (usage,) = client.quota_list()
        assert (usage.used_keys, usage.max_keys) == (2, 2)
        assert client.quota_delete("/tenant/") == (usage,)
        assert client.quota_list() == ()
        assert client.txn(txn).succeeded
        client.delete_prefix("/tenant/")
        client.delete("/outside")


def test_nospace_alarm_listed_and_disarmed(secure: SecureCluster) -> None:
    """Runs last: it fills the backend to its quota."""
    value = "v" * 10_000
    with secure.connect() as client:
        written = 0
        with pytest.raises(E.NoSpaceError):  # about 14 puts of 10 kB fit
            while written < 100:
                client.put(f"/big/{written}", value)
                written += 1
        assert 0 < written < 100
        alarms = client.alarms()
        assert alarms and {alarm.alarm for alarm in alarms} == {AlarmType.NOSPACE}
        # Writes stay refused everywhere; reads, deletes and compaction are served.
        with pytest.raises(E.NoSpaceError):
            client.put("/small", "1")
        kv = client.get("/big/0")
        assert kv is not None and kv.value == value.encode()
        revision = client.delete_prefix("/big/").header.revision
        client.compact(revision)
        with pytest.raises(E.NoSpaceError):  # still armed
            client.put("/small", "1")
        assert set(client.alarm_disarm()) == set(alarms)
        assert client.alarms() == ()
        client.put("/small", "1")
        client.delete("/small")
