"""Message handling: the term rules every peer applies, then one step
function per role (etcd-io/raft's `Step`, `stepLeader`, `stepCandidate`,
`stepFollower`).

Theory of operation
-------------------
`step(raft, message)` first compares terms. A message from a newer term
makes this peer a follower of that term (the sender is its leader if the
message is an append, heartbeat or snapshot), except that: a vote request
reaching a peer that heard from its leader within the election timeout is
ignored when check-quorum is on (the leader lease; transfer campaigns are
exempt); a pre-vote request never changes the term; and a granted pre-vote
response does not either (its term is the one we might campaign in). A
message from an older term is dropped, but a stale leader's append or
heartbeat is answered so that it learns the new term and steps down, and a
stale (pre-)vote request is rejected with our term so the candidate catches
up (the paper's "Reply false if term < currentTerm"; etcd answers fewer
stale messages, which can leave peers with stale configs unable to meet).

Then vote requests are answered by every role alike, and everything else
goes to the role's step function.
"""

from __future__ import annotations

from contextlib import suppress
from typing import assert_never

from chainfire_core.errors import ProposalDropped
from chainfire_core.raft.confchange import ConfChangeError
from chainfire_core.raft.messages import (
    NO_NODE,
    AppendEntries,
    AppendResponse,
    ConfChange,
    Entry,
    ForwardedProposal,
    ForwardedReadIndex,
    ForwardedTransfer,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndexResponse,
    RequestVote,
    TimeoutNow,
    VoteResponse,
)
from chainfire_core.raft.progress import ProgressState
from chainfire_core.raft.raft import Raft, ReadState, Role
from chainfire_core.types import Index, NodeId


def step(raft: Raft, message: Message) -> None:
    """Handle one message from a peer."""
    assert message.to == raft.id, (message, raft.id)
    if message.term > raft.term:
        if not _accept_newer_term(raft, message):
            return
    elif message.term < raft.term:
        _answer_stale(raft, message)
        return
    if isinstance(message, RequestVote):
        raft.handle_vote_request(message)
        return
    match raft.role:
        case Role.LEADER:
            step_leader(raft, message)
        case Role.CANDIDATE | Role.PRE_CANDIDATE:
            step_candidate(raft, message)
        case Role.FOLLOWER:
            step_follower(raft, message)
        case _:
            assert_never(raft.role)


def _accept_newer_term(raft: Raft, message: Message) -> bool:
    """Apply the rules for a message of a newer term; False to ignore it."""
    if isinstance(message, RequestVote):
        in_lease = (
            raft.config.check_quorum
            and raft.lead != NO_NODE
            and raft.election_elapsed < raft.config.election_ticks
        )
        if in_lease and not message.transfer:
            return False
        if message.pre_vote:
            return True  # a pre-vote never changes our term
    if isinstance(message, VoteResponse) and message.pre_vote and message.granted:
        return True
    if isinstance(message, AppendEntries | Heartbeat | InstallSnapshot):
        raft.become_follower(message.term, message.sender)
    else:
        raft.become_follower(message.term, NO_NODE)
    return True


def _answer_stale(raft: Raft, message: Message) -> None:
    if isinstance(message, AppendEntries | Heartbeat):
        # A leader cut off by a partition keeps its old term; tell it ours
        # (Figure 2: "Reply false if term < currentTerm"). etcd answers only
        # with check-quorum or pre-vote, relying otherwise on our vote
        # requests to reach the leader; they do not when our config is stale
        # and leaves the leader out, and then neither side ever moves.
        raft.send(AppendResponse(sender=raft.id, to=message.sender, term=raft.term,
                                 index=Index(0)))
    elif isinstance(message, RequestVote):
        # Rejected with our term (Figure 2), pre-vote or not. etcd ignores a
        # stale real vote, counting on our own campaigns to carry our term;
        # but when our config is stale they may never reach this candidate,
        # and both would then campaign forever, one term apart.
        raft.send(VoteResponse(sender=raft.id, to=message.sender, term=raft.term,
                               granted=False, pre_vote=message.pre_vote))


