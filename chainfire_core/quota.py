"""Quotas: etcd's backend size quota (the NOSPACE alarm) and per-namespace quotas.

Theory of operation
-------------------
Backend quota. etcd refuses a write when the backend's size plus the
write's cost would reach `--quota-backend-bytes`, and raises a NOSPACE
alarm through Raft; from then on every replica applies writes "capped"
(alarms.py) until an operator disarms the alarm. As in etcd the size check
is made where the request comes in, before it is proposed (the node does it,
`ChainfireNode._check_backend_quota`), and only the alarm is replicated state:
apply never looks at sizes, so replicas whose sizes or quota settings differ
cannot diverge. The size is logical, not a file size: `SizedBackend` keeps
the bytes of every key and value the backend holds (history included, so a
compaction gives room back; there is no file to defragment). The cost of a
request is etcd's: a put costs 256 bytes of overhead plus its key and value,
a txn the larger of its branches' puts, a lease grant 64 bytes, anything else
nothing; and the check passes while `size + cost < quota` (etcd's
`Available`).

Namespace quotas. An operator limits the number of keys and/or the bytes
(keys plus values) of live keys under a prefix. The limits are replicated
state, set and removed through the log (`QuotaSetRequest`,
`QuotaDeleteRequest`) and kept in the backend's "quota" bucket, so every
replica enforces the same limits; configuration that differed per member
(like StateMachineConfig) would let replicas disagree about which writes
apply. Enforcement is inside apply: before a put, delete, txn or lease
revoke writes anything, `plan` works out what it would change in each
namespace (a txn's branch path is chosen first, as the store does), and a
write that would take a namespace past a limit is refused whole with
`NamespaceQuotaExceeded`. Deletes and shrinking overwrites always pass, even
in a namespace already over a (lowered) limit. Usage is kept as running
counts, computed from the store when a quota is set or a snapshot restored,
so a write costs one index lookup per key it touches in a limited namespace.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chainfire_core.errors import CorruptSnapshot, InvalidRequest, NamespaceQuotaExceeded
from chainfire_core.lease.lessor import Lessor
from chainfire_core.lease.messages import LeaseGrantRequest
from chainfire_core.mvcc.messages import (
    ALL_KEYS,
    PutRequest,
    RequestOp,
    ResponseHeader,
    TxnRequest,
    prefix_end,
)
from chainfire_core.mvcc.store import MvccStore
from chainfire_core.quota_plan import KeyRange, planned_changes
from chainfire_core.storage import BatchOp, BatchPut, StorageBackend

# etcd's defaults and cost constants (etcdserver/quota.go).
DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024 * 1024 * 1024
KV_OVERHEAD_BYTES = 256
LEASE_OVERHEAD_BYTES = 64

QUOTA_BUCKET = "quota"
_LIMITS = struct.Struct(">QQ")  # max keys, max bytes


def request_cost(command: object) -> int:
    """etcd's cost of a request against the backend quota, in bytes."""
    match command:
        case PutRequest():
            return KV_OVERHEAD_BYTES + len(command.key) + len(command.value)
        case TxnRequest():
            return max(_branch_cost(command.success), _branch_cost(command.failure))
        case LeaseGrantRequest():
            return LEASE_OVERHEAD_BYTES
        case _:
            return 0


def _branch_cost(ops: Sequence[RequestOp]) -> int:
    return sum(request_cost(op) for op in ops if isinstance(op, PutRequest | TxnRequest))


def backend_has_room(size_bytes: int, cost_bytes: int, quota_bytes: int) -> bool:
    """etcd's `Available`: the write fits while size + cost stays under the quota."""
    return size_bytes + cost_bytes < quota_bytes


@runtime_checkable
class MeasuredBackend(Protocol):
    """A backend that can sum its keys' and values' bytes itself (real/'s
    SQLite backend: one query instead of a scan through Python)."""

    def size_bytes_of(self, buckets: Sequence[str]) -> int: ...


