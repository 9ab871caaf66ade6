"""etcd protobuf <-> core watch messages, and etcd's response fragmenting.

Theory of operation
-------------------
`watch_create_from_pb` builds the core's `WatchCreateRequest` from etcd's;
the stream-local `watch_id` and the `fragment` flag stay with the Watch
servicer (watch ids are per stream in etcd, node-wide in the core), so the
core request always asks for an allocated id. `watch_response_to_pb` writes
a core response under the stream-local id the servicer chose.

etcd's range_end spelling for watches is the same as for ranges: empty is
one key, "\\0" every key from `key` on.

`fragment` splits one response whose encoding exceeds `max_bytes` into
several, each with at least one event and all but the last marked
`fragment=True` (etcd's rule: a response with a single event, or one
already small enough, is sent whole). A client that asked for fragments
joins them back; one that did not gets the whole response, as from etcd.
"""

from __future__ import annotations

from typing import cast

from chainfire_core.mvcc.messages import ResponseHeader
from chainfire_core.mvcc.watch_messages import WatchCreateRequest, WatchFilter, WatchResponse
from chainfire_core.types import Revision, WatchId
from real.api.convert import (
    HeaderFields,
    event_from_pb,
    event_to_pb,
    header_to_pb,
    parse_enum,
)
from real.etcdpb import rpc_pb2


def watch_create_from_pb(pb: rpc_pb2.WatchCreateRequest) -> WatchCreateRequest:
    return WatchCreateRequest(
        key=pb.key, range_end=pb.range_end, start_revision=max(pb.start_revision, 0),
        progress_notify=pb.progress_notify, prev_kv=pb.prev_kv,
        filters=tuple(parse_enum(WatchFilter, f, "watch filter") for f in pb.filters),
    )


def watch_create_to_pb(request: WatchCreateRequest, *, watch_id: int = 0,
                       fragment: bool = False) -> rpc_pb2.WatchCreateRequest:
    filters = [cast(rpc_pb2.WatchCreateRequest.FilterType, int(f)) for f in request.filters]
    return rpc_pb2.WatchCreateRequest(
        key=request.key, range_end=request.range_end, start_revision=request.start_revision,
        progress_notify=request.progress_notify, filters=filters, prev_kv=request.prev_kv,
        watch_id=watch_id, fragment=fragment)


def watch_response_to_pb(response: WatchResponse, watch_id: int,
                         fields: HeaderFields) -> rpc_pb2.WatchResponse:
    header = header_to_pb(ResponseHeader(revision=response.revision), fields)
    return rpc_pb2.WatchResponse(
        header=header, watch_id=watch_id, created=response.created,
        canceled=response.canceled, compact_revision=response.compact_revision,
        cancel_reason=response.cancel_reason,
        events=[event_to_pb(event) for event in response.events])


def watch_response_from_pb(pb: rpc_pb2.WatchResponse) -> WatchResponse:
    """The core response (with the stream's watch id); fragments must be joined first."""
    return WatchResponse(
        watch_id=WatchId(pb.watch_id), revision=Revision(pb.header.revision),
        events=tuple(event_from_pb(e) for e in pb.events), created=pb.created,
        canceled=pb.canceled, compact_revision=Revision(pb.compact_revision),
        cancel_reason=pb.cancel_reason)


def fragment(response: rpc_pb2.WatchResponse, max_bytes: int) -> list[rpc_pb2.WatchResponse]:
    """`response` split into pieces of under `max_bytes` each (see the module
    docstring); the pieces' events, concatenated, are the original's."""
    assert max_bytes > 0, max_bytes
    if len(response.events) < 2 or response.ByteSize() < max_bytes:
        return [response]
    pieces: list[rpc_pb2.WatchResponse] = []
    current = _empty_like(response)
    for event in response.events:
        current.events.append(event)
        if len(current.events) > 1 and current.ByteSize() >= max_bytes:
            del current.events[-1]
            pieces.append(current)
            current = _empty_like(response)
            current.events.append(event)
    pieces.append(current)
    for piece in pieces[:-1]:
        piece.fragment = True
    assert sum(len(p.events) for p in pieces) == len(response.events)
    return pieces


def _empty_like(response: rpc_pb2.WatchResponse) -> rpc_pb2.WatchResponse:
    piece = rpc_pb2.WatchResponse()
    piece.CopyFrom(response)
    del piece.events[:]
    return piece


def join_fragments(pieces: list[rpc_pb2.WatchResponse]) -> rpc_pb2.WatchResponse:
    """The client side of `fragment`: one response from its pieces."""
    assert pieces and all(p.fragment for p in pieces[:-1]) and not pieces[-1].fragment
    whole = rpc_pb2.WatchResponse()
    whole.CopyFrom(pieces[-1])
    del whole.events[:]
    for piece in pieces:
        whole.events.extend(piece.events)
    return whole


__all__ = [
    "fragment",
    "join_fragments",
    "watch_create_from_pb",
    "watch_create_to_pb",
    "watch_response_from_pb",
    "watch_response_to_pb",
]
