"""What the gRPC layer needs from a running node: the `NodeHandle` protocol.

Theory of operation
-------------------
The servicers (real/api/servicers/) translate etcd's protobuf requests into
the core's request dataclasses (real/api/convert.py), hand them to a
`NodeHandle`, and translate the core's answers back. They never touch a
`ChainfireNode` themselves: the runtime (real/runtime.py, `NodeRuntime`)
owns the node, its Ready loop and its clock, and implements this protocol.
Tests implement it with a node driven synchronously in-process.

Unary requests go through `request`: the handle submits the request to the
node and resolves when the node's `ClientResponse` for it comes out of a
Ready (after the Ready contract's persist -> send steps), returning the
core's response object or raising the core's `ChainfireError`. Cancelling
the awaiting task must not break the handle (the node still answers; the
handle drops that answer).

Watches are local to the member (as in etcd) and stream-shaped, so they get
their own hook, `watch_session`: one `WatchSession` per gRPC Watch stream.
A session owns the node-wide watcher ids it created; `responses()` waits
until at least one of its watchers has something (a `created` response,
events, a progress notification, a `canceled` response) and returns those
responses in the order the core queued them per watcher. Pulling is the
backpressure: a session that is not asked for responses leaves them queued
in the core's watchable store, whose bounded buffers make a slow watcher
fall behind and catch up from history later (nothing is lost or doubled).
`WatchHub` (real/api/watch_hub.py) implements sessions over a
`WatchableStore` driven on the same event loop; the runtime creates one hub
per node and calls `hub.notify()` after every `advance` and every `tick`
(new events and progress notifications), `hub.close()` when it stops.

The stream-local watch ids etcd clients see (0, 1, 2, ... per stream) are
the Watch servicer's business; sessions deal in the core's node-wide ids.
"""

from __future__ import annotations

from typing import Protocol

from chainfire_core.auth import AuthInfo
from chainfire_core.mvcc.watch_messages import WatchCreateRequest, WatchResponse
from chainfire_core.node_messages import ClientRequest, ReadConsistency, StatusResponse
from chainfire_core.types import WatchId


class WatchSession(Protocol):
    """The watchers of one client watch stream (see the module docstring)."""

    async def create(self, request: WatchCreateRequest) -> WatchId:
        """Start a watcher; its `created` response (and everything after it)
        comes out of `responses()`. Raises `ChainfireError` when refused
        (too many watchers, duplicate id); then nothing is queued."""
        ...

    async def cancel(self, watch_id: WatchId) -> None:
        """Stop a watcher of this session; its `canceled` response follows
        what it already has queued. Raises `WatchNotFound` for an id this
        session does not own or that is already canceled."""
        ...

    async def request_progress(self) -> None:
        """Ask for a progress notification on every live watcher of this
        session (served once each is synced with nothing queued)."""
        ...

    async def responses(self) -> tuple[WatchResponse, ...]:
        """Wait for and return at least one response for this session's
        watchers. Returns () once the session is closed (by `close`, or by
        the node stopping): the stream must end."""
        ...

    def close(self) -> None:
        """Cancel every watcher of the session and end it. Idempotent; never
        blocks (it is called from `finally` blocks of cancelled streams)."""
        ...


class NodeHandle(Protocol):
    """A running node as the gRPC API sees it."""

    @property
    def member_id(self) -> int:
        """This member's id (etcd's ResponseHeader.member_id)."""
        ...

    @property
    def cluster_id(self) -> int:
        """The cluster's id (etcd's ResponseHeader.cluster_id)."""
        ...

    def raft_term(self) -> int:
        """The current Raft term, for response headers. Must be cheap."""
        ...

    def revision(self) -> int:
        """The applied store revision, for headers of answers that do not
        come from the store (keepalive of an unknown lease, refused watch
        creates). Must be cheap."""
        ...

    async def request(self, request: ClientRequest, consistency: ReadConsistency,
                      auth: AuthInfo | None = None) -> object:
        """Submit one request to the node and return the core's response
        (`RangeResponse`, `PutResponse`, `LeaseGrantResponse`,
        `MemberResponse`, ...), or raise the core's `ChainfireError`.
        `auth`: the caller's credentials (None: trusted, see ChainfireNode.submit)."""
        ...

    def auth_enabled(self) -> bool:
        """Whether auth is on (cheap: asked for every call)."""
        ...

    async def auth_info(self, token: str) -> AuthInfo:
        """The credentials `token` stands for here; waits (bounded) until this
        member has applied the entry that assigned it, as etcd does. Raises
        InvalidAuthToken (unknown, expired) or AuthOldRevision."""
        ...

    def check_admin(self, auth: AuthInfo) -> None:
        """Raise PermissionDenied unless `auth` holds the root role."""
        ...

    def check_range(self, auth: AuthInfo, key: bytes, range_end: bytes) -> None:
        """Raise PermissionDenied unless `auth` may READ [key, range_end) (watch)."""
        ...

    def status(self) -> StatusResponse:
        """This member's status, at once (no Raft round)."""
        ...

    def watch_session(self) -> WatchSession:
        """A new, empty watch session for one client stream."""
        ...


__all__ = ["NodeHandle", "WatchSession"]
