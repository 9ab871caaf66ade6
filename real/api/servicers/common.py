"""What every servicer shares: the handle, response header fields, and turning
core errors into etcd's gRPC statuses.

Theory of operation
-------------------
A servicer method decodes the protobuf request (`decode`), asks the handle
(`ask`), checks the answer's type and encodes it. A `ChainfireError` from
either step ends the RPC with etcd's status (real/api/errors.py); anything
else is a bug and reaches gRPC as UNKNOWN, logged by grpc, while the server
keeps serving other RPCs. A response of the wrong type from the handle is
a broken invariant: an assertion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from chainfire_core.auth import ANONYMOUS, AuthenticateRequest, AuthInfo
from chainfire_core.errors import AuthError, ChainfireError, RequestTooLarge
from chainfire_core.node_messages import ClientRequest, ReadConsistency
from real.api.convert import HeaderFields
from real.api.errors import abort
from real.api.handle import NodeHandle

logger = logging.getLogger("chainfire.api")
Context = grpc.aio.ServicerContext[Any, Any]
_P = TypeVar("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")


class HandleServicer:
    """Base of the servicers: holds the `NodeHandle`."""

    def __init__(self, handle: NodeHandle) -> None:
        self.handle = handle
        # The last header fields made: one object per term, not per response.
        self._fields = HeaderFields(cluster_id=-1)

    def fields(self) -> HeaderFields:
        handle = self.handle
        fields, term = self._fields, handle.raft_term()
        if (fields.raft_term != term or fields.member_id != handle.member_id
                or fields.cluster_id != handle.cluster_id):
            fields = self._fields = HeaderFields(cluster_id=handle.cluster_id,
                                                 member_id=handle.member_id, raft_term=term)
        return fields

    async def credentials(self, context: Context) -> AuthInfo | None:
        """Who calls: None while auth is disabled (nothing to check; a request
        that applies after auth was enabled is checked as anonymous), else
        the user of the `token` metadata etcd clients send, or ANONYMOUS
        without one. An unknown, expired or stale token ends the RPC."""
        if not self.handle.auth_enabled():
            return None
        token = next((value for key, value in context.invocation_metadata() or ()
                      if key == "token"), None)
        if token is None:
            return ANONYMOUS
        try:
            return await self.handle.auth_info(str(token))
        except ChainfireError as error:
            logger.warning("refused a call with token %s...: %s", str(token)[:4], error)
            await abort(context, error)

    async def ask(self, context: Context, request: ClientRequest, kind: type[_T],
                  consistency: ReadConsistency = ReadConsistency.LINEARIZABLE, *,
                  anonymous: bool = False) -> _T:
        """The handle's answer to `request`, which must be a `kind`, asked
        with the caller's credentials (`anonymous`: without any, for
        Authenticate). Auth refusals and oversized requests are logged with
        the request and the user."""
        auth = None if anonymous else await self.credentials(context)
        try:
            response = await self.handle.request(request, consistency, auth)
        except ChainfireError as error:
            if isinstance(error, AuthError | RequestTooLarge):
                logger.warning("refused %s for user %r: %s", type(request).__name__,
                               _user_of(request, auth), error)
            await abort(context, error)
        assert isinstance(response, kind), (type(response), kind)
        return response

    async def require_admin(self, context: Context) -> None:
        """End the RPC unless the caller holds the root role (auth enabled)."""
        auth = await self.credentials(context)
        if auth is None:
            return
        try:
            self.handle.check_admin(auth)
        except ChainfireError as error:
            logger.warning("refused an admin call for user %r: %s", auth.user, error)
            await abort(context, error)


def _user_of(request: ClientRequest, auth: AuthInfo | None) -> str:
    if isinstance(request, AuthenticateRequest):
        return request.name
    return auth.user if auth is not None else ""


async def decode(context: Context, convert: Callable[[_P], _R], pb: _P) -> _R:
    """`convert(pb)`, or the RPC ends with the error's status (INVALID_ARGUMENT
    for a malformed request)."""
    try:
        return convert(pb)
    except ChainfireError as error:
        await abort(context, error)


__all__ = ["Context", "HandleServicer", "decode"]
