"""The replicated state machine: the MVCC store, the lessor, and snapshots.

Theory of operation
-------------------
Raft hands committed commands to `apply` in log order on every replica; the
state machine turns each into a response. Everything `apply` does depends
only on the command and the state before it, so every replica computes the
same state and the same responses. Time enters in one place: `now_ms` is
given to `apply` because a lease granted on the leader (the primary lessor)
starts its clock then; on a follower it is unused.

Reads (`range`) and the leader-local lease calls (`keepalive`,
`time_to_live`, `leases`, `expired_leases`, `checkpoints_due`) do not go
through the log: the node decides where and when they may run (read
consistency, leadership).

Watchers live in `watches`, a `WatchableStore` the store tells of every
write transaction; the driver polls it for responses to deliver.

Leases meet the store in two ways: the store calls the lessor (as its
`LeaseHooks`) to attach and detach keys on put and delete; a revoke deletes
every attached key in one write transaction, so it costs one revision.

Auth, alarms and namespace quotas (auth/, alarms.py, quota.py) are
replicated state kept in backend buckets of their own. A command sent with
credentials comes wrapped in an `AuthorizedCommand`; apply checks it (auth
errors), then the alarms (NoSpace, ClusterCorrupt), then the namespace
quotas (NamespaceQuotaExceeded), all before anything is written, so a
refused command changes nothing. Simple tokens (`tokens`) are this
member's own, not replicated and not in snapshots (auth/tokens.py). The
backend is wrapped in a `SizedBackend` so the node can check the backend
quota (`backend_size_bytes`) before it proposes a write.

A snapshot is the whole replicated state as bytes: the backend's content
(key history and metadata, auth, alarms, quotas), the lease records and id
counter, and the applied index, framed by a magic, a format version and a
SHA-256 of the body. Format 2 is format 1 whose backend may hold the auth,
alarm and quota buckets; a format-1 snapshot restores as a state without
users, roles, alarms or quotas (which is what it was). `restore` checks
the frame before touching anything, so a corrupt snapshot raises
`CorruptSnapshot` and leaves the state as it was. Snapshot, restore,
snapshot gives the same bytes.

Durable progress (etcd's consistent index, progress.py). Besides the data,
the backend holds what a durable backend needs to stand for the state on
its own: the applied index and term (written by every `apply` and
`mark_applied`, so in the same backend transaction as the data the entry
wrote), the lease records and id counter (as grants, revokes and
checkpoints apply), and the node's member table. A `StateMachine` built
over a backend that holds them starts from there (`applied_index` > 0);
one over an empty backend starts empty, as before. Leader-local lease
changes (a renewal's dropped checkpoint) are not written: they are not
replicated either, and the clear that replicates them is.
"""

from __future__ import annotations

import hashlib
import struct

from chainfire_core import progress
from chainfire_core.alarms import (
    ALARM_BUCKET,
    AlarmAction,
    AlarmRequest,
    AlarmResponse,
    AlarmStore,
)
from chainfire_core.auth.apply import (
    apply_auth,
    authorize,
    authorize_read,
    resolve_token,
    serve_auth_read,
)
from chainfire_core.auth.messages import (
    AuthCommand,
    AuthenticateResponse,
    AuthInfo,
    AuthorizedCommand,
    AuthRead,
    AuthResponse,
)
from chainfire_core.auth.store import AUTH_BUCKETS, AuthStore
from chainfire_core.auth.tokens import SimpleTokenStore
from chainfire_core.bugs import check_bugs
from chainfire_core.config import StateMachineConfig
from chainfire_core.errors import CorruptSnapshot, LeaseNotFound
from chainfire_core.lease.lessor import LeaseRecord, Lessor
from chainfire_core.lease.messages import (
    LeaseCheckpoint,
    LeaseCheckpointRequest,
    LeaseCheckpointResponse,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
)
from chainfire_core.mvcc.messages import (
    ALL_KEYS,
    CompactionRequest,
    CompactionResponse,
    DeleteRangeRequest,
    DeleteRangeResponse,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    ResponseHeader,
    TxnRequest,
    TxnResponse,
)
from chainfire_core.mvcc.store import KEY_BUCKET, META_BUCKET, MvccStore
from chainfire_core.mvcc.watchable import WatchableStore
from chainfire_core.quota import (
    QUOTA_BUCKET,
    NamespaceQuotas,
    QuotaDeleteRequest,
    QuotaListRequest,
    QuotaResponse,
    QuotaSetRequest,
    SizedBackend,
)
from chainfire_core.storage import MemoryBackend, StorageBackend
from chainfire_core.types import NO_LEASE, Index, LeaseId, Revision

