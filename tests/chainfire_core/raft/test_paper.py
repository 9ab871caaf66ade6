"""Paper tests: one test per claim of the Raft paper (Ongaro and Ousterhout,
"In Search of an Understandable Consensus Algorithm", extended version),
sections 5.2-5.5, 6 and 7, and of Ongaro's thesis for the extensions
etcd-io/raft implements (pre-vote, check-quorum, leader lease, leadership
transfer, ReadIndex, learners, joint consensus). Each docstring quotes the
sentence it checks.

Where Chainfire follows etcd rather than the paper, the test says so: a
membership change takes effect when its entry is applied, not when it is
appended; and a new leader's empty entry stands in for the paper's no-op.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from network import Network

from chainfire_core.errors import ProposalDropped
from chainfire_core.raft.config import ReadOnlyOption
from chainfire_core.raft.messages import (
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    Entry,
    HardState,
    Heartbeat,
    InstallSnapshot,
    Message,
    RequestVote,
    Snapshot,
    SnapshotMetadata,
    TimeoutNow,
    VoteResponse,
)
from chainfire_core.raft.raft import ReadState, Role
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.types import Index, NodeId, Term

# -- helpers ---------------------------------------------------------------------------


def log_storage(terms: Sequence[int], voters: Sequence[int], term: int) -> MemoryStorage:
    """A disk whose log is index 1 (the bootstrap snapshot, term 1) followed
    by one entry per `terms` (indexes 2, 3, ...), with `term` as current term."""
    storage = MemoryStorage()
    conf_state = ConfState(voters=tuple(NodeId(v) for v in sorted(voters)))
    storage.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
        index=Index(1), term=Term(1), conf_state=conf_state)))
    storage.append([Entry(term=Term(t), index=Index(2 + k), data=b"%d/%d" % (2 + k, t))
                    for k, t in enumerate(terms)])
    storage.set_hard_state(HardState(term=Term(term), commit=Index(1)))
    return storage


def log_terms(net: Network, node_id: int) -> list[int]:
    """The terms of a peer's log from index 1 on."""
    log = net.node(node_id).raft.log
    return [log.term(Index(i)) for i in range(1, log.last_index() + 1)]


def change(kind: ConfChangeType, *node_ids: int,
           transition: ConfChangeTransition = ConfChangeTransition.AUTO) -> ConfChange:
    return ConfChange(changes=tuple(ConfChangeSingle(type=kind, node_id=NodeId(i))
                                    for i in node_ids), transition=transition)


def vote_request(sender: int, to: int, term: int, last_index: int = 1,
                 last_term: int = 1) -> RequestVote:
    return RequestVote(sender=NodeId(sender), to=NodeId(to), term=Term(term),
                       last_log_index=Index(last_index), last_log_term=Term(last_term))


def sent(net: Network, kind: type[Message], **fields: object) -> list[Message]:
    return [m for m in net.sent if isinstance(m, kind)
            and all(getattr(m, k) == v for k, v in fields.items())]


def role(net: Network, node_id: int) -> Role:
    return net.node(node_id).status().role


def run_until_leader_among(net: Network, ids: Sequence[int], max_ticks: int = 200) -> int:
    for _ in range(max_ticks):
        leaders = [i for i in ids if i in net.nodes and role(net, i) == Role.LEADER]
        if leaders:
            return leaders[0]
        net.run(1)
    raise AssertionError(f"no leader among {ids}")


# -- 5.2 Leader election -----------------------------------------------------------------


def test_follower_starts_election_after_election_timeout() -> None:
    """5.2: "If a follower receives no communication over a period of time
    called the election timeout, then it assumes there is no viable leader and
    begins an election to choose a new leader." """
    net = Network(3, pre_vote=False)
    node = net.node(1)
    election_ticks = node.raft.config.election_ticks
    for elapsed in range(1, 2 * election_ticks + 1):  # noqa: B007
        net.tick(1)
        if role(net, 1) == Role.CANDIDATE:
            break
    assert role(net, 1) == Role.CANDIDATE
    assert election_ticks <= elapsed < 2 * election_ticks


def test_candidate_increments_term_votes_for_itself_and_asks_everyone() -> None:
    """5.2: "To begin an election, a follower increments its current term and
    transitions to candidate state. It then votes for itself and issues
    RequestVote RPCs in parallel to each of the other servers in the cluster." """
    net = Network(5, pre_vote=False)
    net.campaign(1)
    net.process(1)
    status = net.node(1).status()
    assert (status.role, status.term, status.vote) == (Role.CANDIDATE, 2, 1)
    requests = sent(net, RequestVote, sender=1, term=2)
    assert sorted(m.to for m in requests) == [2, 3, 4, 5]


@pytest.mark.parametrize(("size", "votes", "outcome"), [
    (1, {}, Role.LEADER),
    (3, {2: True, 3: True}, Role.LEADER),
    (3, {2: True}, Role.LEADER),
    (5, {2: True, 3: True, 4: True, 5: True}, Role.LEADER),
    (5, {2: True, 3: True}, Role.LEADER),
    (3, {2: False, 3: False}, Role.FOLLOWER),
    (5, {2: False, 3: False, 4: False}, Role.FOLLOWER),
    (5, {2: True, 3: False, 4: False, 5: False}, Role.FOLLOWER),
    (3, {}, Role.CANDIDATE),
    (5, {2: True}, Role.CANDIDATE),
    (5, {2: False, 3: False}, Role.CANDIDATE),
    (5, {}, Role.CANDIDATE),
])
def test_candidate_wins_with_a_majority(size: int, votes: dict[int, bool],
                                        outcome: Role) -> None:
    """5.2: "A candidate wins an election if it receives votes from a majority
    of the servers in the full cluster for the same term." A majority against
    it ends the campaign; otherwise it waits."""
    net = Network(size, pre_vote=False)
    net.campaign(1)
    for voter, granted in votes.items():
        net.node(1).step(VoteResponse(sender=NodeId(voter), to=NodeId(1), term=Term(2),
                                      granted=granted))
    assert role(net, 1) == outcome


def test_each_server_votes_once_per_term_first_come_first_served() -> None:
    """5.2: "Each server will vote for at most one candidate in a given term,
    on a first-come-first-served basis." (A repeated request from the same
    candidate gets the same answer: RPCs are idempotent.)"""
    net = Network(3, pre_vote=False)
    voter = net.node(3)
    for candidate in (1, 2, 1):
        voter.step(vote_request(candidate, 3, term=2))
    answers = [(m.to, m.granted) for m in voter.ready().messages
               if isinstance(m, VoteResponse)]
    assert answers == [(1, True), (2, False), (1, True)]


