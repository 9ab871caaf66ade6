"""The client's auth rules against a scripted server (fast, no cluster):
lazy authentication shared by concurrent calls, the token on every call,
one re-authentication and retry on a stale token (never a loop), a wrong
password failing before the call is sent, a cluster without auth; and the
error map for etcd's auth, alarm and quota texts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from real_client_harness import POLICY

from real.client import AsyncClient
from real.client import errors as E
from real.client.auth import Authenticator
from real.client.errors import classify, from_cancel_reason
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

Code = grpc.StatusCode
OLD = (Code.INVALID_ARGUMENT, "etcdserver: revision of auth store is old")
EMPTY = (Code.INVALID_ARGUMENT, "etcdserver: user name is empty")
Refusal = tuple[grpc.StatusCode, str] | None


class FakeAuth(rpc_pb2_grpc.AuthServicer):
    def __init__(self) -> None:
        self.enabled = True
        self.calls = 0

    async def Authenticate(self, request: Any, context: Any) -> Any:
        self.calls += 1
        await asyncio.sleep(0.05)  # long enough for concurrent callers to pile up
        if not self.enabled:
            await context.abort(Code.FAILED_PRECONDITION,
                                "etcdserver: authentication is not enabled")
        if request.password != "pw":
            await context.abort(Code.INVALID_ARGUMENT,
                                "etcdserver: authentication failed, invalid user ID or password")
        return rpc_pb2.AuthenticateResponse(token=f"t{self.calls}")


class FakeKV(rpc_pb2_grpc.KVServicer):
    """Put answers `refuse(token)` (None: success); records the tokens seen."""

    def __init__(self, refuse: Callable[[str | None], Refusal]) -> None:
        self.refuse = refuse
        self.tokens: list[str | None] = []

    async def Put(self, request: Any, context: Any) -> Any:
        token = dict(context.invocation_metadata() or ()).get("token")
        self.tokens.append(token)
        refusal = self.refuse(token)
        if refusal is not None:
            await context.abort(*refusal)
        return rpc_pb2.PutResponse(header=rpc_pb2.ResponseHeader(revision=len(self.tokens)))


async def serve(kv: FakeKV, auth: FakeAuth) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    rpc_pb2_grpc.add_KVServicer_to_server(kv, server)
    rpc_pb2_grpc.add_AuthServicer_to_server(auth, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def run(kv: FakeKV, auth: FakeAuth, body: Callable[[AsyncClient], Any],
        password: str = "pw") -> None:
    async def main() -> None:
        server, endpoint = await serve(kv, auth)
        try:
            async with AsyncClient([endpoint], POLICY, user="alice",
                                   password=password) as client:
                await body(client)
        finally:
            await server.stop(None)
    asyncio.run(main())


def test_concurrent_calls_share_one_lazy_authentication() -> None:
    kv, auth = FakeKV(lambda token: None if token else EMPTY), FakeAuth()

    async def body(client: AsyncClient) -> None:
        assert auth.calls == 0  # nothing before the first call
        await asyncio.gather(*(client.put(f"k{i}", "v") for i in range(10)))
    run(kv, auth, body)
    assert auth.calls == 1 and kv.tokens == ["t1"] * 10


def test_a_stale_token_is_refreshed_once_then_the_error_is_raised() -> None:
    fresh = {"t2"}
    kv, auth = FakeKV(lambda token: None if token in fresh else OLD), FakeAuth()

    async def body(client: AsyncClient) -> None:
        await client.put("k", "v")  # t1 refused, t2 accepted
        assert kv.tokens == ["t1", "t2"]
        fresh.clear()  # now every token is refused: one refresh, then the error
        with pytest.raises(E.AuthRevisionError):
            await client.put("k", "v")
    run(kv, auth, body)
    assert kv.tokens == ["t1", "t2", "t2", "t3"] and auth.calls == 3


def test_a_wrong_password_fails_before_the_call_is_sent() -> None:
    kv, auth = FakeKV(lambda token: None), FakeAuth()

    async def body(client: AsyncClient) -> None:
        with pytest.raises(E.AuthFailedError):
            await client.put("k", "v")
    run(kv, auth, body, password="wrong")
    assert kv.tokens == [] and auth.calls == 1  # not retried either


def test_without_auth_no_token_until_a_member_asks_for_one() -> None:
    auth = FakeAuth()
    auth.enabled = False
    kv = FakeKV(lambda token: EMPTY if auth.enabled and token is None else None)

    async def body(client: AsyncClient) -> None:
        await client.put("k", "v")  # "not enabled": the call goes without a token
        await client.put("k", "v")  # and the client does not ask again
        assert auth.calls == 1
        auth.enabled = True  # auth turned on: "user name is empty", authenticate, retry
        await client.put("k", "v")
    run(kv, auth, body)
    assert kv.tokens == [None, None, None, "t2"] and auth.calls == 2


def test_forget_keeps_a_token_another_caller_already_replaced() -> None:
    auth = Authenticator("alice", "pw")
    auth.token = "new"
    auth.forget("old")
    assert auth.token == "new"
    auth.forget("new")
    assert auth.token is None
    assert "pw" not in repr(auth)
    with pytest.raises(ValueError):
        Authenticator("", "pw")


@pytest.mark.parametrize(("code", "details", "kind"), [
    (Code.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password",
     E.AuthFailedError),
    (Code.PERMISSION_DENIED, "etcdserver: permission denied", E.PermissionDeniedError),
    (Code.UNAUTHENTICATED, "etcdserver: invalid auth token", E.InvalidTokenError),
    (*OLD, E.AuthRevisionError),
    (*EMPTY, E.UserEmptyError),
    (Code.FAILED_PRECONDITION, "etcdserver: user name already exists", E.UserExistsError),
    (Code.FAILED_PRECONDITION, "etcdserver: role name not found", E.RoleNotFoundError),
    (Code.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded", E.NoSpaceError),
    (Code.RESOURCE_EXHAUSTED, "etcdserver: namespace quota exceeded: keys under prefix "
     "b'/t/' would be 3 (limit 2)", E.NamespaceQuotaExceededError),
    (Code.RESOURCE_EXHAUSTED, "etcdserver: too many requests", E.TooManyRequestsError),
    (Code.FAILED_PRECONDITION, "etcdserver: bad leader transferee", E.BadLeaderTransfereeError),
])
def test_auth_alarm_and_quota_errors_map_by_text(code: grpc.StatusCode, details: str,
                                                 kind: type[E.ClientError]) -> None:
    error = classify(code, details, "h:1")
    assert type(error) is kind and error.code == code and error.endpoint == "h:1"
    # Only refused credentials are worth a fresh token; none is otherwise retried.
    assert error.reauthenticate == (kind in (E.AuthRevisionError, E.InvalidTokenError,
                                             E.UserEmptyError))
    assert not error.retry_write or kind is E.TooManyRequestsError


def test_watch_cancel_reasons_are_typed() -> None:
    assert type(from_cancel_reason("etcdserver: permission denied")) is E.PermissionDeniedError
    assert type(from_cancel_reason(OLD[1])) is E.AuthRevisionError
    other = from_cancel_reason("something else")
    assert type(other) is E.ServerError and other.code == Code.CANCELLED
