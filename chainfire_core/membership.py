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
Requests that only change a member's record (update: peer URLs; publish:
client URLs) propose the member's current role again, which leaves Raft's
configuration as it is; the new record lands in every table when the entry
applies.

A change carries only what it changes: the member in its context has the
new peer URLs (add, update), client URLs (publish) or name (add), and the
rest left empty, and `apply` keeps the table's value of every empty field
(no request ever empties one: a member always has peer URLs, and publishes
at least one client URL). So changes planned at the same time on different
nodes (a member publishing its client URLs while an operator updates its
peer URLs or promotes it) all take effect, in log order, whatever table
each was planned against.
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
    MemberUpdateRequest,
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
                self._plan_promote(request, raft)
                member = Member(id=request.id)  # the role is the change's
                kind = ConfChangeType.ADD_NODE
            case MemberUpdateRequest():  # the same role again: only the record changes
                member = self._plan_update(request)
                kind = ConfChangeType.ADD_LEARNER if member.is_learner else ConfChangeType.ADD_NODE
            case MemberPublishRequest():  # likewise
                learner = self._require(request.id).is_learner
                member = Member(id=request.id, client_urls=request.client_urls,
                                is_learner=learner)
                kind = ConfChangeType.ADD_LEARNER if learner else ConfChangeType.ADD_NODE
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

    def _plan_update(self, request: MemberUpdateRequest) -> Member:
        member = self._require(request.id)
        used = {url for other in self._members.values() if other.id != member.id
                for url in other.peer_urls}
        if used & set(request.peer_urls):
            raise MemberExists("Peer URLs")
        return Member(id=member.id, peer_urls=request.peer_urls, is_learner=member.is_learner)

    def _plan_promote(self, request: MemberPromoteRequest, raft: Raft) -> None:
        member = self._require(request.id)
        if not member.is_learner:
            raise MemberNotLearner()
        if raft.role == Role.LEADER:
            progress = raft.tracker.progress.get(request.id)
            leader_match = raft.tracker.progress[raft.id].match
            if progress is None or progress.match < leader_match * LEARNER_READY_FRACTION:
                raise LearnerNotReady()

    def _require(self, node_id: NodeId) -> Member:
        member = self._members.get(node_id)
        if member is None:
            raise MemberNotFound(node_id)
        return member

    def apply(self, change: ConfChange, member: Member, conf_state: ConfState) -> Member:
        """A membership ConfChange entry was applied, giving `conf_state`;
        the record of the member concerned afterwards (`member` if removed)."""
        result = member
        for single in change.changes:
            if single.type == ConfChangeType.REMOVE_NODE:
                self._members.pop(single.node_id, None)
            elif single.node_id == member.id:
                learner = single.type == ConfChangeType.ADD_LEARNER
                result = self._merged(member, learner)
                self._members[member.id] = result
        self.sync(conf_state)
        return self._members.get(member.id, result)

    def _merged(self, change: Member, is_learner: bool) -> Member:
        """The table's record of `change.id` with the fields `change` sets."""
        current = self._members.get(change.id) or Member(id=change.id)
        return Member(id=change.id, name=change.name or current.name,
                      peer_urls=change.peer_urls or current.peer_urls,
                      client_urls=change.client_urls or current.client_urls,
                      is_learner=is_learner)

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
