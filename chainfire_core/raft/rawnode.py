"""RawNode: the synchronous Raft API, and the Ready contract.

Theory of operation
-------------------
A `RawNode` wraps one `Raft` peer. Inputs are method calls: `tick()`,
`step(message)`, `campaign()`, `propose(data)`, `propose_conf_change(change)`,
`read_index(context)`, `transfer_leader(to)`, `report_unreachable(peer)`,
`report_snapshot(peer, ok)`. Nothing is sent, written or applied by the
node itself: all of that comes out of `ready()` as data, and the driver
(sim/ or real/) carries it out in this order:

1. Persist `ready.snapshot` (if any), then `ready.entries`, then
   `ready.hard_state` (if any) to stable storage; fsync when
   `ready.must_sync` (a new term or vote, new entries, or a snapshot).
2. Only then send `ready.messages`: a vote granted, an append acknowledged
   or a term adopted must never reach a peer before it is durable, or a
   crash could make this peer vote twice or forget entries it acknowledged.
3. Apply `ready.snapshot` and then `ready.committed_entries` to the state
   machine, in order (for an entry carrying a ConfChange, call
   `apply_conf_change`); serve `ready.read_states` once applied up to their
   index.
4. Call `advance(ready)`: the node records what was persisted and applied
   and may then produce the next `Ready`.

`ready()` hands each item out once; calling it again before `advance`
returns only what is new since. `has_ready()` says whether there is anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

from chainfire_core.errors import ProposalDropped
from chainfire_core.raft.config import RaftConfig
from chainfire_core.raft.messages import (
    ConfChange,
    ConfState,
    Entry,
    HardState,
    Message,
    Snapshot,
)
from chainfire_core.raft.progress import ProgressState
from chainfire_core.raft.raft import Raft, RandomSource, ReadState, Role, SoftState
from chainfire_core.raft.roles import propose, request_read_index, request_transfer, step
from chainfire_core.raft.storage import Storage
from chainfire_core.types import Index, NodeId, Term


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    """Everything the driver must do now, in the order of duty above."""

    soft_state: SoftState | None
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed_entries: tuple[Entry, ...]
    messages: tuple[Message, ...]
    read_states: tuple[ReadState, ...]
    must_sync: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerStatus:
    match: Index
    next: Index
    state: ProgressState
    recent_active: bool
    is_learner: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    id: NodeId
    term: Term
    vote: NodeId
    commit: Index
    applied: Index
    lead: NodeId
    role: Role
    conf_state: ConfState
    lead_transferee: NodeId
    # Only on the leader: what it knows of each peer.
    progress: tuple[tuple[NodeId, PeerStatus], ...]


class RawNode:
    """One Raft peer behind the Ready contract. See the module docstring."""

    def __init__(self, config: RaftConfig, storage: Storage, rng: RandomSource) -> None:
        self.raft = Raft(config, storage, rng)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()

    # -- inputs ----------------------------------------------------------------

    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (pre-vote first, when enabled)."""
        self.raft.hup(transfer=False)

    def step(self, message: Message) -> None:
        step(self.raft, message)

    def propose(self, data: bytes) -> None:
        """Propose an application entry; raises ProposalDropped if it cannot
        be taken (it may still be lost later, e.g. by a leader change)."""
        propose(self.raft, [Entry(term=Term(0), index=Index(0), data=data)])

    def propose_batch(self, datas: Sequence[bytes]) -> None:
        """Propose several entries at once: one append to the log and one
        append message per follower for all of them (etcd's MsgProp with
        several entries), which is what makes batching pay. All or none:
        ProposalDropped drops the whole batch."""
        if datas:
            propose(self.raft, [Entry(term=Term(0), index=Index(0), data=data) for data in datas])

    def propose_conf_change(self, change: ConfChange) -> None:
        propose(self.raft, [Entry(term=Term(0), index=Index(0), conf_change=change)])

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point; it arrives as a ReadState with
        the same context. Raises ProposalDropped when no leader can be asked."""
        if not context:
            raise ProposalDropped("a read index request needs a non-empty context")
        request_read_index(self.raft, context)

    def transfer_leader(self, transferee: NodeId) -> None:
        request_transfer(self.raft, transferee)

    def report_unreachable(self, peer: NodeId) -> None:
        """The transport failed to reach `peer`: stop pipelining to it."""
        progress = self.raft.tracker.progress.get(peer)
        if self.raft.role == Role.LEADER and progress is not None and (
            progress.state == ProgressState.REPLICATE
        ):
            progress.become_probe()

    def report_snapshot(self, peer: NodeId, *, ok: bool) -> None:
        """The snapshot sent to `peer` arrived (`ok`) or failed: probe again."""
        progress = self.raft.tracker.progress.get(peer)
        if self.raft.role != Role.LEADER or progress is None:
            return
        if progress.state != ProgressState.SNAPSHOT:
            return
        if not ok:
            progress.pending_snapshot = Index(0)
        progress.become_probe()
        # Wait for the next heartbeat response before probing, as etcd does.
        progress.msg_app_flow_paused = True

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Make an applied ConfChange entry take effect; the new ConfState."""
        return self.raft.apply_conf_change(change)

    # -- outputs ---------------------------------------------------------------

    def has_ready(self) -> bool:
        raft = self.raft
        hard, soft = self._prev_hard, self._prev_soft
        # Field by field rather than building the states: this runs once per
        # node per pump round, far more often than ready().
        return bool(
            raft.msgs
            or raft.read_states
            or raft.term != hard.term or raft.vote != hard.vote
            or raft.log.committed != hard.commit
            or raft.lead != soft.lead or raft.role != soft.role
            or raft.log.has_next_unstable_entries()
            or raft.log.has_next_unstable_snapshot()
            or raft.log.has_next_committed_entries(allow_unstable=True)
        )

    def ready(self) -> Ready:
        raft = self.raft
        soft, hard = raft.soft_state(), raft.hard_state()
        entries = raft.log.next_unstable_entries()
        snapshot = raft.log.next_unstable_snapshot()
        committed = raft.log.next_committed_entries(allow_unstable=True)
        ready = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            entries=entries,
            snapshot=snapshot,
            committed_entries=committed,
            messages=tuple(raft.msgs),
            read_states=tuple(raft.read_states),
            # A snapshot is acknowledged in this same Ready: it must be durable.
            must_sync=bool(entries) or snapshot is not None
            or hard.term != self._prev_hard.term or hard.vote != self._prev_hard.vote,
        )
        self._prev_soft, self._prev_hard = soft, hard
        raft.msgs, raft.read_states = [], []
        raft.log.accept_unstable()
        if committed:
            size_bytes = sum(entry.size_bytes for entry in committed)
            raft.log.accept_applying(committed[-1].index, size_bytes, allow_unstable=True)
        return ready

    def advance(self, ready: Ready) -> None:
        """Everything in `ready` has been persisted, sent and applied."""
        raft = self.raft
        if ready.snapshot is not None:
            raft.log.stable_snap_to(ready.snapshot.metadata.index)
        if ready.entries:
            last = ready.entries[-1]
            raft.log.stable_to(last.index, last.term)
        if ready.snapshot is not None:
            raft.log.applied_to(ready.snapshot.metadata.index)
        if ready.committed_entries:
            raft.log.applied_to(ready.committed_entries[-1].index)
            raft.reduce_uncommitted_size(ready.committed_entries)
        self._maybe_auto_leave_joint()

    def _maybe_auto_leave_joint(self) -> None:
        raft = self.raft
        config = raft.tracker.config
        if raft.role != Role.LEADER or not (config.joint and config.auto_leave):
            return
        if raft.pending_conf_index > raft.log.applied:
            return
        # The joint config is in force everywhere it matters: leave it. If
        # the proposal is refused now (a transfer in progress), a later
        # advance tries again.
        with suppress(ProposalDropped):
            propose(raft, [Entry(term=Term(0), index=Index(0), conf_change=ConfChange())])

    # -- inspection ----------------------------------------------------------------

    def status(self) -> Status:
        raft = self.raft
        progress: tuple[tuple[NodeId, PeerStatus], ...] = ()
        if raft.role == Role.LEADER:
            progress = tuple(
                (node_id, PeerStatus(match=p.match, next=p.next, state=p.state,
                                     recent_active=p.recent_active, is_learner=p.is_learner))
                for node_id, p in sorted(raft.tracker.progress.items())
            )
        return Status(
            id=raft.id, term=raft.term, vote=raft.vote, commit=raft.log.committed,
            applied=raft.log.applied, lead=raft.lead, role=raft.role,
            conf_state=raft.tracker.conf_state(), lead_transferee=raft.lead_transferee,
            progress=progress,
        )

    @property
    def leader(self) -> NodeId:
        """The leader this peer knows of, NO_NODE if none."""
        return self.raft.lead

    def check_invariants(self) -> None:
        self.raft.check_invariants()


__all__ = ["PeerStatus", "RawNode", "Ready", "Status"]