def test_a_vote_survives_a_crash() -> None:
    """Figure 2: currentTerm and votedFor are "Persistent state on all servers
    (Updated on stable storage before responding to RPCs)": a restarted server
    does not vote again in the same term."""
    net = Network(3, pre_vote=False)
    net.node(3).step(vote_request(1, 3, term=2))
    net.process(3)
    net.restart(3)
    net.node(3).step(vote_request(2, 3, term=2))
    net.process(3)
    assert [(m.to, m.granted) for m in sent(net, VoteResponse, sender=3)] == [
        (1, True), (2, False)]


def test_leader_sends_heartbeats_and_followers_stay_followers() -> None:
    """5.2: "Once a candidate wins an election, it becomes leader. It then
    sends heartbeat messages to all of the other servers to establish its
    authority and prevent new elections." and "A server remains in follower
    state as long as it receives valid RPCs from a leader or candidate." """
    net = Network(3, pre_vote=False, check_quorum=False)
    net.campaign(1)
    for _ in range(3):
        net.process_all()
        net.deliver_all(lambda m: not isinstance(m, AppendEntries))
    assert role(net, 1) == Role.LEADER
    net.process(1)
    assert sorted(e.message.to for e in net.wire if isinstance(e.message, AppendEntries)) == [
        2, 3]  # at once, before any tick
    net.stabilize()
    ticks = 10 * net.node(2).raft.config.election_ticks
    net.run(ticks)
    assert [role(net, i) for i in (1, 2, 3)] == [Role.LEADER, Role.FOLLOWER, Role.FOLLOWER]
    assert {net.node(i).status().term for i in (1, 2, 3)} == {2}
    assert len(sent(net, Heartbeat, sender=1, to=2)) >= ticks


@pytest.mark.parametrize("leader_term", [2, 3])
def test_candidate_recognizes_a_leader_of_at_least_its_term(leader_term: int) -> None:
    """5.2: "If the leader's term (included in its RPC) is at least as large as
    the candidate's current term, then the candidate recognizes the leader as
    legitimate and returns to follower state." """
    net = Network(3, pre_vote=False)
    net.campaign(1)
    assert net.node(1).status().term == 2
    net.node(1).step(AppendEntries(sender=NodeId(2), to=NodeId(1), term=Term(leader_term),
                                   log_term=Term(1), index=Index(1), entries=(),
                                   commit=Index(1)))
    status = net.node(1).status()
    assert (status.role, status.lead, status.term) == (Role.FOLLOWER, 2, leader_term)


def test_candidate_rejects_a_stale_leader() -> None:
    """5.2: "If the term in the RPC is smaller than the candidate's current
    term, then the candidate rejects the RPC and continues in candidate
    state." (The rejection carries the newer term.)"""
    net = Network(3, pre_vote=False)
    net.campaign(1)
    net.campaign(1)
    assert net.node(1).status().term == 3
    net.node(1).step(AppendEntries(sender=NodeId(2), to=NodeId(1), term=Term(2),
                                   log_term=Term(1), index=Index(1), entries=(),
                                   commit=Index(1)))
    assert net.node(1).status().role == Role.CANDIDATE
    net.process(1)
    answers = sent(net, AppendResponse, sender=1, to=2)
    assert [m.term for m in answers] == [3]


def test_split_vote_times_out_into_a_new_term() -> None:
    """5.2: "When this happens, each candidate will time out and start a new
    election by incrementing its term and initiating another round of
    RequestVote RPCs." """
    net = Network(3, pre_vote=False)
    net.isolate(3)
    net.campaign(1)
    net.campaign(2)
    net.stabilize()
    assert [role(net, i) for i in (1, 2)] == [Role.CANDIDATE, Role.CANDIDATE]
    for _ in range(2 * net.node(1).raft.config.election_ticks):
        net.tick_all()
    assert max(net.node(i).status().term for i in (1, 2)) == 3
    net.heal()
    assert net.run_until_leader() in (1, 2, 3)


def test_election_timeouts_are_random_within_one_to_two_timeouts() -> None:
    """5.2: "Raft uses randomized election timeouts to ensure that split votes
    are rare ... election timeouts are chosen randomly from a fixed interval."
    Here [election_ticks, 2 * election_ticks), from the injected RNG: the same
    seed gives the same timeouts."""

    def timeout(seed: int) -> int:
        net = Network(3, seed=seed, pre_vote=False)
        for elapsed in range(1, 100):
            net.tick(1)
            if role(net, 1) == Role.CANDIDATE:
                return elapsed
        raise AssertionError("never campaigned")

    timeouts = [timeout(seed) for seed in range(40)]
    assert all(10 <= t < 20 for t in timeouts)
    assert len(set(timeouts)) > 5
    assert timeouts == [timeout(seed) for seed in range(40)]


def test_a_leader_with_a_stale_term_steps_down() -> None:
    """5.1: "If a candidate or leader discovers that its term is out of date,
    it immediately reverts to follower state." """
    net = Network(3, pre_vote=False)
    net.elect(1)
    net.node(1).step(AppendResponse(sender=NodeId(2), to=NodeId(1), term=Term(5),
                                    index=Index(0)))
    status = net.node(1).status()
    assert (status.role, status.term, status.lead) == (Role.FOLLOWER, 5, 0)


