"""Shared by the transport tests: one Raft message of every kind, and
hypothesis strategies for arbitrary ones."""

from __future__ import annotations

from hypothesis import strategies as st

from chainfire_core.raft.messages import (
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
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
    Snapshot,
    SnapshotMetadata,
    TimeoutNow,
    VoteResponse,
)
from chainfire_core.types import Index, NodeId, Term

A, B = NodeId(1), NodeId(2)


def every_kind(sender: NodeId = A, to: NodeId = B, snapshot_data: bytes = b"snap") -> list[Message]:
    """One message of each of Raft's twelve kinds, from `sender` to `to`."""
    conf = ConfChange(changes=(ConfChangeSingle(type=ConfChangeType.ADD_LEARNER,
                                                node_id=NodeId(4)),),
                      transition=ConfChangeTransition.EXPLICIT, context=b"ctx")
    entries = (Entry(term=Term(3), index=Index(7), data=b"\x00put"),
               Entry(term=Term(3), index=Index(8), conf_change=conf))
    snapshot = Snapshot(
        metadata=SnapshotMetadata(index=Index(6), term=Term(2), conf_state=ConfState(
            voters=(NodeId(1), NodeId(2)), learners=(NodeId(3),))),
        data=snapshot_data)
    common = {"sender": sender, "to": to, "term": Term(3)}
    return [
        AppendEntries(**common, log_term=Term(2), index=Index(6), entries=entries,
                      commit=Index(5)),
        AppendResponse(**common, index=Index(8), reject=True, reject_hint=Index(4),
                       log_term=Term(1)),
        RequestVote(**common, last_log_index=Index(8), last_log_term=Term(3), pre_vote=True,
                    transfer=True),
        VoteResponse(**common, granted=True, pre_vote=True),
        InstallSnapshot(**common, snapshot=snapshot),
        Heartbeat(**common, commit=Index(5), context=b"read-1"),
        HeartbeatResponse(**common, context=b"read-1"),
        TimeoutNow(**common),
        ForwardedProposal(**common, entries=entries[:1]),
        ForwardedReadIndex(**common, context=b"r"),
        ReadIndexResponse(**common, index=Index(9), context=b"r"),
        ForwardedTransfer(**common),
    ]


ids = st.integers(min_value=1, max_value=2**63).map(NodeId)
terms = st.integers(min_value=0, max_value=2**64).map(Term)
indexes = st.integers(min_value=0, max_value=2**64).map(Index)
blobs = st.binary(max_size=64)


@st.composite
def conf_states(draw: st.DrawFn) -> ConfState:
    members = sorted(draw(st.sets(st.integers(min_value=1, max_value=50), max_size=6)))
    cut = draw(st.integers(min_value=0, max_value=len(members)))
    return ConfState(voters=tuple(NodeId(i) for i in members[:cut]),
                     learners=tuple(NodeId(i) for i in members[cut:]),
                     auto_leave=draw(st.booleans()))


conf_changes = st.builds(
    ConfChange,
    changes=st.lists(st.builds(ConfChangeSingle, type=st.sampled_from(ConfChangeType),
                               node_id=ids), max_size=3).map(tuple),
    transition=st.sampled_from(ConfChangeTransition), context=blobs)
entry_tuples = st.lists(st.builds(Entry, term=terms, index=indexes, data=blobs,
                                  conf_change=st.none() | conf_changes),
                        max_size=4).map(tuple)
snapshots = st.builds(Snapshot, metadata=st.builds(SnapshotMetadata, index=indexes,
                                                   term=terms, conf_state=conf_states()),
                      data=blobs)


def messages(sender: NodeId = A, to: NodeId = B) -> st.SearchStrategy[Message]:
    """Arbitrary Raft messages of every kind."""
    c = {"sender": st.just(sender), "to": st.just(to), "term": terms}
    return st.one_of(
        st.builds(AppendEntries, **c, log_term=terms, index=indexes, entries=entry_tuples,
                  commit=indexes),
        st.builds(AppendResponse, **c, index=indexes, reject=st.booleans(),
                  reject_hint=indexes, log_term=terms),
        st.builds(RequestVote, **c, last_log_index=indexes, last_log_term=terms,
                  pre_vote=st.booleans(), transfer=st.booleans()),
        st.builds(VoteResponse, **c, granted=st.booleans(), pre_vote=st.booleans()),
        st.builds(InstallSnapshot, **c, snapshot=snapshots),
        st.builds(Heartbeat, **c, commit=indexes, context=blobs),
        st.builds(HeartbeatResponse, **c, context=blobs),
        st.builds(TimeoutNow, **c),
        st.builds(ForwardedProposal, **c, entries=entry_tuples),
        st.builds(ForwardedReadIndex, **c, context=blobs),
        st.builds(ReadIndexResponse, **c, index=indexes, context=blobs),
        st.builds(ForwardedTransfer, **c),
    )
