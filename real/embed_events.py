"""The events an embedded node reports (real/embed.py), and how they are
derived from what the node observes.

Theory of operation
-------------------
`ClusterObserver` is pure: fed the leader and member table the node sees
after each change (`observe`), it returns the cluster events that change
means, in a fixed order: membership first (joined, left, then one
"membership changed"), then leadership (lost leadership, leader changed,
became leader), then "cluster ready" the first time a leader is known.
`kv_events` turns one watch response into key events (changed / deleted,
one per event) followed by one "prefix changed" per revision for a handler
registered on a prefix. `gossip_cluster_event` turns a gossip notice
(real/gossip_cluster.py) into node suspected / recovered / failed /
departed; these report what SWIM sees and say nothing about the Raft
member table, which only MemberAdd / MemberRemove change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chainfire_core.mvcc.messages import Event, EventType
from chainfire_core.node_messages import Member
from chainfire_core.swim import (
    MemberAlive,
    MemberDead,
    MemberLeft,
    MemberSuspected,
)
from chainfire_core.types import NodeId
from real.gossip_cluster import GossipNotice

_NO_LEADER = NodeId(0)


class ClusterEventKind(Enum):
    NODE_JOINED = "node_joined"
    NODE_LEFT = "node_left"
    LEADER_CHANGED = "leader_changed"
    BECAME_LEADER = "became_leader"
    LOST_LEADERSHIP = "lost_leadership"
    MEMBERSHIP_CHANGED = "membership_changed"
    CLUSTER_READY = "cluster_ready"
    # SWIM gossip (real/gossip_cluster.py); the member stays in the Raft table.
    NODE_SUSPECTED = "node_suspected"
    # Alive again after being suspected, declared dead or departed.
    NODE_RECOVERED = "node_recovered"
    # Declared dead (it did not refute a suspicion in time).
    NODE_FAILED = "node_failed"
    # Left gossip gracefully (a clean shutdown).
    NODE_DEPARTED = "node_departed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterEvent:
    kind: ClusterEventKind
    # The member reporting the event (this node).
    node_id: NodeId
    # The leader this node knows after the event (0: none).
    leader: NodeId = NodeId(0)  # noqa: RUF009  (NewType call is free)
    # LEADER_CHANGED: the leader known before (0: none yet).
    previous_leader: NodeId = NodeId(0)  # noqa: RUF009
    # NODE_JOINED / NODE_LEFT (and the gossip kinds): the member concerned.
    member: Member | None = None
    # MEMBERSHIP_CHANGED / CLUSTER_READY: the member table.
    members: tuple[Member, ...] = ()
    # Gossip kinds: the member's SWIM incarnation, and who accused it
    # (NODE_SUSPECTED / NODE_FAILED; 0 otherwise).
    incarnation: int = 0
    accuser: NodeId = NodeId(0)  # noqa: RUF009


class KvEventKind(Enum):
    KEY_CHANGED = "key_changed"
    KEY_DELETED = "key_deleted"
    PREFIX_CHANGED = "prefix_changed"


@dataclass(frozen=True, slots=True, kw_only=True)
class KvEvent:
    kind: KvEventKind
    # The store revision of the change.
    revision: int
    # KEY_CHANGED / KEY_DELETED: the key, its new value (b"" when deleted) and
    # the value before (None when the key was new, or unknown).
    key: bytes = b""
    value: bytes = b""
    prev_value: bytes | None = None
    # PREFIX_CHANGED: the prefix watched and the keys it changed in `revision`.
    prefix: bytes = b""
    keys: tuple[bytes, ...] = ()


class ClusterObserver:
    """Turns successive (leader, members) observations into events."""

    def __init__(self, node_id: NodeId, members: tuple[Member, ...]) -> None:
        self.node_id = node_id
        self.leader = NodeId(0)
        self.last_known_leader = NodeId(0)
        self.members = _by_id(members)
        self.ready = False

    def observe(self, leader: NodeId, members: tuple[Member, ...]) -> list[ClusterEvent]:
        events = self._membership(_by_id(members))
        events.extend(self._leadership(leader))
        if leader and not self.ready:
            self.ready = True
            events.append(self._event(ClusterEventKind.CLUSTER_READY,
                                      members=tuple(self.members.values())))
        return events

    def _event(self, kind: ClusterEventKind, *, previous_leader: NodeId = _NO_LEADER,
               member: Member | None = None, members: tuple[Member, ...] = ()
               ) -> ClusterEvent:
        return ClusterEvent(kind=kind, node_id=self.node_id, leader=self.leader,
                            previous_leader=previous_leader, member=member, members=members)

    def _membership(self, members: dict[NodeId, Member]) -> list[ClusterEvent]:
        if members == self.members:
            return []
        old, self.members = self.members, members
        events = [self._event(ClusterEventKind.NODE_JOINED, member=members[node_id])
                  for node_id in sorted(members.keys() - old.keys())]
        events.extend(self._event(ClusterEventKind.NODE_LEFT, member=old[node_id])
                      for node_id in sorted(old.keys() - members.keys()))
        events.append(self._event(ClusterEventKind.MEMBERSHIP_CHANGED,
                                  members=tuple(members.values())))
        return events

    def _leadership(self, leader: NodeId) -> list[ClusterEvent]:
        if leader == self.leader:
            return []
        was_leader = self.leader == self.node_id
        self.leader = leader
        events: list[ClusterEvent] = []
        if was_leader and leader != self.node_id:
            events.append(self._event(ClusterEventKind.LOST_LEADERSHIP))
        if leader and leader != self.last_known_leader:
            events.append(self._event(ClusterEventKind.LEADER_CHANGED,
                                      previous_leader=self.last_known_leader))
        if leader:
            self.last_known_leader = leader
        if leader == self.node_id and not was_leader:
            events.append(self._event(ClusterEventKind.BECAME_LEADER))
        return events


_GOSSIP_KINDS = {MemberSuspected: ClusterEventKind.NODE_SUSPECTED,
                 MemberAlive: ClusterEventKind.NODE_RECOVERED,
                 MemberDead: ClusterEventKind.NODE_FAILED,
                 MemberLeft: ClusterEventKind.NODE_DEPARTED}


def gossip_cluster_event(node_id: NodeId, leader: NodeId, notice: GossipNotice
                         ) -> ClusterEvent | None:
    """The cluster event for a gossip notice (None: not one the handler gets,
    e.g. a member first heard of, or this member refuting)."""
    event = notice.event
    kind = _GOSSIP_KINDS.get(type(event))
    if kind is None or notice.member is None:
        return None
    accuser = event.accuser if isinstance(event, MemberSuspected | MemberDead) else _NO_LEADER
    return ClusterEvent(kind=kind, node_id=node_id, leader=leader, member=notice.member,
                        incarnation=event.incarnation, accuser=accuser)


def _by_id(members: tuple[Member, ...]) -> dict[NodeId, Member]:
    return {member.id: member for member in sorted(members, key=lambda m: m.id)}


def kv_events(events: tuple[Event, ...], prefix: bytes | None) -> list[KvEvent]:
    """Key events for `events` (whole revisions, in order); with `prefix`, a
    PREFIX_CHANGED after each revision's key events."""
    out: list[KvEvent] = []
    changed: list[bytes] = []
    for index, event in enumerate(events):
        kv = event.kv
        prev = event.prev_kv.value if event.prev_kv is not None else None
        if event.type == EventType.PUT:
            out.append(KvEvent(kind=KvEventKind.KEY_CHANGED, revision=kv.mod_revision,
                               key=kv.key, value=kv.value, prev_value=prev))
        else:
            out.append(KvEvent(kind=KvEventKind.KEY_DELETED, revision=kv.mod_revision,
                               key=kv.key, prev_value=prev))
        changed.append(kv.key)
        last_of_revision = (index + 1 == len(events)
                            or events[index + 1].kv.mod_revision != kv.mod_revision)
        if prefix is not None and last_of_revision:
            out.append(KvEvent(kind=KvEventKind.PREFIX_CHANGED, revision=kv.mod_revision,
                               prefix=prefix, keys=tuple(changed)))
        if last_of_revision:
            changed = []
    return out


__all__ = ["ClusterEvent", "ClusterEventKind", "ClusterObserver", "KvEvent", "KvEventKind",
           "gossip_cluster_event", "kv_events"]
