"""What a leader knows about one follower's log: the Progress of a peer.

Theory of operation
-------------------
The leader keeps one `Progress` per peer (itself included). `match` is the
highest index known to be in the peer's log; `next` is the index of the next
entry to send. Always `match < next`.

A peer is in one of three states (the design of etcd-io/raft's
`tracker/progress.go`):

- PROBE: the leader does not know where the logs agree. It sends one append
  at `next` and then pauses (`msg_app_flow_paused`) until the peer answers
  or a heartbeat response unpauses it. A rejection moves `next` down
  (`maybe_decr_to`); an acceptance moves `match` up (`maybe_update`), after
  which the leader switches to REPLICATE.
- REPLICATE: the logs agree up to `match`. The leader streams appends
  optimistically, advancing `next` as it sends (`sent_entries`) and
  recording each append in the bounded `inflights` ring; it pauses only
  while the ring is full. A rejection sends the peer back to PROBE.
- SNAPSHOT: the entries the peer needs are compacted away, so a snapshot at
  `pending_snapshot` is on its way. No appends are sent until the peer acks
  the snapshot (or the send fails), after which it goes back to PROBE.

Every state change goes through `_reset_state`, which clears the pause
flag, the pending snapshot and the inflights ring, so no state leaks into
the next one. `msg_app_flow_paused` only matters in PROBE (etcd's older
`ProbeSent`); in REPLICATE the pause is `inflights.full()`, in SNAPSHOT the
peer is always paused.

`recent_active` is set by the leader whenever the peer is heard from and
cleared at every check-quorum interval (see `ProgressTracker.quorum_active`).
`is_learner` marks a non-voting member; it is owned by the conf changer.

`maybe_decr_to` ignores stale rejections: in REPLICATE a rejection of an
index at or below `match` (the peer already has it), in PROBE/SNAPSHOT a
rejection of anything but the last probe (`next - 1`). In REPLICATE it only
moves `next` back to `match + 1`; the caller then calls `become_probe()`,
as etcd's leader does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from chainfire_core.raft.inflights import Inflights
from chainfire_core.types import Index


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2

    def __str__(self) -> str:
        return _STATE_NAMES[self]


_STATE_NAMES = {
    ProgressState.PROBE: "StateProbe",
    ProgressState.REPLICATE: "StateReplicate",
    ProgressState.SNAPSHOT: "StateSnapshot",
}


@dataclass(slots=True, kw_only=True)
class Progress:
    """One peer's replication state, as seen by the leader. Mutable."""

    next: Index
    inflights: Inflights
    match: Index = Index(0)  # noqa: RUF009  (NewType call is free)
    state: ProgressState = ProgressState.PROBE
    pending_snapshot: Index = Index(0)  # noqa: RUF009
    recent_active: bool = False
    msg_app_flow_paused: bool = False
    is_learner: bool = False

    def __post_init__(self) -> None:
        self.check_invariants()

    # -- state transitions ------------------------------------------------------

    def become_probe(self) -> None:
        """Go to PROBE. Coming from SNAPSHOT, probe just past the snapshot
        (the peer most likely has it by now); else just past `match`."""
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = Index(max(self.match + 1, pending + 1))
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = Index(self.match + 1)

    def become_replicate(self) -> None:
        """Go to REPLICATE, streaming from just past `match`."""
        self._reset_state(ProgressState.REPLICATE)
        self.next = Index(self.match + 1)

    def become_snapshot(self, snapshot_index: Index) -> None:
        """Go to SNAPSHOT: a snapshot at `snapshot_index` is being sent."""
        assert snapshot_index >= self.match, (snapshot_index, self.match)
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index
        self.next = Index(snapshot_index + 1)

    def _reset_state(self, state: ProgressState) -> None:
        self.msg_app_flow_paused = False
        self.pending_snapshot = Index(0)
        self.state = state
        self.inflights.reset()

    # -- sending ----------------------------------------------------------------

    def sent_entries(self, entries_count: int, size_bytes: int) -> None:
        """An append of `entries_count` entries starting at `next` was sent.
        REPLICATE: advance `next` and record the append in flight. PROBE: a
        non-empty append pauses the peer until it answers."""
        assert entries_count >= 0 and size_bytes >= 0, (entries_count, size_bytes)
        match self.state:
            case ProgressState.REPLICATE:
                if entries_count > 0:
                    self.next = Index(self.next + entries_count)
                    self.inflights.add(Index(self.next - 1), size_bytes)
            case ProgressState.PROBE:
                if entries_count > 0:
                    self.msg_app_flow_paused = True
            case ProgressState.SNAPSHOT:
                raise AssertionError("sending entries to a peer in StateSnapshot")

    def update_on_entries_send(self, entries_count: int, size_bytes: int,
                               next_index: Index) -> None:
        """etcd's older spelling of `sent_entries`; `next_index` is the first
        index sent, which must be `next`."""
        assert next_index == self.next, (next_index, self.next)
        self.sent_entries(entries_count, size_bytes)

    def optimistic_update(self, last_sent: Index) -> None:
        """Assume everything up to `last_sent` will be accepted."""
        assert last_sent >= self.match, (last_sent, self.match)
        self.next = Index(last_sent + 1)

    # -- answers ----------------------------------------------------------------

    def maybe_update(self, acked: Index) -> bool:
        """The peer acked `acked`. Returns False for a stale ack (at or below
        `match`); else raises `match`, keeps `next` past it and unpauses."""
        if acked <= self.match:
            return False
        self.match = acked
        self.next = Index(max(self.next, acked + 1))
        self.msg_app_flow_paused = False
        return True

    def maybe_decr_to(self, rejected: Index, match_hint: Index) -> bool:
        """The peer rejected the append after `rejected`, hinting that its
        log may agree up to `match_hint`. Returns False if the rejection is
        stale; else moves `next` down (never to or below `match`)."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = Index(self.match + 1)
            return True
        if self.next - 1 != rejected:
            return False
        self.next = Index(max(min(rejected, match_hint + 1), self.match + 1))
        self.msg_app_flow_paused = False
        return True

    def is_paused(self) -> bool:
        """True when the leader must not send appends to this peer now."""
        match self.state:
            case ProgressState.PROBE:
                return self.msg_app_flow_paused
            case ProgressState.REPLICATE:
                return self.inflights.full()
            case ProgressState.SNAPSHOT:
                return True

    # -- bookkeeping ------------------------------------------------------------

    def clone(self) -> Progress:
        """A deep copy (the inflights ring is copied too)."""
        return Progress(
            next=self.next, inflights=self.inflights.clone(), match=self.match,
            state=self.state, pending_snapshot=self.pending_snapshot,
            recent_active=self.recent_active, msg_app_flow_paused=self.msg_app_flow_paused,
            is_learner=self.is_learner)

    def __str__(self) -> str:
        """etcd's rendering, for datadriven output."""
        text = f"{self.state} match={self.match} next={self.next}"
        if self.is_learner:
            text += " learner"
        if self.is_paused():
            text += " paused"
        if self.pending_snapshot > 0:
            text += f" pendingSnap={self.pending_snapshot}"
        if not self.recent_active:
            text += " inactive"
        if self.inflights.count > 0:
            text += f" inflight={self.inflights.count}"
            if self.inflights.full():
                text += "[full]"
        return text

    def check_invariants(self) -> None:
        assert 0 <= self.match < self.next, (self.match, self.next)
        assert self.pending_snapshot >= 0, self.pending_snapshot
        if self.state != ProgressState.SNAPSHOT:
            assert self.pending_snapshot == 0, (self.state, self.pending_snapshot)
        if self.state != ProgressState.REPLICATE:
            assert self.inflights.count == 0, (self.state, self.inflights)
        if self.state != ProgressState.PROBE:
            assert not self.msg_app_flow_paused, self.state
        self.inflights.check_invariants()


__all__ = ["Progress", "ProgressState"]
