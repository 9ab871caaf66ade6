"""Transaction rules that need no store: shape limits, the duplicate-key
rule, and compare evaluation.

Theory of operation
-------------------
etcd checks a transaction in full before it writes anything, so that a txn
either applies completely or not at all:

1. Shape: no txn may hold more than `max_txn_ops` compares, or ops in a
   branch; a nested txn's budget is what its parent's largest count left.
2. Duplicate keys: within one branch, a key may be put at most once, and no
   put may fall inside a delete range of the same branch. A nested txn's two
   branches exclude each other, so the same key may be put in both; but what
   either of them puts may not clash with its enclosing branch.
3. The store then picks the branch path (evaluating every compare, nested
   ones included, against the state before the txn) and checks the ops on
   that path against the data (lease exists, revision not compacted, ...).

Compares follow etcd: over a range the compare must hold for every key in it;
an empty range compares against a zero-valued key, except that a VALUE
compare on missing keys always fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chainfire_core.errors import DuplicateKey, TooManyOps
from chainfire_core.mvcc.messages import (
    ALL_KEYS,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    KeyValue,
    PutRequest,
    RequestOp,
    TxnRequest,
)


def check_shape(txn: TxnRequest, max_txn_ops: int) -> None:
    """etcd's limit: the largest of the compare, success and failure counts
    may not pass `max_txn_ops`, and a nested txn gets what its parent left."""
    count = max(len(txn.compare), len(txn.success), len(txn.failure))
    if count > max_txn_ops:
        raise TooManyOps(count, max_txn_ops)
    for op in txn.success + txn.failure:
        if isinstance(op, TxnRequest):
            check_shape(op, max_txn_ops - count)


def in_range(key: bytes, start: bytes, range_end: bytes) -> bool:
    if not range_end:
        return key == start
    if range_end == ALL_KEYS:
        return key >= start
    return start <= key < range_end


def _clashes(key: bytes, deletes: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(in_range(key, start, end) for start, end in deletes)


def check_duplicates(branch: Sequence[RequestOp]) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    """Raise `DuplicateKey` if `branch` breaks etcd's rule; return the keys
    it puts and the ranges it deletes (nested branches included)."""
    deletes = [(op.key, op.range_end) for op in branch if isinstance(op, DeleteRangeRequest)]
    puts: set[bytes] = set()
    for op in branch:
        if not isinstance(op, TxnRequest):
            continue
        puts_then, deletes_then = check_duplicates(op.success)
        puts_else, deletes_else = check_duplicates(op.failure)
        for key in sorted(puts_then):
            if key in puts or _clashes(key, deletes):
                raise DuplicateKey(key)
            puts.add(key)
        for key in sorted(puts_else):
            if (key in puts and key not in puts_then) or _clashes(key, deletes):
                raise DuplicateKey(key)
            puts.add(key)
        deletes += deletes_then + deletes_else
    for op in branch:
        if isinstance(op, PutRequest):
            if op.key in puts or _clashes(op.key, deletes):
                raise DuplicateKey(op.key)
            puts.add(op.key)
    return puts, deletes


def _ordered(result: CompareResult, left: int | bytes, right: int | bytes) -> bool:
    match result:
        case CompareResult.EQUAL:
            return left == right
        case CompareResult.NOT_EQUAL:
            return left != right
        case CompareResult.GREATER:
            return left > right  # type: ignore[operator]
        case CompareResult.LESS:
            return left < right  # type: ignore[operator]


def _target_of(compare: Compare, kv: KeyValue | None) -> int | bytes:
    match compare.target:
        case CompareTarget.VERSION:
            return 0 if kv is None else kv.version
        case CompareTarget.CREATE:
            return 0 if kv is None else kv.create_revision
        case CompareTarget.MOD:
            return 0 if kv is None else kv.mod_revision
        case CompareTarget.LEASE:
            return 0 if kv is None else kv.lease
        case CompareTarget.VALUE:
            return b"" if kv is None else kv.value


def compare_holds(compare: Compare, kvs: Sequence[KeyValue]) -> bool:
    """Whether `compare` holds over `kvs`, the live keys in its range."""
    if not kvs:
        if compare.target == CompareTarget.VALUE:
            return False
        return _ordered(compare.result, _target_of(compare, None), compare.value)
    return all(_ordered(compare.result, _target_of(compare, kv), compare.value) for kv in kvs)


__all__ = ["check_duplicates", "check_shape", "compare_holds", "in_range"]
