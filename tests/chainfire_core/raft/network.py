"""A test helper: N RawNodes over an in-memory "wire", driven by the Ready contract.

Theory of operation
-------------------
Each peer is a `RawNode` over its own `MemoryStorage` (its "disk") with its
own `random.Random` child derived from the network's seed, the node id and
the incarnation. The network owns everything a driver owns:

- `process(id)` handles the peer's Readys exactly as rawnode.py's header
  says: persist the snapshot, the entries and the hard state into the
  MemoryStorage, then queue the messages on the wire (asserting that every
  message depends only on what is now durable), then apply the snapshot and
  the committed entries to the peer's state machine (a list of
  `(index, term, data)` records; `apply_conf_change` for conf change
  entries), then `advance`.
- Inputs (`tick`, delivering a message) only feed the peer; nothing is
  persisted until `process`. So `crash(id)` between an input and `process`
  loses exactly the unpersisted state: the restarted peer is rebuilt from its
  MemoryStorage (hard state, snapshot, entries) and its state machine from
  the snapshot there. Messages already on the wire still arrive.
- The wire is a list of envelopes. Faults: `drop`, `duplicate`, `reorder`,
  `delay` (held for some ticks), `block` (a predicate dropping matching
  messages when sent and when delivered), cut links (one-way or both ways),
  partitions, crashed peers (messages to them are lost). A lost or delivered
  InstallSnapshot is reported to its sender (`report_snapshot`), as a
  transport would.
- `compact(id)` takes a snapshot of the peer's state machine at its applied
  index and compacts its storage there, so lagging followers need one.

A `SafetyMonitor` watches every peer after every input and every Ready:
election safety (one leader per term, over the whole history), leader
completeness (a new leader holds every entry known committed), state machine
safety (one entry per index, everywhere, ever), monotonic commit and apply
cursors per incarnation, and each peer's `check_invariants()`. `check_logs()`
adds log matching across the live peers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from chainfire_core.errors import ProposalDropped
from chainfire_core.raft.config import RaftConfig
from chainfire_core.raft.messages import (
    AppendResponse,
    ConfChange,
    ConfState,
    Entry,
    HardState,
    InstallSnapshot,
    Message,
    RequestVote,
    Snapshot,
    SnapshotMetadata,
    VoteResponse,
)
from chainfire_core.raft.raft import ReadState, Role
from chainfire_core.raft.rawnode import RawNode, Ready
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.types import Index, NodeId, Term

Predicate = Callable[[Message], bool]
Record = tuple[int, int, bytes]  # (index, term, data) of one applied entry

# Bounds on the loops of the helper itself.
MAX_READY_ROUNDS = 1_000
MAX_STABILIZE_ROUNDS = 10_000
BOOTSTRAP_INDEX = Index(1)
BOOTSTRAP_TERM = Term(1)


def encode_state(records: Sequence[Record]) -> bytes:
    return json.dumps([[i, t, d.hex()] for i, t, d in records]).encode()


def decode_state(data: bytes) -> list[Record]:
    if not data:
        return []
    return [(i, t, bytes.fromhex(d)) for i, t, d in json.loads(data)]


@dataclass(slots=True)
class Envelope:
    message: Message
    # The sender's incarnation when it was sent (snapshot reports go to it only).
    incarnation: int
    hold_ticks: int = 0


@dataclass(slots=True)
class SafetyMonitor:
    """Safety properties checked on every observation (see the module docstring)."""

    leaders: dict[int, NodeId] = field(default_factory=dict)
    # index -> (term, data, lowest term of a peer seen knowing it committed).
    # Only durable knowledge counts: a peer's persisted commit index, or an
    # applied entry. (A lone voter commits its entries before persisting
    # them; if it crashes first, nobody ever saw them committed.)
    committed: dict[int, tuple[int, bytes, int]] = field(default_factory=dict)
    applied: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    commit_index: dict[NodeId, int] = field(default_factory=dict)
    durable_commit_index: dict[NodeId, int] = field(default_factory=dict)
    observations: int = 0

    def restarted(self, node_id: NodeId, node: RawNode, storage: MemoryStorage) -> None:
        self.commit_index[node_id] = node.raft.log.committed
        self.durable_commit_index[node_id] = 0
        self.persisted(node_id, storage)
        self.observe(node_id, node)

    def observe(self, node_id: NodeId, node: RawNode) -> None:
        self.observations += 1
        node.check_invariants()
        raft = node.raft
        if raft.role == Role.LEADER:
            new_leader = raft.term not in self.leaders
            first = self.leaders.setdefault(raft.term, node_id)
            assert first == node_id, f"two leaders in term {raft.term}: {first} and {node_id}"
            if new_leader:
                self.check_leader_completeness(node_id, node)
        previous = self.commit_index.get(node_id, 0)
        committed = raft.log.committed
        assert committed >= previous, f"{node_id}: commit went back {previous} -> {committed}"
        self.commit_index[node_id] = committed

    def persisted(self, node_id: NodeId, storage: MemoryStorage) -> None:
        """Record what the peer's disk now says is committed."""
        hard_state = storage.hard_state
        previous = self.durable_commit_index.get(node_id, 0)
        low = max(previous + 1, storage.first_index())
        if low <= hard_state.commit:
            for entry in storage.entries(Index(low), Index(hard_state.commit + 1), None):
                self.record_committed(entry, hard_state.term)
        self.durable_commit_index[node_id] = max(previous, hard_state.commit)

    def record_committed(self, entry: Entry, known_in_term: int) -> None:
        record = self.committed.get(entry.index)
        if record is None:
            self.committed[entry.index] = (entry.term, entry.data, known_in_term)
            return
        term, data, seen_term = record
        assert (term, data) == (entry.term, entry.data), (
            f"two entries committed at {entry.index}: {(term, data)} and {entry}")
        if known_in_term < seen_term:
            self.committed[entry.index] = (term, data, known_in_term)

    def record_applied(self, record: Record) -> None:
        index, term, data = record
        first = self.applied.setdefault(index, (term, data))
        assert first == (term, data), f"state machines differ at {index}: {first} vs {record}"
        known = self.committed.get(index)
        assert known is None or known[:2] == (term, data), (index, known, record)

    def check_leader_completeness(self, node_id: NodeId, node: RawNode) -> None:
        """Every entry known committed by the leader's term is in its log."""
        raft = node.raft
        first = raft.log.first_index()
        for index, (term, _data, seen_term) in sorted(self.committed.items()):
            if seen_term > raft.term or index < first:
                continue  # committed later for all we know, or compacted in a snapshot
            held = raft.log.term_or_none(Index(index))
            assert held == term, (
                f"leader {node_id} (term {raft.term}) lacks committed entry {index}/{term}: {held}")


