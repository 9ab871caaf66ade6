"""The Raft state machine of one peer: terms, roles, the log and its replication.

Theory of operation
-------------------
`Raft` is the private core under `RawNode` (etcd-io/raft's `raft` struct). It
is driven by three inputs only: `tick()` (time passes), `step(message)` (a
peer's message, or a local request as a method on RawNode that ends up here),
and the application's reports (`applied_to`, conf changes). It answers by
appending to `msgs` (messages to send) and `read_states`, and by changing its
log; RawNode turns those into a `Ready`.

Roles. A follower that hears nothing from a leader for its randomized
election timeout (drawn from `[election, 2 * election)` ticks with the
injected RNG) starts an election: with pre-vote it first asks, without
bumping its term, whether it could win (so a partitioned node does not
disrupt the cluster when it returns); then it becomes candidate in term + 1
and votes for itself. A candidate that wins a quorum becomes leader and
appends an empty entry of its term: only entries of the current term are
committed by counting replicas (the Raft paper's Figure 8), and the empty
entry is what lets the new leader commit the entries of earlier terms.

Check-quorum: a leader that has not heard from a quorum within an election
timeout steps down. With check-quorum, a peer that has heard from its leader
within the election timeout ignores vote requests (the leader lease), unless
the request comes from a leadership transfer.

Replication (per follower, see progress.py): in probe state one append is
sent per heartbeat interval until the follower's log matches; then in
replicate state appends are pipelined up to the inflight limit. A rejection
carries a hint (index and term) so the leader skips a whole term of
mismatched entries at once. A follower whose entries were compacted away
gets the snapshot instead.

Membership: a conf change entry takes effect when applied (the application
calls `apply_conf_change`). At most one may be pending: the leader refuses a
new one until the previous has been applied, and a new leader refuses any
until the entries of its own term have been applied (`pending_conf_index`
starts at its empty entry), which fixes the single-server change bug. Joint
configurations with auto-leave are left automatically once applied. A
leader whose pending change removes or demotes it takes no proposals after
that change and steps down once it is applied: the peers that have not yet
learnt the change is committed may still need its vote, which it would deny
to any candidate lacking an entry it appended after the change.

Reads: ReadIndex (see read_only.py). The leader serves no read before it
has committed an entry of its term, since until then its commit index may
be behind.

Lease reads (ReadOnlyOption.LEASE_BASED) skip the heartbeat round only while
the leader holds a real lease: a quorum of voters (itself included) has
acknowledged heartbeats it sent within the last `config.lease_ticks` of its
own ticks. Each such follower reset its election timer on that heartbeat
and ignores vote requests for `election_ticks` of its own ticks, so no
other leader can be elected before the lease, shortened for the allowed
clock drift, runs out. Every heartbeat carries a context (a pending read's,
or a lease context `b"\x00" + tick`); the leader remembers when it sent each
one and credits an acknowledgement with that send tick. Without a lease the
read takes the ReadIndex path. A leadership transfer bypasses the followers'
vote rule, so once a TimeoutNow is sent the lease is off for the term.

Durability: the caller (RawNode's driver) must persist the hard state and
entries before sending the messages of the same Ready; nothing here sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from chainfire_core.errors import ProposalDropped
from chainfire_core.raft.confchange import Changer, ConfChangeError, restore
from chainfire_core.raft.config import RaftConfig, ReadOnlyOption
from chainfire_core.raft.log import RaftLog
from chainfire_core.raft.messages import (
    NO_NODE,
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfState,
    Entry,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndexResponse,
    RequestVote,
    Snapshot,
    TimeoutNow,
    VoteResponse,
)
from chainfire_core.raft.progress import ProgressState
from chainfire_core.raft.quorum import VoteResult
from chainfire_core.raft.read_only import ReadOnlyQueue
from chainfire_core.raft.storage import LogCompacted, Storage
from chainfire_core.raft.tracker import ProgressMap, ProgressTracker, TrackerConfig
from chainfire_core.types import Index, NodeId, Term

# Lease-only heartbeat contexts: 9 bytes, never a node's 8-byte request id.
_LEASE_CONTEXT_PREFIX = b"\x00"
# The bound on remembered heartbeat contexts (pending reads each add one).
_MAX_HEARTBEAT_CONTEXTS = 8_192


class RandomSource(Protocol):
    """What Raft needs of its injected RNG (a `random.Random` child)."""

    def randrange(self, start: int, stop: int) -> int: ...


class Role(IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadState:
    """A read may be served once the state machine has applied `index`."""

    index: Index
    context: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftState:
    """Volatile state worth telling the application about; never persisted."""

    lead: NodeId
    role: Role


class Raft:
    """One Raft peer's protocol state. See the module docstring."""

    def __init__(self, config: RaftConfig, storage: Storage, rng: RandomSource) -> None:
        self.id = config.id
        self.config = config
        self.rng = rng
        self.log = RaftLog(storage, config.max_committed_size_per_ready_bytes)
        hard_state, conf_state = storage.initial_state()
        self.tracker = ProgressTracker(config.max_inflight_msgs, config.max_inflight_bytes or None)
        self.term = Term(0)
        self.vote = NO_NODE
        self.lead = NO_NODE
        self.role = Role.FOLLOWER
        self.is_learner = False
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_ticks
        self.pending_conf_index = Index(0)
        # An unapplied conf change at this index removes or demotes this
        # leader: it takes no more proposals (see `roles._leader_propose`).
        self.leaving_index = Index(0)
        self.uncommitted_size_bytes = 0
        self.lead_transferee = NO_NODE
        self.read_only = ReadOnlyQueue()
        self.pending_read_index: list[tuple[NodeId, bytes]] = []
        # Lease reads: this peer's ticks so far, when (in those ticks) each
        # heartbeat context was first broadcast this term, and per voter the
        # latest send tick of a heartbeat it acknowledged.
        self.tick_count = 0
        self.heartbeat_sent_tick: dict[bytes, int] = {}
        self.acked_sent_tick: dict[NodeId, int] = {}
        self.timeout_now_sent = False
        self._switch_to_config(*restore(conf_state, tracker=self.tracker,
                                        last_index=self.log.last_index()))
        if hard_state != HardState():
            self._load_hard_state(hard_state)
        if config.applied > 0:
            self.log.applied_to(config.applied)
        self.become_follower(self.term, NO_NODE)

    # -- state ---------------------------------------------------------------

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.log.committed)

    def soft_state(self) -> SoftState:
        return SoftState(lead=self.lead, role=self.role)

    def _load_hard_state(self, state: HardState) -> None:
        assert self.log.committed <= state.commit <= self.log.last_index(), (
            "hard state commit outside the log", state.commit, self.log.last_index())
        self.log.committed = state.commit
        self.term = state.term
        self.vote = state.vote

    def promotable(self) -> bool:
        """Whether this peer may campaign: a voter, not removed, no snapshot pending."""
        progress = self.tracker.progress.get(self.id)
        return (
            progress is not None
            and not progress.is_learner
            and not self.log.has_next_or_in_progress_snapshot()
        )

    def send(self, message: Message) -> None:
        assert message.sender == self.id and message.to != self.id, message
        self.msgs.append(message)

    # -- role changes ------------------------------------------------------------

    def _reset(self, term: Term) -> None:
        if self.term != term:
            self.term = term
            self.vote = NO_NODE
        self.lead = NO_NODE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.tracker.reset_votes()
        last_index = self.log.last_index()
        for node_id, progress in sorted(self.tracker.progress.items()):
            fresh = self.tracker.make_progress(Index(last_index + 1),
                                               is_learner=progress.is_learner)
            # Not heard from in this term yet (etcd): a new leader cut off at
            # once steps down at the first check-quorum.
            fresh.recent_active = False
            if node_id == self.id:
                fresh.match = last_index
            self.tracker.progress[node_id] = fresh
        self.pending_conf_index = Index(0)
        self.leaving_index = Index(0)
        self.uncommitted_size_bytes = 0
        self.read_only.clear()
        self.pending_read_index.clear()
        self.heartbeat_sent_tick.clear()
        self.acked_sent_tick.clear()
        self.timeout_now_sent = False

    def _reset_randomized_election_timeout(self) -> None:
        base = self.config.election_ticks
        self.randomized_election_timeout = base + self.rng.randrange(0, base)

    def become_follower(self, term: Term, lead: NodeId) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.lead = lead

    def become_pre_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader -> pre-candidate"
        # Neither term nor vote changes: a pre-vote disturbs nobody.
        self.tracker.reset_votes()
        self.role = Role.PRE_CANDIDATE
        self.lead = NO_NODE

    def become_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader -> candidate"
        self._reset(Term(self.term + 1))
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        assert self.role == Role.CANDIDATE, f"{self.role.name} -> leader"
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        own = self.tracker.progress[self.id]
        own.become_replicate()
        own.recent_active = True
        self.leaving_index = self._unapplied_self_removal()
        # The empty entry of the new term: committing it commits everything
        # before it, and until it is applied no conf change is accepted.
        self.append_entries([Entry(term=self.term, index=Index(0))])
        # planted bug: single_server_change_no_fix -- skips the guard: the index
        # stays 0 (from _reset) and a change is taken before this term commits.
        if "single_server_change_no_fix" not in self.config.bugs:
            self.pending_conf_index = self.log.last_index()
        self.uncommitted_size_bytes = 0  # the empty entry does not count

    # -- ticks -----------------------------------------------------------------

    def tick(self) -> None:
        self.tick_count += 1
        if self.role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_ticks:
            self.election_elapsed = 0
            if self.config.check_quorum and not self._check_quorum():
                return
            self.abort_leader_transfer()  # a transfer must finish in one election timeout
        if self.role != Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            context = self.read_only.last_pending_context()
            if context is None and self._tracks_lease():
                # Every heartbeat round refreshes the lease.
                context = _LEASE_CONTEXT_PREFIX + self.tick_count.to_bytes(8, "big")
            self.bcast_heartbeat(context or b"")

    def _check_quorum(self) -> bool:
        """Step down unless a quorum was heard from this round; whether we stay."""
        own = self.tracker.progress.get(self.id)
        if own is not None:
            own.recent_active = True
        if not self.tracker.quorum_active():
            self.become_follower(self.term, NO_NODE)
            return False
        self.tracker.reset_recent_active(self.id)
        return True

    # -- elections ---------------------------------------------------------------

    def hup(self, *, transfer: bool) -> None:
        """Start an election (the local MsgHup), if allowed."""
        if self.role == Role.LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_changes():
            return  # the config we would campaign under is not final yet
        if self.config.pre_vote and not transfer:
            self._campaign(pre_vote=True, transfer=False)
        else:
            self._campaign(pre_vote=False, transfer=transfer)

    def _has_unapplied_conf_changes(self) -> bool:
        if self.log.applied >= self.log.committed:
            return False
        lo = Index(max(self.log.applied + 1, self.log.first_index()))
        entries = self.log.slice(lo, Index(self.log.committed + 1))
        return any(entry.conf_change is not None for entry in entries)

    def _campaign(self, *, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self.become_pre_candidate()
            term = Term(self.term + 1)
        else:
            self.become_candidate()
            term = self.term
        if self._poll(self.id, granted=True) == VoteResult.WON:
            self._won_election(pre_vote)  # a single voter wins at once
            return
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for node_id in self.tracker.config.voters.ids():
            if node_id == self.id:
                continue
            self.send(RequestVote(sender=self.id, to=node_id, term=term, last_log_index=last_index,
                                  last_log_term=last_term, pre_vote=pre_vote, transfer=transfer))

    def _poll(self, node_id: NodeId, *, granted: bool) -> VoteResult:
        self.tracker.record_vote(node_id, granted)
        return self.tracker.tally_votes().result

    def _won_election(self, pre_vote: bool) -> None:
        if pre_vote:
            self._campaign(pre_vote=False, transfer=False)
        else:
            self.become_leader()
            self.bcast_append()

    def handle_vote_response(self, message: VoteResponse) -> None:
        result = self._poll(message.sender, granted=message.granted)
        if result == VoteResult.WON:
            self._won_election(self.role == Role.PRE_CANDIDATE)
        elif result == VoteResult.LOST:
            self.become_follower(self.term, NO_NODE)

    def handle_vote_request(self, message: RequestVote) -> None:
        can_vote = (
            self.vote == message.sender
            or (self.vote == NO_NODE and self.lead == NO_NODE)
            or (message.pre_vote and message.term > self.term)
        )
        up_to_date = self.log.is_up_to_date(message.last_log_index, message.last_log_term)
        if can_vote and up_to_date:
            # Answer in the requester's term, so it counts the grant.
            self.send(VoteResponse(sender=self.id, to=message.sender, term=message.term,
                                   granted=True, pre_vote=message.pre_vote))
            if not message.pre_vote:
                self.election_elapsed = 0
                self.vote = message.sender
        else:
            self.send(VoteResponse(sender=self.id, to=message.sender, term=self.term,
                                   granted=False, pre_vote=message.pre_vote))

    # -- the leader's log ----------------------------------------------------------

    def append_entries(self, entries: Sequence[Entry]) -> None:
        """Append proposals at the end of the leader's log (terms and indexes
        assigned here); raises ProposalDropped over the uncommitted limit."""
        size_bytes = sum(entry.size_bytes for entry in entries)
        limit = self.config.max_uncommitted_entries_bytes
        if limit and size_bytes and self.uncommitted_size_bytes + size_bytes > limit:
            raise ProposalDropped("too many uncommitted bytes")
        self.uncommitted_size_bytes += size_bytes
        first = self.log.last_index() + 1
        numbered = [
            Entry(term=self.term, index=Index(first + offset), data=entry.data,
                  conf_change=entry.conf_change)
            for offset, entry in enumerate(entries)
        ]
        last_index = self.log.append(numbered)
        self.tracker.progress[self.id].maybe_update(last_index)
        self.maybe_commit()

    def maybe_commit(self) -> bool:
        """Commit what a quorum holds, if it is of the current term (Figure 8)."""
        if "figure8_commit" in self.config.bugs:
            # planted bug: figure8_commit -- commits whatever term the entry has.
            index = self.tracker.committed()
            term = self.log.term_or_none(index)
            return term is not None and self.log.maybe_commit(index, term)
        return self.log.maybe_commit(self.tracker.committed(), self.term)

    def reduce_uncommitted_size(self, entries: Sequence[Entry]) -> None:
        if self.role == Role.LEADER:
            size_bytes = sum(entry.size_bytes for entry in entries)
            self.uncommitted_size_bytes = max(0, self.uncommitted_size_bytes - size_bytes)

    # -- sending -------------------------------------------------------------------

    def bcast_append(self) -> None:
        for node_id in sorted(self.tracker.progress):
            if node_id != self.id:
                self.send_append(node_id)

    def send_append(self, to: NodeId, *, send_if_empty: bool = True,
                    empty_if_full: bool = False) -> bool:
        """Send `to` what it lacks (entries, or the snapshot); whether anything
        went. An append without entries still carries the commit index; with
        `send_if_empty` False, none is sent. With `empty_if_full`, a peer whose
        inflight window is full still gets an empty append (as etcd does on a
        heartbeat answer): if the appends filling the window were all lost,
        its answer (ack or reject) is what unblocks replication."""
        progress = self.tracker.progress[to]
        throttled = (empty_if_full and progress.state == ProgressState.REPLICATE
                     and progress.inflights.full())
        if progress.is_paused() and not throttled:
            return False
        prev_index = Index(progress.next - 1)
        prev_term = self.log.term_or_none(prev_index)
        try:
            entries = () if throttled else self.log.entries(
                progress.next, self.config.max_size_per_msg_bytes)
        except LogCompacted:
            entries = None
        if prev_term is None or entries is None:
            return self._send_snapshot(to)
        if not entries and not send_if_empty:
            return False
        self.send(AppendEntries(sender=self.id, to=to, term=self.term, log_term=prev_term,
                                index=prev_index, entries=entries, commit=self.log.committed))
        size_bytes = sum(entry.size_bytes for entry in entries)
        progress.update_on_entries_send(len(entries), size_bytes, progress.next)
        return True

    def _send_snapshot(self, to: NodeId) -> bool:
        progress = self.tracker.progress[to]
        if not progress.recent_active:
            return False  # do not ship a snapshot to a peer that may be down
        snapshot = self.log.snapshot()
        assert snapshot.metadata.index > 0, "a follower needs a snapshot but none exists"
        progress.become_snapshot(snapshot.metadata.index)
        self.send(InstallSnapshot(sender=self.id, to=to, term=self.term, snapshot=snapshot))
        return True

    def bcast_heartbeat(self, context: bytes) -> None:
        if context and self._tracks_lease():
            self._record_heartbeat_sent(context)
        for node_id in sorted(self.tracker.progress):
            if node_id == self.id:
                continue
            progress = self.tracker.progress[node_id]
            # Never tell a follower to commit past what it is known to hold.
            commit = Index(min(progress.match, self.log.committed))
            self.send(Heartbeat(sender=self.id, to=node_id, term=self.term, commit=commit,
                                context=context))

    # -- leadership transfer ---------------------------------------------------------

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NO_NODE

    def transfer_leadership(self, transferee: NodeId) -> None:
        """Hand leadership to `transferee` (leader only): catch it up, then TimeoutNow."""
        progress = self.tracker.progress.get(transferee)
        if progress is None or progress.is_learner or transferee == self.id:
            return
        if self.lead_transferee == transferee:
            return
        self.abort_leader_transfer()
        self.lead_transferee = transferee
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        if progress.match == self.log.last_index():
            self.send_timeout_now(transferee)
        else:
            self.send_append(transferee)

    def send_timeout_now(self, to: NodeId) -> None:
        # The transferee's campaign overrides the followers' vote rule that
        # the lease relies on: no more lease reads in this term.
        self.timeout_now_sent = True
        self.send(TimeoutNow(sender=self.id, to=to, term=self.term))

    # -- reads ---------------------------------------------------------------------

    def _tracks_lease(self) -> bool:
        return (self.config.read_only_option == ReadOnlyOption.LEASE_BASED
                and "lease_reads_no_check_quorum" not in self.config.bugs)

    def _record_heartbeat_sent(self, context: bytes) -> None:
        """Remember when `context` was first broadcast (the earliest send is
        the safe one to credit), dropping entries too old to extend a lease."""
        if context in self.heartbeat_sent_tick:
            return
        horizon = self.tick_count - self.config.lease_ticks
        if len(self.heartbeat_sent_tick) >= _MAX_HEARTBEAT_CONTEXTS:
            stale = [ctx for ctx, tick in self.heartbeat_sent_tick.items() if tick < horizon]
            for ctx in stale:
                del self.heartbeat_sent_tick[ctx]
            while len(self.heartbeat_sent_tick) >= _MAX_HEARTBEAT_CONTEXTS:
                del self.heartbeat_sent_tick[next(iter(self.heartbeat_sent_tick))]
        self.heartbeat_sent_tick[context] = self.tick_count

    def lease_valid(self) -> bool:
        """Whether a quorum of voters (this leader included) acknowledged a
        heartbeat sent within the last `lease_ticks` ticks, with no
        leadership transfer started this term."""
        if self.role != Role.LEADER or self.timeout_now_sent:
            return False
        if self.lead_transferee != NO_NODE:
            return False
        horizon = self.tick_count - self.config.lease_ticks
        votes = {node_id: node_id == self.id or self.acked_sent_tick.get(node_id, horizon) > horizon
                 for node_id in self.tracker.config.voters.ids()}
        return self.tracker.config.voters.vote_result(votes) == VoteResult.WON

    def committed_entry_in_current_term(self) -> bool:
        return self.log.term_or_none(self.log.committed) == self.term

    def leader_read_index(self, requester: NodeId, context: bytes) -> None:
        """Serve or queue a ReadIndex request at the leader."""
        if self.tracker.is_singleton():
            self._answer_read(requester, self.log.committed, context)
            return
        if not self.committed_entry_in_current_term():
            # Until then our commit index may lag the previous leader's: even
            # a lease-based read must wait.
            if len(self.pending_read_index) >= self.config.max_pending_read_index:
                raise ProposalDropped("too many pending reads")
            self.pending_read_index.append((requester, context))
            return
        if self.config.read_only_option == ReadOnlyOption.LEASE_BASED:
            if "lease_reads_no_check_quorum" in self.config.bugs:
                # planted bug: lease_reads_no_check_quorum -- etcd's rule: the
                # role alone stands for the lease, whatever the followers said.
                self._answer_read(requester, self.log.committed, context)
                return
            if self.lease_valid():
                self._answer_read(requester, self.log.committed, context)
                return
            # No lease: the ReadIndex round below is always safe.
        if len(self.read_only) >= self.config.max_pending_read_index:
            raise ProposalDropped("too many pending reads")
        if self.read_only.add_request(self.log.committed, context, requester):
            self.read_only.recv_ack(self.id, context)
            self.bcast_heartbeat(context)

    def release_pending_read_index(self) -> None:
        """Once an entry of this term is committed, serve the reads that waited."""
        if not self.committed_entry_in_current_term():
            return
        waiting, self.pending_read_index = self.pending_read_index, []
        for requester, context in waiting:
            self.leader_read_index(requester, context)

    def _answer_read(self, requester: NodeId, index: Index, context: bytes) -> None:
        if requester in (NO_NODE, self.id):
            self.read_states.append(ReadState(index=index, context=context))
        else:
            self.send(ReadIndexResponse(sender=self.id, to=requester, term=self.term,
                                        index=index, context=context))

    def handle_heartbeat_ack(self, message: HeartbeatResponse) -> None:
        if not message.context:
            return
        sent_tick = self.heartbeat_sent_tick.get(message.context)
        if sent_tick is not None and sent_tick > self.acked_sent_tick.get(message.sender, -1):
            self.acked_sent_tick[message.sender] = sent_tick
        acks = self.read_only.recv_ack(message.sender, message.context)
        if acks is None:
            return
        votes = dict.fromkeys(acks, True)
        if self.tracker.config.voters.vote_result(votes) != VoteResult.WON:
            return
        for status in self.read_only.advance(message.context):
            self._answer_read(status.requester, status.index, status.context)

    # -- follower side ---------------------------------------------------------------

    def handle_append_entries(self, message: AppendEntries) -> None:
        if message.index < self.log.committed:
            if "truncate_committed" in self.config.bugs:
                # planted bug: truncate_committed -- a stale or duplicated append
                # cuts our log after its entries, committed ones included.
                self.log.truncate_and_append_uncommitting(message.entries)
            self.send(AppendResponse(sender=self.id, to=message.sender, term=self.term,
                                     index=self.log.committed))
            return
        last_new = self.log.maybe_append(message.index, message.log_term, message.commit,
                                         message.entries)
        if last_new is not None:
            self.send(AppendResponse(sender=self.id, to=message.sender, term=self.term,
                                     index=last_new))
            return
        hint_index = Index(min(message.index, self.log.last_index()))
        hint_index, hint_term = self.log.find_conflict_by_term(hint_index, message.log_term)
        self.send(AppendResponse(sender=self.id, to=message.sender, term=self.term,
                                 index=message.index, reject=True, reject_hint=hint_index,
                                 log_term=hint_term))

    def handle_heartbeat(self, message: Heartbeat) -> None:
        self.log.commit_to(message.commit)
        self.send(HeartbeatResponse(sender=self.id, to=message.sender, term=self.term,
                                    context=message.context))

    def handle_snapshot(self, message: InstallSnapshot) -> None:
        restored = self.restore(message.snapshot)
        index = self.log.last_index() if restored else self.log.committed
        self.send(AppendResponse(sender=self.id, to=message.sender, term=self.term, index=index))

    def restore(self, snapshot: Snapshot) -> bool:
        """Take a leader's snapshot; False if it brings nothing new."""
        meta = snapshot.metadata
        if meta.index <= self.log.committed:
            return False
        if self.role != Role.FOLLOWER:
            self.become_follower(Term(self.term + 1), NO_NODE)  # defensive: etcd does the same
            return False
        members = set(meta.conf_state.voters) | set(meta.conf_state.learners) | set(
            meta.conf_state.voters_outgoing)
        if self.id not in members:
            return False  # a snapshot from a config we are not in: ignore it
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # we hold it all already: fast-forward
            return False
        self.log.restore(snapshot)
        self.tracker = ProgressTracker(self.config.max_inflight_msgs,
                                       self.config.max_inflight_bytes or None)
        self._switch_to_config(*restore(meta.conf_state, tracker=self.tracker,
                                        last_index=self.log.last_index()))
        return True

    # -- membership ------------------------------------------------------------------

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        return self._switch_to_config(*self._next_config(self.tracker, change))

    def _next_config(self, tracker: ProgressTracker,
                     change: ConfChange) -> tuple[TrackerConfig, ProgressMap]:
        changer = Changer(tracker, self.log.last_index())
        # An empty change always leaves the joint config (the leader only
        # accepts it in one), even with a non-AUTO transition.
        if change.leaves_joint:
            return changer.leave_joint()
        return changer.apply(change)

    def removes_self(self, changes: Sequence[ConfChange]) -> bool:
        """Whether applying `changes` in order to the config in force leaves
        this peer no voter (removed, or a learner): a dry run on a copy.
        Raises ConfChangeError if they cannot be applied."""
        scratch = ProgressTracker(self.tracker.max_inflight_msgs, self.tracker.max_inflight_bytes)
        scratch.set_config(self.tracker.config, {
            node_id: progress.clone() for node_id, progress in sorted(self.tracker.progress.items())
        })
        for change in changes:
            scratch.set_config(*self._next_config(scratch, change))
        own = scratch.progress.get(self.id)
        return own is None or own.is_learner

    def _unapplied_self_removal(self) -> Index:
        """For a new leader: the index of the last unapplied conf change if
        the unapplied ones remove or demote it (or cannot be told), else 0.

        A leader that is leaving must append nothing after the change that
        removes it: once it steps down, the peers still under the old config
        may need its vote, which it denies to any log shorter than its own."""
        lo = Index(max(self.log.applied + 1, self.log.first_index()))
        entries = self.log.slice(lo, Index(self.log.last_index() + 1))
        changes = [(entry.index, entry.conf_change) for entry in entries
                   if entry.conf_change is not None]
        if not changes:
            return Index(0)
        try:
            leaving = self.removes_self([change for _, change in changes])
        except ConfChangeError:
            leaving = True
        return changes[-1][0] if leaving else Index(0)

    def _switch_to_config(self, config: TrackerConfig, progress: ProgressMap) -> ConfState:
        self.tracker.set_config(config, progress)
        conf_state = self.tracker.conf_state()
        own = self.tracker.progress.get(self.id)
        self.is_learner = own is not None and own.is_learner
        if (own is None or self.is_learner) and self.role == Role.LEADER:
            # A leader removed or demoted steps down; the rest elect a new one.
            self.become_follower(self.term, NO_NODE)
            return conf_state
        if self.role != Role.LEADER or not conf_state.voters:
            return conf_state
        if self.maybe_commit():
            self.release_pending_read_index()
            self.bcast_append()
        else:
            # Probe the peers that need it (new ones); no empty appends.
            for node_id in sorted(self.tracker.progress):
                if node_id != self.id:
                    self.send_append(node_id, send_if_empty=False)
        if self.lead_transferee not in self.tracker.config.voters.ids():
            self.abort_leader_transfer()
        return conf_state

    def check_invariants(self) -> None:
        self.log.check_invariants()
        self.tracker.check_invariants()
        self.read_only.check_invariants()
        assert self.log.committed <= self.log.last_index()
        if self.role == Role.LEADER:
            assert self.lead == self.id
        if self.role == Role.CANDIDATE:
            assert self.vote == self.id
        if self.role == Role.LEADER:
            assert self.pending_conf_index <= self.log.last_index()
            assert self.leaving_index <= self.log.last_index()


__all__ = ["RandomSource", "Raft", "ReadState", "Role", "SoftState"]
