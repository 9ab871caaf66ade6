"""The member table: who is in the cluster, with names and URLs.

Theory of operation
-------------------
Raft knows members only as ids in its configuration. The member table adds
what operators and clients need (name, peer and client URLs, learner or
voter) and follows Raft: every membership change is a ConfChange entry whose
context carries the member, and the table changes when that entry is
applied, on every node alike. `sync` keeps the table's ids equal to the
ConfState's (a node that joined from a bootstrap snapshot has ids without
metadata until someone updates them).

`plan` checks a request against the table before it is proposed (etcd's
errors: unknown member, duplicate id or peer URL, promoting a voter or a
learner that lags the leader) and returns the Raft change to propose.
"""

from __future__ import annotations

from dataclasses import replace

from chainfire_core.errors import (
    InvalidRequest,
    LearnerNotReady,
    MemberExists,
    MemberNotFound,
    MemberNotLearner,
)
from chainfire_core.mvcc.messages import ResponseHeader
from chainfire_core.node_messages import (
    ClientRequest,
    Member,
    MemberAddRequest,
    MemberPromoteRequest,
    MemberPublishRequest,
    MemberRemoveRequest,
    MemberResponse,
)
from chainfire_core.raft.messages import ConfChange, ConfChangeSingle, ConfChangeType, ConfState
from chainfire_core.raft.raft import Raft, Role
from chainfire_core.types import NodeId

# A learner may be promoted once it holds this share of the leader's log (etcd's rule).
LEARNER_READY_FRACTION = 0.9


class MemberTable:
    __slots__ = ("_members",)

    def __init__(self) -> None:
        self._members: dict[NodeId, Member] = {}

    def all(self) -> tuple[Member, ...]:
        return tuple(self._members[node_id] for node_id in sorted(self._members))

    def get(self, node_id: NodeId) -> Member | None:
        return self._members.get(node_id)

    def response(self, header: ResponseHeader, member: Member | None = None) -> MemberResponse:
        return MemberResponse(header=header, member=member, members=self.all())

    def plan(self, request: ClientRequest, raft: Raft) -> tuple[tuple[ConfChangeSingle, ...],
                                                                Member]:
        """Check a membership request; the Raft change and the member concerned."""
        self.sync(raft.tracker.conf_state())
        match request:
            case MemberAddRequest():
                member = self._plan_add(request)
                kind = ConfChangeType.ADD_LEARNER if request.is_learner else ConfChangeType.ADD_NODE
            case MemberRemoveRequest():
                member = self._require(request.id)
                kind = ConfChangeType.REMOVE_NODE
            case MemberPromoteRequest():
                member = self._plan_promote(request, raft)
                kind = ConfChangeType.ADD_NODE
            case MemberPublishRequest():  # the same role again: only the record changes
                member = replace(self._require(request.id), client_urls=request.client_urls)
                kind = ConfChangeType.ADD_LEARNER if member.is_learner else ConfChangeType.ADD_NODE
            case _:
                raise InvalidRequest(f"not a membership request: {type(request).__name__}")
        return (ConfChangeSingle(type=kind, node_id=member.id),), member

    def _plan_add(self, request: MemberAddRequest) -> Member:
        node_id = request.id or NodeId(max(self._members, default=0) + 1)
        if node_id in self._members:
            raise MemberExists("ID")
        used = {url for member in self._members.values() for url in member.peer_urls}
        if used & set(request.peer_urls):
            raise MemberExists("Peer URLs")
        return Member(id=node_id, name=request.name, peer_urls=request.peer_urls,
                      is_learner=request.is_learner)

    def _plan_promote(self, request: MemberPromoteRequest, raft: Raft) -> Member:
        member = self._require(request.id)
        if not member.is_learner:
            raise MemberNotLearner()
        if raft.role == Role.LEADER:
            progress = raft.tracker.progress.get(request.id)
            leader_match = raft.tracker.progress[raft.id].match
            if progress is None or progress.match < leader_match * LEARNER_READY_FRACTION:
                raise LearnerNotReady()
        return replace(member, is_learner=False)

    def _require(self, node_id: NodeId) -> Member:
        member = self._members.get(node_id)
        if member is None:
            raise MemberNotFound(node_id)
        return member

    def apply(self, change: ConfChange, member: Member, conf_state: ConfState) -> None:
        """A membership ConfChange entry was applied, giving `conf_state`."""
        for single in change.changes:
            if single.type == ConfChangeType.REMOVE_NODE:
                self._members.pop(single.node_id, None)
            elif single.node_id == member.id:
                learner = single.type == ConfChangeType.ADD_LEARNER
                self._members[member.id] = replace(member, is_learner=learner)
        self.sync(conf_state)

    def sync(self, conf_state: ConfState) -> None:
        """Make the table's ids those of `conf_state`."""
        learners = set(conf_state.learners) | set(conf_state.learners_next)
        wanted = set(conf_state.voters) | set(conf_state.voters_outgoing) | learners
        for node_id in sorted(set(self._members) - wanted):
            del self._members[node_id]
        for node_id in sorted(wanted):
            is_learner = node_id in learners and node_id not in conf_state.voters
            known = self._members.get(node_id) or Member(id=node_id)
            self._members[node_id] = replace(known, is_learner=is_learner)

    def restore(self, members: tuple[Member, ...]) -> None:
        self._members = {member.id: member for member in members}

    def check_invariants(self) -> None:
        for node_id, member in self._members.items():
            assert node_id == member.id, (node_id, member)
