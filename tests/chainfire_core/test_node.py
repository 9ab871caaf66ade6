"""ChainfireNode: client requests in, responses out, over a 3-node in-memory cluster."""

from __future__ import annotations

import pytest
from node_cluster import Cluster

from chainfire_core import (
    CompactionRequest,
    LeaseGrantRequest,
    LeaseKeepAliveRequest,
    LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from chainfire_core.errors import (
    Compacted,
    InvalidRequest,
    LeaseNotFound,
    MemberExists,
    MemberNotFound,
    MemberNotLearner,
    NotLeader,
    ProposalDropped,
    RequestTimeout,
)
from chainfire_core.node_messages import (
    MemberAddRequest,
    MemberListRequest,
    MemberPromoteRequest,
    MemberPublishRequest,
    MemberRemoveRequest,
    MemberUpdateRequest,
    ReadConsistency,
    StatusRequest,
)
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.types import LeaseId, NodeId

N1, N2, N3 = NodeId(1), NodeId(2), NodeId(3)


def ok(response: object) -> object:
    from chainfire_core.node_messages import ClientResponse

    assert isinstance(response, ClientResponse), response
    assert response.error is None, response.error
    return response.response


def test_writes_through_leader_and_follower_are_applied_everywhere() -> None:
    cluster = Cluster(3)
    leader = cluster.elect()
    assert ok(cluster.request(leader, PutRequest(key=b"a", value=b"1"))).header.revision == 2
    assert ok(cluster.request(N3, PutRequest(key=b"b", value=b"2"))).header.revision == 3
    for node in cluster.nodes.values():
        assert node.sm.revision == 3
        node.check_invariants()


def test_follower_without_forwarding_answers_not_leader_with_hint() -> None:
    cluster = Cluster(3, forward_requests=False)
    cluster.elect(N1)
    response = cluster.request(N2, PutRequest(key=b"a", value=b"1"))
    assert response is not None and isinstance(response.error, NotLeader)
    assert response.error.leader_hint == N1


def test_proposal_without_leader_is_dropped_at_once() -> None:
    cluster = Cluster(3)
    response = cluster.request(N2, PutRequest(key=b"a", value=b"1"))
    assert response is not None and isinstance(response.error, ProposalDropped)


def test_linearizable_read_on_follower_sees_the_latest_write() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    ok(cluster.request(N1, PutRequest(key=b"k", value=b"v1")))
    read = ok(cluster.request(N3, RangeRequest(key=b"k")))
    assert [kv.value for kv in read.kvs] == [b"v1"]


def test_serializable_read_on_a_cut_off_follower_is_stale_but_answers() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    ok(cluster.request(N1, PutRequest(key=b"k", value=b"old")))
    cluster.partition([N1, N2], [N3])
    ok(cluster.request(N1, PutRequest(key=b"k", value=b"new")))
    stale = ok(cluster.request(N3, RangeRequest(key=b"k"), ReadConsistency.SERIALIZABLE))
    assert [kv.value for kv in stale.kvs] == [b"old"]
    # A linearizable read there cannot be confirmed: it times out, never stale.
    timed_out = cluster.request(N3, RangeRequest(key=b"k"), ticks=200)
    assert timed_out is not None and isinstance(timed_out.error, RequestTimeout | ProposalDropped)


def test_linearizable_read_on_isolated_leader_never_answers_stale() -> None:
    cluster = Cluster(3, raft_check_quorum=True)
    cluster.elect(N1)
    ok(cluster.request(N1, PutRequest(key=b"k", value=b"old")))
    cluster.partition([N1], [N2, N3])
    response = cluster.request(N1, RangeRequest(key=b"k"), ticks=100)
    assert response is not None and response.error is not None


def test_read_only_txn_is_served_as_a_read_without_a_revision() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    ok(cluster.request(N1, PutRequest(key=b"k", value=b"v")))
    txn = ok(cluster.request(N2, TxnRequest(success=(RangeRequest(key=b"k"),))))
    assert txn.succeeded and txn.header.revision == 2
    assert all(node.sm.revision == 2 for node in cluster.nodes.values())


def test_lease_expires_through_the_leader_and_deletes_keys_everywhere() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    grant = ok(cluster.request(N1, LeaseGrantRequest(ttl_s=2)))
    ok(cluster.request(N2, PutRequest(key=b"eph", value=b"x", lease=grant.id)))
    cluster.tick(10)  # 1 s: still alive
    assert ok(cluster.request(N3, RangeRequest(key=b"eph"))).count == 1
    cluster.tick(40)  # 2 s TTL + 1 s promotion grace have passed
    for node in cluster.nodes.values():
        assert node.sm.range(RangeRequest(key=b"eph")).count == 0
        assert not node.sm.lessor.exists(grant.id)


def test_keepalive_keeps_a_lease_and_is_leader_only() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    grant = ok(cluster.request(N1, LeaseGrantRequest(ttl_s=2)))
    for _ in range(6):
        cluster.tick(10)
        ok(cluster.request(N1, LeaseKeepAliveRequest(id=grant.id)))
    ttl = ok(cluster.request(N1, LeaseTimeToLiveRequest(id=grant.id)))
    assert ttl.ttl_s > 0
    follower = cluster.request(N2, LeaseKeepAliveRequest(id=grant.id))
    assert follower is not None and isinstance(follower.error, NotLeader)


def test_membership_add_promote_remove_and_errors() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    added = ok(cluster.request(N1, MemberAddRequest(peer_urls=("http://n4:2380",),
                                                    is_learner=True, name="n4")))
    assert added.member.id == 4 and added.member.is_learner
    assert [m.id for m in added.members] == [1, 2, 3, 4]
    again = cluster.request(N1, MemberAddRequest(peer_urls=("http://n4:2380",)))
    assert again is not None and isinstance(again.error, MemberExists)
    voter = cluster.request(N1, MemberPromoteRequest(id=N2))
    assert voter is not None and isinstance(voter.error, MemberNotLearner)
    missing = cluster.request(N1, MemberRemoveRequest(id=NodeId(9)))
    assert missing is not None and isinstance(missing.error, MemberNotFound)
    removed = ok(cluster.request(N1, MemberRemoveRequest(id=NodeId(4))))
    assert [m.id for m in removed.members] == [1, 2, 3]
    listed = ok(cluster.request(N3, MemberListRequest()))
    assert [m.id for m in listed.members] == [1, 2, 3]


def test_member_update_replaces_peer_urls_everywhere_and_keeps_the_rest() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    added = ok(cluster.request(N1, MemberAddRequest(peer_urls=("http://n4:2380",),
                                                    is_learner=True, name="n4")))
    n4 = added.member.id
    # Asked of a follower: planned there, committed through the leader.
    updated = ok(cluster.request(N2, MemberUpdateRequest(
        id=n4, peer_urls=("http://n4-new:2380", "http://n4-alt:2380"))))
    assert updated.member.id == n4 and updated.member.name == "n4"
    assert updated.member.is_learner  # the role stays
    for node in cluster.nodes.values():
        member = node.members.get(n4)
        assert member is not None
        assert member.peer_urls == ("http://n4-new:2380", "http://n4-alt:2380")
        assert member.is_learner and member.name == "n4"
        assert node.raw.raft.tracker.conf_state().learners == (n4,)
        node.check_invariants()
    # Its own URLs again are fine; another member's are taken (etcd's check).
    ok(cluster.request(N1, MemberUpdateRequest(id=n4, peer_urls=("http://n4-new:2380",))))
    taken = cluster.request(N1, MemberUpdateRequest(id=N2, peer_urls=("http://n4-new:2380",)))
    assert taken is not None and isinstance(taken.error, MemberExists)
    assert str(taken.error) == "etcdserver: Peer URLs already exists"
    missing = cluster.request(N1, MemberUpdateRequest(id=NodeId(9), peer_urls=("http://x:1",)))
    assert missing is not None and isinstance(missing.error, MemberNotFound)
    with pytest.raises(InvalidRequest):
        MemberUpdateRequest(id=n4, peer_urls=())
    voters = ok(cluster.request(N3, MemberListRequest())).members
    assert [(m.id, m.is_learner) for m in voters] == [(1, False), (2, False), (3, False),
                                                       (n4, True)]


def test_record_changes_planned_on_a_stale_table_keep_each_others_fields() -> None:
    # N2 lags: it plans an update of N3's peer URLs without having applied N3's
    # publish of its client URLs; both must survive, whichever table planned.
    cluster = Cluster(3)
    cluster.elect(N1)
    cluster.partition([N1, N3], [N2])
    ok(cluster.request(N1, MemberPublishRequest(id=N3, client_urls=("http://n3:2379",))))
    stale = cluster.nodes[N2].members.get(N3)
    assert stale is not None and stale.client_urls == ()
    request_id = 9_999
    cluster.nodes[N2].submit(request_id, MemberUpdateRequest(id=N3,
                                                             peer_urls=("http://n3:2380",)))
    cluster.heal()
    cluster.pump()
    cluster.tick(3)
    updated = ok(cluster.responses[request_id])
    assert updated.member.client_urls == ("http://n3:2379",)  # the merged record
    for node in cluster.nodes.values():
        member = node.members.get(N3)
        assert member is not None
        assert (member.peer_urls, member.client_urls) == (("http://n3:2380",),
                                                          ("http://n3:2379",))
    # And the other way round: a publish planned before an update applied.
    cluster.partition([N1, N3], [N2])
    ok(cluster.request(N1, MemberUpdateRequest(id=N3, peer_urls=("http://n3-b:2380",))))
    cluster.nodes[N2].submit(request_id + 1, MemberPublishRequest(
        id=N3, client_urls=("http://n3-b:2379",)))
    cluster.heal()
    cluster.pump()
    cluster.tick(3)
    ok(cluster.responses[request_id + 1])
    for node in cluster.nodes.values():
        member = node.members.get(N3)
        assert member is not None
        assert (member.peer_urls, member.client_urls) == (("http://n3-b:2380",),
                                                          ("http://n3-b:2379",))


def test_member_update_survives_a_restart() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    ok(cluster.request(N1, MemberUpdateRequest(id=N3, peer_urls=("http://n3-moved:2380",))))
    cluster.restart(N3)
    cluster.tick(3)
    member = cluster.nodes[N3].members.get(N3)
    assert member is not None and member.peer_urls == ("http://n3-moved:2380",)


def test_lagging_follower_catches_up_from_a_snapshot() -> None:
    cluster = Cluster(3, snapshot_every_entries=20, snapshot_catchup_entries=5)
    cluster.elect(N1)
    cluster.partition([N1, N2], [N3])
    for number in range(60):
        ok(cluster.request(N1, PutRequest(key=b"k%d" % number, value=b"v")))
    assert cluster.storages[N1].first_index() > 2, "the leader compacted its log"
    cluster.heal()
    cluster.tick(5)
    assert cluster.nodes[N3].sm.revision == 61
    assert cluster.nodes[N3].sm.store.hash_kv() == cluster.nodes[N1].sm.store.hash_kv()
    for node in cluster.nodes.values():
        node.check_invariants()


def test_restarted_node_rebuilds_its_state_from_storage() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    for number in range(5):
        ok(cluster.request(N1, PutRequest(key=b"k%d" % number, value=b"v")))
    cluster.restart(N2)
    cluster.tick(3)
    assert cluster.nodes[N2].sm.revision == 6


def test_status_reports_leader_and_indexes() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    ok(cluster.request(N1, PutRequest(key=b"k", value=b"v")))
    status = ok(cluster.request(N2, StatusRequest()))
    assert status.leader == N1 and status.member_id == N2
    assert status.revision == 2 and status.keys_total == 1
    assert status.raft_applied_index == status.raft_index


@pytest.mark.parametrize("request_id", [0, -1])
def test_bad_request_ids_are_refused(request_id: int) -> None:
    cluster = Cluster(1)
    cluster.elect(NodeId(1))
    cluster.nodes[NodeId(1)].submit(request_id, StatusRequest())
    ready = cluster.nodes[NodeId(1)].ready()
    assert ready.responses and ready.responses[0].error is not None


def test_a_refused_command_still_takes_its_log_index() -> None:
    # Found by the simulator: a compaction of an already compacted revision
    # failed inside apply and the node then marked the same index applied twice.
    cluster = Cluster(3)
    cluster.elect(N1)
    for number in range(3):
        ok(cluster.request(N1, PutRequest(key=b"k", value=b"%d" % number)))
    ok(cluster.request(N1, CompactionRequest(revision=2)))
    again = cluster.request(N1, CompactionRequest(revision=1))
    assert again is not None and isinstance(again.error, Compacted)
    revoke = cluster.request(N2, LeaseRevokeRequest(id=LeaseId(12345)))
    assert revoke is not None and isinstance(revoke.error, LeaseNotFound)
    ok(cluster.request(N1, PutRequest(key=b"k", value=b"after")))
    for node in cluster.nodes.values():
        node.check_invariants()
        assert node.sm.revision == 5


def test_a_member_added_with_an_empty_disk_catches_up() -> None:
    # Found by the simulator: the only snapshot in storage was the bootstrap
    # one, whose config does not name the new member, so Raft refused it and
    # the learner never caught up. Adding a member now snapshots at once.
    cluster = Cluster(3)
    cluster.elect(N1)
    for number in range(5):
        ok(cluster.request(N1, PutRequest(key=b"k%d" % number, value=b"v")))
    n4 = NodeId(4)
    cluster.ids.append(n4)
    cluster.storages[n4] = MemoryStorage()  # a new process, empty disk
    cluster.nodes[n4] = cluster._make(n4)
    ok(cluster.request(N1, MemberAddRequest(peer_urls=("http://n4:2380",), is_learner=True)))
    cluster.tick(5)
    learner = cluster.nodes[n4]
    assert learner.sm.revision == 6
    assert learner.raw.raft.tracker.conf_state().learners == (n4,)
    ok(cluster.request(N1, MemberPromoteRequest(id=n4)))
    cluster.tick(2)
    assert n4 in cluster.nodes[N1].raw.raft.tracker.conf_state().voters


def test_writes_submitted_together_are_proposed_as_one_batch() -> None:
    cluster = Cluster(3)
    cluster.elect(N1)
    leader = cluster.nodes[N1]
    before = leader.raw.raft.log.last_index()
    for number in range(1, 6):
        leader.submit(1000 + number, PutRequest(key=b"k%d" % number, value=b"v"))
    ready = leader.ready()
    assert ready.raft is not None
    assert [e.index for e in ready.raft.entries] == list(range(before + 1, before + 6))
    appends = [m for m in ready.messages if m.to == N2]
    assert len(appends) == 1 and len(appends[0].entries) == 5  # one message per follower
    cluster.storages[N1].append(ready.raft.entries)
    if ready.raft.hard_state is not None:
        cluster.storages[N1].set_hard_state(ready.raft.hard_state)
    cluster.wire.extend(ready.messages)
    leader.advance(ready)
    cluster.pump()
    for number in range(1, 6):
        assert cluster.responses[1000 + number].error is None