Command = (
    PutRequest
    | DeleteRangeRequest
    | TxnRequest
    | CompactionRequest
    | LeaseGrantRequest
    | LeaseRevokeRequest
    | LeaseCheckpointRequest
    | AlarmRequest
    | QuotaSetRequest
    | QuotaDeleteRequest
    | AuthCommand
    | AuthorizedCommand
)
# What `serve_read` answers from applied state (an AlarmRequest: GET only).
Read = RangeRequest | TxnRequest | AlarmRequest | QuotaListRequest | AuthRead
CommandResponse = (
    PutResponse
    | DeleteRangeResponse
    | TxnResponse
    | CompactionResponse
    | LeaseGrantResponse
    | LeaseRevokeResponse
    | LeaseCheckpointResponse
    | AlarmResponse
    | QuotaResponse
    | AuthResponse
    | AuthenticateResponse
)

_MAGIC = b"CFSM"
_FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
# Every bucket the state machine writes (measured for the backend quota).
BUCKETS = (KEY_BUCKET, META_BUCKET, *AUTH_BUCKETS, ALARM_BUCKET, QUOTA_BUCKET)
_FRAME = struct.Struct(">4sH32sQ")  # magic, version, sha256(body), body length
_BODY_HEADER = struct.Struct(">QQQ")  # applied index, lease next id, lease count
_LEASE = struct.Struct(">qqq")  # id, granted ttl, checkpointed remaining ttl
_BACKEND_LEN = struct.Struct(">Q")