def step_leader(raft: Raft, message: Message) -> None:
    match message:
        case AppendResponse():
            _leader_append_response(raft, message)
        case HeartbeatResponse():
            _leader_heartbeat_response(raft, message)
        case ForwardedProposal():
            # A dropped forwarded proposal is silent (as in etcd): the client's
            # deadline answers it.
            if message.sender in raft.tracker.progress:
                with suppress(ProposalDropped):
                    propose(raft, list(message.entries))
        case ForwardedReadIndex():
            with suppress(ProposalDropped):
                raft.leader_read_index(message.sender, message.context)
        case ForwardedTransfer():
            raft.transfer_leadership(message.sender)
        case VoteResponse() | ReadIndexResponse() | TimeoutNow():
            pass  # stale or misdirected: a leader has no use for them
        case AppendEntries() | Heartbeat() | InstallSnapshot():
            raise AssertionError(f"two leaders in term {raft.term}: {message}")
        case RequestVote():
            raise AssertionError("vote requests are handled before the role step")
        case _:
            assert_never(message)


def _leader_append_response(raft: Raft, message: AppendResponse) -> None:
    progress = raft.tracker.progress.get(message.sender)
    if progress is None:
        return
    progress.recent_active = True
    if message.reject:
        hint = message.reject_hint
        if message.log_term > 0:
            hint, _ = raft.log.find_conflict_by_term(hint, message.log_term)
        if progress.maybe_decr_to(message.index, hint):
            if progress.state == ProgressState.REPLICATE:
                progress.become_probe()
            raft.send_append(message.sender)
        return
    was_paused = progress.is_paused()
    # An ack at `match` still moves a probed follower back to replicating.
    caught_up_probe = progress.match == message.index and progress.state == ProgressState.PROBE
    if not progress.maybe_update(message.index) and not caught_up_probe:
        return
    if progress.state == ProgressState.PROBE:
        progress.become_replicate()
    elif progress.state == ProgressState.SNAPSHOT and progress.match + 1 >= raft.log.first_index():
        progress.become_probe()
        progress.become_replicate()
    elif progress.state == ProgressState.REPLICATE:
        progress.inflights.free_le(message.index)
    if raft.maybe_commit():
        raft.release_pending_read_index()
        raft.bcast_append()
    elif was_paused:
        raft.send_append(message.sender)
    while raft.send_append(message.sender, send_if_empty=False):
        pass  # stream what the inflight window now allows
    if message.sender == raft.lead_transferee and progress.match == raft.log.last_index():
        raft.send_timeout_now(message.sender)


def _leader_heartbeat_response(raft: Raft, message: HeartbeatResponse) -> None:
    progress = raft.tracker.progress.get(message.sender)
    if progress is None:
        return
    progress.recent_active = True
    progress.msg_app_flow_paused = False
    if progress.match < raft.log.last_index() or progress.state == ProgressState.PROBE:
        # Even with a full inflight window: the appends filling it may all
        # have been lost.
        raft.send_append(message.sender, empty_if_full=True)
    raft.handle_heartbeat_ack(message)


def step_candidate(raft: Raft, message: Message) -> None:
    match message:
        case VoteResponse():
            if message.pre_vote == (raft.role == Role.PRE_CANDIDATE):
                raft.handle_vote_response(message)
        case AppendEntries():
            raft.become_follower(message.term, message.sender)
            raft.handle_append_entries(message)
        case Heartbeat():
            raft.become_follower(message.term, message.sender)
            raft.handle_heartbeat(message)
        case InstallSnapshot():
            raft.become_follower(message.term, message.sender)
            raft.handle_snapshot(message)
        case (
            AppendResponse() | HeartbeatResponse() | ForwardedProposal() | ForwardedReadIndex()
            | ForwardedTransfer() | ReadIndexResponse() | TimeoutNow()
        ):
            pass  # nothing a candidate can act on
        case RequestVote():
            raise AssertionError("vote requests are handled before the role step")
        case _:
            assert_never(message)


def step_follower(raft: Raft, message: Message) -> None:
    match message:
        case AppendEntries():
            raft.election_elapsed = 0
            raft.lead = message.sender
            raft.handle_append_entries(message)
        case Heartbeat():
            raft.election_elapsed = 0
            raft.lead = message.sender
            raft.handle_heartbeat(message)
        case InstallSnapshot():
            raft.election_elapsed = 0
            raft.lead = message.sender
            raft.handle_snapshot(message)
        case TimeoutNow():
            raft.hup(transfer=True)
        case ReadIndexResponse():
            raft.read_states.append(ReadState(index=message.index, context=message.context))
        case (
            AppendResponse() | HeartbeatResponse() | VoteResponse() | ForwardedProposal()
            | ForwardedReadIndex() | ForwardedTransfer()
        ):
            pass  # stale (from our days as leader or candidate) or misdirected
        case RequestVote():
            raise AssertionError("vote requests are handled before the role step")
        case _:
            assert_never(message)


