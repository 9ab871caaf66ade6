"""The safety monitor's vote rules (one vote per server and term, terms never
go back), read off the messages the network sends; and the planted bug
`unpersisted_vote` caught by them at a fixed seed."""

from __future__ import annotations

import dataclasses

from chainfire_core.raft.messages import (
    AppendResponse,
    Heartbeat,
    Message,
    RequestVote,
    VoteResponse,
)
from chainfire_core.types import Index, NodeId, Term
from sim.monitor import SafetyMonitor
from sim.options import RunOptions, parse_faults
from sim.run import simulate
from sim.trace import Trace
from sim.world import World


def _grant(voter: int, candidate: int, term: int, *, pre_vote: bool = False) -> VoteResponse:
    return VoteResponse(sender=NodeId(voter), to=NodeId(candidate), term=Term(term),
                        granted=True, pre_vote=pre_vote)


def _request(candidate: int, to: int, term: int, *, pre_vote: bool = False) -> RequestVote:
    return RequestVote(sender=NodeId(candidate), to=NodeId(to), term=Term(term),
                       last_log_index=Index(1), last_log_term=Term(1), pre_vote=pre_vote)


def _monitor(*messages: Message) -> SafetyMonitor:
    monitor = SafetyMonitor()
    for at, message in enumerate(messages):
        monitor.message_sent(message, float(at))
    return monitor


# -- vote safety -----------------------------------------------------------------------


def test_a_second_vote_in_one_term_after_a_restart_is_a_violation() -> None:
    # Node 1 grants node 2 in term 3, forgets it in a crash, then campaigns in term 3.
    monitor = _monitor(_grant(1, 2, 3), _request(1, 2, 3), _request(1, 3, 3))
    assert len(monitor.violations) == 1  # reported once, not per message
    assert monitor.violations[0].startswith(
        "vote safety: node 1 voted for 2 and then for 1 in term 3")


def test_granting_two_candidates_one_term_is_a_violation() -> None:
    monitor = _monitor(_request(2, 1, 4), _grant(1, 2, 4), _grant(1, 3, 4))
    assert [v.split(" (")[0] for v in monitor.violations] == [
        "vote safety: node 1 voted for 2 and then for 3 in term 4"]


def test_one_vote_per_term_and_repeated_grants_are_fine() -> None:
    monitor = _monitor(
        _grant(1, 2, 3), _grant(1, 2, 3),          # a duplicated request granted again
        _request(1, 2, 4), _request(1, 3, 4),      # its own campaign, to every peer
        _grant(1, 3, 5),                           # a new term, a new vote
        _grant(2, 3, 5), _grant(3, 3, 5))          # other voters of that term
    assert monitor.violations == []
    assert monitor.votes[(NodeId(1), Term(3))] == NodeId(2)


def test_pre_votes_and_refusals_are_no_votes() -> None:
    refused = VoteResponse(sender=NodeId(1), to=NodeId(3), term=Term(3), granted=False)
    monitor = _monitor(_grant(1, 2, 3), _grant(1, 3, 3, pre_vote=True),
                       _request(1, 2, 3, pre_vote=True), refused)
    assert monitor.violations == []


# -- term monotonicity -------------------------------------------------------------------


def test_a_term_that_goes_back_is_a_violation() -> None:
    monitor = _monitor(_request(1, 2, 7),
                       AppendResponse(sender=NodeId(1), to=NodeId(2), term=Term(6), index=Index(3)),
                       AppendResponse(sender=NodeId(1), to=NodeId(2), term=Term(5), index=Index(3)))
    assert len(monitor.violations) == 1
    assert monitor.violations[0].startswith("term monotonicity: node 1 sent term 6 after term 7")


def test_a_pre_vote_s_future_term_does_not_count() -> None:
    monitor = _monitor(_request(1, 2, 8, pre_vote=True), _grant(1, 3, 9, pre_vote=True),
                       Heartbeat(sender=NodeId(1), to=NodeId(2), term=Term(7), commit=0),
                       Heartbeat(sender=NodeId(1), to=NodeId(2), term=Term(7), commit=0))
    assert monitor.violations == []


def test_the_network_shows_a_ready_s_messages_in_the_order_they_were_made() -> None:
    # Packets regroup messages by peer; a Ready that answers a new leader
    # (term 2) after heartbeats of its own old term must not look like a
    # term going back.
    world = World(RunOptions(seed=1, nodes=3, full_trace=False), Trace(full=False))
    seen: list[Message] = []
    world.network.on_send = lambda message, _now: seen.append(message)
    ready = (Heartbeat(sender=NodeId(3), to=NodeId(1), term=Term(1), commit=0),
             AppendResponse(sender=NodeId(3), to=NodeId(1), term=Term(2), index=Index(2)),
             Heartbeat(sender=NodeId(3), to=NodeId(2), term=Term(1), commit=0))
    world.network.send_all(ready)
    assert tuple(seen) == ready


# -- the planted bug ----------------------------------------------------------------------

def test_unpersisted_vote_is_caught_and_the_same_seed_passes_without_it() -> None:
    # Pre-vote off (drawn so for this seed): node 1, cut off, campaigns in
    # term 2; a crash loses that term before the lazy flush; restarted in
    # term 1, it then grants node 2's request for term 2.
    options = RunOptions(seed=424, nodes=3, duration_ms=2000, clients=4, think_ms=500.0,
                         faults=parse_faults("partition,crash"), full_trace=False)
    with_bug = simulate(dataclasses.replace(options, bugs=("unpersisted_vote",)))
    assert with_bug.failed_checks == ["invariant"]
    messages = [m for c in with_bug.checks if c.name == "invariant" for m in c.messages]
    assert any(m.startswith("vote safety: node 1 voted for 1 and then for 2 in term 2")
               for m in messages), messages
    assert simulate(options).ok
