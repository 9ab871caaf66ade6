"""etcd protobuf <-> core messages for leases, cluster membership and status.

Theory of operation
-------------------
Same shape as convert.py: `*_from_pb` decodes (the core's constructors
validate), `*_to_pb` encodes, both directions for requests and responses.
etcd names lease fields `ID`/`TTL` and member fields in camelCase
(`peerURLs`, `isLearner`); the core spells them in snake_case with units
(`ttl_s`). Core `MemberResponse` answers add, remove, promote and list
alike; each etcd response type takes the parts it has.

etcd's lenient readings are kept: a lease TTL <= 0 asks for the minimum TTL
(the core refuses TTL <= 0, so it is sent on as 1 and the core raises it to
its configured minimum). The status' `dbSize` is not known to the core and
is passed in by the servicer.
"""

from __future__ import annotations

from collections.abc import Iterable

from chainfire_core.errors import InvalidRequest
from chainfire_core.lease.messages import (
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
)
from chainfire_core.node_messages import (
    Member,
    MemberAddRequest,
    MemberPromoteRequest,
    MemberRemoveRequest,
    MemberResponse,
    MemberUpdateRequest,
    StatusResponse,
)
from chainfire_core.types import Index, LeaseId, NodeId, Term
from real.api.convert import HeaderFields, header_from_pb, header_to_pb
from real.config import parse_url
from real.etcdpb import rpc_pb2

# -- lease ---------------------------------------------------------------------------


def lease_grant_from_pb(pb: rpc_pb2.LeaseGrantRequest) -> LeaseGrantRequest:
    """A TTL below one second (0 or negative) asks for the shortest lease, as
    in etcd, which raises any TTL below its minimum to the minimum: it is
    sent on as 1 and the core raises it to its configured `min_lease_ttl_s`."""
    return LeaseGrantRequest(ttl_s=max(pb.TTL, 1), id=LeaseId(pb.ID))


def lease_grant_to_pb(request: LeaseGrantRequest) -> rpc_pb2.LeaseGrantRequest:
    return rpc_pb2.LeaseGrantRequest(TTL=request.ttl_s, ID=request.id)


def lease_grant_response_to_pb(response: LeaseGrantResponse,
                               fields: HeaderFields) -> rpc_pb2.LeaseGrantResponse:
    return rpc_pb2.LeaseGrantResponse(header=header_to_pb(response.header, fields),
                                      ID=response.id, TTL=response.ttl_s)


def lease_grant_response_from_pb(pb: rpc_pb2.LeaseGrantResponse) -> LeaseGrantResponse:
    return LeaseGrantResponse(header=header_from_pb(pb.header), id=LeaseId(pb.ID),
                              ttl_s=pb.TTL)


def lease_revoke_from_pb(pb: rpc_pb2.LeaseRevokeRequest) -> LeaseRevokeRequest:
    return LeaseRevokeRequest(id=LeaseId(pb.ID))