class StateMachine:
    """MVCC store + lessor, applying commands and answering reads."""

    def __init__(
        self, config: StateMachineConfig | None = None, backend: StorageBackend | None = None,
        *, bugs: frozenset[str] = frozenset(),
    ) -> None:
        """`bugs`: planted bugs (chainfire_core/bugs.py; simulation only)."""
        check_bugs(bugs)
        self.config = config or StateMachineConfig()
        self.lessor = Lessor(self.config)
        self._sized = SizedBackend(backend or MemoryBackend(), BUCKETS)
        self.store = MvccStore(self._sized, self.config, self.lessor)
        self.watches = WatchableStore(self.store, self.config,
                                      catchup_loss="watch_catchup_loss" in bugs)
        self.auth = AuthStore(self._sized)
        self.alarms = AlarmStore(self._sized)
        self.quotas = NamespaceQuotas(self._sized, self.store)
        # This member's simple tokens: not replicated (auth/tokens.py).
        self.tokens = SimpleTokenStore(self.config.auth_token_ttl_ms, self.config.max_auth_tokens)
        self._applied_index = 0
        self._applied_term = 0
        # Snapshots restored (`restore`): a driver's restart can tell whether
        # it decoded one.
        self.snapshot_restores = 0
        self._load_durable()

    @property
    def applied_index(self) -> Index:
        return Index(self._applied_index)

    @property
    def applied_term(self) -> int:
        """The term of the entry at `applied_index` (0 when not known)."""
        return self._applied_term

    @property
    def revision(self) -> Revision:
        return self.store.current_revision

    @property
    def backend_size_bytes(self) -> int:
        """The logical size the backend quota is checked against: the bytes
        of every key and value in the backend (quota.py)."""
        return self._sized.size_bytes

    def _header(self) -> ResponseHeader:
        return ResponseHeader(revision=self.store.current_revision)

    # -- replicated ------------------------------------------------------------

    def apply(self, command: Command, *, now_ms: int, index: int | None = None,
              term: int = 0) -> CommandResponse:
        """Apply one committed command. `index`, when given, is its log index
        (and `term` its term) and must follow the last one applied."""
        if index is not None:
            self.mark_applied(index, term)
        if isinstance(command, AuthorizedCommand):
            authorize(self.auth, self.lessor, command.info, command.command)
            command = command.command
        self.alarms.check_capped(command)
        plan = self.quotas.plan(command, self.lessor)
        response = self._apply(command, now_ms)
        self.quotas.commit(plan)  # reached only if the command applied
        if isinstance(command, LeaseGrantRequest | LeaseRevokeRequest | LeaseCheckpointRequest):
            self._save_leases(command, response)
        return response

    def _save_leases(self, command: LeaseGrantRequest | LeaseRevokeRequest
                     | LeaseCheckpointRequest, response: CommandResponse) -> None:
        """Write the lease records an applied lease command changed."""
        if isinstance(command, LeaseRevokeRequest):
            progress.save_leases(self._sized.inner, self.lessor, (), revoked=command.id)
        elif isinstance(response, LeaseGrantResponse):
            progress.save_leases(self._sized.inner, self.lessor, (response.id,))
        else:
            assert isinstance(command, LeaseCheckpointRequest), command
            progress.save_leases(self._sized.inner, self.lessor,
                                 tuple(checkpoint.id for checkpoint in command.checkpoints))

    def _apply(self, command: Command, now_ms: int) -> CommandResponse:
        match command:
            case PutRequest():
                return self.store.put(command)
            case DeleteRangeRequest():
                return self.store.delete_range(command)
            case TxnRequest():
                return self.store.txn(command)
            case CompactionRequest():
                return self.store.compact(command)
            case LeaseGrantRequest():
                return self._grant(command, now_ms)
            case LeaseRevokeRequest():
                return self._revoke(command)
            case LeaseCheckpointRequest():
                for checkpoint in command.checkpoints:
                    self.lessor.apply_checkpoint(checkpoint.id, checkpoint.remaining_ttl_s,
                                                 now_ms=now_ms)
                return LeaseCheckpointResponse(header=self._header())
            case AlarmRequest():
                return self.alarms.apply(command, self._header())
            case QuotaSetRequest() | QuotaDeleteRequest():
                return self.quotas.apply(command, self._header())
            case AuthorizedCommand():
                raise AssertionError("an authorized command inside another")
            case _:
                return apply_auth(self.auth, self.tokens, command, header=self._header(),
                                  index=self._applied_index, now_ms=now_ms)

    def mark_applied(self, index: int, term: int = 0) -> None:
        """Record that the log entry at `index` (of `term`) was applied (by
        `apply`, or with no command: a no-op or a membership change), in
        the backend too."""
        assert index > self._applied_index, (index, self._applied_index)
        self._applied_index = index
        self._applied_term = term
        progress.save_applied(self._sized.inner, index, term)

    def members_record(self) -> bytes | None:
        """The member table the node last saved with `save_members_record`."""
        return self._sized.inner.get(progress.STATE_BUCKET, progress.MEMBERS_KEY)

    def save_members_record(self, data: bytes) -> None:
        """Keep the node's member table (opaque bytes) with the state."""
        self._sized.inner.put(progress.STATE_BUCKET, progress.MEMBERS_KEY, data)

    def _grant(self, request: LeaseGrantRequest, now_ms: int) -> LeaseGrantResponse:
        lease_id = request.id or self.lessor.allocate_id()
        granted = self.lessor.grant(lease_id, request.ttl_s, now_ms)
        return LeaseGrantResponse(header=self._header(), id=granted.id, ttl_s=granted.ttl_s)

    def _revoke(self, request: LeaseRevokeRequest) -> LeaseRevokeResponse:
        if not self.lessor.exists(request.id):
            raise LeaseNotFound(request.id)
        # Delete the keys while the lease still exists (the store detaches
        # each one), then drop the now empty lease: one revision in all.
        keys = self.lessor.keys(request.id)
        revision = self.store.delete_keys(keys) if keys else self.store.current_revision
        self.lessor.revoke(request.id)
        return LeaseRevokeResponse(header=ResponseHeader(revision=revision))

    # -- reads and leader-local lease calls ---------------------------------------

    def range(self, request: RangeRequest) -> RangeResponse:
        return self.store.range(request)

    def serve_read(self, request: Read, info: AuthInfo | None = None) -> object:
        """Answer a read (a range, a read-only txn, an alarm GET, a quota or
        auth read) from this replica's applied state, checked against the
        credentials `info` (None: a trusted caller, no auth check)."""
        if info is not None:
            authorize_read(self.auth, info, request)
        match request:
            case RangeRequest():
                self.alarms.check_capped(request)
                return self.store.range(request)
            case TxnRequest():
                self.alarms.check_capped(request)
                revision = self.store.current_revision
                response = self.store.txn(request)
                assert self.store.current_revision == revision, "serve_read: a txn that writes"
                return response
            case AlarmRequest():
                assert request.action == AlarmAction.GET, request
                return self.alarms.apply(request, self._header())
            case QuotaListRequest():
                return self.quotas.list(self._header())
            case _:
                return serve_auth_read(self.auth, request, self._header())

    def auth_info(self, token: str, *, now_ms: int) -> AuthInfo:
        """The credentials a simple token stands for on this member
        (InvalidAuthToken if it is unknown or expired here)."""
        return resolve_token(self.auth, self.tokens, token, now_ms=now_ms,
                             bind_revision=self.config.auth_token_binds_revision)

    def keepalive(self, request: LeaseKeepAliveRequest, *, now_ms: int
                  ) -> tuple[LeaseKeepAliveResponse, LeaseCheckpointRequest | None]:
        """Renew the lease; also the checkpoint that clears a remaining TTL the
        lease had checkpointed, which must commit before the renewal is
        acknowledged: until it does, a new leader would restore the lease
        with that shorter remaining TTL and expire it before the client's
        renewed TTL runs out."""
        ttl_s = self.lessor.renew(request.id, now_ms)
        response = LeaseKeepAliveResponse(header=self._header(), id=request.id, ttl_s=ttl_s)
        if not self.lessor.take_pending_clear(request.id):
            return response, None
        clear = LeaseCheckpointRequest(
            checkpoints=(LeaseCheckpoint(id=request.id, remaining_ttl_s=0),))
        return response, clear

    def time_to_live(
        self, request: LeaseTimeToLiveRequest, *, now_ms: int
    ) -> LeaseTimeToLiveResponse:
        if not self.lessor.exists(request.id):
            return LeaseTimeToLiveResponse(
                header=self._header(), id=request.id, ttl_s=-1, granted_ttl_s=0
            )
        found = self.lessor.time_to_live(request.id, now_ms)
        return LeaseTimeToLiveResponse(
            header=self._header(),
            id=request.id,
            ttl_s=found.ttl_s,
            granted_ttl_s=found.granted_ttl_s,
            keys=found.keys if request.keys else (),
        )

    def leases(self) -> LeaseLeasesResponse:
        return LeaseLeasesResponse(header=self._header(), leases=self.lessor.leases())

    def expired_leases(self, now_ms: int) -> tuple[LeaseRevokeRequest, ...]:
        """Revokes the leader should propose for leases that have expired."""
        return tuple(LeaseRevokeRequest(id=lease) for lease in self.lessor.expired(now_ms))

    def checkpoints_due(self, now_ms: int, interval_ms: int) -> LeaseCheckpointRequest | None:
        due = self.lessor.checkpoints_due(now_ms, interval_ms)
        if not due:
            return None
        return LeaseCheckpointRequest(
            checkpoints=tuple(
                LeaseCheckpoint(id=lease, remaining_ttl_s=remaining) for lease, remaining in due
            )
        )

    # -- snapshots -------------------------------------------------------------

    def snapshot(self) -> bytes:
        records = self.lessor.to_records()
        parts = [_BODY_HEADER.pack(self._applied_index, self.lessor.next_id, len(records))]
        parts += [_LEASE.pack(r.id, r.ttl_s, r.remaining_ttl_s) for r in records]
        backend = self.store.backend.snapshot()
        parts += [_BACKEND_LEN.pack(len(backend)), backend]
        body = b"".join(parts)
        digest = hashlib.sha256(body).digest()
        return _FRAME.pack(_MAGIC, _FORMAT_VERSION, digest, len(body)) + body

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot; on CorruptSnapshot nothing changes
        (not even whether this replica's lessor keeps time)."""
        applied, next_id, records, backend = _decode_snapshot(data)
        lessor = Lessor(self.config)
        lessor.restore(records, next_id=next_id)  # validates before anything changes
        previous_backend = self.store.backend.snapshot()
        self.store.backend.restore(backend)  # all or nothing: raises before changing
        self.store.reload()
        try:
            self._attach_keys(lessor)
            auth, alarms = AuthStore(self._sized), AlarmStore(self._sized)
            quotas = NamespaceQuotas(self._sized, self.store)
        except CorruptSnapshot:
            self.store.backend.restore(previous_backend)
            self.store.reload()
            raise
        self.auth, self.alarms, self.quotas = auth, alarms, quotas
        if auth.enabled:
            self.tokens.keep_users(auth.user_names())
        else:
            self.tokens.clear()
        self.lessor = lessor
        self.store.set_lease_hooks(lessor)
        self.watches.on_restore()
        self._applied_index = applied
        # The records must match (an older snapshot's backend may lack them).
        self._applied_term = progress.sync_after_restore(self._sized.inner, applied, lessor)
        self.snapshot_restores += 1

    def _load_durable(self) -> None:
        """Start from the progress and lease records in the backend, if any
        (CorruptSnapshot if they do not hold together)."""
        found = progress.load(self._sized.inner)
        self._applied_index, self._applied_term = found.applied_index, found.applied_term
        if found.leases is not None:
            self.lessor.restore(found.leases, next_id=found.lease_next_id)
        self._reattach_leases()

    def _reattach_leases(self) -> None:
        self._attach_keys(self.lessor)

    def _attach_keys(self, lessor: Lessor) -> None:
        """Attach every live key to its lease in `lessor`; CorruptSnapshot if
        a key names a lease the lessor does not hold."""
        revision = self.store.current_revision
        for kv in self.store.live_kvs(ALL_KEYS, ALL_KEYS, revision):
            if kv.lease != NO_LEASE:
                if not lessor.exists(kv.lease):
                    raise CorruptSnapshot(f"key {kv.key!r} names lease {kv.lease}, "
                                          "which the snapshot does not hold")
                lessor.attach(kv.lease, kv.key)

    def check_invariants(self, *, deep: bool = False) -> None:
        self.store.check_invariants(deep=deep)
        self.lessor.check_invariants()
        self.watches.check_invariants()
        self.auth.check_invariants()
        self.alarms.check_invariants()
        self.quotas.check_invariants(deep=deep)
        self.tokens.check_invariants()
        if deep:
            self._sized.check_invariants()
            for kv in self.store.live_kvs(ALL_KEYS, ALL_KEYS, self.store.current_revision):
                assert self.lessor.lease_of(kv.key) == kv.lease, kv.key


def _decode_snapshot(data: bytes) -> tuple[int, int, tuple[LeaseRecord, ...], bytes]:
    if len(data) < _FRAME.size:
        raise CorruptSnapshot("state machine snapshot: shorter than its frame")
    magic, version, digest, body_len = _FRAME.unpack_from(data)
    if magic != _MAGIC:
        raise CorruptSnapshot(f"state machine snapshot: bad magic {magic!r}")
    if version not in _READABLE_VERSIONS:
        raise CorruptSnapshot(f"state machine snapshot: unknown format version {version}")
    body = data[_FRAME.size :]
    if len(body) != body_len:
        raise CorruptSnapshot(f"state machine snapshot: body is {len(body)} bytes, not {body_len}")
    if hashlib.sha256(body).digest() != digest:
        raise CorruptSnapshot("state machine snapshot: checksum mismatch")
    try:
        applied, next_id, count = _BODY_HEADER.unpack_from(body)
        offset = _BODY_HEADER.size
        records = []
        for _ in range(count):
            lease_id, ttl_s, remaining = _LEASE.unpack_from(body, offset)
            records.append(
                LeaseRecord(id=LeaseId(lease_id), ttl_s=ttl_s, remaining_ttl_s=remaining)
            )
            offset += _LEASE.size
        (backend_len,) = _BACKEND_LEN.unpack_from(body, offset)
        offset += _BACKEND_LEN.size
    except struct.error as exc:
        raise CorruptSnapshot(f"state machine snapshot: truncated ({exc})") from exc
    backend = body[offset:]
    if len(backend) != backend_len:
        raise CorruptSnapshot("state machine snapshot: backend section has the wrong length")
    return applied, next_id, tuple(records), backend


__all__ = ["BUCKETS", "Command", "CommandResponse", "Read", "StateMachine"]
