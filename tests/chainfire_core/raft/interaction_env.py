"""The interpreter behind the Raft datadriven scripts (etcd-io/raft's InteractionEnv).

Theory of operation
-------------------
The environment holds a set of `RawNode`s, each with its own `MemoryStorage`
and seeded RNG, and one shared in-memory "network": a list of staged
messages in the order they were sent. Nothing happens unless a command says
so: `process-ready` carries out one node's Ready (persist, stage the
messages, apply, advance), `deliver-msgs` steps the staged messages into
their recipients, and `stabilize` repeats both until nothing moves.

Output is etcd's, in our own words. Ready and message renderings are
compact (`1->2 MsgApp Term:1 Log:1/10 Commit:10 Entries:[1/11 EntryNormal
""]`). The core does not log, so the environment reports what changed
around each input as `INFO` lines: role and term changes, membership
switches, leadership transfers started or aborted, proposals dropped.
`log-level none` silences everything but the inspection commands
(`status`, `raft-log`, `raft-state`, `election-timeouts`).

Commands (ids are positional unless named):

- `add-nodes N [voters=(1,2,3)] [learners=(4)] [index=K] [prevote=bool]
  [checkquorum=bool] [read-only=safe|lease] [election=T] [heartbeat=T]
  [max-inflight=N] [max-msg-bytes=B] [forwarding=bool] [seed=S]`: add N
  nodes with the next ids. With voters, each starts from a snapshot at
  index K (term 1) holding that membership; without, from an empty log
  (a node to be added by a conf change).
- `campaign ID`, `propose ID DATA`, `propose-conf-change ID [v2 l3 r1 ...]
  [transition=auto|implicit|explicit]` (changes may also be input lines;
  none means: leave the joint configuration), `read-index ID CTX`,
  `transfer-leadership from=ID to=ID`, `report-unreachable ID PEER`,
  `report-snapshot ID PEER [ok=false]`.
- `tick ID... [n=N]` (N rounds of one tick per node), `tick-heartbeat ID`
  (heartbeat_ticks ticks), `tick-election ID` (ticks until the node's
  election timeout fires: the randomized one for a follower or candidate,
  the check-quorum interval for a leader).
- `process-ready [ID...]`, `deliver-msgs [ID...] [drop=(ids)]
  [type=MsgApp] [from=(ids)] [keep=true]` (messages to the given nodes, of
  that type, from those senders; keep: deliver copies and leave the staged
  messages in the network, to be duplicated or replayed late),
  `delay-msgs [ID...] [type=...] [from=...]` (hold staged messages back),
  `release-msgs` (stage them again, after the others), `stabilize [ID...]`.
- `partition 1,2 / 3` (messages across groups are dropped on delivery;
  unnamed nodes form one more group), `heal`.
- `snapshot ID` (snapshot at the applied index, compact the log),
  `restart ID` (rebuild the node from its storage; unpersisted state is lost).
- `status ID`, `raft-log ID`, `raft-state`, `election-timeouts`,
  `log-level none|info`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from datadriven import TestData

from chainfire_core.errors import ChainfireError, ProposalDropped
from chainfire_core.raft.confchange import describe
from chainfire_core.raft.config import RaftConfig, ReadOnlyOption
from chainfire_core.raft.messages import (
    NO_NODE,
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
from chainfire_core.raft.quorum import MajorityConfig
from chainfire_core.raft.raft import Role
from chainfire_core.raft.rawnode import RawNode, Ready
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.raft.tracker import describe_progress
from chainfire_core.types import Index, NodeId, Term

# Rounds of `stabilize` before it gives up (a livelock in the core).
MAX_STABILIZE_ROUNDS = 1_000
MAX_TICKS_PER_COMMAND = 10_000

ROLE_WORDS = {
    Role.FOLLOWER: "follower",
    Role.PRE_CANDIDATE: "pre-candidate",
    Role.CANDIDATE: "candidate",
    Role.LEADER: "leader",
}
ROLE_STATES = {
    Role.FOLLOWER: "StateFollower",
    Role.PRE_CANDIDATE: "StatePreCandidate",
    Role.CANDIDATE: "StateCandidate",
    Role.LEADER: "StateLeader",
}
CHANGE_LETTERS = {
    "v": ConfChangeType.ADD_NODE,
    "l": ConfChangeType.ADD_LEARNER,
    "r": ConfChangeType.REMOVE_NODE,
}
LETTER_OF_CHANGE = {kind: letter for letter, kind in CHANGE_LETTERS.items()}


# -- rendering -------------------------------------------------------------------


def describe_data(data: bytes) -> str:
    return '"' + data.decode("utf-8", errors="backslashreplace").replace('"', '\\"') + '"'


def describe_conf_change(change: ConfChange) -> str:
    words = [f"{LETTER_OF_CHANGE[c.type]}{c.node_id}" for c in change.changes]
    if change.transition != ConfChangeTransition.AUTO:
        words.append(f"transition={change.transition.name.lower()}")
    return " ".join(words)


def describe_entry(entry: Entry) -> str:
    if entry.conf_change is not None:
        text = f"{entry.term}/{entry.index} EntryConfChangeV2"
        details = describe_conf_change(entry.conf_change)
        return f"{text} {details}" if details else text
    return f"{entry.term}/{entry.index} EntryNormal {describe_data(entry.data)}"


def describe_entries(entries: tuple[Entry, ...]) -> str:
    return "[" + ", ".join(describe_entry(entry) for entry in entries) + "]"


def describe_conf_state(conf_state: ConfState) -> str:
    text = f"voters={MajorityConfig(ids=conf_state.voters)}"
    if conf_state.voters_outgoing:
        text += f"&&{MajorityConfig(ids=conf_state.voters_outgoing)}"
    if conf_state.learners:
        text += f" learners={MajorityConfig(ids=conf_state.learners)}"
    if conf_state.learners_next:
        text += f" learners_next={MajorityConfig(ids=conf_state.learners_next)}"
    if conf_state.auto_leave:
        text += " autoleave"
    return text


def describe_snapshot(snapshot: Snapshot) -> str:
    meta = snapshot.metadata
    return f"Index:{meta.index} Term:{meta.term} {describe_conf_state(meta.conf_state)}"


def message_type(message: Message) -> str:
    match message:
        case AppendEntries():
            return "MsgApp"
        case AppendResponse():
            return "MsgAppResp"
        case RequestVote():
            return "MsgPreVote" if message.pre_vote else "MsgVote"
        case VoteResponse():
            return "MsgPreVoteResp" if message.pre_vote else "MsgVoteResp"
        case InstallSnapshot():
            return "MsgSnap"
        case Heartbeat():
            return "MsgHeartbeat"
        case HeartbeatResponse():
            return "MsgHeartbeatResp"
        case TimeoutNow():
            return "MsgTimeoutNow"
        case ForwardedProposal():
            return "MsgProp"
        case ForwardedReadIndex():
            return "MsgReadIndex"
        case ReadIndexResponse():
            return "MsgReadIndexResp"
        case ForwardedTransfer():
            return "MsgTransferLeader"


def _context(context: bytes) -> str:
    return f" Context:{context.decode('utf-8', errors='backslashreplace')}" if context else ""


def describe_message(message: Message) -> str:
    head = f"{message.sender}->{message.to} {message_type(message)} Term:{message.term}"
    match message:
        case AppendEntries():
            text = f"{head} Log:{message.log_term}/{message.index} Commit:{message.commit}"
            return text + (f" Entries:{describe_entries(message.entries)}"
                           if message.entries else "")
        case AppendResponse():
            if message.reject:
                return (f"{head} Index:{message.index} Rejected "
                        f"(Hint: {message.log_term}/{message.reject_hint})")
            return f"{head} Index:{message.index}"
        case RequestVote():
            text = f"{head} Log:{message.last_log_term}/{message.last_log_index}"
            return text + (" Transfer" if message.transfer else "")
        case VoteResponse():
            return head + ("" if message.granted else " Rejected")
        case InstallSnapshot():
            return f"{head} Snapshot:[{describe_snapshot(message.snapshot)}]"
        case Heartbeat():
            return f"{head} Commit:{message.commit}{_context(message.context)}"
        case HeartbeatResponse() | ForwardedReadIndex():
            return head + _context(message.context)
        case ReadIndexResponse():
            return f"{head} Index:{message.index}{_context(message.context)}"
        case ForwardedProposal():
            return f"{head} Entries:{describe_entries(message.entries)}"
        case TimeoutNow() | ForwardedTransfer():
            return head


def describe_ready(ready: Ready) -> list[str]:
    lines = [f"Ready MustSync={str(ready.must_sync).lower()}:"]
    if ready.soft_state is not None:
        lines.append(f"Lead:{ready.soft_state.lead} State:{ROLE_STATES[ready.soft_state.role]}")
    if ready.hard_state is not None:
        hs = ready.hard_state
        lines.append(f"HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}")
    if ready.snapshot is not None:
        lines.append(f"Snapshot {describe_snapshot(ready.snapshot)}")
    for title, entries in (("Entries:", ready.entries),
                           ("CommittedEntries:", ready.committed_entries)):
        if entries:
            lines.append(title)
            lines.extend(describe_entry(entry) for entry in entries)
    if ready.messages:
        lines.append("Messages:")
        lines.extend(describe_message(message) for message in ready.messages)
    if ready.read_states:
        lines.append("ReadStates:")
        lines.extend(f"Index:{rs.index}{_context(rs.context)}" for rs in ready.read_states)
    return lines


# -- the environment ---------------------------------------------------------------


@dataclass(slots=True)
class Node:
    config: RaftConfig
    storage: MemoryStorage
    rng: random.Random
    rawnode: RawNode


@dataclass(frozen=True, slots=True)
class _Observed:
    """What the INFO lines report changes of."""

    role: Role
    term: Term
    transferee: NodeId
    config: str


def _parse_bool(value: str, d: TestData) -> bool:
    if value not in ("true", "false"):
        raise d.fatal(f"expected true or false, got {value!r}")
    return value == "true"


def _parse_int(value: str, d: TestData) -> int:
    try:
        return int(value)
    except ValueError:
        raise d.fatal(f"expected an integer, got {value!r}") from None


@dataclass(slots=True)
class InteractionEnv:
    nodes: dict[NodeId, Node] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    # Messages held back by `delay-msgs`, in order, until `release-msgs`.
    delayed: list[Message] = field(default_factory=list)
    partition: list[frozenset[NodeId]] | None = None
    quiet: bool = False
    _out: list[str] = field(default_factory=list)
    _indent: int = 0

    # -- output ----------------------------------------------------------------

    def emit(self, line: str) -> None:
        if not self.quiet:
            self.always(line)

    def always(self, line: str) -> None:
        self._out.append("  " * self._indent + line)

    def info(self, line: str) -> None:
        self.emit(f"INFO {line}")

    @contextmanager
    def section(self, header: str) -> Iterator[None]:
        self.emit(header)
        self._indent += 1
        try:
            yield
        finally:
            self._indent -= 1

    # -- dispatch --------------------------------------------------------------

    def handle(self, d: TestData) -> str:
        """Run one block; its output ("ok" if there is none)."""
        self._out = []
        self._indent = 0
        command = COMMANDS.get(d.cmd)
        if command is None:
            raise d.fatal("unknown command")
        command(self, d)
        for node in self.nodes.values():
            node.rawnode.check_invariants()
            node.storage.check_invariants()
        return "\n".join(self._out) or "ok"

    def node(self, d: TestData, word: str) -> tuple[NodeId, Node]:
        node_id = NodeId(_parse_int(word, d))
        if node_id not in self.nodes:
            raise d.fatal(f"no node {node_id}")
        return node_id, self.nodes[node_id]

    def first_node(self, d: TestData) -> tuple[NodeId, Node]:
        ids = d.positional()
        if not ids:
            raise d.fatal("needs a node id")
        return self.node(d, ids[0])

    def node_ids(self, d: TestData) -> list[NodeId]:
        """The positional node ids, or every node if none are given."""
        ids = [self.node(d, word)[0] for word in d.positional()]
        return ids or sorted(self.nodes)

    # -- observing the core --------------------------------------------------------

    @staticmethod
    def _observe(node: Node) -> _Observed:
        raft = node.rawnode.raft
        return _Observed(role=raft.role, term=raft.term, transferee=raft.lead_transferee,
                         config=describe(raft.tracker.config))

    def run(self, node_id: NodeId, action: Callable[[], object]) -> None:
        """Run an input on a node; report what changed, and a dropped proposal."""
        node = self.nodes[node_id]
        before = self._observe(node)
        try:
            action()
        except ProposalDropped as error:
            self.info(f"{node_id} {error}")
        except ChainfireError as error:
            self.info(f"{node_id} error: {type(error).__name__}: {error}")
        self._report(node_id, before, self._observe(node))

    def _report(self, node_id: NodeId, before: _Observed, after: _Observed) -> None:
        if before.config != after.config:
            self.info(f"{node_id} switched to configuration {after.config}")
        if before.role != after.role or before.term != after.term:
            self.info(f"{node_id} became {ROLE_WORDS[after.role]} at term {after.term}")
        if after.transferee == before.transferee:
            return
        if after.transferee != NO_NODE:
            self.info(f"{node_id} starts transferring leadership to {after.transferee}")
        elif after.role == Role.LEADER:
            self.info(f"{node_id} aborted transferring leadership to {before.transferee}")

    # -- commands: nodes -------------------------------------------------------------

    def add_nodes(self, d: TestData) -> None:
        words = d.positional()
        if len(words) != 1:
            raise d.fatal("usage: add-nodes N [options]")
        count = _parse_int(words[0], d)
        options = {arg.key: arg.vals for arg in d.args if arg.vals}
        conf_state = ConfState(
            voters=tuple(sorted(NodeId(_parse_int(v, d)) for v in options.pop("voters", ()))),
            learners=tuple(sorted(NodeId(_parse_int(v, d)) for v in options.pop("learners", ()))))
        index = Index(_parse_int(options.pop("index", ("0",))[0], d))
        seed = _parse_int(options.pop("seed", ("0",))[0], d)
        config_args = self._config_args(d, options)
        if conf_state.voters and index <= 0:
            raise d.fatal("a node with voters starts from a snapshot: give index=K (K >= 1)")
        for _ in range(count):
            node_id = NodeId(max(self.nodes, default=0) + 1)
            storage = MemoryStorage()
            if conf_state.voters:
                storage.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
                    index=index, term=Term(1), conf_state=conf_state)))
            config = RaftConfig(id=node_id, **config_args)  # type: ignore[arg-type]
            rng = random.Random(seed * 1_000 + node_id)
            node = Node(config=config, storage=storage, rng=rng,
                        rawnode=RawNode(config, storage, rng))
            self.nodes[node_id] = node
            self._report_start(node_id, node)

    @staticmethod
    def _config_args(d: TestData, options: dict[str, tuple[str, ...]]) -> dict[str, object]:
        names = {
            "prevote": ("pre_vote", _parse_bool),
            "checkquorum": ("check_quorum", _parse_bool),
            "forwarding": ("disable_proposal_forwarding", lambda v, d: not _parse_bool(v, d)),
            "election": ("election_ticks", _parse_int),
            "heartbeat": ("heartbeat_ticks", _parse_int),
            "max-inflight": ("max_inflight_msgs", _parse_int),
            "max-msg-bytes": ("max_size_per_msg_bytes", _parse_int),
        }
        config_args: dict[str, object] = {}
        for key, vals in options.items():
            if key == "read-only":
                modes = {"safe": ReadOnlyOption.SAFE, "lease": ReadOnlyOption.LEASE_BASED}
                if vals[0] not in modes:
                    raise d.fatal(f"read-only must be safe or lease, got {vals[0]!r}")
                config_args["read_only_option"] = modes[vals[0]]
            elif key in names:
                name, parse = names[key]
                config_args[name] = parse(vals[0], d)
            else:
                raise d.fatal(f"unknown option {key}")
        return config_args

    def _report_start(self, node_id: NodeId, node: Node) -> None:
        raft = node.rawnode.raft
        log = raft.log
        self.info(f"{node_id} switched to configuration {describe(raft.tracker.config)}")
        self.info(f"{node_id} became follower at term {raft.term}")
        self.info(f"{node_id} started: term:{raft.term} vote:{raft.vote} commit:{log.committed} "
                  f"applied:{log.applied} last:{log.last_term()}/{log.last_index()}")

    def restart(self, d: TestData) -> None:
        node_id, node = self.first_node(d)
        node.rawnode = RawNode(node.config, node.storage, node.rng)
        self._report_start(node_id, node)

    def snapshot(self, d: TestData) -> None:
        node_id, node = self.first_node(d)
        raft = node.rawnode.raft
        applied = raft.log.applied
        snapshot = node.storage.create_snapshot(applied, raft.tracker.conf_state())
        node.storage.compact(applied)
        self.info(f"{node_id} took snapshot {describe_snapshot(snapshot)}; log compacted, "
                  f"first index {node.storage.first_index()}")

    # -- commands: inputs ------------------------------------------------------------

    def campaign(self, d: TestData) -> None:
        node_id, node = self.first_node(d)
        self.run(node_id, node.rawnode.campaign)

    def propose(self, d: TestData) -> None:
        words = d.positional()
        if len(words) != 2:
            raise d.fatal("usage: propose ID DATA")
        node_id, node = self.node(d, words[0])
        self.run(node_id, lambda: node.rawnode.propose(words[1].encode()))

    def propose_conf_change(self, d: TestData) -> None:
        node_id, node = self.first_node(d)
        words = d.positional()[1:] + d.input.split()
        changes = []
        for word in words:
            kind = CHANGE_LETTERS.get(word[:1])
            if kind is None:
                raise d.fatal(f"a change is v<id>, l<id> or r<id>, got {word!r}")
            changes.append(ConfChangeSingle(type=kind, node_id=NodeId(_parse_int(word[1:], d))))
        transition_arg = d.arg("transition")
        transition = ConfChangeTransition.AUTO
        if transition_arg is not None:
            transition = ConfChangeTransition[transition_arg.vals[0].upper()]
        change = ConfChange(changes=tuple(changes), transition=transition)
        self.run(node_id, lambda: node.rawnode.propose_conf_change(change))

    def read_index(self, d: TestData) -> None:
        words = d.positional()
        if len(words) != 2:
            raise d.fatal("usage: read-index ID CTX")
        node_id, node = self.node(d, words[0])
        self.run(node_id, lambda: node.rawnode.read_index(words[1].encode()))

    def transfer_leadership(self, d: TestData) -> None:
        source, target = d.arg("from"), d.arg("to")
        if source is None or target is None:
            raise d.fatal("usage: transfer-leadership from=ID to=ID")
        node_id, node = self.node(d, source.vals[0])
        transferee = NodeId(_parse_int(target.vals[0], d))
        self.run(node_id, lambda: node.rawnode.transfer_leader(transferee))

    def report_unreachable(self, d: TestData) -> None:
        words = d.positional()
        node_id, node = self.node(d, words[0])
        peer = NodeId(_parse_int(words[1], d))
        self.run(node_id, lambda: node.rawnode.report_unreachable(peer))

    def report_snapshot(self, d: TestData) -> None:
        words = d.positional()
        node_id, node = self.node(d, words[0])
        peer = NodeId(_parse_int(words[1], d))
        ok_arg = d.arg("ok")
        ok = ok_arg is None or _parse_bool(ok_arg.vals[0], d)
        self.run(node_id, lambda: node.rawnode.report_snapshot(peer, ok=ok))

    # -- commands: time --------------------------------------------------------------

    def tick(self, d: TestData) -> None:
        count_arg = d.arg("n")
        count = 1 if count_arg is None else _parse_int(count_arg.vals[0], d)
        assert count <= MAX_TICKS_PER_COMMAND, count
        ids = self.node_ids(d)
        for _ in range(count):
            for node_id in ids:
                self.run(node_id, self.nodes[node_id].rawnode.tick)

    def tick_heartbeat(self, d: TestData) -> None:
        node_id, node = self.first_node(d)
        for _ in range(node.config.heartbeat_ticks):
            self.run(node_id, node.rawnode.tick)

    def tick_election(self, d: TestData) -> None:
        node_id, node = self.first_node(d)
        raft = node.rawnode.raft
        if raft.role == Role.LEADER:
            ticks = raft.config.election_ticks - raft.election_elapsed
        else:
            ticks = raft.randomized_election_timeout - raft.election_elapsed
        for _ in range(max(1, ticks)):
            self.run(node_id, node.rawnode.tick)

    # -- commands: the Ready loop and the network -------------------------------------

    def process_ready_cmd(self, d: TestData) -> None:
        for node_id in self.node_ids(d):
            self.process_ready(node_id)

    def process_ready(self, node_id: NodeId) -> None:
        """Persist, stage the messages, apply, advance: the Ready contract."""
        node = self.nodes[node_id]
        rawnode, storage = node.rawnode, node.storage
        with self.section(f"> {node_id} handling Ready"):
            if not rawnode.has_ready():
                self.emit("<empty Ready>")
                return
            before = self._observe(node)
            ready = rawnode.ready()
            for line in describe_ready(ready):
                self.emit(line)
            if ready.snapshot is not None:
                storage.apply_snapshot(ready.snapshot)
            storage.append(ready.entries)
            if ready.hard_state is not None:
                storage.set_hard_state(ready.hard_state)
            self.messages.extend(ready.messages)
            for entry in ready.committed_entries:
                if entry.conf_change is not None:
                    rawnode.apply_conf_change(entry.conf_change)
            rawnode.advance(ready)
            self._report(node_id, before, self._observe(node))

    def _blocked(self, message: Message) -> bool:
        if self.partition is None:
            return False
        def group(node_id: NodeId) -> int:
            for number, members in enumerate(self.partition or ()):
                if node_id in members:
                    return number
            return -1
        return group(message.sender) != group(message.to)

    def _filter(self, d: TestData) -> Callable[[Message], bool]:
        """The `type=` and `from=` filters of a network command."""
        type_arg, from_arg = d.arg("type"), d.arg("from")
        kinds = set(type_arg.vals) if type_arg is not None else None
        senders = ({NodeId(_parse_int(v, d)) for v in from_arg.vals}
                   if from_arg is not None else None)

        def wanted(message: Message) -> bool:
            return ((kinds is None or message_type(message) in kinds)
                    and (senders is None or message.sender in senders))
        return wanted

    def deliver_msgs_cmd(self, d: TestData) -> None:
        drop_arg, keep_arg = d.arg("drop"), d.arg("keep")
        keep = keep_arg is not None and _parse_bool(keep_arg.vals[0], d)
        wanted = self._filter(d)
        if drop_arg is not None:
            drop = {NodeId(_parse_int(v, d)) for v in drop_arg.vals}
            for message in self._take(lambda m: m.to in drop and wanted(m), keep=False):
                self.emit(f"dropped: {describe_message(message)}")
            if not d.positional():
                return
        for node_id in self.node_ids(d):
            self.deliver(node_id, wanted, keep=keep)

    def _take(self, wanted: Callable[[Message], bool], *, keep: bool) -> list[Message]:
        """Remove (or with `keep`, copy) the staged messages `wanted` selects."""
        taken, rest = [], []
        for message in self.messages:
            if wanted(message):
                taken.append(message)
                if keep:
                    rest.append(message)
            else:
                rest.append(message)
        self.messages = rest
        return taken

    def deliver(self, node_id: NodeId, wanted: Callable[[Message], bool] | None = None, *,
                keep: bool = False) -> bool:
        """Step the staged messages to `node_id` into it; whether any were taken."""
        messages = self._take(
            lambda m: m.to == node_id and (wanted is None or wanted(m)), keep=keep)
        delivered = []
        for message in messages:
            if self._blocked(message):
                self.emit(f"dropped (partition): {describe_message(message)}")
            else:
                delivered.append(message)
        if delivered:
            rawnode = self.nodes[node_id].rawnode
            with self.section(f"> {node_id} receiving messages"):
                for message in delivered:
                    self.emit(describe_message(message))
                    self.run(node_id, partial(rawnode.step, message))
        return bool(messages)

    def delay_msgs(self, d: TestData) -> None:
        """Hold back the staged messages to the given nodes (all if none)."""
        wanted = self._filter(d)
        ids = set(self.node_ids(d))
        for message in self._take(lambda m: m.to in ids and wanted(m), keep=False):
            self.emit(f"delayed: {describe_message(message)}")
            self.delayed.append(message)

    def release_msgs(self, _d: TestData) -> None:
        """Stage the delayed messages again, after those already staged."""
        for message in self.delayed:
            self.emit(f"released: {describe_message(message)}")
        self.messages.extend(self.delayed)
        self.delayed = []

    def stabilize(self, d: TestData) -> None:
        ids = self.node_ids(d)
        for _ in range(MAX_STABILIZE_ROUNDS):
            done = True
            for node_id in ids:
                if self.nodes[node_id].rawnode.has_ready():
                    done = False
                    self.process_ready(node_id)
            for node_id in ids:
                if self.deliver(node_id):
                    done = False
            if done:
                return
        raise AssertionError(f"{d.pos}: no stable state after {MAX_STABILIZE_ROUNDS} rounds")

    def partition_cmd(self, d: TestData) -> None:
        words = [arg.key for arg in d.args]
        groups: list[set[NodeId]] = []
        for chunk in " ".join(words).split("/"):
            ids = {NodeId(_parse_int(v, d)) for v in chunk.replace(",", " ").split()}
            if ids:
                groups.append(ids)
        named: set[NodeId] = set().union(*groups)
        rest = set(self.nodes) - named
        if rest:
            groups.append(rest)
        self.partition = [frozenset(group) for group in groups]
        self.emit("partition: " + " / ".join(
            ",".join(str(i) for i in sorted(group)) for group in self.partition))

    def heal(self, _d: TestData) -> None:
        self.partition = None

    # -- commands: inspection ----------------------------------------------------------

    def status(self, d: TestData) -> None:
        node_id, node = self.first_node(d)
        raft = node.rawnode.raft
        self.always(describe(raft.tracker.config))
        if raft.role != Role.LEADER:
            self.always(f"{node_id} is {ROLE_WORDS[raft.role]}, not leader: no progress")
            return
        for line in describe_progress(raft.tracker.progress).split("\n"):
            self.always(line)
        if raft.lead_transferee != NO_NODE:
            self.always(f"transferring leadership to {raft.lead_transferee}")

    def raft_log(self, d: TestData) -> None:
        _, node = self.first_node(d)
        storage = node.storage
        first, last = storage.first_index(), storage.last_index()
        if last < first:
            self.always(f"log is empty: first index={first}, last index={last}")
            return
        for entry in storage.entries(first, Index(last + 1), None):
            self.always(describe_entry(entry))

    def raft_state(self, _d: TestData) -> None:
        for node_id in sorted(self.nodes):
            raft = self.nodes[node_id].rawnode.raft
            own = raft.tracker.progress.get(node_id)
            kind = "Non-member" if own is None else "Learner" if own.is_learner else "Voter"
            self.always(f"{node_id}: {ROLE_STATES[raft.role]} ({kind}) Term:{raft.term} "
                        f"Vote:{raft.vote} Lead:{raft.lead} Commit:{raft.log.committed} "
                        f"Applied:{raft.log.applied} Last:{raft.log.last_term()}/"
                        f"{raft.log.last_index()}")

    def election_timeouts(self, _d: TestData) -> None:
        for node_id in sorted(self.nodes):
            raft = self.nodes[node_id].rawnode.raft
            self.always(f"{node_id}: timeout={raft.randomized_election_timeout} "
                        f"elapsed={raft.election_elapsed}")

    def log_level(self, d: TestData) -> None:
        words = d.positional()
        if words not in (["none"], ["info"]):
            raise d.fatal("usage: log-level none|info")
        self.quiet = words == ["none"]


COMMANDS: dict[str, Callable[[InteractionEnv, TestData], None]] = {
    "add-nodes": InteractionEnv.add_nodes,
    "campaign": InteractionEnv.campaign,
    "delay-msgs": InteractionEnv.delay_msgs,
    "deliver-msgs": InteractionEnv.deliver_msgs_cmd,
    "election-timeouts": InteractionEnv.election_timeouts,
    "heal": InteractionEnv.heal,
    "log-level": InteractionEnv.log_level,
    "partition": InteractionEnv.partition_cmd,
    "process-ready": InteractionEnv.process_ready_cmd,
    "propose": InteractionEnv.propose,
    "propose-conf-change": InteractionEnv.propose_conf_change,
    "raft-log": InteractionEnv.raft_log,
    "raft-state": InteractionEnv.raft_state,
    "read-index": InteractionEnv.read_index,
    "release-msgs": InteractionEnv.release_msgs,
    "report-snapshot": InteractionEnv.report_snapshot,
    "report-unreachable": InteractionEnv.report_unreachable,
    "restart": InteractionEnv.restart,
    "snapshot": InteractionEnv.snapshot,
    "stabilize": InteractionEnv.stabilize,
    "status": InteractionEnv.status,
    "tick": InteractionEnv.tick,
    "tick-election": InteractionEnv.tick_election,
    "tick-heartbeat": InteractionEnv.tick_heartbeat,
    "transfer-leadership": InteractionEnv.transfer_leadership,
}
