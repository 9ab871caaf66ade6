"""ChainfireNode: Raft + the state machine + membership + read consistency.

Theory of operation
-------------------
One sans-IO object per server. Clients' requests go in with `submit`
(each with a caller-chosen request id); their answers come out in `ready()`
as `ClientResponse`s, each with its request id, a response or a typed
error. Time enters only through `tick()`.

Writes (put, delete, txn, compact, lease grant/revoke, membership changes)
are encoded with the origin node and request id and proposed to Raft. Client
writes are queued and proposed together when the driver next asks for
`ready()` (group commit: one log append and one message per follower for
all the writes that arrived since the last Ready). A
follower forwards them to its leader (or, with `forward_requests` off,
answers `NotLeader` naming the leader it knows). When the entry is applied
on the origin node, the state machine's answer goes back to the client. A
proposal the leader drops is answered `ProposalDropped` at once; one whose
log index is taken by another entry (a leader change truncated it) is
answered `ProposalDropped` when that entry applies; anything else
unanswered by its deadline (`request_timeout_ticks`) gets `RequestTimeout`,
whose outcome is unknown. Nothing is left hanging.

Reads: SERIALIZABLE reads are answered from this node's applied state at
once. LINEARIZABLE reads (the default) ask Raft for a read index (a quorum
heartbeat round, or the leader's lease when Raft is configured for
lease-based reads) and are answered once this node has applied up to it.
Read-only transactions are reads.

Auth: a request may come with credentials (`submit(..., auth=AuthInfo)`,
from `auth_info(token)`). A write with credentials, or any write while
auth is enabled here (then without credentials it runs as ANONYMOUS), is
proposed as an `AuthorizedCommand`, checked at apply time on every replica;
a read is checked when it is served. Passwords never enter the log: this
node hashes a new password (with a salt from its `entropy`) and checks an
Authenticate request's password itself, then proposes an
`AuthenticateCommand` carrying the auth revision it checked at and a random
token prefix; if an auth change applies in between, the command is refused
and this node checks again (etcd's retry loop). Every replica then assigns
the token locally (auth/tokens.py).

Quotas: before proposing a write that costs backend space, the node checks
its state machine's backend size against `quota_backend_bytes` (etcd checks
where the request comes in); a write that does not fit is answered NoSpace
and a NOSPACE alarm is proposed, after which every replica refuses writes
until the alarm is deactivated (alarms.py). Namespace quotas are enforced
at apply time (quota.py).

Leases: only the leader's lessor keeps time (`promote` when this node
becomes leader, `demote` when it stops). Each tick the leader proposes
revokes for expired leases and, every `lease_checkpoint_interval_ticks`,
checkpoints of remaining TTLs. Keepalives and TTL queries go to the leader
(a follower answers `NotLeader`).

Snapshots: every `snapshot_every_entries` applied entries the node writes a
snapshot of the state machine and member table into its Raft storage and
compacts the log, keeping `snapshot_catchup_entries` for slow followers
(at the start of the next `advance`: of state a driver with a durable
backend has committed). An incoming snapshot replaces the state machine
when it is applied.

Durable state machine: a driver may hand in a `StateMachine` over a backend
that already holds state (its applied index, leases, and the member table
this node saves there). If it is at or past the storage's snapshot, the
snapshot is not restored: the member table comes from the backend, and
committed entries up to its applied index are skipped (their conf changes
still go to Raft, whose configuration starts from the snapshot's).

Planted bugs (`NodeConfig.bugs`, chainfire_core/bugs.py; simulation only,
none by default) make the node, its state machine, lessor and watchable
store misbehave on purpose; every such site is marked `# planted bug: NAME`.

The driver's duties per `ready()` are RawNode's (persist, send, then call
`advance`); `advance` applies the committed entries itself, so the driver
never touches the state machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chainfire_core.alarms import AlarmAction, AlarmRequest, AlarmType
from chainfire_core.auth.messages import (
    ANONYMOUS,
    AuthenticateCommand,
    AuthenticateRequest,
    AuthInfo,
    AuthorizedCommand,
    AuthStatusRequest,
    CheckedCommand,
    PasswordHash,
    RoleGetRequest,
    RoleListRequest,
    UserAddCommand,
    UserAddRequest,
    UserChangePasswordCommand,
    UserChangePasswordRequest,
    UserGetRequest,
    UserListRequest,
)
from chainfire_core.auth.password import DEFAULT_HASH_ITERATIONS, SALT_BYTES, hash_password
from chainfire_core.bugs import check_bugs
from chainfire_core.codec import Codec
from chainfire_core.errors import (
    AuthOldRevision,
    ChainfireError,
    InvalidRequest,
    NoSpace,
    NotLeader,
    ProposalDropped,
    RequestTimeout,
)
from chainfire_core.lease.messages import (
    LeaseKeepAliveRequest,
    LeaseLeasesRequest,
    LeaseTimeToLiveRequest,
)
from chainfire_core.membership import MemberTable
from chainfire_core.mvcc.messages import (
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    ResponseHeader,
    TxnRequest,
)
from chainfire_core.node_codec import NODE_CODEC
from chainfire_core.node_messages import (
    ClientRequest,
    ClientResponse,
    Command,
    MemberAddRequest,
    MemberChangeContext,
    MemberListRequest,
    MemberPromoteRequest,
    MemberPublishRequest,
    MemberRemoveRequest,
    MemberUpdateRequest,
    NodeSnapshot,
    Proposal,
    ReadConsistency,
    StatusRequest,
    StatusResponse,
)
from chainfire_core.quota import (
    DEFAULT_QUOTA_BACKEND_BYTES,
    QuotaListRequest,
    backend_has_room,
    request_cost,
)
from chainfire_core.raft.config import RaftConfig
from chainfire_core.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    Message,
    Snapshot,
)
from chainfire_core.raft.raft import RandomSource, Role
from chainfire_core.raft.rawnode import RawNode, Ready
from chainfire_core.raft.storage import Storage
from chainfire_core.state_machine import Read, StateMachine
from chainfire_core.types import Index, NodeId


class SnapshotStorage(Storage, Protocol):
    """Raft storage the node can snapshot into and compact."""

    def create_snapshot(self, index: Index, conf_state: ConfState, data: bytes = b"") -> Snapshot:
        ...

    def compact(self, compact_index: Index) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    raft: RaftConfig
    # How much time one tick stands for, for lease TTLs.
    tick_ms: int = 100
    request_timeout_ticks: int = 50
    forward_requests: bool = True
    lease_checkpoint_interval_ticks: int = 50
    snapshot_every_entries: int = 10_000
    snapshot_catchup_entries: int = 5_000
    max_pending_requests: int = 10_000
    # etcd's --quota-backend-bytes (checked before a write is proposed), and
    # the PBKDF2 iterations for passwords this node hashes.
    quota_backend_bytes: int = DEFAULT_QUOTA_BACKEND_BYTES
    password_hash_iterations: int = DEFAULT_HASH_ITERATIONS
    # Planted bugs (chainfire_core/bugs.py): simulation only, empty by default.
    bugs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("tick_ms", "request_timeout_ticks", "lease_checkpoint_interval_ticks",
                     "snapshot_every_entries", "max_pending_requests", "quota_backend_bytes",
                     "password_hash_iterations"):
            if getattr(self, name) <= 0:
                raise InvalidRequest(f"node config: {name} must be > 0")
        check_bugs(self.bugs)
        if not 0 <= self.snapshot_catchup_entries <= self.snapshot_every_entries:
            raise InvalidRequest("node config: need 0 <= snapshot_catchup_entries <= "
                                 "snapshot_every_entries")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeReady:
    """RawNode's Ready (persist, then send) plus the answers for clients."""

    raft: Ready | None
    responses: tuple[ClientResponse, ...]

    @property
    def messages(self) -> tuple[Message, ...]:
        return () if self.raft is None else self.raft.messages


