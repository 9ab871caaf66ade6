"""Forwarding lease keepalives and time-to-live queries from a follower to
the leader, as etcd does.

Theory of operation
-------------------
Only the leader's lessor keeps time, so the core answers a keepalive or a
TTL query on a follower with `NotLeader(leader_hint)`. etcd's server does
not pass that on to the client (etcdctl does not retry it): it finds the
leader in its member table and asks it, and so do we. `Forwarder.call`
runs one request:

1. try it locally (`local()`, the handle): a leader answers, and so does a
   member that has just become leader;
2. on `NotLeader` with no leader known (an election), wait `leader_poll_s`
   and go to 1; etcd's `waitLeader` does the same;
3. with a leader known, look up its advertised client URLs in the member
   table (members publish them when they start: MemberPublish) and send
   the gRPC request there (`remote(channel, timeout_s)`) over a cached
   `grpc.aio` channel; the leader's answer is the answer;
4. a failure that a retry may cure (the leader unreachable, stopped, no
   longer leader, a deadline) forgets the leader's URLs, pauses
   `retry_pause_s` (etcd's throttle) and goes to 1; any other status from
   the leader is the client's answer (`RemoteStatus`, passed on verbatim).

Everything runs within one deadline: `request_timeout_s` (etcd's request
timeout: 5 s + 2 election timeouts), or the client's own deadline when
that is sooner. At the deadline the request fails as etcd's does: "no
leader" (`NotLeader(0)`, UNAVAILABLE) when the last attempt found no leader
or no URL for it, else "request timed out" (`RequestTimeout`).

Loops: a forwarded request carries the metadata `chainfire-forwarded`; a
member that receives one and is not the leader refuses it ("not leader")
instead of forwarding it on, so two members that each believe the other
leads never pass a request back and forth; the sender retries (step 4)
until the members agree.

Keepalive streams: etcd's clients renew a lease over one long stream. Each
client stream on a follower gets one `KeepAliveForward`, which holds one
forwarded stream to the current leader and sends every keepalive over it,
one request then one response, in order. When the leader changes (or the
stream breaks) the old stream is cancelled and a new one is opened to the
new leader on the next keepalive; the client's stream never notices.

Channels: one per leader address, at most `max_channels` (least recently
used closed first); an https client URL is dialled over TLS when the
forwarder has channel credentials and skipped otherwise. `close()` (the
API server's stop) closes them all, and a closed forwarder refuses to
forward ("server stopped").
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from chainfire_core.errors import NotLeader, RequestTimeout
from chainfire_core.node_messages import MemberListRequest, MemberResponse, ReadConsistency
from chainfire_core.types import NodeId
from real.api.errors import STOPPED
from real.api.handle import NodeHandle
from real.config import parse_url
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

# The metadata key of a forwarded request (lower case: gRPC metadata keys are).
FORWARDED_KEY = "chainfire-forwarded"
FORWARDED_METADATA = ((FORWARDED_KEY, "1"),)

_T = TypeVar("_T")
Remote = Callable[[grpc.aio.Channel, float], Awaitable[_T]]

# Statuses from the leader (or from the channel to it) that a retry may cure.
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.CANCELLED})
_NOT_LEADER_TEXT = "etcdserver: not leader"


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardConfig:
    # The whole request, all attempts (etcd: 5 s + 2 election timeouts).
    request_timeout_s: float = 7.0
    # How often to look again while there is no leader.
    leader_poll_s: float = 0.1
    # Pause after a failed attempt (etcd's 50 ms throttle).
    retry_pause_s: float = 0.05
    # Channels kept open to leader addresses (a leader per address).
    max_channels: int = 8
    # Grace given to calls in flight on a channel being closed.
    close_grace_s: float = 0.5

    def __post_init__(self) -> None:
        assert self.request_timeout_s > 0, self.request_timeout_s
        assert self.leader_poll_s > 0, self.leader_poll_s
        assert self.retry_pause_s >= 0, self.retry_pause_s
        assert self.max_channels >= 1, self.max_channels
        assert self.close_grace_s >= 0, self.close_grace_s

    @classmethod
    def for_timing(cls, *, heartbeat_interval_ms: int, election_timeout_ms: int) -> ForwardConfig:
        """etcd's request timeout for these timings; a leader poll per heartbeat."""
        return cls(request_timeout_s=5.0 + 2 * election_timeout_ms / 1000,
                   leader_poll_s=heartbeat_interval_ms / 1000)