def lease_revoke_to_pb(request: LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeRequest:
    return rpc_pb2.LeaseRevokeRequest(ID=request.id)


def lease_revoke_response_to_pb(response: LeaseRevokeResponse,
                                fields: HeaderFields) -> rpc_pb2.LeaseRevokeResponse:
    return rpc_pb2.LeaseRevokeResponse(header=header_to_pb(response.header, fields))


def lease_revoke_response_from_pb(pb: rpc_pb2.LeaseRevokeResponse) -> LeaseRevokeResponse:
    return LeaseRevokeResponse(header=header_from_pb(pb.header))


def keepalive_from_pb(pb: rpc_pb2.LeaseKeepAliveRequest) -> LeaseKeepAliveRequest:
    return LeaseKeepAliveRequest(id=LeaseId(pb.ID))


def keepalive_to_pb(request: LeaseKeepAliveRequest) -> rpc_pb2.LeaseKeepAliveRequest:
    return rpc_pb2.LeaseKeepAliveRequest(ID=request.id)


def keepalive_response_to_pb(response: LeaseKeepAliveResponse,
                             fields: HeaderFields) -> rpc_pb2.LeaseKeepAliveResponse:
    return rpc_pb2.LeaseKeepAliveResponse(header=header_to_pb(response.header, fields),
                                          ID=response.id, TTL=response.ttl_s)


def keepalive_response_from_pb(pb: rpc_pb2.LeaseKeepAliveResponse) -> LeaseKeepAliveResponse:
    return LeaseKeepAliveResponse(header=header_from_pb(pb.header), id=LeaseId(pb.ID),
                                  ttl_s=pb.TTL)


def ttl_from_pb(pb: rpc_pb2.LeaseTimeToLiveRequest) -> LeaseTimeToLiveRequest:
    return LeaseTimeToLiveRequest(id=LeaseId(pb.ID), keys=pb.keys)


def ttl_to_pb(request: LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveRequest:
    return rpc_pb2.LeaseTimeToLiveRequest(ID=request.id, keys=request.keys)


def ttl_response_to_pb(response: LeaseTimeToLiveResponse,
                       fields: HeaderFields) -> rpc_pb2.LeaseTimeToLiveResponse:
    return rpc_pb2.LeaseTimeToLiveResponse(
        header=header_to_pb(response.header, fields), ID=response.id, TTL=response.ttl_s,
        grantedTTL=response.granted_ttl_s, keys=list(response.keys))


def ttl_response_from_pb(pb: rpc_pb2.LeaseTimeToLiveResponse) -> LeaseTimeToLiveResponse:
    return LeaseTimeToLiveResponse(header=header_from_pb(pb.header), id=LeaseId(pb.ID),
                                   ttl_s=pb.TTL, granted_ttl_s=pb.grantedTTL,
                                   keys=tuple(pb.keys))


def leases_response_to_pb(response: LeaseLeasesResponse,
                          fields: HeaderFields) -> rpc_pb2.LeaseLeasesResponse:
    return rpc_pb2.LeaseLeasesResponse(
        header=header_to_pb(response.header, fields),
        leases=[rpc_pb2.LeaseStatus(ID=lease_id) for lease_id in response.leases])


def leases_response_from_pb(pb: rpc_pb2.LeaseLeasesResponse) -> LeaseLeasesResponse:
    return LeaseLeasesResponse(header=header_from_pb(pb.header),
                               leases=tuple(LeaseId(s.ID) for s in pb.leases))


# -- cluster -------------------------------------------------------------------------


def _member_header(fields: HeaderFields) -> rpc_pb2.ResponseHeader:
    """etcd's Cluster responses carry the member's identity and term but no
    store revision (membership lives outside the key-value store); ours match."""
    return rpc_pb2.ResponseHeader(cluster_id=fields.cluster_id, member_id=fields.member_id,
                                  raft_term=fields.raft_term)


def member_to_pb(member: Member) -> rpc_pb2.Member:
    return rpc_pb2.Member(ID=member.id, name=member.name, peerURLs=list(member.peer_urls),
                          clientURLs=list(member.client_urls), isLearner=member.is_learner)


def member_from_pb(pb: rpc_pb2.Member) -> Member:
    return Member(id=NodeId(pb.ID), name=pb.name, peer_urls=tuple(pb.peerURLs),
                  client_urls=tuple(pb.clientURLs), is_learner=pb.isLearner)


INVALID_MEMBER_URLS = "etcdserver: given member URLs are invalid"  # etcd's text


def _check_peer_urls(urls: Iterable[str]) -> tuple[str, ...]:
    """Peer URLs must be ones the transport can dial (http://host:port, as
    --listen-peer-urls); a member that can never be reached would count in
    the quorum for good."""
    for url in urls:
        try:
            parse_url(url)
        except ValueError:
            raise InvalidRequest(INVALID_MEMBER_URLS) from None
    return tuple(urls)


def member_add_from_pb(pb: rpc_pb2.MemberAddRequest) -> MemberAddRequest:
    return MemberAddRequest(peer_urls=_check_peer_urls(pb.peerURLs), is_learner=pb.isLearner)


def member_add_to_pb(request: MemberAddRequest) -> rpc_pb2.MemberAddRequest:
    return rpc_pb2.MemberAddRequest(peerURLs=list(request.peer_urls),
                                    isLearner=request.is_learner)


def member_remove_from_pb(pb: rpc_pb2.MemberRemoveRequest) -> MemberRemoveRequest:
    return MemberRemoveRequest(id=NodeId(pb.ID))


def member_update_from_pb(pb: rpc_pb2.MemberUpdateRequest) -> MemberUpdateRequest:
    """Checked as MemberAdd's (etcd 3.4's server takes any text and leaves the
    check to etcdctl; an empty list is refused as well)."""
    return MemberUpdateRequest(id=NodeId(pb.ID), peer_urls=_check_peer_urls(pb.peerURLs))


def member_update_to_pb(request: MemberUpdateRequest) -> rpc_pb2.MemberUpdateRequest:
    return rpc_pb2.MemberUpdateRequest(ID=request.id, peerURLs=list(request.peer_urls))


def member_promote_from_pb(pb: rpc_pb2.MemberPromoteRequest) -> MemberPromoteRequest:
    return MemberPromoteRequest(id=NodeId(pb.ID))


def member_add_response_to_pb(response: MemberResponse,
                              fields: HeaderFields) -> rpc_pb2.MemberAddResponse:
    pb = rpc_pb2.MemberAddResponse(header=_member_header(fields),
                                   members=[member_to_pb(m) for m in response.members])
    if response.member is not None:
        pb.member.CopyFrom(member_to_pb(response.member))
    return pb


def member_list_response_to_pb(response: MemberResponse,
                               fields: HeaderFields) -> rpc_pb2.MemberListResponse:
    return rpc_pb2.MemberListResponse(header=_member_header(fields),
                                      members=[member_to_pb(m) for m in response.members])


def member_remove_response_to_pb(response: MemberResponse,
                                 fields: HeaderFields) -> rpc_pb2.MemberRemoveResponse:
    return rpc_pb2.MemberRemoveResponse(header=_member_header(fields),
                                        members=[member_to_pb(m) for m in response.members])


def member_promote_response_to_pb(response: MemberResponse,
                                  fields: HeaderFields) -> rpc_pb2.MemberPromoteResponse:
    return rpc_pb2.MemberPromoteResponse(header=_member_header(fields),
                                         members=[member_to_pb(m) for m in response.members])


def member_update_response_to_pb(response: MemberResponse,
                                 fields: HeaderFields) -> rpc_pb2.MemberUpdateResponse:
    return rpc_pb2.MemberUpdateResponse(header=_member_header(fields),
                                        members=[member_to_pb(m) for m in response.members])


def member_list_response_from_pb(pb: rpc_pb2.MemberListResponse) -> MemberResponse:
    return MemberResponse(header=header_from_pb(pb.header), member=None,
                          members=tuple(member_from_pb(m) for m in pb.members))


# -- status --------------------------------------------------------------------------


def status_to_pb(status: StatusResponse, fields: HeaderFields, *, version: str,
                 db_size_bytes: int = 0) -> rpc_pb2.StatusResponse:
    return rpc_pb2.StatusResponse(
        header=header_to_pb(status.header, fields), version=version, dbSize=db_size_bytes,
        leader=status.leader, raftIndex=status.raft_index, raftTerm=status.raft_term,
        raftAppliedIndex=status.raft_applied_index, dbSizeInUse=db_size_bytes,
        isLearner=status.is_learner)


def status_from_pb(pb: rpc_pb2.StatusResponse) -> StatusResponse:
    """The core status as far as etcd's carries it (no compaction revision or
    key count: those come back 0)."""
    return StatusResponse(
        header=header_from_pb(pb.header), member_id=NodeId(pb.header.member_id),
        leader=NodeId(pb.leader), raft_term=Term(pb.raftTerm), raft_index=Index(pb.raftIndex),
        raft_applied_index=Index(pb.raftAppliedIndex), revision=pb.header.revision,
        compact_revision=0, keys_total=0, is_learner=pb.isLearner)


__all__ = [
    "keepalive_from_pb",
    "keepalive_response_from_pb",
    "keepalive_response_to_pb",
    "keepalive_to_pb",
    "lease_grant_from_pb",
    "lease_grant_response_from_pb",
    "lease_grant_response_to_pb",
    "lease_grant_to_pb",
    "lease_revoke_from_pb",
    "lease_revoke_response_from_pb",
    "lease_revoke_response_to_pb",
    "lease_revoke_to_pb",
    "leases_response_from_pb",
    "leases_response_to_pb",
    "member_add_from_pb",
    "member_add_response_to_pb",
    "member_add_to_pb",
    "member_from_pb",
    "member_list_response_from_pb",
    "member_list_response_to_pb",
    "member_promote_from_pb",
    "member_promote_response_to_pb",
    "member_remove_from_pb",
    "member_remove_response_to_pb",
    "member_to_pb",
    "member_update_from_pb",
    "member_update_response_to_pb",
    "member_update_to_pb",
    "status_from_pb",
    "status_to_pb",
    "ttl_from_pb",
    "ttl_response_from_pb",
    "ttl_response_to_pb",
    "ttl_to_pb",
]