@dataclass(slots=True, kw_only=True)
class _Pending:
    request: ClientRequest
    deadline_tick: int
    # The log index the leader gave the proposal, when known.
    index: Index = Index(0)  # noqa: RUF009
    read_index: Index | None = None
    # What to answer once the proposal applies, instead of its own result.
    answer: object | None = None
    # The credentials a read is served with (None: a trusted caller).
    auth: AuthInfo | None = None


class ChainfireNode:
    """See the module docstring."""

    def __init__(self, config: NodeConfig, storage: SnapshotStorage, rng: RandomSource,
                 state_machine: StateMachine | None = None, codec: Codec = NODE_CODEC, *,
                 entropy: Callable[[int], bytes] | None = None) -> None:
        """`entropy(n)`: n unpredictable bytes for password salts and token
        prefixes (a real driver passes `secrets.token_bytes`); by default
        they are drawn from `rng`, which is deterministic (the simulator)."""
        self.config = config
        self._entropy = entropy or (lambda n: rng.randrange(0, 1 << (8 * n)).to_bytes(n, "big"))
        self.id = config.raft.id
        self.storage = storage
        self.codec = codec
        self.sm = state_machine or StateMachine(bugs=config.bugs)
        self.members = MemberTable()
        self.ticks = 0
        # Planted bugs (chainfire_core/bugs.py), looked up once.
        self._stale_reads = "stale_local_reads" in config.bugs
        self._reset_leases = "lease_reset_on_leader_change" in config.bugs
        # Planted bug follower_lease_expiry: every lessor keeps time, always.
        self._follower_expiry = "follower_lease_expiry" in config.bugs
        snapshot = storage.snapshot()
        if snapshot.metadata.index > self.sm.applied_index:
            self._restore_snapshot(snapshot)
        if self._follower_expiry and not self.sm.lessor.is_primary:
            self.sm.lessor.promote(self.now_ms)  # planted bug: follower_lease_expiry
        # Planted bug stale_snapshot_on_restart: commands up to this index
        # count as applied although the state restored is the older snapshot's.
        self._stale_through = Index(0)
        if "stale_snapshot_on_restart" in config.bugs:
            # planted bug: stale_snapshot_on_restart
            self._stale_through = storage.initial_state()[0].commit
        self.raw = RawNode(config.raft, storage, rng)
        self.members.sync(self.raw.raft.tracker.conf_state())
        if snapshot.metadata.index <= self.sm.applied_index:
            self._load_members()  # a durable state machine ahead of the snapshot
        self._pending: dict[int, _Pending] = {}
        # Encoded client writes waiting for the next ready(): (request id, data).
        self._queued: list[tuple[int, bytes]] = []
        self._responses: list[ClientResponse] = []
        self._last_snapshot_index = snapshot.metadata.index
        # Set when a member was added: its first snapshot must name it.
        self._snapshot_due = False
        self._was_leader = False

    # -- time ------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        return self.ticks * self.config.tick_ms

    @property
    def is_leader(self) -> bool:
        return self.raw.raft.role == Role.LEADER

    def tick(self) -> None:
        self.ticks += 1
        self.raw.tick()
        self._expire_deadlines()
        if self.is_leader and self.sm.lessor.is_primary:
            self._propose_lease_housekeeping()
        elif self._follower_expiry and self.sm.lessor.is_primary:
            self._propose_revokes()  # planted bug: follower_lease_expiry
        self.sm.watches.tick_progress()

    def _expire_deadlines(self) -> None:
        for request_id in sorted(self._pending):
            if self._pending[request_id].deadline_tick <= self.ticks:
                self._fail(request_id, RequestTimeout())

    def _propose_lease_housekeeping(self) -> None:
        commands: list[Command] = list(self.sm.expired_leases(self.now_ms))
        if self.ticks % self.config.lease_checkpoint_interval_ticks == 0:
            interval_ms = self.config.lease_checkpoint_interval_ticks * self.config.tick_ms
            checkpoint = self.sm.checkpoints_due(self.now_ms, interval_ms)
            if checkpoint is not None:
                commands.append(checkpoint)
        self._propose_commands(commands)

    def _propose_revokes(self) -> None:
        """A follower revoking leases by its own clock (planted bug
        follower_lease_expiry: only the leader may decide expiry)."""
        self._propose_commands(list(self.sm.expired_leases(self.now_ms)))

    def _propose_commands(self, commands: list[Command]) -> None:
        for command in commands:
            proposal = Proposal(origin=self.id, request_id=0, command=command)
            try:
                self.raw.propose(self.codec.encode(proposal))
            except ProposalDropped:
                return  # retried on a later tick (the lessor re-reports)

    # -- requests ----------------------------------------------------------------

    def submit(self, request_id: int, request: ClientRequest,
               consistency: ReadConsistency = ReadConsistency.LINEARIZABLE, *,
               auth: AuthInfo | None = None) -> None:
        """Take one client request; its answer comes out of a later `ready()`.
        `auth`: the caller's credentials (`auth_info(token)`, or ANONYMOUS
        for a call without a token); None is a trusted caller, which is
        checked only while auth is enabled, as ANONYMOUS."""
        if request_id <= 0 or request_id in self._pending:
            error = InvalidRequest(f"bad or duplicate request id {request_id}")
            self._answer(request_id, error=error)
            return
        if len(self._pending) >= self.config.max_pending_requests:
            self._answer(request_id, error=ProposalDropped("too many pending requests"))
            return
        try:
            self._dispatch(request_id, request, consistency, auth)
        except ChainfireError as error:
            self._pending.pop(request_id, None)
            self._answer(request_id, error=error)

    def _dispatch(self, request_id: int, request: ClientRequest,
                  consistency: ReadConsistency, auth: AuthInfo | None = None) -> None:
        match request:
            case RangeRequest() | TxnRequest() if _is_read(request):
                self._read(request_id, request, consistency, auth)
            case PutRequest() | DeleteRangeRequest() | TxnRequest():
                self._propose(request_id, request, auth)
            case StatusRequest():
                self._answer(request_id, response=self.status())
            case MemberListRequest():
                self._answer(request_id, response=self.members.response(self._header()))
            case (MemberAddRequest() | MemberRemoveRequest() | MemberPromoteRequest()
                  | MemberUpdateRequest() | MemberPublishRequest()):
                self._propose_member_change(request_id, request)
            case LeaseKeepAliveRequest():
                self._require_leader()
                self._keepalive(request_id, request)
            case LeaseTimeToLiveRequest():
                self._require_leader()
                self._answer(request_id,
                             response=self.sm.time_to_live(request, now_ms=self.now_ms))
            case LeaseLeasesRequest():
                self._answer(request_id, response=self.sm.leases())
            case _:
                self._dispatch_admin(request_id, request, consistency, auth)

    def _dispatch_admin(self, request_id: int, request: ClientRequest,
                        consistency: ReadConsistency, auth: AuthInfo | None) -> None:
        """Auth, alarm and quota requests, and the remaining writes."""
        match request:
            case (AuthStatusRequest() | UserGetRequest() | UserListRequest() | RoleGetRequest()
                  | RoleListRequest() | QuotaListRequest()):
                self._read(request_id, request, consistency, auth)
            case AlarmRequest() if request.action == AlarmAction.GET:
                self._read(request_id, request, consistency, auth)
            case AuthenticateRequest():
                self._authenticate(request_id, request)
            case UserAddRequest():
                password_hash = None if request.no_password else self._hash(request.password)
                self._propose(request_id, request, auth, UserAddCommand(
                    name=request.name, password_hash=password_hash,
                    no_password=request.no_password))
            case UserChangePasswordRequest():
                self._propose(request_id, request, auth, UserChangePasswordCommand(
                    name=request.name, password_hash=self._hash(request.password)))
            case _:
                self._propose(request_id, request, auth)

    def _hash(self, password: str) -> PasswordHash:
        return hash_password(password, salt=self._entropy(SALT_BYTES),
                             iterations=self.config.password_hash_iterations)

    def _authenticate(self, request_id: int, request: AuthenticateRequest,
                      deadline_tick: int | None = None) -> None:
        """Check the password here, then have every replica assign a token."""
        revision = self.sm.auth.check_password(request.name, request.password)
        prefix = "".join(_LETTERS[byte % len(_LETTERS)] for byte in self._entropy(16))
        command = AuthenticateCommand(name=request.name, token_prefix=prefix,
                                      checked_revision=revision)
        self._queue(request_id, request, command, deadline_tick)

    def auth_info(self, token: str) -> AuthInfo:
        """The credentials a simple token stands for on this node, now
        (InvalidAuthToken if unknown or expired here; a driver that wants
        etcd's behaviour waits first until `sm.applied_index` reaches
        `simple_token_index(token)`)."""
        return self.sm.auth_info(token, now_ms=self.now_ms)

    def _keepalive(self, request_id: int, request: LeaseKeepAliveRequest) -> None:
        response, clear = self.sm.keepalive(request, now_ms=self.now_ms)
        if clear is None:
            self._answer(request_id, response=response)
            return
        # Answered when the clear commits (as etcd does): see StateMachine.keepalive.
        proposal = Proposal(origin=self.id, request_id=request_id, command=clear)
        self._track(request_id, request).answer = response
        self._queued.append((request_id, self.codec.encode(proposal)))

    def _require_leader(self) -> None:
        if not self.is_leader:
            raise NotLeader(self.raw.leader)

    def _track(self, request_id: int, request: ClientRequest,
               deadline_tick: int | None = None) -> _Pending:
        if deadline_tick is None:
            deadline_tick = self.ticks + self.config.request_timeout_ticks
        pending = _Pending(request=request, deadline_tick=deadline_tick)
        self._pending[request_id] = pending
        return pending

    def _propose(self, request_id: int, request: ClientRequest, auth: AuthInfo | None = None,
                 command: object | None = None) -> None:
        """Propose `command` (default: the request itself), with the
        caller's credentials when it has some or auth is enabled here."""
        command = request if command is None else command
        assert isinstance(command, Command), command
        self._check_backend_quota(command)
        if auth is not None or self.sm.auth.enabled:
            info = ANONYMOUS if auth is None else auth
            assert isinstance(command, CheckedCommand), command
            command = AuthorizedCommand.of(info, command)
        self._queue(request_id, request, command)

    def _queue(self, request_id: int, request: ClientRequest, command: Command,
               deadline_tick: int | None = None) -> None:
        if not self.is_leader and not self.config.forward_requests:
            raise NotLeader(self.raw.leader)
        proposal = Proposal(origin=self.id, request_id=request_id, command=command)
        data = self.codec.encode(proposal)
        self._track(request_id, request, deadline_tick)
        self._queued.append((request_id, data))

    def _check_backend_quota(self, command: Command) -> None:
        """etcd's quota check where the request comes in: a write that would
        not fit is refused and a NOSPACE alarm raised (once: while it is
        active here, writes are refused at apply time anyway)."""
        cost = request_cost(command)
        if not cost or backend_has_room(self.sm.backend_size_bytes, cost,
                                        self.config.quota_backend_bytes):
            return
        if not self.sm.alarms.is_active(AlarmType.NOSPACE):
            self._propose_commands([AlarmRequest(action=AlarmAction.ACTIVATE, member_id=self.id,
                                                 alarm=AlarmType.NOSPACE)])
        raise NoSpace()

    def _flush_proposals(self) -> None:
        """Propose every queued write as one batch (all or none)."""
        queued, self._queued = self._queued, []
        live = [(request_id, data) for request_id, data in queued if request_id in self._pending]
        if not live:
            return
        try:
            self.raw.propose_batch([data for _, data in live])
        except ProposalDropped as dropped:
            for request_id, _ in live:
                self._fail(request_id, dropped)
            return
        if self.is_leader:
            first = self.raw.raft.log.last_index() - len(live) + 1
            for offset, (request_id, _) in enumerate(live):
                self._pending[request_id].index = Index(first + offset)

    def _propose_member_change(self, request_id: int, request: ClientRequest) -> None:
        if not self.is_leader and not self.config.forward_requests:
            raise NotLeader(self.raw.leader)
        change, member = self.members.plan(request, self.raw.raft)
        context = MemberChangeContext(origin=self.id, request_id=request_id, member=member)
        pending = self._track(request_id, request)
        self.raw.propose_conf_change(ConfChange(changes=change,
                                                context=self.codec.encode(context)))
        if self.is_leader:
            pending.index = self.raw.raft.log.last_index()

    def _read(self, request_id: int, request: Read, consistency: ReadConsistency,
              auth: AuthInfo | None = None) -> None:
        if consistency == ReadConsistency.SERIALIZABLE or (
                self._stale_reads):  # planted bug: stale_local_reads (no ReadIndex)
            self._answer(request_id, response=self._execute_read(request, auth))
            return
        self._track(request_id, request).auth = auth
        self.raw.read_index(request_id.to_bytes(8, "big"))

    def _execute_read(self, request: Read, auth: AuthInfo | None) -> object:
        if auth is None and self.sm.auth.enabled:
            auth = ANONYMOUS
        return self.sm.serve_read(request, auth)

    # -- answers -----------------------------------------------------------------

    def _answer(self, request_id: int, *, response: object | None = None,
                error: ChainfireError | None = None) -> None:
        self._responses.append(
            ClientResponse(request_id=request_id, response=response, error=error))

    def _fail(self, request_id: int, error: ChainfireError) -> None:
        if self._pending.pop(request_id, None) is not None:
            self._answer(request_id, error=error)

    def _header(self) -> ResponseHeader:
        return ResponseHeader(revision=self.sm.revision)

    def status(self) -> StatusResponse:
        raft = self.raw.raft
        return StatusResponse(
            header=self._header(), member_id=self.id, leader=raft.lead, raft_term=raft.term,
            raft_index=raft.log.last_index(), raft_applied_index=raft.log.applied,
            revision=self.sm.revision, compact_revision=self.sm.store.compact_revision,
            keys_total=self.sm.store.range(RangeRequest(key=b"\0", range_end=b"\0",
                                                        count_only=True)).count,
            is_learner=raft.is_learner,
        )

    # -- the Ready loop ------------------------------------------------------------

    def step(self, message: Message) -> None:
        self.raw.step(message)

    def campaign(self) -> None:
        self.raw.campaign()

    def transfer_leader(self, transferee: NodeId) -> None:
        self.raw.transfer_leader(transferee)

    def report_unreachable(self, peer: NodeId) -> None:
        self.raw.report_unreachable(peer)

    def report_snapshot(self, peer: NodeId, *, ok: bool) -> None:
        """The transport finished (or failed) sending a snapshot to `peer`."""
        self.raw.report_snapshot(peer, ok=ok)

    def has_ready(self) -> bool:
        return bool(self._responses) or bool(self._queued) or self.raw.has_ready()

    def ready(self) -> NodeReady:
        self._flush_proposals()
        raft_ready = self.raw.ready() if self.raw.has_ready() else None
        if raft_ready is not None and raft_ready.soft_state is not None:
            self._on_role_change(raft_ready.soft_state.role == Role.LEADER)
        responses, self._responses = tuple(self._responses), []
        return NodeReady(raft=raft_ready, responses=responses)

    def _on_role_change(self, leader: bool) -> None:
        if leader and not self._was_leader:
            extend_ms = self.config.raft.election_ticks * self.config.tick_ms
            if self._follower_expiry:
                self.sm.lessor.demote()  # planted bug: follower_lease_expiry (it kept time)
            # planted bug: lease_reset_on_leader_change (full_ttl: checkpoints ignored)
            self.sm.lessor.promote(self.now_ms, extend_ms, full_ttl=self._reset_leases)
        elif not leader and self._was_leader and not self._follower_expiry:
            self.sm.lessor.demote()
        self._was_leader = leader

    def advance(self, ready: NodeReady) -> None:
        """The driver persisted and sent `ready`: apply it and move on."""
        if ready.raft is None:
            return
        if ready.raft.snapshot is not None:
            self._restore_snapshot(ready.raft.snapshot)
            self._last_snapshot_index = ready.raft.snapshot.metadata.index
        else:
            self._maybe_snapshot(periodic=True)
        entries: Sequence[Entry] = ready.raft.committed_entries
        if self._stale_through:
            entries = self._skip_stale(entries)  # planted bug: stale_snapshot_on_restart
        self._apply_entries(entries)
        for state in ready.raft.read_states:
            pending = self._pending.get(int.from_bytes(state.context, "big"))
            if pending is not None:
                pending.read_index = state.index
        self.raw.advance(ready.raft)
        self._serve_reads()
        self._maybe_snapshot(periodic=False)

    def _apply_entries(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            if entry.index <= self.sm.applied_index:
                # Applied before a restart (the state machine is durable);
                # Raft's configuration still needs its conf changes.
                if entry.conf_change is not None:
                    self.raw.apply_conf_change(entry.conf_change)
                continue
            if entry.conf_change is not None:
                self._apply_conf_change(entry)
            elif not entry.data:
                self.sm.mark_applied(entry.index, entry.term)  # a leader's empty entry
            else:
                self._apply_proposal(entry)

    def _skip_stale(self, entries: Sequence[Entry]) -> Sequence[Entry]:
        """Planted bug stale_snapshot_on_restart: this node restarted from its
        last snapshot but takes its durable commit index as already applied
        (as if its state machine were durable up to there), so the commands
        between the snapshot and that index are never applied here: it serves
        the snapshot's older state, and builds on it, from then on."""
        kept: list[Entry] = []
        for entry in entries:
            if entry.index <= self._stale_through and entry.conf_change is None \
                    and entry.index > self.sm.applied_index:
                self.sm.mark_applied(entry.index)  # planted bug: stale_snapshot_on_restart
            else:
                kept.append(entry)
        if entries and entries[-1].index >= self._stale_through:
            self._stale_through = Index(0)
        return kept

    def _apply_proposal(self, entry: Entry) -> None:
        proposal = self.codec.decode(entry.data)
        assert isinstance(proposal, Proposal), proposal
        try:
            result: object = self.sm.apply(proposal.command, now_ms=self.now_ms,
                                           index=entry.index, term=entry.term)
            error = None
        except ChainfireError as failure:
            # A refused command (compacted, lease not found) still took its
            # log index: `apply` recorded it before it failed.
            result, error = None, failure
        assert self.sm.applied_index == entry.index, (self.sm.applied_index, entry.index)
        self._settle(entry.index, proposal.origin, proposal.request_id, result, error)

    def _apply_conf_change(self, entry: Entry) -> None:
        change = entry.conf_change
        assert change is not None
        conf_state = self.raw.apply_conf_change(change)
        self.sm.mark_applied(entry.index, entry.term)
        if not change.context:
            return  # leaving a joint config
        context = self.codec.decode(change.context)
        assert isinstance(context, MemberChangeContext), context
        member = self.members.apply(change, context.member, conf_state)
        self._save_members()
        if any(single.type != ConfChangeType.REMOVE_NODE for single in change.changes):
            # A joining member starts empty and is caught up with a snapshot;
            # Raft refuses a snapshot whose config does not name it, so the
            # one in storage must be at least this new.
            self._snapshot_due = True
        response = self.members.response(self._header(), member)
        self._settle(entry.index, context.origin, context.request_id, response, None)

    def _settle(self, index: Index, origin: NodeId, request_id: int, result: object | None,
                error: ChainfireError | None) -> None:
        # Proposals of ours that the leader had placed at this index, but that
        # lost it to another entry, will never apply.
        for other_id in sorted(self._pending):
            if self._pending[other_id].index == index and (origin, request_id) != (
                self.id, other_id):
                self._fail(other_id, ProposalDropped("lost to a leader change"))
        if origin != self.id or request_id not in self._pending:
            return
        pending = self._pending.pop(request_id)
        if isinstance(error, AuthOldRevision) and isinstance(pending.request,
                                                              AuthenticateRequest):
            self._retry_authenticate(request_id, pending)
            return
        if pending.answer is not None and error is None:
            result = pending.answer
        self._answer(request_id, response=result, error=error)

    def _retry_authenticate(self, request_id: int, pending: _Pending) -> None:
        """An auth change applied between the password check and the token:
        check again (the password may have changed), by the same deadline."""
        assert isinstance(pending.request, AuthenticateRequest)
        try:
            self._authenticate(request_id, pending.request, pending.deadline_tick)
        except ChainfireError as error:
            self._answer(request_id, error=error)

    def _serve_reads(self) -> None:
        applied = self.sm.applied_index
        for request_id in sorted(self._pending):
            pending = self._pending[request_id]
            if pending.read_index is None or pending.read_index > applied:
                continue
            del self._pending[request_id]
            assert isinstance(pending.request, Read)
            try:
                self._answer(request_id,
                             response=self._execute_read(pending.request, pending.auth))
            except ChainfireError as error:
                self._answer(request_id, error=error)

    # -- snapshots ---------------------------------------------------------------

    def _maybe_snapshot(self, *, periodic: bool) -> None:
        """Snapshot when due: `periodic` (every `snapshot_every_entries`) at
        the start of `advance`, so of the state the previous Readies applied,
        which a driver with a durable backend has committed by then (its
        applied index is never behind the snapshot, so a restart can use it);
        after a member was added, at the end of `advance` (the new member's
        catch-up snapshot must name it at once)."""
        applied = self.sm.applied_index
        if periodic and applied - self._last_snapshot_index < self.config.snapshot_every_entries:
            return
        if not periodic and not self._snapshot_due:
            return
        self._snapshot_due = False
        data = self.codec.encode(NodeSnapshot(state_machine=self.sm.snapshot(),
                                              members=self.members.all()))
        self.storage.create_snapshot(applied, self.raw.raft.tracker.conf_state(), data)
        compact_to = applied - self.config.snapshot_catchup_entries
        if compact_to > self.storage.first_index():
            self.storage.compact(Index(compact_to))
        self._last_snapshot_index = applied

    def _restore_snapshot(self, snapshot: Snapshot) -> None:
        if not snapshot.data:
            return  # the bootstrap snapshot: membership only
        decoded = self.codec.decode(snapshot.data)
        assert isinstance(decoded, NodeSnapshot), decoded
        self.sm.restore(decoded.state_machine)
        self.members.restore(decoded.members)
        self._save_members()
        if self._follower_expiry:
            # planted bug: follower_lease_expiry (a restored lessor keeps time too)
            self.sm.lessor.promote(self.now_ms)

    def _save_members(self) -> None:
        """Keep the member table with the state machine's durable state."""
        self.sm.save_members_record(self.codec.encode(
            NodeSnapshot(state_machine=b"", members=self.members.all())))

    def _load_members(self) -> None:
        """The member table saved with a state machine that starts ahead of
        the snapshot (a durable backend), if it holds one."""
        record = self.sm.members_record()
        if record is None:
            return
        decoded = self.codec.decode(record)
        assert isinstance(decoded, NodeSnapshot), decoded
        self.members.restore(decoded.members)

    def check_invariants(self) -> None:
        self.raw.check_invariants()
        self.sm.check_invariants()
        self.members.check_invariants()
        assert self.sm.applied_index <= self.raw.raft.log.committed or (
            self.sm.applied_index == self.raw.raft.log.applied)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _is_read(request: RangeRequest | TxnRequest) -> bool:
    if isinstance(request, RangeRequest):
        return True
    return _txn_is_read_only(request)


def _txn_is_read_only(txn: TxnRequest) -> bool:
    for op in txn.success + txn.failure:
        if isinstance(op, PutRequest | DeleteRangeRequest):
            return False
        if isinstance(op, TxnRequest) and not _txn_is_read_only(op):
            return False
    return True


__all__ = ["ChainfireNode", "NodeConfig", "NodeReady", "SnapshotStorage"]