class RemoteStatus(Exception):
    """A status the leader answered a forwarded request with, for the client."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class ForwarderClosed(Exception):
    """The forwarder was closed (the server is stopping): etcd's "server stopped"."""

    code, details = STOPPED


class _AttemptFailed(Exception):
    """One forwarded attempt failed with `code` (retried or passed on)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    @property
    def retryable(self) -> bool:
        return self.code in _RETRYABLE or (
            self.code == grpc.StatusCode.FAILED_PRECONDITION and self.details == _NOT_LEADER_TEXT)


def is_forwarded(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    """Whether the RPC of `context` was forwarded by another member."""
    metadata = context.invocation_metadata() or ()
    return any(key == FORWARDED_KEY for key, _ in metadata)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to dial a leader: grpc's `host:port`, and whether over TLS."""

    address: str
    tls: bool = False


def client_target(url: str) -> Target | None:
    """The grpc target of an advertised client URL (None: not a URL we know)."""
    try:
        parsed = parse_url(url)
    except ValueError:
        return None
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return Target(f"{host}:{parsed.port}", tls=parsed.url.startswith("https://"))


class Forwarder:
    """Forwards requests a follower cannot answer to the leader (module docstring)."""

    def __init__(self, handle: NodeHandle, config: ForwardConfig | None = None, *,
                 credentials: grpc.ChannelCredentials | None = None) -> None:
        self.handle = handle
        self.config = config or ForwardConfig()
        # For https client URLs; without them only http URLs are dialled.
        self._credentials = credentials
        self._channels: OrderedDict[Target, grpc.aio.Channel] = OrderedDict()
        self._targets: dict[NodeId, tuple[Target, ...]] = {}
        self._closed = False
        self.forwarded = 0  # attempts sent to a leader (tests, metrics)
        self.streams_opened = 0  # keepalive streams opened to a leader

    async def call(self, local: Callable[[], Awaitable[_T]], remote: Remote[_T], *,
                   client_timeout_s: float | None = None) -> _T:
        """`local()`, or `remote` at the leader when this member is not it.
        Raises the local `ChainfireError`, `RemoteStatus`, `NotLeader(0)`
        ("no leader"), `RequestTimeout` or `ForwarderClosed`."""
        loop = asyncio.get_running_loop()
        timeout_s = self.config.request_timeout_s
        if client_timeout_s is not None:
            timeout_s = min(timeout_s, max(client_timeout_s, 0.0))
        deadline = loop.time() + timeout_s
        leaderless = True
        while True:
            try:
                return await local()
            except NotLeader as refused:
                leader = NodeId(refused.leader_hint)
            if self._closed:
                raise ForwarderClosed()
            targets = await self._leader_targets(leader) if leader else ()
            leaderless = not targets
            for target in targets:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    return await self._attempt(target, remote, remaining)
                except _AttemptFailed as failed:
                    if not failed.retryable:
                        raise RemoteStatus(failed.code, failed.details) from None
            if targets:
                self._targets.pop(leader, None)  # look its URLs up again
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NotLeader(0) if leaderless else RequestTimeout()
            pause = self.config.leader_poll_s if leaderless else self.config.retry_pause_s
            await asyncio.sleep(min(pause, remaining))

    async def _attempt(self, target: Target, remote: Remote[_T], timeout_s: float) -> _T:
        channel = await self._channel(target)
        self.forwarded += 1
        try:
            return await remote(channel, timeout_s)
        except grpc.aio.AioRpcError as error:
            raise _AttemptFailed(error.code(), error.details() or "") from None
        except TimeoutError:
            raise _AttemptFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "forwarding") from None

    async def _leader_targets(self, leader: NodeId) -> tuple[Target, ...]:
        """The leader's client addresses, from this member's table (cached)."""
        known = self._targets.get(leader)
        if known is not None:
            return known
        response = await self.handle.request(MemberListRequest(), ReadConsistency.SERIALIZABLE)
        assert isinstance(response, MemberResponse), response
        member = next((m for m in response.members if m.id == leader), None)
        urls = member.client_urls if member is not None else ()
        dialable = self._credentials is not None
        targets = tuple(target for target in map(client_target, urls)
                        if target is not None and (dialable or not target.tls))
        if targets:
            self._targets[leader] = targets
        return targets

    async def _channel(self, target: Target) -> grpc.aio.Channel:
        if self._closed:
            raise ForwarderClosed()
        channel = self._channels.get(target)
        if channel is not None:
            self._channels.move_to_end(target)
            return channel
        while len(self._channels) >= self.config.max_channels:
            _, oldest = self._channels.popitem(last=False)
            await oldest.close(self.config.close_grace_s)
        if target.tls:
            assert self._credentials is not None, target
            channel = grpc.aio.secure_channel(target.address, self._credentials)
        else:
            channel = grpc.aio.insecure_channel(target.address)
        self._channels[target] = channel
        return channel

    def keepalive_stream(self) -> KeepAliveForward:
        """The forwarding state of one client keepalive stream."""
        return KeepAliveForward(self)

    async def close(self) -> None:
        """Close every channel; later requests are refused. Idempotent."""
        self._closed = True
        channels, self._channels = list(self._channels.values()), OrderedDict()
        for channel in channels:
            await channel.close(self.config.close_grace_s)


