"""EndpointPool: the client's channels, its current endpoint, and failover.

Theory of operation
-------------------
The pool holds one lazily opened `grpc.aio` channel per endpoint and a
*current* endpoint that every call starts on. `call(kind, invoke)` runs
`invoke(channel)` there; when it fails, the typed error
(real/client/errors.py) decides:

* a read (`CallKind.READ`: ranges, read-only txns, status, member list,
  lease time-to-live and list) is retried when the error says another
  attempt may succeed (`retry_read`);
* a write (`CallKind.WRITE`) only when the error *proves* nothing was
  applied (`retry_write`). A write is never sent on a channel that is not
  connected: the pool first waits (up to `connect_timeout_s`) for the
  channel to be READY, and an endpoint that does not connect is skipped
  with the certainty that nothing was sent.

A retried call moves the current endpoint to the next one (round robin), so
a dead or partitioned member is left behind for every later call too. After
each full round over the endpoints the pool sleeps (`backoff_s`, doubling up
to `backoff_max_s`); it gives up after `max_attempts` attempts or
`retry_timeout_s` and raises the last error. Each attempt has its own
deadline (`request_timeout_s`). A call pinned to one endpoint (`endpoint=`:
status, hashes, defragmentation of one member) is never moved elsewhere.

Channels are plain text or TLS (real/client/tls.py). With credentials
(real/client/auth.py) every channel carries the token interceptors, and the
pool authenticates once a channel is connected, before the call goes out:
a call that fails while connecting or authenticating was never sent, so it
is retried like an unsent write. A call refused for its credentials
(`reauthenticate` errors) is retried once, at once and on the same endpoint,
after the stale token is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import grpc

from real.client.auth import Authenticator, token_interceptors
from real.client.errors import (
    ClientClosedError,
    ClientError,
    EndpointUnreachableError,
    from_rpc_error,
)
from real.client.tls import ClientTLS, resolve_tls, split_endpoint

_T = TypeVar("_T")

# A reconnecting channel tries again soon: a restarted member is found quickly.
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 2**31 - 1),
)


class CallKind(Enum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    # Deadline of one attempt on one endpoint.
    request_timeout_s: float = 5.0
    # How long to wait for a channel to connect before skipping the endpoint.
    connect_timeout_s: float = 2.0
    # Attempts of one call across all endpoints (1: no retry).
    max_attempts: int = 20
    # Wall time after which a call stops retrying.
    retry_timeout_s: float = 15.0
    # Pause after each full round over the endpoints (doubles up to the max).
    backoff_s: float = 0.05
    backoff_max_s: float = 1.0

    def __post_init__(self) -> None:
        assert self.request_timeout_s > 0 and self.connect_timeout_s > 0
        assert self.max_attempts >= 1, self.max_attempts
        assert self.retry_timeout_s > 0
        assert 0 <= self.backoff_s <= self.backoff_max_s


def normalize_endpoint(endpoint: str) -> str:
    """`host:port` from `host:port`, `http://host:port` or `https://host:port`."""
    return split_endpoint(endpoint)[0]


class EndpointPool:
    def __init__(self, endpoints: Sequence[str], policy: RetryPolicy | None = None, *,
                 tls: ClientTLS | None = None, auth: Authenticator | None = None) -> None:
        if isinstance(endpoints, str):
            endpoints = [part for part in endpoints.split(",") if part.strip()]
        if not endpoints:
            raise ValueError("the client needs at least one endpoint")
        self.endpoints = tuple(normalize_endpoint(endpoint) for endpoint in endpoints)
        self.policy = policy or RetryPolicy()
        self.tls = resolve_tls(tuple(endpoints), tls)
        self._credentials = self.tls.credentials() if self.tls is not None else None
        self.auth = auth
        self._index = 0
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._closed = False
        # Attempts made per endpoint (tests and diagnostics).
        self.attempts: dict[str, int] = dict.fromkeys(self.endpoints, 0)

    @property
    def current(self) -> str:
        return self.endpoints[self._index]

    def channel(self, endpoint: str) -> grpc.aio.Channel:
        if self._closed:
            raise ClientClosedError("the client is closed")
        channel = self._channels.get(endpoint)
        if channel is None:
            channel = self._open(endpoint)
            self._channels[endpoint] = channel
        return channel

    def _open(self, endpoint: str) -> grpc.aio.Channel:
        interceptors = token_interceptors(self.auth) if self.auth is not None else None
        if self._credentials is None:
            return grpc.aio.insecure_channel(endpoint, options=_CHANNEL_OPTIONS,
                                             interceptors=interceptors)
        assert self.tls is not None
        return grpc.aio.secure_channel(endpoint, self._credentials,
                                       options=_CHANNEL_OPTIONS + self.tls.channel_options(),
                                       interceptors=interceptors)

    @property
    def token(self) -> str | None:
        """The token calls carry now (None: none, or no credentials)."""
        return self.auth.token if self.auth is not None else None

    def forget_token(self, error: ClientError, used: str | None) -> bool:
        """Whether `error` refused the credentials of a client that can
        authenticate again; then the token `used` is dropped (next `connected`
        authenticates)."""
        if not error.reauthenticate or self.auth is None:
            return False
        self.auth.forget(used)
        return True

    def failover(self, failed: str) -> None:
        """Move on from `failed` (if it is still the current endpoint)."""
        if self.current == failed:
            self._index = (self._index + 1) % len(self.endpoints)

    def use(self, endpoint: str) -> None:
        self._index = self.endpoints.index(normalize_endpoint(endpoint))

    async def connected(self, endpoint: str) -> grpc.aio.Channel:
        """The endpoint's channel once READY (and authenticated, with
        credentials); EndpointUnreachableError if it does not connect within
        the policy's connect timeout, the typed error of a failed Authenticate."""
        channel = self.channel(endpoint)
        if channel.get_state(try_to_connect=True) != grpc.ChannelConnectivity.READY:
            try:
                await asyncio.wait_for(channel.channel_ready(), self.policy.connect_timeout_s)
            except TimeoutError:
                raise EndpointUnreachableError(
                    f"no connection within {self.policy.connect_timeout_s} s",
                    code=grpc.StatusCode.UNAVAILABLE, endpoint=endpoint) from None
        if self.auth is not None:
            await self.auth.ensure(channel, endpoint, self.policy.request_timeout_s)
        return channel

    async def call(self, kind: CallKind,
                   invoke: Callable[[grpc.aio.Channel, float], Awaitable[_T]], *,
                   endpoint: str | None = None) -> _T:
        """`invoke(channel, timeout_s)` on the current endpoint (or only on
        `endpoint`), failing over as the module docstring says."""
        pinned = normalize_endpoint(endpoint) if endpoint is not None else None
        retry = Retry(self, kind, pinned=pinned is not None)
        while True:
            target = pinned or self.current
            self.attempts[target] = self.attempts.get(target, 0) + 1
            sent, token = False, None
            try:
                channel = await self.connected(target)
                sent, token = True, self.token
                return await invoke(channel, self.policy.request_timeout_s)
            except grpc.RpcError as rpc_error:
                error = from_rpc_error(rpc_error, target)
            except ClientError as failure:
                error = failure
            await retry.after(error, target, sent=sent, token=token)

    async def close(self) -> None:
        self._closed = True
        channels, self._channels = self._channels, {}
        for endpoint in sorted(channels):
            await channels[endpoint].close()


