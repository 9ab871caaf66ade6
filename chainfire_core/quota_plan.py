"""What a write would change, key by key, before it runs (for namespace quotas).

Theory of operation
-------------------
A namespace quota must refuse a write before any of it lands, so the state
machine asks first what the write would do to the live keys inside the
limited namespaces: for each such key, its size (key plus value) before and
after, None where the key is not live. A put changes its key; a delete range
and a lease revoke remove the live keys they cover; a txn does what the ops
on its branch path do, the path being chosen exactly as the store chooses it
(every compare, nested ones included, evaluated against the state before the
txn). Only keys inside `ranges` (the limited namespaces, merged) are looked
at, so a wide delete costs a scan of the limited part of its range only.

etcd's duplicate-key rule (mvcc/txn.py) keeps a txn path from putting a key
twice or putting a key it deletes at the same level, so the per-key changes
add up; where a path could still put and then delete the same key (in two
nested txns) the plan counts the put, an upper bound that can only refuse a
write near a limit, never let one past it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from chainfire_core.lease.lessor import Lessor
from chainfire_core.lease.messages import LeaseRevokeRequest
from chainfire_core.mvcc.messages import ALL_KEYS, DeleteRangeRequest, PutRequest, TxnRequest
from chainfire_core.mvcc.store import MvccStore
from chainfire_core.mvcc.txn import compare_holds

# [start, end) with end None: no upper bound.
KeyRange = tuple[bytes, bytes | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyChange:
    """One live key's size (key plus value) before and after a write."""

    key: bytes
    before: int | None
    after: int | None


def request_range(key: bytes, range_end: bytes) -> KeyRange:
    """etcd's range conventions as [start, end): b"" one key, b"\\0" from key."""
    if not range_end:
        return key, key + b"\0"
    if range_end == ALL_KEYS:
        return key, None
    return key, range_end


def in_ranges(key: bytes, ranges: Sequence[KeyRange]) -> bool:
    return any(start <= key and (end is None or key < end) for start, end in ranges)


def planned_changes(command: object, store: MvccStore, lessor: Lessor,
                    ranges: Sequence[KeyRange]) -> list[KeyChange]:
    """The changes `command` would make to live keys inside `ranges`
    (disjoint), in the order it would make them."""
    revision = store.current_revision
    changes: list[KeyChange] = []
    match command:
        case PutRequest() | DeleteRangeRequest():
            ops: list[PutRequest | DeleteRangeRequest] = [command]
        case TxnRequest():
            ops = list(_path_ops(command, store, revision))
        case LeaseRevokeRequest():
            keys = lessor.keys(command.id) if lessor.exists(command.id) else ()
            ops = [DeleteRangeRequest(key=key) for key in keys]
        case _:
            return changes
    for op in ops:
        if isinstance(op, PutRequest):
            if in_ranges(op.key, ranges):
                changes.append(_put_change(op, store, revision))
        else:
            changes += _delete_changes(op, store, revision, ranges)
    return changes


def _put_change(op: PutRequest, store: MvccStore, revision: int) -> KeyChange:
    old = store.kv_at(op.key, revision)
    before = None if old is None else len(op.key) + len(old.value)
    value = old.value if op.ignore_value and old is not None else op.value
    return KeyChange(key=op.key, before=before, after=len(op.key) + len(value))


def _delete_changes(op: DeleteRangeRequest, store: MvccStore, revision: int,
                    ranges: Sequence[KeyRange]) -> Iterator[KeyChange]:
    start, end = request_range(op.key, op.range_end)
    for low, high in ranges:
        lo = max(start, low)
        hi = high if end is None else end if high is None else min(end, high)
        if hi is not None and hi <= lo:
            continue
        for kv in store.live_kvs(lo, ALL_KEYS if hi is None else hi, revision):
            yield KeyChange(key=kv.key, before=len(kv.key) + len(kv.value), after=None)


def _path_ops(txn: TxnRequest, store: MvccStore,
              revision: int) -> Iterator[PutRequest | DeleteRangeRequest]:
    """The puts and deletes on the branch path `txn` would take now."""
    succeeded = all(compare_holds(c, store.live_kvs(c.key, c.range_end, revision))
                    for c in txn.compare)
    for op in txn.success if succeeded else txn.failure:
        if isinstance(op, TxnRequest):
            yield from _path_ops(op, store, revision)
        elif isinstance(op, PutRequest | DeleteRangeRequest):
            yield op


__all__ = ["KeyChange", "KeyRange", "in_ranges", "planned_changes", "request_range"]