class KeepAliveForward:
    """One client keepalive stream's forwarded stream to the leader."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self._channel: grpc.aio.Channel | None = None
        self._call: Any = None  # grpc.aio.StreamStreamCall (untyped in grpc's stubs)

    async def renew(self, lease_id: int, *, client_timeout_s: float | None,
                    local: Callable[[], Awaitable[_T]],
                    wrap: Callable[[rpc_pb2.LeaseKeepAliveResponse], _T]) -> _T:
        """`local()`, or the leader's keepalive answer for `lease_id`, wrapped."""
        async def remote(channel: grpc.aio.Channel, timeout_s: float) -> _T:
            return wrap(await self._exchange(channel, lease_id, timeout_s))
        return await self.forwarder.call(local, remote, client_timeout_s=client_timeout_s)

    async def _exchange(self, channel: grpc.aio.Channel, lease_id: int,
                        timeout_s: float) -> rpc_pb2.LeaseKeepAliveResponse:
        if self._call is None or self._channel is not channel:
            self.close()
            stub = rpc_pb2_grpc.LeaseStub(channel)
            self._call = stub.LeaseKeepAlive(metadata=FORWARDED_METADATA)
            self._channel = channel
            self.forwarder.streams_opened += 1
        call = self._call
        try:
            await asyncio.wait_for(call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)),
                                   timeout_s)
            response = await asyncio.wait_for(call.read(), timeout_s)
        except BaseException:
            self.close()  # its state is unknown: the next keepalive opens another
            raise
        if response is grpc.aio.EOF:  # the leader ended the stream
            code, details = await call.code(), await call.details()
            self.close()
            if code == grpc.StatusCode.OK:  # ended without a word (stopping): retry
                code = grpc.StatusCode.UNAVAILABLE
            raise _AttemptFailed(code, details or "keepalive stream ended")
        assert isinstance(response, rpc_pb2.LeaseKeepAliveResponse), response
        return response

    def close(self) -> None:
        """Cancel the forwarded stream, if any (never blocks)."""
        call, self._call, self._channel = self._call, None, None
        if call is not None:
            call.cancel()


__all__ = ["FORWARDED_KEY", "ForwardConfig", "Forwarder", "ForwarderClosed", "KeepAliveForward",
           "RemoteStatus", "Target", "client_target", "is_forwarded"]