class Network:
    """RawNodes over an in-memory wire. See the module docstring."""

    def __init__(
        self,
        voters: int | Sequence[int] = 3,
        *,
        learners: Sequence[int] = (),
        seed: int = 0,
        storages: Mapping[int, MemoryStorage] | None = None,
        **raft_options: object,
    ) -> None:
        voter_ids = range(1, voters + 1) if isinstance(voters, int) else voters
        self.seed = seed
        self.rng = random.Random(seed)
        self.raft_options = raft_options
        self.initial_conf_state = ConfState(
            voters=tuple(sorted(NodeId(i) for i in voter_ids)),
            learners=tuple(sorted(NodeId(i) for i in learners)))
        self.ids: list[NodeId] = []
        self.storages: dict[NodeId, MemoryStorage] = {}
        self.nodes: dict[NodeId, RawNode] = {}
        self.incarnations: dict[NodeId, int] = {}
        self.state: dict[NodeId, list[Record]] = {}
        self.applied_index: dict[NodeId, int] = {}
        self.conf_states: dict[NodeId, ConfState] = {}
        self.read_states: dict[NodeId, list[ReadState]] = {}
        self.readys: dict[NodeId, list[Ready]] = {}
        self.wire: list[Envelope] = []
        self.sent: list[Message] = []
        self.cut_links: set[tuple[NodeId, NodeId]] = set()
        self.filters: list[Predicate] = []
        self.monitor = SafetyMonitor()
        self.record_readys = False
        for node_id in (*self.initial_conf_state.voters, *self.initial_conf_state.learners):
            self.add_node(node_id, storage=(storages or {}).get(node_id))

    # -- membership of the harness -------------------------------------------------

    def bootstrap_storage(self, conf_state: ConfState | None = None) -> MemoryStorage:
        """A disk holding the cluster's initial snapshot (index 1, term 1)."""
        storage = MemoryStorage()
        metadata = SnapshotMetadata(index=BOOTSTRAP_INDEX, term=BOOTSTRAP_TERM,
                                    conf_state=conf_state or self.initial_conf_state)
        storage.apply_snapshot(Snapshot(metadata=metadata))
        storage.set_hard_state(HardState(term=BOOTSTRAP_TERM, commit=BOOTSTRAP_INDEX))
        return storage

    def add_node(self, node_id: int, *, storage: MemoryStorage | None = None) -> RawNode:
        """Start a peer. A new peer joining later gets the initial snapshot (it
        is not a member of that config; it learns its membership from the log)."""
        node = NodeId(node_id)
        assert node not in self.storages, f"node {node} exists"
        self.ids.append(node)
        self.ids.sort()
        self.storages[node] = storage or self.bootstrap_storage()
        self.incarnations[node] = 0
        self.state[node] = []
        self.read_states[node] = []
        self.readys[node] = []
        return self.start(node)

    def config(self, node_id: NodeId) -> RaftConfig:
        return RaftConfig(id=node_id, **self.raft_options)  # type: ignore[arg-type]

    def start(self, node_id: NodeId) -> RawNode:
        """(Re)start a peer from its disk alone."""
        assert node_id not in self.nodes, f"node {node_id} is running"
        self.incarnations[node_id] += 1
        rng = random.Random(f"{self.seed}/{node_id}/{self.incarnations[node_id]}")
        storage = self.storages[node_id]
        node = RawNode(self.config(node_id), storage, rng)
        snapshot = storage.snapshot()
        self.state[node_id] = decode_state(snapshot.data)
        self.applied_index[node_id] = snapshot.metadata.index
        self.conf_states[node_id] = snapshot.metadata.conf_state
        assert node.status().applied == snapshot.metadata.index
        self.nodes[node_id] = node
        self.monitor.restarted(node_id, node, storage)
        return node

    def crash(self, node_id: int) -> None:
        """Stop a peer: what it did not persist is gone; its disk stays."""
        self.nodes.pop(NodeId(node_id))

    def restart(self, node_id: int) -> RawNode:
        node = NodeId(node_id)
        if node in self.nodes:
            self.crash(node)
        return self.start(node)

    def node(self, node_id: int) -> RawNode:
        return self.nodes[NodeId(node_id)]

    def live(self) -> list[NodeId]:
        return [node_id for node_id in self.ids if node_id in self.nodes]

    # -- the Ready contract ----------------------------------------------------------

    def process(self, node_id: int) -> bool:
        """Handle the peer's Readys until it has none; whether there was one."""
        node = self.nodes.get(NodeId(node_id))
        if node is None:
            return False
        handled = False
        for _ in range(MAX_READY_ROUNDS):
            if not node.has_ready():
                return handled
            self.handle_ready(NodeId(node_id), node, node.ready())
            handled = True
        raise AssertionError(f"node {node_id}: Readys never settle")

    def process_all(self) -> bool:
        handled = False
        for node_id in self.live():
            handled = self.process(node_id) or handled
        return handled

    def handle_ready(self, node_id: NodeId, node: RawNode, ready: Ready) -> None:
        if self.record_readys:
            self.readys[node_id].append(ready)
        storage = self.storages[node_id]
        # 1. Persist.
        if ready.snapshot is not None:
            storage.apply_snapshot(ready.snapshot)
        storage.append(ready.entries)
        if ready.hard_state is not None:
            storage.set_hard_state(ready.hard_state)
        storage.check_invariants()
        self.monitor.persisted(node_id, storage)
        # 2. Send.
        for message in ready.messages:
            self.check_durable(node_id, message)
            self.send(node_id, message)
        # 3. Apply.
        if ready.snapshot is not None:
            self.restore_state(node_id, ready.snapshot)
        for entry in ready.committed_entries:
            self.apply(node_id, node, entry)
        self.read_states[node_id].extend(ready.read_states)
        # 4. Advance.
        node.advance(ready)
        assert node.status().applied == self.applied_index[node_id]
        self.monitor.observe(node_id, node)

    def check_durable(self, node_id: NodeId, message: Message) -> None:
        """A message may only promise what the sender's disk holds."""
        hard_state = self.storages[node_id].hard_state
        storage = self.storages[node_id]
        pre_vote = isinstance(message, RequestVote | VoteResponse) and message.pre_vote
        if not pre_vote:
            assert message.term <= hard_state.term, ("term not durable", message, hard_state)
        if isinstance(message, VoteResponse) and message.granted and not message.pre_vote:
            # Durable, or superseded by a durable later term (no second vote
            # in the message's term is possible after a restart).
            assert hard_state.term > message.term or hard_state.vote == message.to, (
                "vote not durable", message, hard_state)
        if isinstance(message, AppendResponse) and not message.reject and (
                message.term == hard_state.term):
            # (An ack of an older term may name entries a newer leader has
            # since replaced: like a delayed message, it was true when made.)
            assert message.index <= storage.last_index(), ("ack beyond the disk", message)

    def restore_state(self, node_id: NodeId, snapshot: Snapshot) -> None:
        records = decode_state(snapshot.data)
        for record in records:
            self.monitor.record_applied(record)
        self.state[node_id] = records
        self.applied_index[node_id] = snapshot.metadata.index
        self.conf_states[node_id] = snapshot.metadata.conf_state

    def apply(self, node_id: NodeId, node: RawNode, entry: Entry) -> None:
        assert entry.index == self.applied_index[node_id] + 1, (
            f"node {node_id} applies {entry.index} after {self.applied_index[node_id]}")
        if entry.conf_change is not None:
            self.conf_states[node_id] = node.apply_conf_change(entry.conf_change)
        record = (entry.index, entry.term, entry.data)
        self.monitor.record_committed(entry, node.raft.term)
        self.monitor.record_applied(record)
        self.state[node_id].append(record)
        self.applied_index[node_id] = entry.index

    # -- the wire --------------------------------------------------------------------

    def blocked(self, message: Message) -> bool:
        if (message.sender, message.to) in self.cut_links:
            return True
        return any(predicate(message) for predicate in self.filters)

    def send(self, sender: NodeId, message: Message) -> None:
        self.sent.append(message)
        envelope = Envelope(message, self.incarnations[sender])
        if self.blocked(message):
            self.lost(envelope)
        else:
            self.wire.append(envelope)

    def lost(self, envelope: Envelope) -> None:
        self.report_snapshot(envelope, ok=False)

    def report_snapshot(self, envelope: Envelope, *, ok: bool) -> None:
        message = envelope.message
        if not isinstance(message, InstallSnapshot):
            return
        sender = self.nodes.get(message.sender)
        if sender is not None and self.incarnations[message.sender] == envelope.incarnation:
            sender.report_snapshot(message.to, ok=ok)
            self.monitor.observe(message.sender, sender)

    def deliver_envelope(self, envelope: Envelope) -> bool:
        """Step one message into its receiver (not processed); whether it arrived."""
        message = envelope.message
        node = self.nodes.get(message.to)
        if node is None or self.blocked(message):
            self.lost(envelope)
            return False
        node.step(message)
        self.monitor.observe(message.to, node)
        self.report_snapshot(envelope, ok=True)
        return True

    def take(self, predicate: Predicate | None = None) -> list[Envelope]:
        """Remove and return the deliverable envelopes matching `predicate`."""
        taken, kept = [], []
        for envelope in self.wire:
            ready = envelope.hold_ticks == 0 and (predicate is None or predicate(envelope.message))
            (taken if ready else kept).append(envelope)
        self.wire = kept
        return taken

    def deliver_all(self, predicate: Predicate | None = None) -> int:
        """Deliver what is on the wire now (not what this causes); how many arrived."""
        return sum(self.deliver_envelope(envelope) for envelope in self.take(predicate))

    def deliver_some(self, rng: random.Random | None = None, fraction: float = 0.5) -> int:
        """Deliver a random subset of the deliverable messages, in wire order."""
        rng = rng or self.rng
        chosen = {id(e) for e in self.wire if e.hold_ticks == 0 and rng.random() < fraction}
        return sum(self.deliver_envelope(envelope) for envelope in self._take_ids(chosen))

    def _take_ids(self, chosen: set[int]) -> list[Envelope]:
        taken = [envelope for envelope in self.wire if id(envelope) in chosen]
        self.wire = [envelope for envelope in self.wire if id(envelope) not in chosen]
        return taken

    def drop(self, predicate: Predicate | None = None) -> int:
        """Lose the in-flight messages matching `predicate` (all if None)."""
        lost = [e for e in self.wire if predicate is None or predicate(e.message)]
        self._take_ids({id(e) for e in lost})
        for envelope in lost:
            self.lost(envelope)
        return len(lost)

    def drop_random(self, rng: random.Random | None = None, fraction: float = 0.5) -> int:
        rng = rng or self.rng
        chosen = {id(e) for e in self.wire if rng.random() < fraction}
        lost = self._take_ids(chosen)
        for envelope in lost:
            self.lost(envelope)
        return len(lost)

    def duplicate(self, predicate: Predicate | None = None) -> int:
        """Deliver each matching in-flight message twice (the copy right behind it)."""
        wire: list[Envelope] = []
        copies = 0
        for envelope in self.wire:
            wire.append(envelope)
            if predicate is None or predicate(envelope.message):
                wire.append(Envelope(envelope.message, envelope.incarnation, envelope.hold_ticks))
                copies += 1
        self.wire = wire
        return copies

    def reorder(self, rng: random.Random | None = None) -> None:
        (rng or self.rng).shuffle(self.wire)

    def delay(self, predicate: Predicate | None, ticks: int) -> int:
        """Hold the matching in-flight messages back for `ticks` network ticks."""
        held = 0
        for envelope in self.wire:
            if predicate is None or predicate(envelope.message):
                envelope.hold_ticks += ticks
                held += 1
        return held

    def block(self, predicate: Predicate) -> Predicate:
        """Lose every message matching `predicate` from now on (see `unblock`)."""
        self.filters.append(predicate)
        return predicate

    def unblock(self, predicate: Predicate | None = None) -> None:
        self.filters = [] if predicate is None else [p for p in self.filters if p is not predicate]

    def cut(self, a: int, b: int, *, both: bool = True) -> None:
        """Cut the link a -> b (and b -> a unless `both` is False)."""
        self.cut_links.add((NodeId(a), NodeId(b)))
        if both:
            self.cut_links.add((NodeId(b), NodeId(a)))

    def isolate(self, node_id: int) -> None:
        for other in self.ids:
            if other != node_id:
                self.cut(node_id, other)

    def partition(self, *groups: Iterable[int]) -> None:
        """Only peers of the same group hear each other (peers in no group hear nobody)."""
        group_of = {NodeId(i): n for n, group in enumerate(groups) for i in group}
        self.cut_links = {
            (a, b) for a in self.ids for b in self.ids
            if a != b and (a not in group_of or group_of[a] != group_of.get(b))
        }

    def heal(self) -> None:
        self.cut_links = set()
        self.filters = []

    # -- time ------------------------------------------------------------------------

    def tick(self, node_id: int, ticks: int = 1) -> None:
        node = self.nodes[NodeId(node_id)]
        for _ in range(ticks):
            node.tick()
            self.monitor.observe(NodeId(node_id), node)

    def tick_all(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            for node_id in self.live():
                self.tick(node_id)
            for envelope in self.wire:
                envelope.hold_ticks = max(0, envelope.hold_ticks - 1)

    def stabilize(self) -> None:
        """Process and deliver until nothing moves (held messages stay held)."""
        for _ in range(MAX_STABILIZE_ROUNDS):
            processed = self.process_all()
            delivered = self.deliver_all()
            if not processed and not delivered and not self.take_count():
                return
        raise AssertionError("the network never settles")

    def take_count(self) -> int:
        return sum(1 for envelope in self.wire if envelope.hold_ticks == 0)

    def run(self, ticks: int) -> None:
        """`ticks` rounds of: tick every live peer, then stabilize."""
        for _ in range(ticks):
            self.tick_all()
            self.stabilize()

    # -- conveniences ----------------------------------------------------------------

    def propose(self, node_id: int, data: bytes) -> bool:
        """Propose at a peer; False if it dropped the proposal at once."""
        try:
            self.node(node_id).propose(data)
        except ProposalDropped:
            return False
        self.monitor.observe(NodeId(node_id), self.node(node_id))
        return True

    def propose_conf_change(self, node_id: int, change: ConfChange) -> bool:
        try:
            self.node(node_id).propose_conf_change(change)
        except ProposalDropped:
            return False
        return True

    def campaign(self, node_id: int) -> None:
        self.node(node_id).campaign()
        self.monitor.observe(NodeId(node_id), self.node(node_id))

    def elect(self, node_id: int) -> RawNode:
        """Campaign at `node_id` and settle; it must win."""
        self.campaign(node_id)
        self.stabilize()
        node = self.node(node_id)
        assert node.status().role == Role.LEADER, f"{node_id} did not win: {node.status()}"
        return node

    def leaders(self) -> list[NodeId]:
        return [i for i in self.live() if self.nodes[i].raft.role == Role.LEADER]

    def leader(self) -> NodeId | None:
        """The live leader of the highest term, if any."""
        leaders = self.leaders()
        if not leaders:
            return None
        return max(leaders, key=lambda i: self.nodes[i].raft.term)

    def run_until_leader(self, max_ticks: int = 200) -> NodeId:
        for _ in range(max_ticks):
            leader = self.leader()
            if leader is not None and self.leader_is_stable(leader):
                return leader
            self.run(1)
        raise AssertionError(f"no leader within {max_ticks} ticks")

    def leader_is_stable(self, leader: NodeId) -> bool:
        """Every live peer follows `leader` in its term."""
        term = self.nodes[leader].raft.term
        return all(self.nodes[i].raft.term == term and self.nodes[i].leader == leader
                   for i in self.live())

    def applied_data(self, node_id: int) -> list[bytes]:
        """The application payloads applied at a peer (empty and conf entries left out)."""
        return [data for _, _, data in self.state[NodeId(node_id)] if data]

    def compact(self, node_id: int) -> bool:
        """Snapshot the peer's state machine at its applied index and compact
        its disk there; False if that is not newer than its snapshot."""
        node = NodeId(node_id)
        storage = self.storages[node]
        index = Index(self.applied_index[node])
        if index <= storage.snapshot().metadata.index:
            return False
        storage.create_snapshot(index, self.conf_states[node], encode_state(self.state[node]))
        storage.compact(index)
        if node in self.nodes:
            self.monitor.observe(node, self.nodes[node])
        return True

    def check_logs(self) -> None:
        """Log matching over the live peers: the same (index, term) means the
        same entry and the same prefix; plus leader completeness for every
        current leader."""
        logs = {i: self._log_of(self.nodes[i]) for i in self.live()}
        ids = sorted(logs)
        for position, a in enumerate(ids):
            for b in ids[position + 1:]:
                _check_matching(logs[a], logs[b], a, b)
        for leader in self.leaders():
            self.monitor.check_leader_completeness(leader, self.nodes[leader])

    @staticmethod
    def _log_of(node: RawNode) -> dict[int, tuple[int, bytes, ConfChange | None]]:
        log = node.raft.log
        return {e.index: (e.term, e.data, e.conf_change) for e in log.all_entries()}


def _check_matching(
    a: dict[int, tuple[int, bytes, ConfChange | None]],
    b: dict[int, tuple[int, bytes, ConfChange | None]],
    a_id: NodeId,
    b_id: NodeId,
) -> None:
    common = sorted(set(a) & set(b), reverse=True)
    matched = False
    for index in common:
        if a[index][0] == b[index][0]:
            matched = True
        if matched:
            assert a[index] == b[index], (
                f"log matching broken between {a_id} and {b_id} at {index}: "
                f"{a[index]} vs {b[index]}")


__all__ = ["Envelope", "Network", "Record", "SafetyMonitor", "decode_state", "encode_state"]
