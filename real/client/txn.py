"""The transaction builder, compare-and-swap, and the client's small helpers.

Theory of operation
-------------------
A `Txn` is an immutable builder of the core's `TxnRequest`: `if_(...)`
adds compares, `then(...)` the operations run when every compare holds,
`else_(...)` those run otherwise (etcd's clientv3 `If/Then/Else`). Each
step returns a new `Txn`, so a half-built one can be reused. Compares come
from `value(key)`, `version(key)`, `create_revision(key)`,
`mod_revision(key)` and `lease_of(key)`, each followed by `.eq`, `.ne`,
`.gt` or `.lt`; operations from `op_put`, `op_get`, `op_delete` and
`op_txn` (a nested txn). The core's constructors validate everything, so a
malformed txn fails here, before anything is sent.

`cas_request` is compare-and-swap as one txn: compare the key against what
the caller expects (a value, a mod revision, or "absent"), then put the new
value; else read the key back. `cas_outcome` turns the answer into a
`CasOutcome`: whether the swap happened and, when it did not, the key as it
is now (None when absent), so the caller can retry with fresh knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from chainfire_core.mvcc.messages import (
    ALL_KEYS,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RequestOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
    prefix_end,
)
from chainfire_core.types import LeaseId, Revision

Bytes = bytes | str


def to_bytes(data: Bytes) -> bytes:
    """Keys and values: bytes as they are, text as UTF-8."""
    if isinstance(data, str):
        return data.encode()
    if not isinstance(data, bytes):
        raise TypeError(f"expected bytes or str, got {type(data).__name__}")
    return data


def range_end_for(key: bytes, range_end: Bytes = b"", *, prefix: bool = False,
                  from_key: bool = False) -> bytes:
    """etcd's range_end for one key, a prefix, or every key >= key."""
    assert not (prefix and from_key), "prefix and from_key exclude each other"
    if prefix:
        return prefix_end(key)
    if from_key:
        return ALL_KEYS
    return to_bytes(range_end)


# -- compares ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompareOn:
    """One side of a compare: a key's target, waiting for an operator."""

    key: bytes
    target: CompareTarget
    range_end: bytes = b""

    def _make(self, result: CompareResult, value: int | Bytes) -> Compare:
        operand = to_bytes(value) if isinstance(value, str | bytes) else value
        return Compare(key=self.key, range_end=self.range_end, target=self.target,
                       result=result, value=operand)

    def eq(self, value: int | Bytes) -> Compare:
        return self._make(CompareResult.EQUAL, value)

    def ne(self, value: int | Bytes) -> Compare:
        return self._make(CompareResult.NOT_EQUAL, value)

    def gt(self, value: int | Bytes) -> Compare:
        return self._make(CompareResult.GREATER, value)

    def lt(self, value: int | Bytes) -> Compare:
        return self._make(CompareResult.LESS, value)


def value(key: Bytes, range_end: Bytes = b"") -> CompareOn:
    return CompareOn(to_bytes(key), CompareTarget.VALUE, to_bytes(range_end))


def version(key: Bytes, range_end: Bytes = b"") -> CompareOn:
    return CompareOn(to_bytes(key), CompareTarget.VERSION, to_bytes(range_end))


def create_revision(key: Bytes, range_end: Bytes = b"") -> CompareOn:
    return CompareOn(to_bytes(key), CompareTarget.CREATE, to_bytes(range_end))


def mod_revision(key: Bytes, range_end: Bytes = b"") -> CompareOn:
    return CompareOn(to_bytes(key), CompareTarget.MOD, to_bytes(range_end))


def lease_of(key: Bytes, range_end: Bytes = b"") -> CompareOn:
    return CompareOn(to_bytes(key), CompareTarget.LEASE, to_bytes(range_end))


# -- operations --------------------------------------------------------------------


def op_put(key: Bytes, data: Bytes, *, lease: int = 0, prev_kv: bool = False) -> PutRequest:
    return PutRequest(key=to_bytes(key), value=to_bytes(data), lease=LeaseId(lease),
                      prev_kv=prev_kv)