class SizedBackend:
    """A `StorageBackend` that keeps count of the bytes (keys plus values) it
    holds, over any other backend. `buckets` are measured on start and after
    `restore`; every bucket written through the wrapper is measured too."""

    def __init__(self, inner: StorageBackend, buckets: Iterable[str]) -> None:
        assert not isinstance(inner, SizedBackend), "a backend wrapped twice"
        self.inner = inner
        self._buckets = set(buckets)
        self._size = self._measure()

    @property
    def size_bytes(self) -> int:
        return self._size

    def _measure(self) -> int:
        if isinstance(self.inner, MeasuredBackend):  # a durable backend sums without a scan
            return self.inner.size_bytes_of(sorted(self._buckets))
        return sum(len(key) + len(value) for bucket in sorted(self._buckets)
                   for key, value in self.inner.range(bucket, b""))

    def get(self, bucket: str, key: bytes) -> bytes | None:
        return self.inner.get(bucket, key)

    def get_many(self, bucket: str, keys: Sequence[bytes]) -> list[bytes | None]:
        return self.inner.get_many(bucket, keys)

    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        old = self.inner.get(bucket, key)
        self.inner.put(bucket, key, value)
        self._buckets.add(bucket)
        self._size += len(value) - (len(old) if old is not None else -len(key))

    def delete(self, bucket: str, key: bytes) -> None:
        old = self.inner.get(bucket, key)
        self.inner.delete(bucket, key)
        if old is not None:
            self._size -= len(key) + len(old)

    def range(self, bucket: str, start: bytes, end: bytes | None = None, *,
              limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
        return self.inner.range(bucket, start, end, limit=limit)

    def write_batch(self, ops: Sequence[BatchOp]) -> None:
        # The size change, worked out over the batch in order before it runs.
        seen: dict[tuple[str, bytes], bytes | None] = {}
        delta = 0
        for op in ops:
            slot = (op.bucket, op.key)
            old = seen[slot] if slot in seen else self.inner.get(op.bucket, op.key)
            new = op.value if isinstance(op, BatchPut) else None
            delta += _item_size(op.key, new) - _item_size(op.key, old)
            seen[slot] = new
        self.inner.write_batch(ops)
        self._buckets.update(op.bucket for op in ops)
        self._size += delta

    def count(self, bucket: str) -> int:
        return self.inner.count(bucket)

    def snapshot(self) -> bytes:
        return self.inner.snapshot()

    def restore(self, data: bytes) -> None:
        self.inner.restore(data)
        self._size = self._measure()

    def check_invariants(self) -> None:
        assert self._size == self._measure(), (self._size, self._measure())


def _item_size(key: bytes, value: bytes | None) -> int:
    return 0 if value is None else len(key) + len(value)


# -- namespace quotas: messages --------------------------------------------------------


def _check_prefix(prefix: bytes) -> None:
    if type(prefix) is not bytes or not prefix:
        raise InvalidRequest("a namespace quota needs a non-empty bytes prefix")


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaSetRequest:
    """Limit the live keys under `prefix` to `max_keys` keys and `max_bytes`
    bytes of keys plus values (0: that dimension is not limited); replaces
    any quota on the same prefix."""

    prefix: bytes
    max_keys: int = 0
    max_bytes: int = 0

    def __post_init__(self) -> None:
        _check_prefix(self.prefix)
        if not (0 <= self.max_keys < 1 << 64 and 0 <= self.max_bytes < 1 << 64):
            raise InvalidRequest("namespace quota limits must be in [0, 2**64)")
        if not (self.max_keys or self.max_bytes):
            raise InvalidRequest("a namespace quota needs max_keys or max_bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaDeleteRequest:
    prefix: bytes

    def __post_init__(self) -> None:
        _check_prefix(self.prefix)


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaListRequest:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceUsage:
    """A namespace quota and what its namespace holds now."""

    prefix: bytes
    max_keys: int
    max_bytes: int
    used_keys: int
    used_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaResponse:
    """Set: the quota set; delete: the quota removed (none if there was
    none); list: every quota, in prefix order."""

    header: ResponseHeader
    quotas: tuple[NamespaceUsage, ...] = ()


# -- namespace quotas: the replicated limits and their usage -----------------------------


@dataclass(slots=True)
class _Usage:
    max_keys: int
    max_bytes: int
    used_keys: int = 0
    used_bytes: int = 0

    def of(self, prefix: bytes) -> NamespaceUsage:
        return NamespaceUsage(prefix=prefix, max_keys=self.max_keys, max_bytes=self.max_bytes,
                              used_keys=self.used_keys, used_bytes=self.used_bytes)


# Per prefix: the change in (keys, bytes) a write would make.
Plan = dict[bytes, tuple[int, int]]


class NamespaceQuotas:
    """The namespace quotas (kept in the backend's quota bucket) and the live
    keys and bytes under each prefix."""

    def __init__(self, backend: StorageBackend, store: MvccStore) -> None:
        self._backend = backend
        self._store = store
        self._quotas: dict[bytes, _Usage] = {}
        self._ranges: tuple[KeyRange, ...] = ()
        self.reload()

    def reload(self) -> None:
        """Re-read the quotas from the backend and recount their usage
        (start-up, snapshot restore); CorruptSnapshot if a record is malformed."""
        quotas: dict[bytes, _Usage] = {}
        for prefix, value in self._backend.range(QUOTA_BUCKET, b""):
            if not prefix or len(value) != _LIMITS.size:
                raise CorruptSnapshot(f"quota bucket: malformed record {prefix!r}")
            max_keys, max_bytes = _LIMITS.unpack(value)
            if not (max_keys or max_bytes):
                raise CorruptSnapshot(f"quota bucket: a quota without limits {prefix!r}")
            quotas[prefix] = self._count(prefix, _Usage(max_keys=max_keys, max_bytes=max_bytes))
        self._quotas = quotas
        self._ranges = _merged(sorted(quotas))

    def _count(self, prefix: bytes, usage: _Usage) -> _Usage:
        low, high = _namespace(prefix)
        end = ALL_KEYS if high is None else high
        for kv in self._store.live_kvs(low, end, self._store.current_revision):
            usage.used_keys += 1
            usage.used_bytes += len(kv.key) + len(kv.value)
        return usage

    # -- commands and reads ---------------------------------------------------------

    def apply(self, request: QuotaSetRequest | QuotaDeleteRequest,
              header: ResponseHeader) -> QuotaResponse:
        if isinstance(request, QuotaSetRequest):
            self._backend.put(QUOTA_BUCKET, request.prefix,
                              _LIMITS.pack(request.max_keys, request.max_bytes))
            usage = self._count(request.prefix, _Usage(max_keys=request.max_keys,
                                                       max_bytes=request.max_bytes))
            self._quotas[request.prefix] = usage
        else:
            removed = self._quotas.pop(request.prefix, None)
            if removed is None:
                return QuotaResponse(header=header)
            self._backend.delete(QUOTA_BUCKET, request.prefix)
            usage = removed
        self._ranges = _merged(sorted(self._quotas))
        return QuotaResponse(header=header, quotas=(usage.of(request.prefix),))

    def list(self, header: ResponseHeader) -> QuotaResponse:
        return QuotaResponse(header=header, quotas=tuple(
            self._quotas[prefix].of(prefix) for prefix in sorted(self._quotas)))

    # -- enforcement ---------------------------------------------------------------------

    def plan(self, command: object, lessor: Lessor) -> Plan:
        """What `command` would change in each limited namespace;
        NamespaceQuotaExceeded if that takes one past a limit."""
        if not self._quotas:
            return {}
        changes = planned_changes(command, self._store, lessor, self._ranges)
        plan: Plan = {}
        for prefix in sorted(self._quotas):
            keys = size = 0
            for change in changes:
                if change.key.startswith(prefix):
                    keys += (change.after is not None) - (change.before is not None)
                    size += (change.after or 0) - (change.before or 0)
            if keys or size:
                self._check(prefix, keys, size)
                plan[prefix] = (keys, size)
        return plan

    def _check(self, prefix: bytes, keys: int, size: int) -> None:
        usage = self._quotas[prefix]
        if keys > 0 and usage.max_keys and usage.used_keys + keys > usage.max_keys:
            raise NamespaceQuotaExceeded(prefix, "keys", usage.used_keys + keys, usage.max_keys)
        if size > 0 and usage.max_bytes and usage.used_bytes + size > usage.max_bytes:
            raise NamespaceQuotaExceeded(prefix, "bytes", usage.used_bytes + size,
                                         usage.max_bytes)

    def commit(self, plan: Plan) -> None:
        """The planned write was applied: count it."""
        for prefix, (keys, size) in plan.items():
            usage = self._quotas[prefix]
            usage.used_keys += keys
            usage.used_bytes += size
            assert usage.used_keys >= 0 and usage.used_bytes >= 0, (prefix, usage)

    def check_invariants(self, *, deep: bool = False) -> None:
        stored = dict(self._backend.range(QUOTA_BUCKET, b""))
        assert stored.keys() == self._quotas.keys(), "quota cache drifted"
        for prefix, usage in self._quotas.items():
            assert stored[prefix] == _LIMITS.pack(usage.max_keys, usage.max_bytes)
            if deep:
                recount = self._count(prefix, _Usage(max_keys=0, max_bytes=0))
                assert (recount.used_keys, recount.used_bytes) == (
                    usage.used_keys, usage.used_bytes), prefix


def _namespace(prefix: bytes) -> KeyRange:
    end = prefix_end(prefix)
    return prefix, None if end == ALL_KEYS else end


def _merged(prefixes: Sequence[bytes]) -> tuple[KeyRange, ...]:
    """The namespaces of sorted `prefixes` as disjoint ranges."""
    merged: list[KeyRange] = []
    for prefix in prefixes:
        low, high = _namespace(prefix)
        if merged and (merged[-1][1] is None or low <= merged[-1][1]):
            last_low, last_high = merged[-1]
            if last_high is not None and (high is None or high > last_high):
                merged[-1] = (last_low, high)
            continue
        merged.append((low, high))
    return tuple(merged)


__all__ = [
    "DEFAULT_QUOTA_BACKEND_BYTES",
    "KV_OVERHEAD_BYTES",
    "LEASE_OVERHEAD_BYTES",
    "QUOTA_BUCKET",
    "NamespaceQuotas",
    "NamespaceUsage",
    "QuotaDeleteRequest",
    "QuotaListRequest",
    "QuotaResponse",
    "QuotaSetRequest",
    "SizedBackend",
    "backend_has_room",
    "request_cost",
]