def test_a_request_with_a_stale_term_is_rejected() -> None:
    """5.1: "If a server receives a request with a stale term number, it
    rejects the request." Figure 2: "Reply false if term < currentTerm": the
    answer carries the newer term, so the sender catches up (even without
    pre-vote and check-quorum: a candidate whose stale config leaves us out
    would otherwise never learn our term)."""
    net = Network(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.elect(2)  # term 3
    votes_before = len(sent(net, VoteResponse, sender=3))
    net.node(3).step(vote_request(1, 3, term=2, last_index=10, last_term=2))
    net.node(3).step(AppendEntries(sender=NodeId(1), to=NodeId(3), term=Term(2),
                                   log_term=Term(2), index=Index(2),
                                   entries=(Entry(term=Term(2), index=Index(3), data=b"x"),),
                                   commit=Index(3)))
    net.process(3)
    status = net.node(3).status()
    assert (status.term, status.vote, status.lead) == (3, 2, 2)
    assert b"x" not in [e.data for e in net.node(3).raft.log.all_entries()]
    answers = sent(net, VoteResponse, sender=3)[votes_before:]
    assert [(m.to, m.term, m.granted) for m in answers] == [(1, 3, False)]
    assert [m.term for m in sent(net, AppendResponse, sender=3, to=1, index=0)] == [3]
    net.node(1).step(answers[0])
    assert net.node(1).status().term == 3


# -- 5.3 Log replication -----------------------------------------------------------------


def test_leader_appends_then_replicates_in_parallel() -> None:
    """5.3: "The leader appends the command to its log as a new entry, then
    issues AppendEntries RPCs in parallel to each of the other servers to
    replicate the entry." """
    net = Network(3)
    net.elect(1)
    net.propose(1, b"x")
    log = net.node(1).raft.log
    assert (log.last_index(), log.last_term(), log.committed) == (3, 2, 2)
    net.process(1)
    appends = [e.message for e in net.wire if isinstance(e.message, AppendEntries)]
    assert sorted(m.to for m in appends) == [2, 3]
    assert all([e.data for e in m.entries] == [b"x"] for m in appends)


@pytest.mark.parametrize(("size", "reachable", "committed"), [
    (3, 0, False), (3, 1, True), (3, 2, True),
    (5, 1, False), (5, 2, True), (5, 4, True),
])
def test_an_entry_commits_once_on_a_majority(size: int, reachable: int,
                                             committed: bool) -> None:
    """5.3: "A log entry is committed once the leader that created the entry
    has replicated it on a majority of the servers." """
    net = Network(size, check_quorum=False)
    net.elect(1)
    for follower in range(2 + reachable, size + 1):
        net.isolate(follower)
    net.propose(1, b"x")
    net.stabilize()
    assert (net.node(1).status().commit == 3) == committed
    assert (net.applied_data(1) == [b"x"]) == committed


def test_committing_an_entry_commits_those_of_earlier_leaders() -> None:
    """5.3: "This also commits all preceding entries in the leader's log,
    including entries created by previous leaders." and 5.4.2: "once an entry
    from the current term has been committed in this way, then all prior
    entries are committed indirectly because of the Log Matching Property." """
    net = Network(5, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.partition([1, 2], [3, 4, 5])
    net.propose(1, b"from term 2")
    net.stabilize()
    assert net.node(2).raft.log.last_index() == 3
    assert net.node(1).status().commit == 2  # on 2 of 5 servers: not committed
    net.crash(1)
    net.heal()
    net.elect(2)  # term 3: node 2's log is the most up-to-date
    assert net.node(2).raft.log.term(Index(3)) == 2
    net.stabilize()
    for node_id in (2, 3, 4, 5):
        assert net.applied_data(node_id) == [b"from term 2"]
    assert net.node(2).status().commit == 4  # the term-3 entry carried it


def test_followers_learn_the_commit_index_and_apply_in_order() -> None:
    """5.3: "The leader keeps track of the highest index it knows to be
    committed, and it includes that index in future AppendEntries RPCs
    (including heartbeats) so that the other servers eventually find out. Once
    a follower learns that a log entry is committed, it applies the entry to
    its local state machine (in log order)." """
    net = Network(3)
    net.elect(1)
    # Appends that only carry the commit index do not reach node 3.
    net.block(lambda m: isinstance(m, AppendEntries) and m.to == 3 and not m.entries)
    for data in (b"a", b"b", b"c"):
        net.propose(1, data)
    net.stabilize()
    assert net.node(1).status().commit == 5
    assert net.node(3).raft.log.last_index() == 5
    assert net.node(3).status().commit == 2  # holds them, not yet told they are committed
    net.tick(1)  # a heartbeat
    net.stabilize()
    assert sent(net, Heartbeat, sender=1, to=3, commit=5)
    assert net.node(3).status().commit == 5
    assert [i for i, _, _ in net.state[NodeId(3)]] == [2, 3, 4, 5]
    assert net.applied_data(3) == [b"a", b"b", b"c"]


@pytest.mark.parametrize("max_inflight_msgs", [1, 256])
def test_leader_retries_appends_after_a_follower_crash(max_inflight_msgs: int) -> None:
    """5.3: "If followers crash or run slowly, or if network packets are lost,
    the leader retries AppendEntries RPCs indefinitely (even after it has
    responded to the client) until all followers eventually store all log
    entries." (With one append in flight, lost appends must not stall the
    follower forever: a heartbeat answer gets an empty append through the
    full window, whose answer unblocks it.)"""
    net = Network(3, max_inflight_msgs=max_inflight_msgs)
    net.elect(1)
    net.crash(3)
    for k in range(3):
        net.propose(1, b"x%d" % k)
        net.stabilize()
    net.start(3)
    net.run(3)
    assert net.applied_data(3) == [b"x0", b"x1", b"x2"]


def test_leader_retries_appends_after_lost_packets() -> None:
    """5.3, as above: lost packets."""
    net = Network(3, max_inflight_msgs=2)
    net.elect(1)
    lossy = net.block(lambda m: m.to == 3 and isinstance(m, AppendEntries))
    for k in range(5):
        net.propose(1, b"x%d" % k)
        net.run(1)
    assert net.applied_data(3) == []
    net.unblock(lossy)
    net.run(3)
    assert net.applied_data(3) == [b"x%d" % k for k in range(5)]


def test_follower_refuses_entries_after_an_entry_it_lacks() -> None:
    """5.3: "When sending an AppendEntries RPC, the leader includes the index
    and term of the entry in its log that immediately precedes the new
    entries. If the follower does not find an entry in its log with the same
    index and term, then it refuses the new entries." """
    net = Network(3)
    entry = (Entry(term=Term(2), index=Index(6), data=b"x"),)
    for index, log_term in ((5, 2), (1, 2)):  # beyond its log; another term at index 1
        net.node(2).step(AppendEntries(sender=NodeId(1), to=NodeId(2), term=Term(2),
                                       log_term=Term(log_term), index=Index(index),
                                       entries=entry, commit=Index(1)))
    answers = net.node(2).ready().messages
    assert [(m.index, m.reject) for m in answers if isinstance(m, AppendResponse)] == [
        (5, True), (1, True)]
    assert net.node(2).raft.log.last_index() == 1


FIGURE_7_LEADER = [1, 1, 4, 4, 5, 5, 6, 6, 6]  # indexes 2..10; index 1 is term 1
FIGURE_7_FOLLOWERS = {
    2: [1, 1, 4, 4, 5, 5, 6, 6],           # (a) missing entries
    3: [1, 1, 4],                          # (b) missing entries
    4: [1, 1, 4, 4, 5, 5, 6, 6, 6, 6],     # (c) an extra uncommitted entry
    5: [1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],  # (d) extra entries of term 7
    6: [1, 1, 4, 4, 4, 4],                 # (e) missing and extra entries
    7: [1, 1, 2, 2, 2, 3, 3, 3, 3, 3],     # (f) a leader of terms 2 and 3
}


def figure_7() -> Network:
    storages = {1: log_storage(FIGURE_7_LEADER, range(1, 8), term=7)}
    for node_id, terms in FIGURE_7_FOLLOWERS.items():
        storages[node_id] = log_storage(terms, range(1, 8), term=7)
    return Network(7, storages=storages, pre_vote=False)


def test_figure_7_leader_forces_followers_to_duplicate_its_log() -> None:
    """5.3: "In Raft, the leader handles inconsistencies by forcing the
    followers' logs to duplicate its own. This means that conflicting entries
    in follower logs will be overwritten with entries from the leader's log."
    (Figure 7: the leader of term 8 and followers (a)-(f).) And Leader
    Append-Only (Figure 3): "a leader never overwrites or deletes entries in
    its own log; it only appends new entries." """
    net = figure_7()
    net.elect(1)  # votes from (a), (b), (e), (f): their logs are not more up-to-date
    leader_log = log_terms(net, 1)
    assert leader_log == [1, *FIGURE_7_LEADER, 8]
    net.stabilize()
    assert log_terms(net, 1) == leader_log
    for node_id in range(2, 8):
        assert log_terms(net, node_id) == leader_log, node_id
    net.check_logs()


def test_figure_7_winner_needs_an_up_to_date_log() -> None:
    """5.4.1 on Figure 7: (c) and (d) hold entries the leader lacks, so they
    deny it their votes; the leader wins with the others."""
    net = figure_7()
    net.elect(1)
    granted = {m.sender: m.granted for m in sent(net, VoteResponse, to=1, term=8)}
    assert granted == {2: True, 3: True, 4: False, 5: False, 6: True, 7: True}


def test_next_index_starts_just_after_the_leaders_last_entry() -> None:
    """5.3: "When a leader first comes to power, it initializes all nextIndex
    values to the index just after the last one in its log (11 in Figure 7)." """
    net = figure_7()
    net.campaign(1)
    net.process(1)
    net.deliver_all()
    net.process_all()
    net.deliver_all(lambda m: isinstance(m, VoteResponse))
    assert role(net, 1) == Role.LEADER
    progress = dict(net.node(1).status().progress)
    assert {node_id: p.next for node_id, p in progress.items() if node_id != 1} == dict.fromkeys(
        range(2, 8), 11)


def test_rejections_skip_a_whole_term_at_a_time() -> None:
    """5.3: "when rejecting an AppendEntries request, the follower can include
    the term of the conflicting entry and the first index it stores for that
    term. With this information, the leader can decrement nextIndex to bypass
    all of the conflicting entries in that term; one AppendEntries RPC will be
    required for each term with conflicting entries, rather than one RPC per
    entry." Follower (f) of Figure 7 conflicts in 7 entries of 2 terms."""
    net = figure_7()
    net.elect(1)
    net.stabilize()
    rejections = [m for m in sent(net, AppendResponse, sender=7) if m.reject]
    assert 1 <= len(rejections) <= 2
    assert log_terms(net, 7) == log_terms(net, 1)


def test_duplicated_and_reordered_messages_do_no_harm() -> None:
    """5.5: "Raft RPCs are idempotent, so this causes no harm." Every message
    delivered twice and out of order: the logs agree, each entry is applied
    once."""
    net = Network(3, seed=3)
    net.elect(1)
    for k in range(10):
        net.propose(1, b"x%d" % k)
        net.process(1)
        for _ in range(5):
            net.duplicate()
            net.reorder()
            net.deliver_all()
            net.process_all()
    net.run(3)
    for node_id in (1, 2, 3):
        assert net.applied_data(node_id) == [b"x%d" % k for k in range(10)]
    net.check_logs()


# -- 5.4 Safety --------------------------------------------------------------------------


@pytest.mark.parametrize(("last_index", "last_term", "granted"), [
    (3, 1, False),  # an earlier last term loses even when as long
    (4, 1, False),  # ... or longer
    (2, 2, False),  # the same last term but shorter
    (3, 2, True),   # the same last term and as long
    (4, 2, True),   # the same last term and longer
    (1, 3, True),   # a later last term wins even when shorter
])
def test_voter_denies_a_candidate_with_a_less_up_to_date_log(
        last_index: int, last_term: int, granted: bool) -> None:
    """5.4.1: "the voter denies its vote if its own log is more up-to-date
    than that of the candidate." and "If the logs have last entries with
    different terms, then the log with the later term is more up-to-date. If
    the logs end with the same term, then whichever log is longer is more
    up-to-date." The voter's log ends at index 3, term 2."""
    net = Network(3, storages={2: log_storage([2, 2], [1, 2, 3], term=2)}, pre_vote=False)
    net.node(2).step(vote_request(1, 2, term=3, last_index=last_index, last_term=last_term))
    answers = [m for m in net.node(2).ready().messages if isinstance(m, VoteResponse)]
    assert [m.granted for m in answers] == [granted]


def test_a_candidate_with_a_stale_log_cannot_win() -> None:
    """5.4.1: "A candidate must contact a majority of the cluster in order to
    be elected, which means that every committed entry must be present in at
    least one of those servers." """
    net = Network(3, pre_vote=False)
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"x")
    net.stabilize()
    net.heal()
    net.crash(1)
    for _ in range(5):
        net.campaign(3)
        net.stabilize()
        assert role(net, 3) != Role.LEADER
    assert net.run_until_leader() == 2


FIGURE_8_DATA = b"term-2"  # longer than the message size limit: sent alone


def figure_8_until_c() -> Network:
    """Figure 8 (a)-(c) on five servers; index 3 plays the figure's index 2.

    (a) S1 leads term 2 and appends an entry at index 3 that nobody else gets.
    (b) S1 crashes; S5 leads term 3 with votes from S2-S4 and appends its own
        entry at index 3 (its empty entry), which nobody else gets; S5 crashes.
    (c) S1 restarts, leads term 4 with votes from S2-S4 and replicates its
        term-2 entry to all of them, alone: its term-4 entry never reaches
        a follower holding index 3."""
    net = Network(5, pre_vote=False, check_quorum=False, max_size_per_msg_bytes=1)
    net.elect(1)
    net.isolate(1)
    net.propose(1, FIGURE_8_DATA)
    net.stabilize()
    net.crash(1)
    net.heal()
    net.block(lambda m: isinstance(m, AppendEntries) and m.sender == 5)
    net.elect(5)
    assert log_terms(net, 5) == [1, 2, 3]
    net.crash(5)
    net.unblock()
    net.start(1)

    def term_4_entry_to_holder_of_3(m: Message) -> bool:
        return (isinstance(m, AppendEntries) and any(e.index == 4 for e in m.entries)
                and m.to in net.nodes and net.node(m.to).raft.log.last_index() >= 3)

    net.block(term_4_entry_to_holder_of_3)
    for _ in range(3):
        net.campaign(1)
        net.stabilize()
        if role(net, 1) == Role.LEADER:
            break
    assert net.node(1).status().term == 4
    net.run(2)
    return net


def test_figure_8_no_commit_of_an_earlier_term_by_counting_replicas() -> None:
    """5.4.2: "a leader cannot immediately conclude that an entry from a
    previous term is committed once it is stored on a majority of servers"
    and "Raft never commits log entries from previous terms by counting
    replicas. Only log entries from the leader's current term are committed by
    counting replicas." (Figure 8 (c) then (d): S5 is elected and overwrites
    the entry that was on a majority.)"""
    net = figure_8_until_c()
    for node_id in (1, 2, 3, 4):
        assert net.node(node_id).raft.log.term(Index(3)) == 2
    matches = {i: p.match for i, p in net.node(1).status().progress}
    assert matches == {1: 4, 2: 3, 3: 3, 4: 3, 5: 0}
    assert net.node(1).status().commit == 2  # a majority holds index 3, yet not committed
    # (d) S1 crashes; S5 (last entry of term 3) wins with S2-S4 and overwrites index 3.
    net.crash(1)
    net.unblock()
    net.start(5)
    for _ in range(3):
        net.campaign(5)
        net.stabilize()
        if role(net, 5) == Role.LEADER:
            break
    assert role(net, 5) == Role.LEADER
    net.start(1)
    net.run(3)
    for node_id in (1, 2, 3, 4, 5):
        assert net.node(node_id).raft.log.term(Index(3)) == 3
        assert FIGURE_8_DATA not in net.applied_data(node_id)


def test_figure_8_commit_through_an_entry_of_the_current_term() -> None:
    """5.4.2, Figure 8 (e): "if S1 replicates an entry from its current term on
    a majority of the servers before crashing, as in (e), then this entry is
    committed (S5 cannot win an election). At this point all preceding entries
    in the log are committed as well." """
    net = figure_8_until_c()
    net.unblock()
    net.run(2)
    assert net.node(1).status().commit == 4
    net.crash(1)
    net.start(5)
    for _ in range(3):
        net.campaign(5)
        net.stabilize()
        assert role(net, 5) != Role.LEADER
    net.start(1)
    net.run_until_leader()
    for node_id in (1, 2, 3, 4, 5):
        assert net.applied_data(node_id) == [FIGURE_8_DATA]


# -- proposals, reads, leadership transfer (thesis chapters 3 and 6) ------------------------


def test_follower_forwards_proposals_to_the_leader() -> None:
    """Thesis 6.2: "If a client contacts a follower, the follower ... [passes]
    the request on to the leader" (etcd forwards the proposal itself)."""
    net = Network(3)
    net.elect(1)
    assert net.propose(3, b"via 3")
    net.stabilize()
    for node_id in (1, 2, 3):
        assert net.applied_data(node_id) == [b"via 3"]


def test_read_index_on_a_healthy_leader_completes_at_the_commit_index() -> None:
    """Thesis 6.4: "the leader records its current commit index in a local
    variable readIndex", "sends a new round of heartbeats and waits for their
    acknowledgments from a majority of the cluster", and then may answer once
    "its state machine has advanced at least as far as the readIndex"."""
    net = Network(3)
    net.elect(1)
    net.propose(1, b"x")
    net.stabilize()
    net.node(1).read_index(b"read-1")
    net.process(1)
    assert net.read_states[NodeId(1)] == []  # not before a quorum answered
    heartbeats = [e.message for e in net.wire if isinstance(e.message, Heartbeat)]
    assert {m.context for m in heartbeats} == {b"read-1"}
    net.stabilize()
    assert net.read_states[NodeId(1)] == [ReadState(index=Index(3), context=b"read-1")]


def test_read_index_on_a_leader_cut_off_from_a_quorum_never_completes() -> None:
    """Thesis 6.4: the heartbeat round is what proves that "it hasn't been
    superseded by a newer leader"; a leader that cannot reach a majority never
    gets that proof, so the read never completes (even while it still believes
    it leads)."""
    net = Network(3, check_quorum=False)
    net.elect(1)
    net.isolate(1)
    net.node(1).read_index(b"read-1")
    net.run(30)
    assert role(net, 1) == Role.LEADER
    assert net.read_states[NodeId(1)] == []


def test_read_index_from_a_follower_is_forwarded() -> None:
    """Thesis 6.4: "the follower would issue a request to the leader asking
    for the current readIndex; the leader would execute steps 1-3 above"."""
    net = Network(3)
    net.elect(1)
    net.propose(1, b"x")
    net.stabilize()
    net.node(2).read_index(b"read-2")
    net.stabilize()
    assert net.read_states[NodeId(2)] == [ReadState(index=Index(3), context=b"read-2")]
    assert net.read_states[NodeId(1)] == []


@pytest.mark.parametrize("option", [ReadOnlyOption.SAFE, ReadOnlyOption.LEASE_BASED])
def test_new_leader_serves_reads_only_after_committing_in_its_term(
        option: ReadOnlyOption) -> None:
    """Thesis 6.4, step 1: "If the leader has not yet marked an entry from its
    current term committed, it waits until it has done so." This holds for
    lease-based reads too: before then the commit index may be stale."""
    net = Network(3, pre_vote=False, read_only_option=option)
    net.campaign(1)
    net.process(1)
    net.deliver_all()
    net.process_all()
    net.deliver_all(lambda m: isinstance(m, VoteResponse))
    assert role(net, 1) == Role.LEADER
    assert net.node(1).status().commit == 1
    net.node(1).read_index(b"early")
    net.process(1)
    assert net.read_states[NodeId(1)] == []
    net.stabilize()
    assert net.read_states[NodeId(1)] == [ReadState(index=Index(2), context=b"early")]


def test_lease_based_read_skips_the_heartbeat_round() -> None:
    """Thesis 6.4.1: with a lease, "the leader would use its lease as a
    substitute for the heartbeat round". The lease starts once a quorum has
    acknowledged a heartbeat (one round after the election)."""
    net = Network(3, read_only_option=ReadOnlyOption.LEASE_BASED)
    net.elect(1)
    net.run(1)
    net.isolate(1)
    net.node(1).read_index(b"lease")
    net.process(1)
    assert net.read_states[NodeId(1)] == [ReadState(index=Index(2), context=b"lease")]


def test_leadership_transfer_with_timeout_now() -> None:
    """Thesis 3.10: "the prior leader sends a TimeoutNow request to the target
    server. This request has the same effect as the target server's election
    timer firing: the target server starts a new election (incrementing its
    term and becoming a candidate)." It bypasses pre-vote and the lease."""
    net = Network(3, pre_vote=True, check_quorum=True)
    net.elect(1)
    net.node(1).transfer_leader(NodeId(2))
    net.stabilize()
    assert len(sent(net, TimeoutNow, sender=1, to=2)) == 1
    status = net.node(2).status()
    assert (status.role, status.term) == (Role.LEADER, 3)
    assert [m.transfer for m in sent(net, RequestVote, sender=2)] == [True, True]


def test_leadership_transfer_catches_the_target_up_first() -> None:
    """Thesis 3.10: "The prior leader ... transfers its log entries to the
    target server" before the TimeoutNow; proposals wait meanwhile (etcd drops
    them)."""
    net = Network(3)
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"x")
    net.stabilize()
    net.heal()
    net.node(1).transfer_leader(NodeId(3))
    assert net.node(1).status().lead_transferee == 3
    assert not sent(net, TimeoutNow)
    with pytest.raises(ProposalDropped):
        net.node(1).propose(b"during transfer")
    net.stabilize()
    assert role(net, 3) == Role.LEADER
    assert net.applied_data(3) == [b"x"]


