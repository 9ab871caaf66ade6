"""Authenticator: the client's user, its current token, and the gRPC
interceptors that send the token with every call.

Theory of operation
-------------------
A client made with `user=` and `password=` authenticates lazily: the pool
(real/client/pool.py) asks `ensure()` once a channel is connected and before
a call goes out, and the first such call runs Auth.Authenticate on that
channel. The token it answers is valid on every member (Chainfire assigns it
through the log, as etcd's simple tokens are per cluster), so it is kept for
the whole client; the interceptors on the pool's channels add it to every
call as the metadata key `token` (etcd's), except to Authenticate itself.
Concurrent callers wait for one Authenticate (a lock), never send their own.

A member refuses a token that is unknown or expired (`InvalidTokenError`),
that predates an auth change (`AuthRevisionError`), or a call without one
once auth is enabled (`UserEmptyError`). The pool then calls `forget(token)`
with the token the failed call carried, so a token that another caller
already replaced is kept, and retries the call once: the next `ensure()`
authenticates again. A cluster without auth answers Authenticate with
"authentication is not enabled" (`AuthNotEnabledError`); as etcd's client
does, the client then goes on without a token until a member asks for one
(`UserEmptyError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any

import grpc

from real.client.errors import AuthNotEnabledError, from_rpc_error
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

TOKEN_KEY = "token"
_AUTHENTICATE = "/etcdserverpb.Auth/Authenticate"


class Authenticator:
    """One user's credentials and its current token (see the module docstring)."""

    def __init__(self, user: str, password: str) -> None:
        if not user:
            raise ValueError("user must not be empty")
        self.user = user
        self._password = password
        self.token: str | None = None
        # The cluster said auth is not enabled: calls go without a token.
        self.disabled = False
        # Authenticate calls answered with a token (tests and diagnostics).
        self.authentications = 0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never the password
        return f"Authenticator(user={self.user!r}, token={'set' if self.token else 'none'})"

    async def ensure(self, channel: grpc.aio.Channel, endpoint: str, timeout_s: float) -> None:
        """Authenticate on `channel` unless a token (or the knowledge that auth
        is off) is at hand; raises the typed error of a failed Authenticate."""
        if self._settled():
            return
        async with self._lock:
            if self._settled():  # another caller authenticated meanwhile
                return
            request = rpc_pb2.AuthenticateRequest(name=self.user, password=self._password)
            try:
                response = await rpc_pb2_grpc.AuthStub(channel).Authenticate(
                    request, timeout=timeout_s)
            except grpc.RpcError as rpc_error:
                error = from_rpc_error(rpc_error, endpoint)
                if isinstance(error, AuthNotEnabledError):
                    self.disabled = True
                    return
                raise error from None
            assert response.token, "Authenticate answered an empty token"
            self.token = response.token
            self.authentications += 1

    def _settled(self) -> bool:
        return self.token is not None or self.disabled

    def forget(self, used: str | None) -> None:
        """A call carrying `used` (None: no token) was refused for its
        credentials: drop the token unless it was replaced meanwhile."""
        if self.token == used:
            self.token = None
            self.disabled = False

    def details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        """`details` with the token added to its metadata."""
        token = self.token
        method: object = details.method  # bytes at run time (str in the stubs)
        name = method.decode() if isinstance(method, bytes) else method
        if token is None or name == _AUTHENTICATE:
            return details
        metadata = grpc.aio.Metadata(*(details.metadata or ()), (TOKEN_KEY, token))
        return grpc.aio.ClientCallDetails(method=details.method, timeout=details.timeout,
                                          metadata=metadata, credentials=details.credentials,
                                          wait_for_ready=details.wait_for_ready)


# grpc.aio files an interceptor under the first of the four kinds it is, so
# each kind has its own class; all of them only add the token.
_Continuation = Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]]
_Requests = AsyncIterable[Any] | Iterable[Any]


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    async def intercept_unary_unary(self, continuation: _Continuation,
                                    client_call_details: grpc.aio.ClientCallDetails,
                                    request: Any) -> Any:
        return await continuation(self.auth.details(client_call_details), request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    async def intercept_unary_stream(self, continuation: _Continuation,
                                     client_call_details: grpc.aio.ClientCallDetails,
                                     request: Any) -> Any:
        return await continuation(self.auth.details(client_call_details), request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    async def intercept_stream_unary(self, continuation: _Continuation,
                                     client_call_details: grpc.aio.ClientCallDetails,
                                     request_iterator: _Requests) -> Any:
        return await continuation(self.auth.details(client_call_details), request_iterator)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    async def intercept_stream_stream(self, continuation: _Continuation,
                                      client_call_details: grpc.aio.ClientCallDetails,
                                      request_iterator: _Requests) -> Any:
        return await continuation(self.auth.details(client_call_details), request_iterator)


def token_interceptors(auth: Authenticator) -> list[grpc.aio.ClientInterceptor]:
    """The interceptors that send `auth`'s token, one per kind of call."""
    return [_UnaryUnary(auth), _UnaryStream(auth), _StreamUnary(auth), _StreamStream(auth)]


__all__ = ["TOKEN_KEY", "Authenticator", "token_interceptors"]