def propose(raft: Raft, entries: list[Entry]) -> None:
    """Take proposals: append at the leader, forward from a follower, or
    raise ProposalDropped."""
    match raft.role:
        case Role.LEADER:
            _leader_propose(raft, entries)
        case Role.FOLLOWER:
            if raft.lead == NO_NODE:
                raise ProposalDropped("no leader")
            if raft.config.disable_proposal_forwarding:
                raise ProposalDropped("proposal forwarding is disabled")
            raft.send(ForwardedProposal(sender=raft.id, to=raft.lead, term=raft.term,
                                        entries=tuple(entries)))
        case Role.CANDIDATE | Role.PRE_CANDIDATE:
            raise ProposalDropped("election in progress")
        case _:
            assert_never(raft.role)


def _leader_propose(raft: Raft, entries: list[Entry]) -> None:
    if raft.id not in raft.tracker.progress:
        raise ProposalDropped("this node was removed from the cluster")
    if raft.lead_transferee != NO_NODE:
        raise ProposalDropped("leadership transfer in progress")
    if raft.leaving_index > raft.log.applied:
        raise ProposalDropped("this leader is leaving the configuration")
    pending_conf_index, leaving_index = raft.pending_conf_index, raft.leaving_index
    for position, entry in enumerate(entries):
        change = entry.conf_change
        if change is None:
            continue
        # Every empty change asks to leave the joint config, whatever its
        # transition (as in etcd); `Raft.apply_conf_change` applies it so.
        refusal = _conf_change_refusal(raft, change.leaves_joint, pending_conf_index)
        if refusal:
            raise ProposalDropped(refusal)
        pending_conf_index = Index(raft.log.last_index() + position + 1)
        if _removes_self(raft, change):
            if position != len(entries) - 1:
                raise ProposalDropped("a change removing the leader must come last")
            leaving_index = pending_conf_index
    raft.append_entries(entries)  # may raise ProposalDropped: then nothing is pending
    raft.pending_conf_index, raft.leaving_index = pending_conf_index, leaving_index
    raft.bcast_append()


def _removes_self(raft: Raft, change: ConfChange) -> bool:
    """Whether `change` demotes or removes the leader; an invalid change
    (say, one removing every voter) is refused here rather than failing on
    every peer when applied."""
    try:
        return raft.removes_self([change])
    except ConfChangeError as error:
        raise ProposalDropped(f"invalid conf change: {error}") from error


def _conf_change_refusal(raft: Raft, leaves_joint: bool, pending_conf_index: Index) -> str:
    if pending_conf_index > raft.log.applied:
        return "a membership change is already pending (or this leader has not applied its term)"
    joint = raft.tracker.config.joint
    if joint and not leaves_joint:
        return "must leave the joint configuration first"
    if not joint and leaves_joint:
        return "not in a joint configuration"
    return ""


def request_read_index(raft: Raft, context: bytes) -> None:
    """A local ReadIndex request; the answer arrives as a ReadState."""
    match raft.role:
        case Role.LEADER:
            raft.leader_read_index(NO_NODE, context)
        case Role.FOLLOWER:
            if raft.lead == NO_NODE:
                raise ProposalDropped("no leader to confirm the read")
            raft.send(ForwardedReadIndex(sender=raft.id, to=raft.lead, term=raft.term,
                                         context=context))
        case Role.CANDIDATE | Role.PRE_CANDIDATE:
            raise ProposalDropped("election in progress")
        case _:
            assert_never(raft.role)


def request_transfer(raft: Raft, transferee: NodeId) -> None:
    """Ask for leadership to move to `transferee`: done by the leader, passed
    on by a follower that knows one, ignored otherwise."""
    if raft.role == Role.LEADER:
        raft.transfer_leadership(transferee)
    elif raft.lead != NO_NODE and transferee == raft.id:
        raft.send(ForwardedTransfer(sender=raft.id, to=raft.lead, term=raft.term))