def test_leadership_transfer_that_cannot_finish_is_abandoned() -> None:
    """Thesis 3.10: "If the transfer does not complete within an election
    timeout, the prior leader aborts the transfer and resumes accepting client
    requests." """
    net = Network(3)
    net.elect(1)
    net.crash(3)
    net.node(1).transfer_leader(NodeId(3))
    assert net.node(1).status().lead_transferee == 3
    net.run(net.node(1).raft.config.election_ticks)
    assert net.node(1).status().lead_transferee == 0
    assert role(net, 1) == Role.LEADER
    assert net.propose(1, b"after")


def test_follower_asks_the_leader_for_leadership() -> None:
    """etcd: a follower asked to take over forwards the request to the leader."""
    net = Network(3)
    net.elect(1)
    net.node(3).transfer_leader(NodeId(3))
    net.stabilize()
    assert role(net, 3) == Role.LEADER


# -- pre-vote, check-quorum, lease (thesis 9.6, 6.2, 4.2.3) --------------------------------


def test_pre_vote_partitioned_node_does_not_disrupt_when_it_rejoins() -> None:
    """Thesis 9.6: "the Pre-Vote algorithm ... a candidate only increments its
    term if it first learns from a majority of the cluster that they would be
    willing to grant the candidate their votes", so a server rejoining after a
    partition does not depose the leader."""
    net = Network(3, pre_vote=True, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    net.run(50)
    assert net.node(3).status().term == 2  # many pre-votes, no term bump
    net.heal()
    net.run(5)
    assert [net.node(i).status().term for i in (1, 2, 3)] == [2, 2, 2]
    assert role(net, 1) == Role.LEADER and net.node(3).status().lead == 1


def test_without_pre_vote_a_rejoining_node_disrupts() -> None:
    """The problem pre-vote solves (thesis 9.6): without it, the partitioned
    server's term climbs and its return deposes the leader."""
    net = Network(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    net.run(50)
    assert net.node(3).status().term > 2
    net.heal()
    net.run(1)
    assert net.node(1).status().term > 2  # the old leader had to step down


def test_check_quorum_leader_steps_down_without_a_quorum() -> None:
    """Thesis 6.2: "a leader steps down if an election timeout elapses
    without a successful round of heartbeats to a majority of its cluster"."""
    net = Network(3, check_quorum=True)
    net.elect(1)
    net.run(30)
    assert role(net, 1) == Role.LEADER  # hears its quorum
    net.isolate(1)
    election_ticks = net.node(1).raft.config.election_ticks
    for _ in range(2 * election_ticks):
        net.tick(1)
    assert role(net, 1) == Role.FOLLOWER
    assert net.node(1).status().term == 2


def test_check_quorum_new_leader_cut_off_at_once_steps_down_in_one_timeout() -> None:
    """Thesis 6.2, for a leader that never heard from anyone in its term: it
    counts no follower as active until it answers (etcd's reset), so the
    first check-quorum already deposes it."""
    net = Network(3, pre_vote=False, check_quorum=True)
    net.campaign(1)
    net.process(1)
    net.deliver_all()
    net.process_all()
    net.deliver_all(lambda m: isinstance(m, VoteResponse))
    assert role(net, 1) == Role.LEADER
    net.isolate(1)
    for _ in range(net.node(1).raft.config.election_ticks):
        net.tick(1)
    assert role(net, 1) == Role.FOLLOWER


def test_leader_lease_votes_are_ignored_while_a_leader_is_heard() -> None:
    """Section 6: "servers disregard RequestVote RPCs when they believe a
    current leader exists. Specifically, if a server receives a RequestVote
    RPC within the minimum election timeout of hearing from a current leader,
    it does not update its term or grant its vote." (check-quorum's lease)"""
    net = Network(3, pre_vote=False, check_quorum=True)
    net.elect(1)
    net.node(2).step(vote_request(3, 2, term=5, last_index=100, last_term=2))
    net.process(2)
    assert net.node(2).status().term == 2
    assert not sent(net, VoteResponse, sender=2, to=3)
    net.crash(1)
    for _ in range(net.node(2).raft.config.election_ticks):
        net.node(2).tick()
        if role(net, 2) != Role.FOLLOWER:
            break
    net.node(2).step(vote_request(3, 2, term=5, last_index=100, last_term=2))
    net.process(2)
    assert [m.granted for m in sent(net, VoteResponse, sender=2, to=3)] == [True]


# -- 7 Log compaction ---------------------------------------------------------------------


def test_lagging_follower_catches_up_from_a_snapshot() -> None:
    """Section 7: "the leader must occasionally send snapshots to followers
    that lag behind. This happens when the leader has already discarded the
    next log entry that it needs to send to a follower." """
    net = Network(3)
    net.elect(1)
    net.crash(3)
    for k in range(5):
        net.propose(1, b"x%d" % k)
    net.stabilize()
    assert net.compact(1) and net.compact(2)
    net.start(3)
    net.run(3)
    snapshots = sent(net, InstallSnapshot, sender=1, to=3)
    assert len(snapshots) == 1
    assert net.applied_data(3) == [b"x%d" % k for k in range(5)]
    assert net.storages[NodeId(3)].snapshot().metadata.index == 7
    net.propose(1, b"after")
    net.stabilize()
    assert net.applied_data(3)[-1] == b"after"


def test_lost_snapshot_is_sent_again() -> None:
    """Section 7 (with etcd's report_snapshot): a snapshot lost on the way is
    reported and the leader tries again."""
    net = Network(3)
    net.elect(1)
    net.isolate(3)
    for k in range(3):
        net.propose(1, b"x%d" % k)
    net.stabilize()
    net.compact(1)
    net.heal()
    lossy = net.block(lambda m: isinstance(m, InstallSnapshot))
    net.run(3)
    net.unblock(lossy)
    net.run(5)
    assert len(sent(net, InstallSnapshot, sender=1, to=3)) >= 2
    assert net.applied_data(3) == [b"x0", b"x1", b"x2"]


# -- 6 Cluster membership changes -------------------------------------------------------------


def add_learner(net: Network, leader: int, node_id: int) -> None:
    net.add_node(node_id)
    assert net.propose_conf_change(leader, change(ConfChangeType.ADD_LEARNER, node_id))
    net.stabilize()


def test_learner_replicates_but_is_not_counted() -> None:
    """Section 6: "the new servers join the cluster as non-voting members (the
    leader replicates log entries to them, but they are not considered for
    majorities)." (etcd's learners.) A learner never campaigns."""
    net = Network(3)
    net.elect(1)
    add_learner(net, 1, 4)
    assert net.node(1).status().conf_state == ConfState(
        voters=(NodeId(1), NodeId(2), NodeId(3)), learners=(NodeId(4),))
    net.propose(1, b"x")
    net.stabilize()
    assert net.applied_data(4) == [b"x"]
    net.isolate(2)
    net.isolate(3)
    net.propose(1, b"y")
    net.stabilize()
    assert net.node(4).raft.log.last_term() == 2 and net.applied_data(4) == [b"x"]
    assert net.applied_data(1) == [b"x"]  # leader + learner are not a majority
    for _ in range(50):
        net.tick(4)
    assert role(net, 4) == Role.FOLLOWER


def test_learner_promoted_to_voter() -> None:
    """Section 6: once caught up, the new server becomes a voting member
    (etcd: an ADD_NODE change for a learner promotes it)."""
    net = Network(3)
    net.elect(1)
    add_learner(net, 1, 4)
    assert net.propose_conf_change(1, change(ConfChangeType.ADD_NODE, 4))
    net.stabilize()
    assert net.conf_states[NodeId(4)].voters == (1, 2, 3, 4)
    net.isolate(3)
    net.isolate(2)
    net.propose(1, b"x")
    net.stabilize()
    assert net.applied_data(1) == []  # 2 of 4 voters: no majority
    net.heal()
    net.isolate(3)
    net.run(2)
    assert net.applied_data(1) == [b"x"]  # 1, 2 and 4: a majority of 4
    net.heal()
    net.crash(1)
    assert run_until_leader_among(net, [2, 3, 4]) in (2, 3, 4)


def test_removed_follower_no_longer_counts() -> None:
    """Section 6: after Cnew, the removed server is no longer part of the
    majorities."""
    net = Network(3)
    net.elect(1)
    assert net.propose_conf_change(1, change(ConfChangeType.REMOVE_NODE, 3))
    net.stabilize()
    assert net.conf_states[NodeId(1)].voters == (1, 2)
    net.crash(3)
    net.propose(1, b"x")
    net.stabilize()
    assert net.applied_data(2) == [b"x"]
    net.isolate(2)
    net.propose(1, b"y")
    net.stabilize()
    assert net.applied_data(1) == [b"x"]  # 1 of 2 voters


def test_removed_leader_steps_down() -> None:
    """Section 6: "the leader ... steps down (returns to follower state) once
    it has committed the Cnew log entry." (Chainfire, like etcd, steps down
    when the entry is applied.) The rest elect a leader and go on."""
    net = Network(3)
    net.elect(1)
    assert net.propose_conf_change(1, change(ConfChangeType.REMOVE_NODE, 1))
    net.stabilize()
    assert role(net, 1) == Role.FOLLOWER
    with pytest.raises(ProposalDropped):
        net.node(1).propose(b"x")
    leader = run_until_leader_among(net, [2, 3])
    net.propose(leader, b"y")
    net.stabilize()
    assert net.applied_data(2) == net.applied_data(3) == [b"y"]
    for _ in range(50):
        net.tick(1)
    assert role(net, 1) == Role.FOLLOWER  # not a member: never campaigns


def test_joint_consensus_needs_both_majorities() -> None:
    """Section 6: "Log entries are replicated to all servers in both
    configurations" and "Agreement (for elections and entry commitment)
    requires separate majorities from both the old and new configurations."
    ({1,2,3} -> {1,4,5}, held joint by an explicit transition.)"""
    net = Network(3)
    net.elect(1)
    net.add_node(4)
    net.add_node(5)
    joint = change(ConfChangeType.ADD_NODE, 4, 5, transition=ConfChangeTransition.EXPLICIT)
    joint = ConfChange(changes=(*joint.changes,
                                *change(ConfChangeType.REMOVE_NODE, 2, 3).changes),
                       transition=ConfChangeTransition.EXPLICIT)
    assert net.propose_conf_change(1, joint)
    net.stabilize()
    conf_state = net.node(1).status().conf_state
    assert (conf_state.voters, conf_state.voters_outgoing) == ((1, 4, 5), (1, 2, 3))
    net.run(2)
    assert conf_state.joint and net.node(1).status().conf_state == conf_state  # no auto-leave
    net.isolate(4)
    net.isolate(5)
    net.propose(1, b"x1")
    net.stabilize()
    assert net.applied_data(1) == []  # the old majority alone: not committed
    net.heal()
    net.isolate(2)
    net.isolate(3)
    net.propose(1, b"x2")
    net.stabilize()
    # The new majority alone commits nothing new: x1 commits (the old majority
    # already held it), x2 does not.
    assert net.applied_data(1) == [b"x1"]
    net.heal()
    net.run(2)
    assert net.applied_data(1) == [b"x1", b"x2"]
    for node_id in (2, 3, 4, 5):
        assert net.applied_data(node_id) == [b"x1", b"x2"]  # both configurations hold them
    # An election needs both majorities too: 4 and 5 alone are not enough.
    net.crash(1)
    net.isolate(2)
    net.isolate(3)
    net.campaign(4)
    net.run(20)
    assert role(net, 4) != Role.LEADER and role(net, 5) != Role.LEADER
    net.heal()
    leader = run_until_leader_among(net, [2, 3, 4, 5])
    # Leave the joint configuration explicitly.
    net.run(2)
    assert net.propose_conf_change(leader, ConfChange())
    net.stabilize()
    assert net.node(leader).status().conf_state == ConfState(
        voters=(NodeId(1), NodeId(4), NodeId(5)))


def test_joint_consensus_auto_leave() -> None:
    """Section 6: "Once Cold,new has been committed ... it is now safe for the
    leader to create a log entry describing Cnew". With an automatic
    transition the leader proposes the leave itself once the joint entry is
    applied."""
    net = Network(3)
    net.elect(1)
    net.add_node(4)
    net.add_node(5)
    joint = ConfChange(changes=(*change(ConfChangeType.ADD_NODE, 4, 5).changes,
                                *change(ConfChangeType.REMOVE_NODE, 2).changes))
    assert joint.enters_joint and joint.auto_leave
    assert net.propose_conf_change(1, joint)
    net.stabilize()
    expected = ConfState(voters=(NodeId(1), NodeId(3), NodeId(4), NodeId(5)))
    for node_id in (1, 3, 4, 5):
        assert net.conf_states[NodeId(node_id)] == expected
    net.propose(1, b"x")
    net.stabilize()
    assert net.applied_data(5) == [b"x"]


def test_new_leader_refuses_a_conf_change_until_its_term_is_applied() -> None:
    """The single-server change rule (Ongaro, raft-dev 2015, thesis 4.1 errata):
    "a leader may not append a new configuration entry until it has committed
    an entry from its current term." Also: only one change may be pending."""
    net = Network(3, pre_vote=False)
    net.campaign(1)
    net.process(1)
    net.deliver_all()
    net.process_all()
    net.deliver_all(lambda m: isinstance(m, VoteResponse))
    assert role(net, 1) == Role.LEADER
    with pytest.raises(ProposalDropped):
        net.node(1).propose_conf_change(change(ConfChangeType.ADD_LEARNER, 4))
    net.stabilize()
    net.add_node(4)
    net.node(1).propose_conf_change(change(ConfChangeType.ADD_LEARNER, 4))
    with pytest.raises(ProposalDropped):  # the first is still pending
        net.node(1).propose_conf_change(change(ConfChangeType.ADD_NODE, 4))
    net.stabilize()
    net.node(1).propose_conf_change(change(ConfChangeType.ADD_NODE, 4))
    net.stabilize()
    assert net.conf_states[NodeId(1)].voters == (1, 2, 3, 4)


def test_conf_change_refused_by_the_uncommitted_limit_leaves_no_pending_change() -> None:
    """A conf change refused at the door must not block the next one."""
    net = Network(3, max_uncommitted_entries_bytes=20)
    net.elect(1)
    net.isolate(2)
    net.isolate(3)
    net.propose(1, b"x" * 20)
    with pytest.raises(ProposalDropped):
        net.node(1).propose_conf_change(change(ConfChangeType.ADD_LEARNER, 4))
    net.node(1).check_invariants()
    net.heal()
    net.stabilize()
    net.add_node(4)
    assert net.propose_conf_change(1, change(ConfChangeType.ADD_LEARNER, 4))


def test_leader_leaving_the_configuration_takes_no_more_proposals() -> None:
    """Section 6: a leader that is not part of Cnew "manages a cluster that
    does not include itself" only until Cnew commits, then steps down. While
    its removal is pending it appends nothing more: once it steps down, peers
    that have not learnt Cnew is committed may need its vote, which it would
    deny to any log lacking entries it appended after the change.

    Here voters (1 2) become (2) through a joint config left automatically."""
    net = Network(2, check_quorum=False)
    net.elect(1)
    assert net.propose_conf_change(1, change(ConfChangeType.ADD_LEARNER, 1,
                                             transition=ConfChangeTransition.IMPLICIT))
    net.stabilize()
    status = net.node(1).status()
    assert status.conf_state.voters == (2,) and status.conf_state.learners == (1,)
    assert role(net, 1) == Role.FOLLOWER  # stepped down once the leave applied
    assert net.conf_states[NodeId(2)].voters == (2,)


def test_leader_demoted_by_a_pending_leave_refuses_proposals() -> None:
    """As above, with the leave's commit index lost on the way to node 2."""
    net = Network(2, check_quorum=False)
    net.elect(1)
    joint = change(ConfChangeType.ADD_LEARNER, 1, transition=ConfChangeTransition.IMPLICIT)
    assert net.propose_conf_change(1, joint)
    net.process(1)
    net.deliver_all()
    net.process(2)
    net.deliver_all()
    net.process(1)  # joint config applied on 1; the leave is proposed
    leave_index = net.node(1).raft.log.last_index()
    entry = net.node(1).raft.log.slice(Index(leave_index), Index(leave_index + 1))[0]
    assert entry.conf_change == ConfChange()
    with pytest.raises(ProposalDropped):
        net.node(1).propose(b"after the leave")
    net.block(lambda m: isinstance(m, AppendEntries | Heartbeat) and m.commit >= leave_index)
    net.stabilize()
    assert net.node(1).status().conf_state.learners == (1,)
    assert net.node(2).status().commit < leave_index  # still joint on node 2
    net.unblock()
    leader = run_until_leader_among(net, [2])
    assert net.propose(leader, b"x")
    net.stabilize()
    assert net.applied_data(1) == net.applied_data(2) == [b"x"]


def test_invalid_conf_change_is_refused_when_proposed() -> None:
    """A change that cannot apply (removing the only voter) is refused at
    once, rather than committed and failing on every peer."""
    net = Network(1)
    net.elect(1)
    with pytest.raises(ProposalDropped):
        net.node(1).propose_conf_change(change(ConfChangeType.REMOVE_NODE, 1))
