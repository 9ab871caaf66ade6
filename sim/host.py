"""One simulated server: a `ChainfireNode`, its disk and its clock, driven by
the Ready contract.

Theory of operation
-------------------
`kick()` takes one `ready()` at a time: its snapshot, entries and hard state
go to the disk (`SimDisk.write`), and only after the drawn write+fsync delay
(`_persisted`) does the host sync them, check that every outgoing message
depends only on durable state (`_assert_durable`: an acknowledged append's
entries, a granted vote, the term it carries), send the messages, hand the
client answers back, and call `advance`, which applies the committed
entries. Then the next `ready()`. A Ready with nothing to persist goes
straight to sending.

Time: the host ticks its node every `tick_ms / rate` simulated ms, `rate`
being the node's clock rate (drift, and clock faults from the nemesis).

Faults: `crash()` drops the process (every unsynced disk write is lost, the
in-flight Ready is abandoned: an `epoch` counter makes late callbacks of the
dead incarnation no-ops), `restart()` rebuilds the node from what the disk
recovers (a corrupt log keeps it down: `failed`), `pause()` freezes it
(messages queue in its inbox, ticks stop, an in-flight Ready waits) and
`resume()` lets it wake up with stale state and process the backlog.

Watches: a client opens a watch on this node's watchable store; after every
advance the host polls the store and routes each response to its stream. A
crash ends every stream on the node (the client resumes elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import simpy

from chainfire_core.errors import ChainfireError
from chainfire_core.mvcc.watch_messages import WatchCreateRequest, WatchResponse
from chainfire_core.node import ChainfireNode, NodeConfig, NodeReady
from chainfire_core.node_messages import ClientRequest, ClientResponse, ReadConsistency
from chainfire_core.raft.config import RaftConfig, ReadOnlyOption
from chainfire_core.raft.messages import (
    AppendResponse,
    ConfState,
    Message,
    RequestVote,
    Snapshot,
    SnapshotMetadata,
    VoteResponse,
)
from chainfire_core.raft.raft import Role
from chainfire_core.raft.rawnode import Ready
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.types import Index, NodeId, Term, WatchId
from sim.disk import CorruptLog, DiskOptions, SimDisk

if TYPE_CHECKING:
    from sim.world import World

ROLE_NAMES = {Role.FOLLOWER: "follower", Role.CANDIDATE: "candidate", Role.LEADER: "leader",
              Role.PRE_CANDIDATE: "pre_candidate"}
# How often (in ticks) each node's invariants are checked while it runs.
INVARIANT_EVERY_TICKS = 5
WATCH_POLL_RESPONSES = 64
LEASE_CHECKPOINT_TICKS = 5
# How late the planted fsync bugs flush what they acknowledged early.
LAZY_FSYNC_MS = 1000.0

Reply = Callable[[ClientResponse], None]
StreamSink = Callable[[WatchResponse | None], None]  # None: the stream broke


@dataclass(slots=True)
class _Stream:
    sink: StreamSink


class NodeHost:
    def __init__(self, world: World, node_id: NodeId, storage: MemoryStorage,
                 rate: float, phase_ms: float) -> None:
        self.world = world
        self.env: simpy.Environment = world.env
        self.id = node_id
        self.rate = rate
        self.state = "down"
        self.epoch = 0
        self.incarnation = 0
        params = world.params
        self.disk = SimDisk(node_id, world.rngs.child(f"disk/{node_id}"),
                            DiskOptions(fsync_latency_ms=params.fsync_ms,
                                        torn_writes=params.torn_writes,
                                        corruption=params.corrupt_on_crash > 0), storage)
        self.node: ChainfireNode | None = None
        self._busy = False
        self._inbox: list[Message] = []
        self._parked: tuple[NodeReady, int, int, bool] | None = None
        # The last write the planted fsync bugs left unsynced (0: none).
        self._lazy_seq = 0
        self._replies: dict[int, Reply] = {}
        self._streams: dict[WatchId, _Stream] = {}
        self._role = Role.FOLLOWER
        self._phase_ms = phase_ms
        self.removed = False

    # -- life cycle ------------------------------------------------------------

    def _config(self) -> NodeConfig:
        params = self.world.params
        read_only = (ReadOnlyOption.LEASE_BASED if self.world.options.read_mode == "lease"
                     else ReadOnlyOption.SAFE)
        bugs = frozenset(self.world.options.bugs)
        # The bug is the missing protection itself: both off, whatever was drawn.
        protected = "no_prevote_checkquorum" not in bugs
        check_quorum = params.check_quorum and protected and \
            "lease_reads_no_check_quorum" not in bugs
        raft = RaftConfig(id=self.id, election_ticks=params.election_ticks, heartbeat_ticks=1,
                          pre_vote=params.pre_vote and protected, check_quorum=check_quorum,
                          read_only_option=read_only,
                          # The drawn clock bound (faults) times the base drift.
                          max_clock_drift=params.max_clock_rate * (1.0 + params.drift),
                          max_size_per_msg_bytes=params.max_size_per_msg_bytes, bugs=bugs)
        # Checkpoint remaining lease TTLs often: under leader churn a lease
        # otherwise restarts from its full TTL on every new leader and lives
        # far past its due time (what lease_reset_on_leader_change plants).
        return NodeConfig(raft=raft, tick_ms=params.tick_ms,
                          lease_checkpoint_interval_ticks=LEASE_CHECKPOINT_TICKS,
                          request_timeout_ticks=params.request_timeout_ticks,
                          forward_requests=params.forward_requests,
                          snapshot_every_entries=params.snapshot_every_entries,
                          snapshot_catchup_entries=params.snapshot_catchup_entries,
                          bugs=bugs)

    def start(self) -> None:
        assert self.state == "down", self.state
        self.incarnation += 1
        rng = self.world.rngs.child(f"raft/{self.id}/{self.incarnation}")
        self.node = ChainfireNode(self._config(), self.disk.storage, rng)
        self.state = "up"
        self._busy = False
        self._lazy_seq = 0
        self._role = Role.FOLLOWER
        self._schedule_tick(self.epoch, self._phase_ms)
        if {"ack_before_fsync", "unpersisted_vote"} & set(self.world.options.bugs):
            timer = self.env.timeout(LAZY_FSYNC_MS, self.epoch)
            timer.callbacks.append(self._lazy_flush)

    def crash(self) -> None:
        if self.state in ("down", "failed"):
            return
        self.state = "down"
        self.epoch += 1
        lost = self.disk.crash()
        self.node = None
        self._inbox.clear()
        self._parked = None
        self._replies.clear()
        self._break_streams()
        self._trace_role(Role.FOLLOWER, note="crash")
        self.world.trace.emit(self.env.now, "disk", node=self.id, lost_writes=lost)

    def restart(self) -> None:
        if self.state != "down" or self.removed:
            return
        try:
            _, report = self.disk.recover()
        except CorruptLog as error:
            self.state = "failed"
            self.world.trace.emit(self.env.now, "fault", kind="corrupt_detected", node=self.id,
                                  error=str(error))
            return
        if report.torn_tail_truncated:
            self.world.trace.emit(self.env.now, "disk", node=self.id, torn_tail_truncated=True)
        self.start()

    def pause(self) -> None:
        if self.state == "up":
            self.state = "paused"

    def resume(self) -> None:
        if self.state != "paused":
            return
        self.state = "up"
        self._schedule_tick(self.epoch, 0.0)
        inbox, self._inbox = self._inbox, []
        node = self.node
        assert node is not None
        for message in inbox:
            node.step(message)
        parked, self._parked = self._parked, None
        if parked is not None:
            ready, seq, epoch, checked = parked
            self._persisted(ready, seq, epoch, checked=checked)
        else:
            self.kick()

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    # -- time ---------------------------------------------------------------------

    def _schedule_tick(self, epoch: int, delay_ms: float) -> None:
        timer = self.env.timeout(delay_ms, epoch)
        timer.callbacks.append(self._on_tick)

    def _on_tick(self, event: simpy.Event) -> None:
        if event.value != self.epoch or self.state != "up":
            return  # a dead incarnation's timer, or paused (resume restarts it)
        node = self.node
        assert node is not None
        node.tick()
        if node.ticks % INVARIANT_EVERY_TICKS == 0:
            node.check_invariants()
        self._schedule_tick(self.epoch, self.world.params.tick_ms / self.rate)
        self.kick()
        self._poll_watches()

    # -- inputs ---------------------------------------------------------------------

    def deliver(self, packet: tuple[Message, ...]) -> bool:
        """False when no process is running to take the messages."""
        if self.state == "up":
            node = self.node
            assert node is not None
            for message in packet:
                node.step(message)
            self.kick()
            return True
        if self.state == "paused":
            self._inbox.extend(packet)
            return True
        if self.world.trace.full:
            for message in packet:
                self.world.trace.message(self.env.now, "drop", message.sender, message.to,
                                         type(message).__name__, message.term, "down")
        return False

    def submit(self, request_id: int, request: ClientRequest, consistency: ReadConsistency,
               reply: Reply) -> bool:
        """False when the process is not running (the client sees a refused connection)."""
        if self.state != "up":
            return False
        assert self.node is not None
        self._replies[request_id] = reply
        self.node.submit(request_id, request, consistency)
        self.kick()
        return True

    def open_watch(self, request: WatchCreateRequest, sink: StreamSink) -> WatchId | None:
        """None when the process is not running; a refused request raises ChainfireError."""
        if self.state != "up":
            return None
        assert self.node is not None
        watch_id = self.node.sm.watches.watch(request)
        self._streams[watch_id] = _Stream(sink=sink)
        self._poll_watches()
        return watch_id

    def cancel_watch(self, watch_id: WatchId) -> None:
        if self.state == "up" and watch_id in self._streams:
            assert self.node is not None
            del self._streams[watch_id]
            with suppress(ChainfireError):  # already gone (canceled by compaction)
                self.node.sm.watches.cancel(watch_id)

    # -- the Ready loop ------------------------------------------------------------------

    def kick(self) -> None:
        node = self.node
        if self._busy or self.state != "up" or node is None or not node.has_ready():
            return
        self._busy = True
        ready = node.ready()
        raft = ready.raft
        if raft is not None and raft.soft_state is not None:
            self._trace_role(raft.soft_state.role)
        if raft is not None and (raft.entries or raft.hard_state is not None
                                 or raft.snapshot is not None):
            seq = self.disk.write(raft)
            if self.world.trace.full:
                self._trace_persist(ready)
            if self._lazy(raft):
                # planted bug: ack_before_fsync / unpersisted_vote — the reply
                # leaves now; the fsync happens whenever the lazy flush runs.
                self._lazy_seq = seq
                self._persisted(ready, 0, self.epoch, checked=False)
                return
            timer = self.env.timeout(self.disk.io_delay_ms(), (ready, seq, self.epoch))
            timer.callbacks.append(self._on_persisted)
        else:
            self._persisted(ready, 0, self.epoch)

    def _lazy(self, raft: Ready) -> bool:
        bugs = self.world.options.bugs
        if not bugs:
            return False
        if raft.entries:
            return "ack_before_fsync" in bugs
        return "unpersisted_vote" in bugs and raft.snapshot is None

    def _lazy_flush(self, event: simpy.Event) -> None:
        """The planted fsync bugs' periodic flush (a page cache written back late)."""
        if event.value != self.epoch:
            return
        if self.state == "up" and self._lazy_seq:
            self.disk.sync(self._lazy_seq)
            self._lazy_seq = 0
        timer = self.env.timeout(LAZY_FSYNC_MS, self.epoch)
        timer.callbacks.append(self._lazy_flush)

    def _on_persisted(self, event: simpy.Event) -> None:
        ready, seq, epoch = cast(tuple[NodeReady, int, int], event.value)
        self._persisted(ready, seq, epoch)

    def _persisted(self, ready: NodeReady, seq: int, epoch: int, *,
                   checked: bool = True) -> None:
        if epoch != self.epoch:
            return  # crashed while the write was in flight: it is lost
        if self.state == "paused":
            self._parked = (ready, seq, epoch, checked)
            return
        node = self.node
        assert node is not None
        if seq:
            self.disk.sync(seq)
            self._lazy_seq = 0 if seq >= self._lazy_seq else self._lazy_seq
        world = self.world
        raft = ready.raft
        if raft is not None:
            # planted bug: ack_before_fsync / unpersisted_vote — that driver
            # does not know the persistence rule, so it cannot check it.
            if checked and not self._lazy_seq:
                for message in raft.messages:
                    self._assert_durable(message)
            world.network.send_all(raft.messages)
            if raft.committed_entries:
                world.monitor.applied(self.id, raft.committed_entries, self.env.now)
                if world.trace.full:
                    world.trace.emit(self.env.now, "apply", node=self.id,
                                     first=raft.committed_entries[0].index,
                                     last=raft.committed_entries[-1].index)
        for response in ready.responses:
            reply = self._replies.pop(response.request_id, None)
            if reply is not None:
                reply(response)
        node.advance(ready)
        self._busy = False
        self._poll_watches()
        self.kick()

    def _assert_durable(self, message: Message) -> None:
        """Raft's persistence rule: nothing leaves before what it depends on is durable."""
        hard = self.disk.durable_hard_state()
        if isinstance(message, RequestVote | VoteResponse) and message.pre_vote:
            return  # a pre-vote promises nothing and carries a future term
        assert hard.term >= message.term, (
            f"node {self.id} sent term {message.term} before persisting it (durable {hard.term})")
        if isinstance(message, VoteResponse) and message.granted:
            # A later term in the same Ready supersedes the vote: a node at a
            # higher term never votes in an older one again.
            assert hard.term > message.term or hard.vote == message.to, (
                f"node {self.id} granted a vote to {message.to} before persisting it")
        if isinstance(message, AppendResponse) and not message.reject:
            assert self.disk.durable_last_index() >= message.index, (
                f"node {self.id} acknowledged index {message.index} before it was durable")

    def _poll_watches(self) -> None:
        if not self._streams or self.state != "up":
            return
        node = self.node
        assert node is not None
        while True:
            responses = node.sm.watches.poll(WATCH_POLL_RESPONSES)
            for response in responses:
                stream = self._streams.get(response.watch_id)
                if stream is None:
                    continue
                if response.canceled:
                    del self._streams[response.watch_id]
                stream.sink(response)
            if len(responses) < WATCH_POLL_RESPONSES:
                return

    def _break_streams(self) -> None:
        streams, self._streams = self._streams, {}
        for watch_id in sorted(streams):
            streams[watch_id].sink(None)

    # -- trace ---------------------------------------------------------------------------

    def _trace_role(self, role: Role, note: str = "") -> None:
        if role == self._role and not note:
            return
        self._role = role
        term = self.node.raw.raft.term if self.node is not None else 0
        fields: dict[str, object] = {"node": self.id, "role": ROLE_NAMES[role], "term": term}
        if note:
            fields["why"] = note
        self.world.trace.emit(self.env.now, "role", **fields)
        self.world.on_role(self.id, role, term)

    def _trace_persist(self, ready: NodeReady) -> None:
        raft = ready.raft
        assert raft is not None
        hard = raft.hard_state
        self.world.trace.emit(
            self.env.now, "persist", node=self.id, entries=len(raft.entries),
            last=raft.entries[-1].index if raft.entries else None,
            hard=None if hard is None else [hard.term, hard.vote, hard.commit],
            snapshot=None if raft.snapshot is None else raft.snapshot.metadata.index)

    @property
    def role(self) -> Role:
        return self._role if self.state in ("up", "paused") else Role.FOLLOWER

    @property
    def is_leader(self) -> bool:
        return self.state == "up" and self.node is not None and self.node.is_leader


def bootstrap_storage(voters: tuple[NodeId, ...]) -> MemoryStorage:
    """A new cluster's disk: the snapshot at index 1 that names the voters."""
    storage = MemoryStorage()
    storage.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
        index=Index(1), term=Term(1), conf_state=ConfState(voters=voters))))
    return storage


__all__ = ["ROLE_NAMES", "NodeHost", "bootstrap_storage"]
