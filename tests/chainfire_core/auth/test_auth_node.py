"""Auth through Raft: a 3-node cluster of ChainfireNodes on an in-memory wire.
Tokens are assigned on every member, credentials are checked on every
replica, passwords stay out of the log, and a password checked before an
auth change is checked again."""

from __future__ import annotations

import pytest

from chainfire_core.auth import (
    ANONYMOUS,
    AuthEnableRequest,
    AuthenticateRequest,
    AuthenticateResponse,
    AuthInfo,
    RoleAddRequest,
    RoleGrantPermissionRequest,
    UserAddRequest,
    UserChangePasswordRequest,
    UserGetRequest,
    UserGetResponse,
    UserGrantRoleRequest,
    UserListRequest,
    UserListResponse,
    simple_token_index,
)
from chainfire_core.errors import (
    AuthFailed,
    ChainfireError,
    InvalidAuthToken,
    PermissionDenied,
    UserEmpty,
)
from chainfire_core.mvcc.messages import PutRequest, PutResponse, RangeRequest, RangeResponse
from chainfire_core.node_messages import ClientRequest, ClientResponse, ReadConsistency
from chainfire_core.types import NodeId
from tests.chainfire_core.auth.auth_helpers import prefix_perm
from tests.chainfire_core.node_cluster import Cluster


class AuthCluster(Cluster):
    def call(self, node: NodeId, request: ClientRequest, auth: AuthInfo | None = None,
             consistency: ReadConsistency = ReadConsistency.LINEARIZABLE) -> ClientResponse:
        request_id = self._next_request_id
        self._next_request_id += 1
        self.nodes[node].submit(request_id, request, consistency, auth=auth)
        self.pump()
        for _ in range(20):
            if request_id in self.responses:
                break
            self.tick()
        return self.responses[request_id]

    def ok(self, node: NodeId, request: ClientRequest, auth: AuthInfo | None = None,
           consistency: ReadConsistency = ReadConsistency.LINEARIZABLE) -> object:
        answer = self.call(node, request, auth, consistency)
        assert answer.error is None, answer.error
        return answer.response

    def refused(self, node: NodeId, request: ClientRequest,
                auth: AuthInfo | None = None) -> ChainfireError:
        answer = self.call(node, request, auth)
        assert answer.error is not None, answer.response
        return answer.error

    def token(self, node: NodeId, name: str, password: str) -> str:
        answer = self.ok(node, AuthenticateRequest(name=name, password=password))
        assert isinstance(answer, AuthenticateResponse)
        return answer.token


def _cluster() -> tuple[AuthCluster, NodeId, NodeId]:
    cluster = AuthCluster(3, password_hash_iterations=1_000)
    leader = cluster.elect()
    follower = next(n for n in cluster.ids if n != leader)
    for request in (UserAddRequest(name="root", password="rootpw"),
                    UserGrantRoleRequest(user="root", role="root"),
                    RoleAddRequest(name="app"),
                    RoleGrantPermissionRequest(name="app", perm=prefix_perm(b"/app/")),
                    UserAddRequest(name="alice", password="alicepw"),
                    UserGrantRoleRequest(user="alice", role="app")):
        cluster.ok(follower, request)  # forwarded to the leader
    cluster.ok(leader, AuthEnableRequest())
    return cluster, leader, follower


def test_a_token_is_assigned_on_every_member_and_works_on_any() -> None:
    cluster, leader, follower = _cluster()
    token = cluster.token(follower, "alice", "alicepw")
    index = simple_token_index(token)
    assert index is not None
    for node in cluster.ids:
        assert cluster.nodes[node].sm.applied_index >= index
        assert cluster.nodes[node].auth_info(token).user == "alice"
    alice = cluster.nodes[leader].auth_info(token)
    put = cluster.ok(follower, PutRequest(key=b"/app/x", value=b"1"), alice)
    assert isinstance(put, PutResponse)
    for consistency in ReadConsistency:
        read = cluster.ok(follower, RangeRequest(key=b"/app/x"), alice, consistency)
        assert isinstance(read, RangeResponse) and read.kvs[0].value == b"1"
    assert isinstance(cluster.refused(follower, PutRequest(key=b"/x", value=b"1"), alice),
                      PermissionDenied)
    assert isinstance(cluster.refused(leader, RangeRequest(key=b"/x"), alice), PermissionDenied)
    hashes = {cluster.nodes[n].sm.store.hash_kv() for n in cluster.ids}
    assert len(hashes) == 1  # HashKV: the replicas agree


