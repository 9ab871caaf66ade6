"""Raft's safety properties, watched from outside while the run goes on.

- Election safety: at most one leader per term.
- State machine safety: no two nodes apply different entries at one index
  (a restarted node re-applying its log must apply the same entries again).
- Vote safety: a server votes for at most one candidate per term, across
  restarts (Raft's Figure 2 keeps votedFor on stable storage for exactly
  this). Votes are read off the messages that cast them as they are sent
  (`message_sent`): a candidate's RequestVote is its vote for itself, a
  granted VoteResponse a vote for the candidate; pre-votes promise nothing.
  Granting the same candidate again (a duplicated request) is no new vote.
- Term monotonicity: a server's term never goes back, across restarts
  (currentTerm is on stable storage too). Every message but a pre-vote
  carries its sender's current term, so a server that sends term T and,
  later, a lower term has forgotten T: it is acting again in a term it had
  left (where it may already have voted, or accepted a leader).

A violation is recorded with the simulated time and both witnesses; the run
reports it as an `invariant` failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from chainfire_core.raft.messages import Entry, Message, RequestVote, VoteResponse
from chainfire_core.types import Index, NodeId, Term


class SafetyMonitor:
    def __init__(self) -> None:
        self.leaders: dict[int, NodeId] = {}
        self.entries: dict[Index, tuple[NodeId, Entry]] = {}
        # (voter, term) -> the candidate it voted for; kept across the voter's restarts.
        self.votes: dict[tuple[NodeId, Term], NodeId] = {}
        self._double_votes: set[tuple[NodeId, Term]] = set()  # reported once each
        # server -> the highest term it has sent (pre-votes aside).
        self.terms: dict[NodeId, Term] = {}
        self._regressed: set[NodeId] = set()  # reported once each
        self.violations: list[str] = []

    def leader(self, term: int, node: NodeId, now_ms: float) -> None:
        known = self.leaders.setdefault(term, node)
        if known != node:
            self.violations.append(f"election safety: nodes {known} and {node} both led "
                                   f"term {term} (t={now_ms:.3f}ms)")

    def applied(self, node: NodeId, entries: Sequence[Entry], now_ms: float) -> None:
        for entry in entries:
            first = self.entries.get(entry.index)
            if first is None:
                self.entries[entry.index] = (node, entry)
            elif first[1] != entry:
                self.violations.append(
                    f"state machine safety: index {entry.index} applied as term "
                    f"{first[1].term} on node {first[0]} but term {entry.term} on node {node} "
                    f"(t={now_ms:.3f}ms)")

    def message_sent(self, message: Message, now_ms: float) -> None:
        """Every message a node sends, as it leaves (the network calls this)."""
        if isinstance(message, RequestVote | VoteResponse) and message.pre_vote:
            return  # a pre-vote asks about a future term and promises nothing
        self._term_sent(message.sender, message.term, now_ms)
        match message:
            case RequestVote():
                self.voted(message.sender, message.term, message.sender, now_ms)
            case VoteResponse(granted=True):
                self.voted(message.sender, message.term, message.to, now_ms)
            case _:
                pass

    def voted(self, voter: NodeId, term: Term, candidate: NodeId, now_ms: float) -> None:
        key = (voter, term)
        first = self.votes.setdefault(key, candidate)
        if first != candidate and key not in self._double_votes:
            self._double_votes.add(key)
            self.violations.append(f"vote safety: node {voter} voted for {first} and then for "
                                   f"{candidate} in term {term} (t={now_ms:.3f}ms)")

    def _term_sent(self, node: NodeId, term: Term, now_ms: float) -> None:
        highest = self.terms.get(node, Term(0))
        if term >= highest:
            self.terms[node] = term
        elif node not in self._regressed:
            self._regressed.add(node)
            self.violations.append(f"term monotonicity: node {node} sent term {term} after "
                                   f"term {highest} (t={now_ms:.3f}ms)")


__all__ = ["SafetyMonitor"]