def op_get(key: Bytes, range_end: Bytes = b"", *, prefix: bool = False, revision: int = 0,
           limit: int = 0, sort_order: SortOrder = SortOrder.NONE,
           sort_target: SortTarget = SortTarget.KEY, keys_only: bool = False,
           count_only: bool = False) -> RangeRequest:
    raw = to_bytes(key)
    return RangeRequest(key=raw, range_end=range_end_for(raw, range_end, prefix=prefix),
                        revision=revision, limit=limit, sort_order=sort_order,
                        sort_target=sort_target, keys_only=keys_only, count_only=count_only)


def op_delete(key: Bytes, range_end: Bytes = b"", *, prefix: bool = False,
              prev_kv: bool = False) -> DeleteRangeRequest:
    raw = to_bytes(key)
    return DeleteRangeRequest(key=raw, range_end=range_end_for(raw, range_end, prefix=prefix),
                              prev_kv=prev_kv)


def op_txn(txn: Txn) -> TxnRequest:
    return txn.request()


@dataclass(frozen=True, slots=True)
class Txn:
    """An immutable txn builder: `Txn().if_(...).then(...).else_(...)`."""

    compares: tuple[Compare, ...] = ()
    success: tuple[RequestOp, ...] = ()
    failure: tuple[RequestOp, ...] = ()

    def if_(self, *compares: Compare) -> Txn:
        return replace(self, compares=self.compares + compares)

    def then(self, *ops: RequestOp) -> Txn:
        return replace(self, success=self.success + ops)

    def else_(self, *ops: RequestOp) -> Txn:
        return replace(self, failure=self.failure + ops)

    def request(self) -> TxnRequest:
        return TxnRequest(compare=self.compares, success=self.success, failure=self.failure)


def is_read_only(request: TxnRequest) -> bool:
    """Every operation in both branches (and nested txns) is a range."""
    return all(isinstance(op, RangeRequest)
               or (isinstance(op, TxnRequest) and is_read_only(op))
               for op in request.success + request.failure)


# -- compare-and-swap ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CasOutcome:
    """What a compare-and-swap did.

    `succeeded`: the new value was written. `revision`: the store revision
    of the answer (on success, the new value's mod revision). `previous`:
    on success, the key as it was before (None: it was absent). `current`:
    on failure, the key as it is now (None: absent)."""

    succeeded: bool
    revision: Revision
    previous: KeyValue | None = None
    current: KeyValue | None = None



def cas_request(key: Bytes, new_value: Bytes, *, expected_value: Bytes | None = None,
                expected_mod_revision: int | None = None, lease: int = 0) -> TxnRequest:
    """The txn of a compare-and-swap (see the module docstring). With neither
    expectation the key must be absent (create-if-absent)."""
    raw = to_bytes(key)
    if expected_value is not None and expected_mod_revision is not None:
        raise ValueError("give expected_value or expected_mod_revision, not both")
    if expected_value is not None:
        compare = value(raw).eq(expected_value)
    elif expected_mod_revision is not None:
        compare = mod_revision(raw).eq(expected_mod_revision)
    else:
        compare = create_revision(raw).eq(0)
    return Txn().if_(compare).then(op_put(raw, new_value, lease=lease, prev_kv=True)).else_(
        op_get(raw)).request()


def cas_outcome(response: TxnResponse) -> CasOutcome:
    assert len(response.responses) == 1, response
    answer = response.responses[0]
    if response.succeeded:
        assert isinstance(answer, PutResponse), answer
        return CasOutcome(succeeded=True, revision=response.header.revision,
                          previous=answer.prev_kv)
    assert isinstance(answer, RangeResponse), answer
    return CasOutcome(succeeded=False, revision=response.header.revision,
                      current=answer.kvs[0] if answer.kvs else None)


__all__ = [
    "Bytes",
    "CasOutcome",
    "CompareOn",
    "Txn",
    "cas_outcome",
    "cas_request",
    "create_revision",
    "is_read_only",
    "lease_of",
    "mod_revision",
    "op_delete",
    "op_get",
    "op_put",
    "op_txn",
    "range_end_for",
    "to_bytes",
    "value",
    "version",
]
