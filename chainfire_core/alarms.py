"""Alarms (etcd's alarm store): replicated flags that cap what the cluster accepts.

Theory of operation
-------------------
An alarm is a (member id, alarm type) pair, raised with an `AlarmRequest`
ACTIVATE and cleared with DEACTIVATE; both go through the log, so every
replica holds the same alarms. They live in the backend's "alarm" bucket
(etcd's bucket name), one key per alarm, so snapshots carry them and a
restored replica has them.

While an alarm is active the state machine refuses what etcd 3.4's capped
appliers refuse, at apply time on every replica alike (`check_capped`):

- NOSPACE (the backend quota was hit, see quota.py): a put, a txn that
  would put anything (on either branch, nested txns included: etcd's cost of
  a txn is the larger of its branches' puts), and a lease grant fail with
  `NoSpace`. Range, delete range, read-only and delete-only txns, compaction
  and lease revoke still pass: deleting and compacting is how an operator
  makes room before disarming.
- CORRUPT: every key-value and lease request (range, put, delete, txn,
  compaction, lease grant and revoke) fails with `ClusterCorrupt`.

GET lists the active alarms (of one type, or all for NONE) in (member, type)
order. ACTIVATE answers the alarm it raised, or nothing if it was already
active; DEACTIVATE answers the alarm it cleared, or nothing (etcd's answers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from chainfire_core.errors import ClusterCorrupt, CorruptSnapshot, InvalidRequest, NoSpace
from chainfire_core.lease.messages import LeaseGrantRequest, LeaseRevokeRequest
from chainfire_core.mvcc.messages import (
    CompactionRequest,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    RequestOp,
    ResponseHeader,
    TxnRequest,
)
from chainfire_core.storage import StorageBackend
from chainfire_core.types import NodeId

ALARM_BUCKET = "alarm"
_ALARM_KEY = struct.Struct(">QI")  # member id, alarm type


class AlarmType(IntEnum):
    """etcd's AlarmType numbers."""

    NONE = 0
    NOSPACE = 1
    CORRUPT = 2


class AlarmAction(IntEnum):
    """etcd's AlarmRequest.AlarmAction numbers."""

    GET = 0
    ACTIVATE = 1
    DEACTIVATE = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmMember:
    member_id: NodeId
    alarm: AlarmType

    def __post_init__(self) -> None:
        if self.alarm == AlarmType.NONE:
            raise InvalidRequest("an alarm member needs an alarm type other than NONE")
        if not 0 <= self.member_id < 1 << 64:
            raise InvalidRequest(f"alarm member id out of range: {self.member_id}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmRequest:
    """GET (a read: `alarm` NONE lists every alarm), ACTIVATE or DEACTIVATE
    (commands: they need a member id and an alarm type)."""

    action: AlarmAction
    member_id: NodeId = NodeId(0)  # noqa: RUF009  (NewType call is free)
    alarm: AlarmType = AlarmType.NONE

    def __post_init__(self) -> None:
        if not 0 <= self.member_id < 1 << 64:
            raise InvalidRequest(f"alarm member id out of range: {self.member_id}")
        if self.action != AlarmAction.GET and self.alarm == AlarmType.NONE:
            raise InvalidRequest("etcdserver: alarm activate/deactivate needs an alarm type")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmResponse:
    header: ResponseHeader
    alarms: tuple[AlarmMember, ...] = ()


class AlarmStore:
    """The active alarms, kept in the backend's alarm bucket."""

    def __init__(self, backend: StorageBackend) -> None:
        self._backend = backend
        self._active: set[tuple[int, AlarmType]] = set()
        self.reload()

    def reload(self) -> None:
        """Re-read the alarms from the backend (start-up, snapshot restore);
        CorruptSnapshot, and nothing changed, if a record is malformed."""
        active: set[tuple[int, AlarmType]] = set()
        for key, value in self._backend.range(ALARM_BUCKET, b""):
            if len(key) != _ALARM_KEY.size or value:
                raise CorruptSnapshot(f"alarm bucket: malformed record {key!r}")
            member, number = _ALARM_KEY.unpack(key)
            if number not in (AlarmType.NOSPACE, AlarmType.CORRUPT):
                raise CorruptSnapshot(f"alarm bucket: unknown alarm type {number}")
            active.add((member, AlarmType(number)))
        self._active = active

    def is_active(self, alarm: AlarmType) -> bool:
        return any(kind == alarm for _, kind in self._active)

    def get(self, alarm: AlarmType = AlarmType.NONE) -> tuple[AlarmMember, ...]:
        return tuple(AlarmMember(member_id=NodeId(member), alarm=kind)
                     for member, kind in sorted(self._active)
                     if alarm in (AlarmType.NONE, kind))

    def apply(self, request: AlarmRequest, header: ResponseHeader) -> AlarmResponse:
        match request.action:
            case AlarmAction.GET:
                return AlarmResponse(header=header, alarms=self.get(request.alarm))
            case AlarmAction.ACTIVATE:
                changed = self._set(request.member_id, request.alarm, active=True)
            case AlarmAction.DEACTIVATE:
                changed = self._set(request.member_id, request.alarm, active=False)
        member = AlarmMember(member_id=request.member_id, alarm=request.alarm)
        return AlarmResponse(header=header, alarms=(member,) if changed else ())

    def _set(self, member: int, alarm: AlarmType, *, active: bool) -> bool:
        entry = (member, alarm)
        if (entry in self._active) == active:
            return False
        key = _ALARM_KEY.pack(member, alarm)
        if active:
            self._backend.put(ALARM_BUCKET, key, b"")
            self._active.add(entry)
        else:
            self._backend.delete(ALARM_BUCKET, key)
            self._active.discard(entry)
        return True

    def check_capped(self, command: object) -> None:
        """Refuse `command` if an active alarm forbids it (see the module doc)."""
        if not self._active:
            return
        if self.is_active(AlarmType.CORRUPT) and isinstance(
                command, RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest
                | CompactionRequest | LeaseGrantRequest | LeaseRevokeRequest):
            raise ClusterCorrupt()
        if self.is_active(AlarmType.NOSPACE) and (
                isinstance(command, PutRequest | LeaseGrantRequest)
                or (isinstance(command, TxnRequest) and txn_puts(command))):
            raise NoSpace()

    def check_invariants(self) -> None:
        stored = {key for key, _ in self._backend.range(ALARM_BUCKET, b"")}
        assert stored == {_ALARM_KEY.pack(m, a) for m, a in self._active}, "alarm cache drifted"


def txn_puts(txn: TxnRequest) -> bool:
    """Whether either branch of `txn` (nested txns included) holds a put."""
    return any(_op_puts(op) for op in txn.success + txn.failure)


def _op_puts(op: RequestOp) -> bool:
    if isinstance(op, PutRequest):
        return True
    return isinstance(op, TxnRequest) and txn_puts(op)


__all__ = [
    "ALARM_BUCKET",
    "AlarmAction",
    "AlarmMember",
    "AlarmRequest",
    "AlarmResponse",
    "AlarmStore",
    "AlarmType",
    "txn_puts",
]
