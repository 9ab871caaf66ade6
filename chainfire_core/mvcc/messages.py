"""Requests, responses and events of the MVCC key-value API.

These mirror etcd v3's `etcdserverpb` / `mvccpb` messages field for field
(names in snake_case, enums as `IntEnum`s with etcd's numbers), so the gRPC
layer in real/ is a mechanical translation.  Every message is a frozen,
slotted, keyword-only dataclass holding tuples, never lists; requests check
their own shape on creation so an invalid request cannot exist.  Rules that
need the store (compacted revisions, duplicate keys in a txn) are checked by
the store.

Range conventions (etcd's): `range_end == b""` means the single key `key`;
`range_end == b"\\0"` means every key >= `key`; otherwise `[key, range_end)`.
`key == b"\\0"` together with `range_end == b"\\0"` means every key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from chainfire_core.errors import EmptyKey, InvalidRequest
from chainfire_core.types import NO_LEASE, LeaseId, Revision

ALL_KEYS = b"\0"


def prefix_end(prefix: bytes) -> bytes:
    """The `range_end` that selects every key starting with `prefix`.

    The last byte below 0xff is incremented and the rest dropped; a prefix of
    only 0xff bytes (or empty) has no upper bound, which etcd spells b"\\0".
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return ALL_KEYS
    return stripped[:-1] + bytes((stripped[-1] + 1,))


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyValue:
    key: bytes
    create_revision: Revision
    mod_revision: Revision
    version: int
    value: bytes
    lease: LeaseId = NO_LEASE


_KV_SLOTS = KeyValue.__dict__
_new_object = object.__new__
_set_key = _KV_SLOTS["key"].__set__
_set_create = _KV_SLOTS["create_revision"].__set__
_set_mod = _KV_SLOTS["mod_revision"].__set__
_set_version = _KV_SLOTS["version"].__set__
_set_value = _KV_SLOTS["value"].__set__
_set_lease = _KV_SLOTS["lease"].__set__


def make_key_value(  # noqa: PLR0917  (positional on purpose: this is the hot path)
    key: bytes, create_revision: int, mod_revision: int, version: int, value: bytes, lease: int
) -> KeyValue:
    """Build a `KeyValue` from trusted store data, about twice as fast as the
    dataclass constructor (which goes through `object.__setattr__` per field).
    The result is the same frozen object; reads of many keys spend most of
    their time here, which is why this exists."""
    kv: KeyValue = _new_object(KeyValue)
    _set_key(kv, key)
    _set_create(kv, create_revision)
    _set_mod(kv, mod_revision)
    _set_version(kv, version)
    _set_value(kv, value)
    _set_lease(kv, lease)
    return kv


class EventType(IntEnum):
    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One change to one key. For a DELETE, `kv` holds the key and the
    deleting revision as `mod_revision`, every other field zero (etcd's shape)."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHeader:
    revision: Revision


class SortOrder(IntEnum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(IntEnum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


def _check_key_range(key: bytes, range_end: bytes) -> None:
    # A range_end at or below key is legal and selects nothing (etcd's rule).
    if not key:
        raise EmptyKey()
    if type(key) is not bytes or type(range_end) is not bytes:
        raise InvalidRequest("key and range_end must be bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class RangeRequest:
    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0

    def __post_init__(self) -> None:
        _check_key_range(self.key, self.range_end)
        # One cheap test on the hot path; the slow loop only names the culprit.
        if min(self.limit, self.revision, self.min_mod_revision, self.max_mod_revision,
               self.min_create_revision, self.max_create_revision) < 0:
            for name in ("limit", "revision", "min_mod_revision", "max_mod_revision",
                         "min_create_revision", "max_create_revision"):
                if getattr(self, name) < 0:
                    raise InvalidRequest(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RangeResponse:
    header: ResponseHeader
    kvs: tuple[KeyValue, ...]
    more: bool
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PutRequest:
    key: bytes
    value: bytes = b""
    lease: LeaseId = NO_LEASE
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False

    def __post_init__(self) -> None:
        if not self.key:
            raise EmptyKey()
        if self.ignore_value and self.value:
            raise InvalidRequest("etcdserver: value is provided")
        if self.ignore_lease and self.lease != NO_LEASE:
            raise InvalidRequest("etcdserver: lease is provided")


@dataclass(frozen=True, slots=True, kw_only=True)
class PutResponse:
    header: ResponseHeader
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteRangeRequest:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False

    def __post_init__(self) -> None:
        _check_key_range(self.key, self.range_end)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteRangeResponse:
    header: ResponseHeader
    deleted: int
    prev_kvs: tuple[KeyValue, ...] = ()


class CompareTarget(IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class CompareResult(IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Compare:
    """Compare `target` of every key in the range against `value`.

    `value` is bytes for a VALUE compare and an int otherwise (a version,
    revision or lease id). Over a range, the compare holds only when it holds
    for every key in the range (etcd's rule); a missing key has version,
    create and mod revision 0, lease 0 and no value (a VALUE compare on it fails).
    """

    key: bytes
    target: CompareTarget
    result: CompareResult
    value: int | bytes
    range_end: bytes = b""

    def __post_init__(self) -> None:
        _check_key_range(self.key, self.range_end)
        if self.target == CompareTarget.VALUE:
            if not isinstance(self.value, bytes):
                raise InvalidRequest("a VALUE compare needs a bytes value")
        elif not isinstance(self.value, int) or isinstance(self.value, bool):
            raise InvalidRequest(f"a {self.target.name} compare needs an int value")


@dataclass(frozen=True, slots=True, kw_only=True)
class TxnRequest:
    compare: tuple[Compare, ...] = ()
    success: tuple[RequestOp, ...] = ()
    failure: tuple[RequestOp, ...] = ()

    def __post_init__(self) -> None:
        for name in ("compare", "success", "failure"):
            if not isinstance(getattr(self, name), tuple):
                raise InvalidRequest(f"TxnRequest.{name} must be a tuple")


@dataclass(frozen=True, slots=True, kw_only=True)
class TxnResponse:
    header: ResponseHeader
    succeeded: bool
    responses: tuple[ResponseOp, ...] = field(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class CompactionRequest:
    revision: Revision
    physical: bool = False

    def __post_init__(self) -> None:
        if self.revision < 0:
            raise InvalidRequest(f"compaction revision must be >= 0, got {self.revision}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CompactionResponse:
    header: ResponseHeader


RequestOp = RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest
ResponseOp = RangeResponse | PutResponse | DeleteRangeResponse | TxnResponse

__all__ = [
    "ALL_KEYS",
    "Compare",
    "CompareResult",
    "CompareTarget",
    "CompactionRequest",
    "CompactionResponse",
    "DeleteRangeRequest",
    "DeleteRangeResponse",
    "Event",
    "EventType",
    "KeyValue",
    "PutRequest",
    "PutResponse",
    "RangeRequest",
    "RangeResponse",
    "RequestOp",
    "ResponseHeader",
    "ResponseOp",
    "SortOrder",
    "SortTarget",
    "TxnRequest",
    "TxnResponse",
    "prefix_end",
]