def test_without_credentials_a_request_runs_as_anonymous_once_auth_is_on() -> None:
    cluster, leader, follower = _cluster()
    for node in (leader, follower):
        assert isinstance(cluster.refused(node, PutRequest(key=b"/app/x", value=b"1")),
                          UserEmpty)
        assert isinstance(cluster.refused(node, RangeRequest(key=b"/app/x")), UserEmpty)
        assert isinstance(cluster.refused(node, UserListRequest(), ANONYMOUS), UserEmpty)
    root = cluster.nodes[leader].auth_info(cluster.token(leader, "root", "rootpw"))
    users = cluster.ok(follower, UserListRequest(), root)
    assert isinstance(users, UserListResponse) and users.users == ("alice", "root")
    alice = cluster.nodes[leader].auth_info(cluster.token(leader, "alice", "alicepw"))
    mine = cluster.ok(follower, UserGetRequest(name="alice"), alice)
    assert isinstance(mine, UserGetResponse) and mine.roles == ("app",)


def test_passwords_never_reach_the_log() -> None:
    cluster, leader, _ = _cluster()
    root = cluster.nodes[leader].auth_info(cluster.token(leader, "root", "rootpw"))
    cluster.ok(leader, UserChangePasswordRequest(name="alice", password="sekrit-2"), root)
    cluster.token(leader, "alice", "sekrit-2")
    for node in cluster.ids:
        storage = cluster.storages[node]
        entries = storage.entries(storage.first_index(), storage.last_index() + 1, None)
        assert len(entries) > 10
        for entry in entries:
            for password in (b"rootpw", b"alicepw", b"sekrit-2"):
                assert password not in entry.data


def test_a_password_changed_before_the_token_applies_is_checked_again() -> None:
    cluster, leader, _ = _cluster()
    root = cluster.nodes[leader].auth_info(cluster.token(leader, "root", "rootpw"))
    node = cluster.nodes[leader]
    # Both go into one batch: the change is ahead of the token in the log, so
    # the token's password check (made at submit, against the old password)
    # is stale when it applies; the node checks again and the old one fails.
    node.submit(901, UserChangePasswordRequest(name="alice", password="new-pw"), auth=root)
    node.submit(902, AuthenticateRequest(name="alice", password="alicepw"))
    cluster.pump()
    assert cluster.responses[901].error is None
    assert isinstance(cluster.responses[902].error, AuthFailed)
    assert all(len(cluster.nodes[n].sm.tokens) == 1 for n in cluster.ids)  # root's only


def test_an_unrelated_auth_change_in_between_only_costs_a_retry() -> None:
    cluster, leader, _ = _cluster()
    root = cluster.nodes[leader].auth_info(cluster.token(leader, "root", "rootpw"))
    node = cluster.nodes[leader]
    node.submit(911, RoleAddRequest(name="ops"), auth=root)
    node.submit(912, AuthenticateRequest(name="alice", password="alicepw"))
    cluster.pump()
    answer = cluster.responses[912]
    assert isinstance(answer.response, AuthenticateResponse), answer.error
    alice = node.auth_info(answer.response.token)
    assert alice.revision == node.sm.auth.revision


def test_a_member_that_has_not_applied_the_token_does_not_know_it() -> None:
    cluster, leader, follower = _cluster()
    cluster.partition([follower], [n for n in cluster.ids if n != follower])
    token = cluster.token(leader, "alice", "alicepw")
    index = simple_token_index(token)
    assert index is not None and cluster.nodes[follower].sm.applied_index < index
    with pytest.raises(InvalidAuthToken):
        cluster.nodes[follower].auth_info(token)
    cluster.heal()
    cluster.tick(5)
    assert cluster.nodes[follower].auth_info(token).user == "alice"


def test_wrong_passwords_and_unknown_users_fail_without_a_proposal() -> None:
    cluster, leader, _ = _cluster()
    last = cluster.nodes[leader].raw.raft.log.last_index()
    for name, password in (("alice", "nope"), ("nobody", "alicepw")):
        assert isinstance(cluster.refused(leader, AuthenticateRequest(name=name,
                                                                      password=password)),
                          AuthFailed)
    assert cluster.nodes[leader].raw.raft.log.last_index() == last