class Retry:
    """The retry budget of one call (or one reconnecting stream)."""

    def __init__(self, pool: EndpointPool, kind: CallKind, *, pinned: bool = False) -> None:
        self.pool = pool
        self.kind = kind
        self.pinned = pinned
        self.reauthenticated = False
        self.attempts = 0
        self.backoff_s = pool.policy.backoff_s
        self.deadline = asyncio.get_running_loop().time() + pool.policy.retry_timeout_s

    def allowed(self, error: ClientError, *, sent: bool = True) -> bool:
        """Whether another attempt is safe (a call never `sent` is a read)."""
        if self.kind is CallKind.READ or not sent:
            return error.retry_read
        return error.retry_write

    async def after(self, error: ClientError, endpoint: str, *, sent: bool = True,
                    token: str | None = None) -> None:
        """Fail over and wait before the next attempt; raise `error` when it
        may not be retried or the budget is spent. `sent`: the request left;
        `token`: the one it carried (see the module docstring)."""
        if not self.reauthenticated and self.pool.forget_token(error, token):
            self.reauthenticated = True
            return  # at once, on the same endpoint, with a fresh token
        policy = self.pool.policy
        self.attempts += 1
        loop = asyncio.get_running_loop()
        if (self.pinned or not self.allowed(error, sent=sent)
                or self.attempts >= policy.max_attempts or loop.time() >= self.deadline):
            raise error
        self.pool.failover(endpoint)
        if self.attempts % len(self.pool.endpoints) == 0:
            await asyncio.sleep(self.backoff_s)
            self.backoff_s = min(self.backoff_s * 2, policy.backoff_max_s)

    def reset(self) -> None:
        """Progress was made: a fresh budget for the next failure."""
        self.attempts = 0
        self.backoff_s = self.pool.policy.backoff_s
        self.deadline = asyncio.get_running_loop().time() + self.pool.policy.retry_timeout_s


__all__ = ["CallKind", "EndpointPool", "Retry", "RetryPolicy", "normalize_endpoint"]
