"""The etcd model: operations with revisions, txns and leases, and their semantics.

This module defines the JSON-like operation schema the simulator records for
the etcd-style API, the sequential semantics of those operations (shared by
the Porcupine-style `EtcdModel` and the witness-based checker in
revision_check.py), and a small reference server used to generate histories.

Operation schema
----------------
Inputs and outputs are JSON objects (or their `history.freeze`d form); keys
and values are strings, revisions, lease ids and TTLs integers. Field names
mirror chainfire_core's requests and responses (mvcc/messages.py,
lease/messages.py). Optional fields may be left out (defaults shown).

Requests (`input`):

    {"f": "put", "key": k, "value": v, "lease": 0, "prev_kv": false}
    {"f": "range", "key": k, "range_end": "", "revision": 0, "limit": 0,
     "count_only": false, "serializable": false}          ("get" is an alias)
    {"f": "delete", "key": k, "range_end": "", "prev_kv": false}
    {"f": "txn", "compare": [cmp, ...], "success": [req, ...], "failure": [req, ...]}
        cmp = {"key": k, "range_end": "", "target": t, "result": op, "value": x}
        t in "version" | "create" | "mod" | "value" | "lease"; op in "=" | "!=" | ">" | "<"
        req = a put, range, delete or (nested) txn request
    {"f": "lease_grant", "ttl_s": 10, "id": 0}            (id 0: the server picks)
    {"f": "lease_revoke", "id": L}
    {"f": "lease_keepalive", "id": L}
    {"f": "lease_ttl", "id": L, "keys": false}
    {"f": "compact", "revision": R}

Range conventions are etcd's: `range_end` "" is the single key, "\\u0000" every
key >= `key`, anything else `[key, range_end)`. Keys order as Python strings
(code point order, which is also UTF-8 byte order).

Responses (`output`), `revision` being the response header's revision:

    put          {"revision": r, "prev_kv": entry | null}      (prev_kv if asked)
    range        {"revision": r, "kvs": [entry, ...], "count": n, "more": false}
    delete       {"revision": r, "deleted": n, "prev_kvs": [entry, ...]}
    txn          {"revision": r, "succeeded": bool, "responses": [resp, ...]}
    lease_grant  {"revision": r, "id": L, "ttl_s": t}
    lease_revoke {"revision": r}
    lease_keepalive {"revision": r, "ttl_s": t}               (t <= 0: not found)
    lease_ttl    {"revision": r, "ttl_s": remaining | -1, "granted_ttl_s": g, "keys": [k, ...]}
    compact      {"revision": r}
    any failure  {"error": code}      e.g. "lease_not_found", "compacted", "not_leader"

    entry = [key, value, mod_revision]                         (short form)
          | [key, value, mod_revision, create_revision, version, lease]   (full form)

A recorded field is checked exactly; a field left out is not checked (e.g.
"count", "more", "prev_kv", the responses inside a txn). `kvs` (or `count`
with count_only), `deleted` and `succeeded` are what make reads, deletes and
txns checkable, so record them. The revisions inside a txn's responses are
not checked (chainfire and etcd differ there); the txn's own one is.

Outcomes. An operation whose outcome the client does not know (timeout,
crash, connection lost) is recorded with `unknown: true` and no output: it
may or may not have taken effect. An output `{"error": code}` says the
request definitely did not take effect (the simulator must record an error
that leaves the outcome open, such as a timeout, as unknown). Only
"lease_not_found" is checked against the model's state; other errors
constrain nothing.

Revisions. A write that changes something (a put; a delete that deleted
keys; a txn whose chosen branch writes; a revoke of a lease with keys; a
lease expiring with keys) creates the next revision, its response carries
it. Everything else observes the current revision. A historical range
(`revision` R > 0) reads the state at R; its header may be R (chainfire) or
the current revision (etcd). Serializable ranges, keepalives and lease_ttl
are answered from one replica's applied state, so their revision is only a
bound: the state they report is the one at their header revision, and that
revision existed when they returned.

Leases. Expiry is not a client operation: a lease may expire at any moment
(deleting its keys in one new revision) as far as the models here are
concerned; lease_check.py checks its timing. The revision of an empty
store is `initial_revision`: 1 for etcd and Chainfire alike (the first
write gets revision 2); a history that starts on a store with data passes
the revision it started at.

Semantics
---------
`execute(request, view)` runs a key-value request (put, range, delete, txn,
lease revoke) against a `View` of the store at some revision and returns the
expected response and the changes it makes (the changed keys in sub-revision
order). Txn compares, nested ones included, are evaluated on the state
before the txn; reads in a branch see the branch's earlier writes.
`response_mismatch(expected, recorded)` compares a recorded output with the
expected one.

EtcdModel
---------
A `checker.model.Model` whose state is a frozenset of `EtcdState`s (a
power-set model): lease expiry and unknown outcomes are nondeterministic.
An `EtcdState` holds the revision, each key's full history (so historical
reads can be answered) and the leases (id -> granted TTL). Expiries are
inserted lazily: the revision a response carries says how many revisions
happened since the state's, and the missing ones can only be lease expiries.
A lease without keys may vanish silently; that is applied when an output
needs the lease gone.

`partition` returns one partition. Revisions are one global counter: a put
to key a moves the revision that every later read of key b reports, and a
txn may join any keys, so sub-histories by key are not independent and
P-compositionality by key does not hold for this model.
"""

from __future__ import annotations

import bisect
import functools
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from checker.history import UNKNOWN_RETURN, Operation

ALL_KEYS: Final = "\0"
NO_LEASE: Final = 0
# The revision of an empty store (etcd's, and Chainfire's): nothing is stored
# there, the first write gets the next one.
EMPTY_STORE_REVISION: Final = 1

# A live key's record: (value, create_revision, mod_revision, version, lease).
KV = tuple[str, int, int, int, int]
# One change of one key: the new record, or None for a deletion.
Change = tuple[str, KV | None]

CREATES: Final = "creates"
OBSERVES: Final = "observes"
EITHER: Final = "either"
WEAK: Final = "weak"
HISTORICAL: Final = "historical"

COMPARE_TARGETS: Final = ("version", "create", "mod", "value", "lease")
COMPARE_RESULTS: Final = ("=", "!=", ">", "<")
_TARGET_ALIASES: Final = {"create_revision": "create", "mod_revision": "mod"}
_RESULT_ALIASES: Final = {"==": "="}


class SchemaError(ValueError):
    """An input or output that does not follow the etcd operation schema."""


class LeaseNotFound(Exception):
    """A request names a lease the view knows does not exist."""

    def __init__(self, lease: int) -> None:
        super().__init__(f"lease {lease} not found")
        self.lease = lease


# -- requests ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: str = ""
    lease: int = NO_LEASE
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Range:
    key: str
    range_end: str = ""
    revision: int = 0
    limit: int = 0
    count_only: bool = False
    serializable: bool = False


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    range_end: str = ""
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    key: str
    target: str
    result: str
    value: int | str
    range_end: str = ""


@dataclass(frozen=True, slots=True)
class Txn:
    compare: tuple[Compare, ...] = ()
    success: tuple[KvRequest, ...] = ()
    failure: tuple[KvRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    ttl_s: int
    id: int = 0


@dataclass(frozen=True, slots=True)
class LeaseRevoke:
    id: int


@dataclass(frozen=True, slots=True)
class LeaseKeepAlive:
    id: int


@dataclass(frozen=True, slots=True)
class LeaseTimeToLive:
    id: int
    keys: bool = False


@dataclass(frozen=True, slots=True)
class Compact:
    revision: int


KvRequest = Put | Range | Delete | Txn
Request = Put | Range | Delete | Txn | LeaseGrant | LeaseRevoke | LeaseKeepAlive | \
    LeaseTimeToLive | Compact


# -- parsing -------------------------------------------------------------------


def as_object(value: Any, what: str = "value") -> Mapping[str, Any]:
    """A JSON object given as a dict or in `freeze`d form (sorted pairs)."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, tuple) and all(
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) for item in value
    ):
        return dict(value)
    raise SchemaError(f"{what} must be an object, not {value!r}")


def _str(obj: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = obj.get(name, default)
    if not isinstance(value, str):
        raise SchemaError(f"{name} must be a string, not {value!r}")
    return value


def _int(obj: Mapping[str, Any], name: str, default: int | None = 0) -> int:
    value = obj.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"{name} must be an integer, not {value!r}")
    return value


def _bool(obj: Mapping[str, Any], name: str) -> bool:
    value = obj.get(name, False)
    if not isinstance(value, bool):
        raise SchemaError(f"{name} must be true or false, not {value!r}")
    return value


def _key(obj: Mapping[str, Any]) -> str:
    key = _str(obj, "key")
    if not key:
        raise SchemaError("key must not be empty")
    return key


def _compare(value: Any) -> Compare:
    obj = as_object(value, "compare")
    target = _str(obj, "target")
    target = _TARGET_ALIASES.get(target, target)
    result = _str(obj, "result")
    result = _RESULT_ALIASES.get(result, result)
    if target not in COMPARE_TARGETS:
        raise SchemaError(f"compare target must be one of {COMPARE_TARGETS}, not {target!r}")
    if result not in COMPARE_RESULTS:
        raise SchemaError(f"compare result must be one of {COMPARE_RESULTS}, not {result!r}")
    operand: int | str = _str(obj, "value") if target == "value" else _int(obj, "value", None)
    return Compare(key=_key(obj), target=target, result=result, value=operand,
                   range_end=_str(obj, "range_end", ""))


def _kv_request(value: Any) -> KvRequest:
    request = _parse(value)
    if not isinstance(request, Put | Range | Delete | Txn):
        raise SchemaError("a txn branch holds put, range, delete and txn requests only")
    return request


def _branch(obj: Mapping[str, Any], name: str) -> tuple[KvRequest, ...]:
    ops = obj.get(name, ())
    if not isinstance(ops, list | tuple):
        raise SchemaError(f"{name} must be a list")
    return tuple(_kv_request(op) for op in ops)


def _parse(value: Any) -> Request:
    obj = as_object(value, "input")
    kind = obj.get("f")
    match kind:
        case "put":
            return Put(key=_key(obj), value=_str(obj, "value", ""), lease=_int(obj, "lease"),
                       prev_kv=_bool(obj, "prev_kv"))
        case "range" | "get":
            return Range(key=_key(obj), range_end=_str(obj, "range_end", ""),
                         revision=_int(obj, "revision"), limit=_int(obj, "limit"),
                         count_only=_bool(obj, "count_only"),
                         serializable=_bool(obj, "serializable"))
        case "delete":
            return Delete(key=_key(obj), range_end=_str(obj, "range_end", ""),
                          prev_kv=_bool(obj, "prev_kv"))
        case "txn":
            compares = obj.get("compare", ())
            if not isinstance(compares, list | tuple):
                raise SchemaError("compare must be a list")
            return Txn(compare=tuple(_compare(c) for c in compares),
                       success=_branch(obj, "success"), failure=_branch(obj, "failure"))
        case "lease_grant":
            return LeaseGrant(ttl_s=_int(obj, "ttl_s", None), id=_int(obj, "id"))
        case "lease_revoke":
            return LeaseRevoke(id=_int(obj, "id", None))
        case "lease_keepalive":
            return LeaseKeepAlive(id=_int(obj, "id", None))
        case "lease_ttl":
            return LeaseTimeToLive(id=_int(obj, "id", None), keys=_bool(obj, "keys"))
        case "compact":
            return Compact(revision=_int(obj, "revision", None))
    raise SchemaError(f"unknown operation f={kind!r}")


@functools.lru_cache(maxsize=1 << 16)
def _parse_cached(value: Any) -> Request:
    return _parse(value)


def parse_request(value: Any) -> Request:
    """The request an operation's input describes (raises `SchemaError`)."""
    try:
        hash(value)
    except TypeError:
        return _parse(value)
    return _parse_cached(value)


def may_write(request: Request) -> bool:
    """Whether some outcome of `request` creates a revision."""
    match request:
        case Put() | Delete() | LeaseRevoke():
            return True
        case Txn():
            return any(may_write(op) for op in request.success + request.failure)
    return False


def txn_writes(txn: Txn, output: Mapping[str, Any]) -> bool | None:
    """Whether the branch an acknowledged txn took changed anything, as far
    as its output tells (None: it depends on deletes with unrecorded counts)."""
    succeeded = output.get("succeeded")
    if succeeded is None:
        return None if may_write(txn) else False
    responses = output.get("responses")
    unsure = False
    for index, op in enumerate(txn.success if succeeded else txn.failure):
        if isinstance(op, Put):
            return True
        if not isinstance(op, Delete | Txn):
            continue
        response = None
        if isinstance(responses, list | tuple) and index < len(responses):
            response = as_object(responses[index], "txn response")
        if response is None:
            unsure = unsure or may_write(op)
        elif isinstance(op, Delete):
            deleted = response.get("deleted")
            if deleted is None:
                unsure = True
            elif deleted > 0:
                return True
        else:
            nested = txn_writes(op, response)
            if nested:
                return True
            unsure = unsure or nested is None
    return None if unsure else False


def revision_role(request: Request, output: Mapping[str, Any]) -> str:
    """How an acknowledged operation relates to the revision it reports:
    CREATES it, OBSERVES it (the current revision when it ran), EITHER (the
    output does not say which), WEAK (a bound: the state at that revision,
    which existed by its return) or HISTORICAL (a read at request.revision)."""
    match request:
        case Put():
            return CREATES
        case Range():
            if request.revision:
                return HISTORICAL
            return WEAK if request.serializable else OBSERVES
        case Delete():
            deleted = output.get("deleted")
            if deleted is None:
                return EITHER
            return CREATES if deleted > 0 else OBSERVES
        case Txn():
            writes = txn_writes(request, output)
            if writes is None:
                return EITHER
            return CREATES if writes else OBSERVES
        case LeaseRevoke():
            return EITHER
        case LeaseKeepAlive() | LeaseTimeToLive():
            return WEAK
    return OBSERVES


def in_range(key: str, start: str, range_end: str) -> bool:
    if not range_end:
        return key == start
    if range_end == ALL_KEYS:
        return key >= start
    return start <= key < range_end


def request_ranges(request: Request) -> list[tuple[str, str]]:
    """Every (key, range_end) a KV request reads or writes, nested ones included."""
    match request:
        case Put():
            return [(request.key, "")]
        case Range() | Delete():
            return [(request.key, request.range_end)]
        case Txn():
            spans = [(c.key, c.range_end) for c in request.compare]
            for op in request.success + request.failure:
                spans.extend(request_ranges(op))
            return spans
    return []


def put_keys(request: Request) -> list[tuple[str, str]]:
    """(key, value) of every put a request may make, in any branch."""
    match request:
        case Put():
            return [(request.key, request.value)]
        case Txn():
            return [kv for op in request.success + request.failure for kv in put_keys(op)]
    return []


# -- views of the store ---------------------------------------------------------


class View(Protocol):
    @property
    def revision(self) -> int: ...

    def get(self, key: str) -> KV | None: ...

    def live_keys(self, key: str, range_end: str) -> list[str]:
        """Live keys in the range, in key order."""
        ...

    def lease_keys(self, lease: int) -> list[str]:
        """Live keys attached to `lease`, in key order."""
        ...

    def lease_exists(self, lease: int) -> bool | None:
        """True/False if known, None if this view does not track leases."""
        ...

    def at(self, revision: int) -> View:
        """The view of the same store at an earlier `revision`."""
        ...


def _keys_between(keys: Sequence[str], start: str, range_end: str) -> Sequence[str]:
    low = bisect.bisect_left(keys, start)
    high = len(keys) if range_end == ALL_KEYS else bisect.bisect_left(keys, range_end)
    return keys[low:high]


class _Versions:
    """Per-key histories: `_revs[k]` the revisions that changed k (ascending),
    `_kvs[k]` the records they left (None: deleted); `_sorted` every key."""

    _sorted: Sequence[str]
    _revs: Mapping[str, Sequence[int]]
    _kvs: Mapping[str, Sequence[KV | None]]

    def get_at(self, key: str, revision: int) -> KV | None:
        revs = self._revs.get(key)
        if not revs:
            return None
        position = bisect.bisect_right(revs, revision)
        return self._kvs[key][position - 1] if position else None

    def get(self, key: str) -> KV | None:
        kvs = self._kvs.get(key)
        return kvs[-1] if kvs else None

    def live_keys(self, key: str, range_end: str) -> list[str]:
        if not range_end:
            return [key] if self.get(key) is not None else []
        kvs = self._kvs
        return [k for k in _keys_between(self._sorted, key, range_end) if kvs[k][-1] is not None]

    def last_change(self, key: str, revision: int) -> tuple[int, KV | None] | None:
        """The last change of `key` at or before `revision`, if any."""
        revs = self._revs.get(key)
        if not revs:
            return None
        position = bisect.bisect_right(revs, revision)
        return (revs[position - 1], self._kvs[key][position - 1]) if position else None

    def revisions(self, key: str) -> Sequence[int]:
        """The revisions that changed `key`, ascending (do not modify)."""
        return self._revs.get(key, ())

    def all_keys(self) -> Sequence[str]:
        """Every key that ever existed, in order."""
        return self._sorted

    def history(self, key: str) -> list[tuple[int, KV | None]]:
        """(revision, record) of every change of `key`."""
        return list(zip(self._revs.get(key, ()), self._kvs.get(key, ()), strict=True))


class AtRevision:
    """A read-only view of a `_Versions` store at a past revision."""

    __slots__ = ("_revision", "_store")

    def __init__(self, store: _Versions, revision: int) -> None:
        self._store = store
        self._revision = revision

    @property
    def revision(self) -> int:
        return self._revision

    def get(self, key: str) -> KV | None:
        return self._store.get_at(key, self._revision)

    def live_keys(self, key: str, range_end: str) -> list[str]:
        if not range_end:
            return [key] if self.get(key) is not None else []
        at = self._revision
        store = self._store
        return [k for k in _keys_between(store.all_keys(), key, range_end)
                if store.get_at(k, at) is not None]

    def lease_keys(self, lease: int) -> list[str]:
        found = []
        for key in self._store.all_keys():
            kv = self.get(key)
            if kv is not None and kv[4] == lease:
                found.append(key)
        return found

    def lease_exists(self, lease: int) -> bool | None:
        return None

    def at(self, revision: int) -> View:
        return AtRevision(self._store, revision)


class MutableStore(_Versions):
    """A store with full per-key history, changed in place and undoable.

    `log` lists (revision, key) of every change in order; `undo_to(n, rev)`
    takes back every change after the first n. With `track_leases` the store
    keeps the lease table too (the reference server); otherwise lease
    existence is unknown (None) and only attachments are tracked."""

    def __init__(self, initial_revision: int = EMPTY_STORE_REVISION, *,
                 track_leases: bool = False) -> None:
        self._revision = initial_revision
        self._sorted: list[str] = []
        self._revs: dict[str, list[int]] = {}
        self._kvs: dict[str, list[KV | None]] = {}
        self._by_lease: dict[int, set[str]] = {}
        self.leases: dict[int, int] | None = {} if track_leases else None
        self.log: list[tuple[int, str]] = []

    @property
    def revision(self) -> int:
        return self._revision

    def lease_keys(self, lease: int) -> list[str]:
        return sorted(self._by_lease.get(lease, ()))

    def leases_with_keys(self) -> list[int]:
        return sorted(lease for lease, keys in self._by_lease.items() if keys)

    def lease_exists(self, lease: int) -> bool | None:
        return None if self.leases is None else lease in self.leases

    def at(self, revision: int) -> View:
        return AtRevision(self, revision)

    def _attach(self, key: str, old: KV | None, new: KV | None) -> None:
        if old is not None and old[4]:
            self._by_lease[old[4]].discard(key)
        if new is not None and new[4]:
            self._by_lease.setdefault(new[4], set()).add(key)

    def apply(self, changes: Sequence[Change], revision: int) -> None:
        assert revision > self._revision or not changes, (revision, self._revision)
        for key, kv in changes:
            revs = self._revs.get(key)
            if revs is None:
                revs = self._revs[key] = []
                self._kvs[key] = []
                bisect.insort(self._sorted, key)
            kvs = self._kvs[key]
            self._attach(key, kvs[-1] if kvs else None, kv)
            revs.append(revision)
            kvs.append(kv)
            self.log.append((revision, key))
        if changes:
            self._revision = revision

    def undo_to(self, length: int, revision: int) -> None:
        log = self.log
        while len(log) > length:
            _, key = log.pop()
            revs, kvs = self._revs[key], self._kvs[key]
            revs.pop()
            old = kvs.pop()
            self._attach(key, old, kvs[-1] if kvs else None)
            if not revs:
                del self._revs[key], self._kvs[key]
                self._sorted.pop(bisect.bisect_left(self._sorted, key))
        self._revision = revision

    def changes_at(self, revision: int) -> list[Change]:
        """The changes revision made, in order (a scan of the log's tail)."""
        position = bisect.bisect_left(self.log, (revision, ""))
        found: list[Change] = []
        while position < len(self.log) and self.log[position][0] == revision:
            key = self.log[position][1]
            found.append((key, self.get_at(key, revision)))
            position += 1
        return found


# -- semantics ------------------------------------------------------------------


def entry(key: str, kv: KV) -> tuple[Any, ...]:
    """The full-form response entry of a record."""
    value, create, mod, version, lease = kv
    return (key, value, mod, create, version, lease)


class _Overlay:
    """The view inside a write: the base view plus the pending changes."""

    __slots__ = ("base", "pending")

    def __init__(self, base: View) -> None:
        self.base = base
        self.pending: dict[str, KV | None] = {}

    @property
    def revision(self) -> int:
        return self.base.revision

    def get(self, key: str) -> KV | None:
        if key in self.pending:
            return self.pending[key]
        return self.base.get(key)

    def live_keys(self, key: str, range_end: str) -> list[str]:
        keys = self.base.live_keys(key, range_end)
        if not self.pending:
            return keys
        live = set(keys)
        for k, kv in self.pending.items():
            if in_range(k, key, range_end):
                if kv is None:
                    live.discard(k)
                else:
                    live.add(k)
        return sorted(live)


def _compare_holds(compare: Compare, view: View) -> bool:
    keys = view.live_keys(compare.key, compare.range_end)
    if not keys:
        if compare.target == "value":
            return False
        return _ordered(compare.result, 0, compare.value)
    index = {"value": 0, "create": 1, "mod": 2, "version": 3, "lease": 4}[compare.target]
    for key in keys:
        kv = view.get(key)
        assert kv is not None
        if not _ordered(compare.result, kv[index], compare.value):
            return False
    return True


def _ordered(result: str, left: int | str, right: int | str) -> bool:
    if type(left) is not type(right):
        return result == "!="
    match result:
        case "=":
            return left == right
        case "!=":
            return left != right
        case ">":
            return left > right  # type: ignore[operator]
    return left < right  # type: ignore[operator]


def _range(request: Range, view: View | _Overlay) -> dict[str, Any]:
    keys = view.live_keys(request.key, request.range_end)
    count = len(keys)
    if request.count_only:
        return {"revision": view.revision, "kvs": (), "count": count, "more": False}
    chosen = keys[: request.limit] if request.limit else keys
    kvs = []
    for key in chosen:
        kv = view.get(key)
        assert kv is not None
        kvs.append(entry(key, kv))
    return {"revision": view.revision, "kvs": tuple(kvs), "count": count,
            "more": len(chosen) < count}


def _put(request: Put, view: _Overlay, new_revision: int) -> dict[str, Any]:
    if request.lease and view.base.lease_exists(request.lease) is False:
        raise LeaseNotFound(request.lease)
    old = view.get(request.key)
    if old is None:
        kv = (request.value, new_revision, new_revision, 1, request.lease)
    else:
        kv = (request.value, old[1], new_revision, old[3] + 1, request.lease)
    view.pending[request.key] = kv
    response: dict[str, Any] = {"revision": new_revision}
    if request.prev_kv:
        response["prev_kv"] = None if old is None else entry(request.key, old)
    return response


def _delete(request: Delete, view: _Overlay, new_revision: int) -> dict[str, Any]:
    keys = view.live_keys(request.key, request.range_end)
    previous = []
    for key in keys:
        kv = view.get(key)
        assert kv is not None
        previous.append(entry(key, kv))
        view.pending[key] = None
    response: dict[str, Any] = {"revision": new_revision if keys else view.revision,
                                "deleted": len(keys)}
    if request.prev_kv:
        response["prev_kvs"] = tuple(previous)
    return response


def _txn(request: Txn, base: View, view: _Overlay, new_revision: int) -> dict[str, Any]:
    succeeded = all(_compare_holds(c, base) for c in request.compare)
    responses: list[dict[str, Any]] = []
    for op in request.success if succeeded else request.failure:
        match op:
            case Range():
                if op.revision:
                    if op.revision > base.revision:
                        raise SchemaError("txn range above the current revision")
                    responses.append(_range(op, base.at(op.revision)))
                else:
                    responses.append(_range(op, view))
            case Put():
                responses.append(_put(op, view, new_revision))
            case Delete():
                responses.append(_delete(op, view, new_revision))
            case Txn():
                responses.append(_txn(op, base, view, new_revision))
    return {"revision": new_revision if view.pending else base.revision,
            "succeeded": succeeded, "responses": tuple(responses)}


def execute(request: Request, view: View) -> tuple[dict[str, Any], list[Change]]:
    """Run a put, range, delete, txn or lease revoke at `view`. Returns the
    expected response (entries in full form) and the changes, which take
    revision `view.revision + 1` if there are any. Raises `LeaseNotFound`."""
    new_revision = view.revision + 1
    overlay = _Overlay(view)
    match request:
        case Range():
            return _range(request, view), []
        case Put():
            response = _put(request, overlay, new_revision)
        case Delete():
            response = _delete(request, overlay, new_revision)
        case Txn():
            response = _txn(request, view, overlay, new_revision)
        case LeaseRevoke():
            if view.lease_exists(request.id) is False:
                raise LeaseNotFound(request.id)
            for key in view.lease_keys(request.id):
                overlay.pending[key] = None
            response = {"revision": new_revision if overlay.pending else view.revision}
        case _:
            raise SchemaError(f"execute does not run {type(request).__name__}")
    return response, list(overlay.pending.items())


def _entry_mismatch(want: tuple[Any, ...] | None, got: Any) -> bool:
    if want is None or got is None:
        return want is not got
    if not isinstance(got, list | tuple) or not 3 <= len(got) <= 6:
        raise SchemaError(f"an entry is [key, value, mod_revision, ...], not {got!r}")
    return tuple(got) != want[: len(got)]


def _entries_mismatch(want: Sequence[tuple[Any, ...]], got: Any) -> bool:
    if not isinstance(got, list | tuple):
        raise SchemaError(f"kvs must be a list, not {got!r}")
    return len(got) != len(want) or any(
        _entry_mismatch(w, g) for w, g in zip(want, got, strict=True))


def response_mismatch(expected: Mapping[str, Any], recorded: Mapping[str, Any], *,
                      check_revision: bool = True) -> str | None:
    """Why `recorded` cannot be the response `expected` describes (None: it
    can). Fields missing from `recorded` are not checked; neither are the
    revisions of the responses inside a txn."""
    for name, got in recorded.items():
        if name not in expected or (name == "revision" and not check_revision):
            continue
        want = expected[name]
        if name in ("kvs", "prev_kvs"):
            bad = _entries_mismatch(want, got)
        elif name == "prev_kv":
            bad = _entry_mismatch(want, got)
        elif name == "responses":
            if not isinstance(got, list | tuple) or len(got) != len(want):
                return f"responses: expected {len(want)} responses, got {got!r}"
            for index, (w, g) in enumerate(zip(want, got, strict=True)):
                why = response_mismatch(w, as_object(g, "txn response"), check_revision=False)
                if why is not None:
                    return f"responses[{index}]: {why}"
            continue
        else:
            bad = want != (tuple(got) if isinstance(got, list) else got)
        if bad:
            return f"{name}: expected {_json(want)!r}, got {_json(got)!r}"
    return None


def _json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    return value


def to_json(value: Any) -> Any:
    """A response with its tuples turned into lists (for recording)."""
    return _json(value)


# -- the model ------------------------------------------------------------------


class EtcdState(_Versions):
    """One possible state of the store: immutable, hashable, compared by value."""

    __slots__ = ("_hash", "_kvs", "_leases", "_revision", "_revs", "_sorted")
    _sorted: tuple[str, ...]
    _revs: dict[str, tuple[int, ...]]
    _kvs: dict[str, tuple[KV | None, ...]]

    def __init__(self, revision: int, sorted_keys: tuple[str, ...],
                 revs: dict[str, tuple[int, ...]], kvs: dict[str, tuple[KV | None, ...]],
                 leases: dict[int, int]) -> None:
        self._revision = revision
        self._sorted = sorted_keys
        self._revs = revs
        self._kvs = kvs
        self._leases = leases
        self._hash = hash(self._identity())

    @classmethod
    def empty(cls, revision: int = EMPTY_STORE_REVISION) -> EtcdState:
        return cls(revision, (), {}, {}, {})

    def _identity(self) -> tuple[Any, ...]:
        return (self._revision, tuple((k, self._revs[k], self._kvs[k]) for k in self._sorted),
                tuple(sorted(self._leases.items())))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EtcdState):
            return NotImplemented
        return self._hash == other._hash and self._identity() == other._identity()

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def leases(self) -> Mapping[int, int]:
        return self._leases

    def lease_keys(self, lease: int) -> list[str]:
        return [k for k in self._sorted if (kv := self._kvs[k][-1]) is not None and kv[4] == lease]

    def lease_exists(self, lease: int) -> bool | None:
        return lease in self._leases

    def at(self, revision: int) -> View:
        return AtRevision(self, revision)

    def apply(self, changes: Sequence[Change]) -> EtcdState:
        if not changes:
            return self
        revision = self._revision + 1
        revs, kvs = dict(self._revs), dict(self._kvs)
        keys = list(self._sorted)
        for key, kv in changes:
            if key not in revs:
                bisect.insort(keys, key)
                revs[key], kvs[key] = (), ()
            revs[key] += (revision,)
            kvs[key] += (kv,)
        return EtcdState(revision, tuple(keys), revs, kvs, self._leases)

    def with_lease(self, lease: int, ttl_s: int | None) -> EtcdState:
        leases = dict(self._leases)
        if ttl_s is None:
            leases.pop(lease, None)
        else:
            leases[lease] = ttl_s
        return EtcdState(self._revision, self._sorted, dict(self._revs), dict(self._kvs), leases)

    def expire(self, lease: int) -> EtcdState:
        """The state after `lease` expired (its keys deleted in one revision)."""
        changes: list[Change] = [(key, None) for key in self.lease_keys(lease)]
        return self.apply(changes).with_lease(lease, None)

    def live_items(self) -> list[tuple[str, KV]]:
        return [(k, kv) for k in self._sorted if (kv := self._kvs[k][-1]) is not None]


def _lease_of(request: Request) -> int:
    match request:
        case Put():
            return request.lease
        case LeaseRevoke() | LeaseKeepAlive() | LeaseTimeToLive():
            return request.id
        case Txn():
            for op in request.success + request.failure:
                if lease := _lease_of(op):
                    return lease
    return NO_LEASE


def _expirations(state: EtcdState, count: int) -> Iterator[EtcdState]:
    """States after `count` lease expiries that each delete keys."""
    if count == 0:
        yield state
        return
    for lease in sorted(state.leases):
        if state.lease_keys(lease):
            yield from _expirations(state.expire(lease), count - 1)


def _without_lease(state: EtcdState, lease: int) -> EtcdState:
    """The state in which `lease` no longer exists (it expired, perhaps silently)."""
    if lease not in state.leases:
        return state
    return state.expire(lease)


class EtcdModel:
    """The etcd key-value + lease model, for the Porcupine-style search.

    State: a frozenset of `EtcdState`s. See the module docstring."""

    name = "etcd"

    def __init__(self, *, initial_revision: int = EMPTY_STORE_REVISION) -> None:
        self.initial_revision = initial_revision

    def init(self) -> frozenset[EtcdState]:
        return frozenset({EtcdState.empty(self.initial_revision)})

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        request = parse_request(input)
        recorded = None if output is None else as_object(output, "output")
        following: set[EtcdState] = set()
        for current in state:
            following.update(self._successors(current, request, recorded))
        return bool(following), frozenset(following)

    def partition(self, operations: Sequence[Operation]) -> list[tuple[str, list[Operation]]]:
        """One partition: revisions are global (see the module docstring)."""
        return [("etcd", list(operations))]

    def describe_operation(self, input: Any, output: Any) -> str:
        return describe_operation(input, output)

    def describe_state(self, state: Any) -> str:
        states = sorted(state, key=lambda s: s.revision)
        if not states:
            return "(no state)"
        first = states[0]
        kvs = ", ".join(f"{k}={kv[0]!r}@{kv[2]}" for k, kv in first.live_items())
        leases = ", ".join(f"{lease}:{ttl}s" for lease, ttl in sorted(first.leases.items()))
        more = f" (+{len(states) - 1} more possible states)" if len(states) > 1 else ""
        return f"revision {first.revision}: {{{kvs}}} leases {{{leases}}}{more}"

    # -- successors --------------------------------------------------------------

    def _successors(self, state: EtcdState, request: Request,
                    output: Mapping[str, Any] | None) -> Iterator[EtcdState]:
        if output is None:
            yield state
            yield from self._any_outcome(state, request)
            return
        if "error" in output:
            if output["error"] == "lease_not_found" and (lease := _lease_of(request)):
                yield _without_lease(state, lease)
            else:
                yield state
            return
        revision = output.get("revision")
        role = revision_role(request, output)
        if revision is None:  # any number of expiries may have come first
            counts = list(range(sum(1 for lease in state.leases if state.lease_keys(lease)) + 1))
        elif role == CREATES:
            counts = [revision - state.revision - 1]
        elif role == OBSERVES:
            counts = [revision - state.revision]
        elif role == EITHER:
            counts = [revision - state.revision - 1, revision - state.revision]
        else:
            counts = [max(0, revision - state.revision)]
        for count in counts:
            if count < 0:
                continue
            for base in _expirations(state, count):
                yield from self._run(base, request, output, role)

    def _any_outcome(self, state: EtcdState, request: Request) -> Iterator[EtcdState]:
        match request:
            case Put() | Delete() | Txn() | LeaseRevoke():
                try:
                    _, changes = execute(request, state)
                except LeaseNotFound:
                    return
                after = state.apply(changes)
                if isinstance(request, LeaseRevoke):
                    after = after.with_lease(request.id, None)
                yield after
            case LeaseGrant() if request.id and request.id not in state.leases:
                yield state.with_lease(request.id, request.ttl_s)

    def _run(self, state: EtcdState, request: Request, output: Mapping[str, Any],
             role: str) -> Iterator[EtcdState]:
        revision = output.get("revision", state.revision)
        match request:
            case LeaseGrant():
                yield from self._grant(state, request, output)
                return
            case LeaseKeepAlive():
                ttl = output.get("ttl_s", 1)
                if revision > state.revision:
                    return
                if ttl <= 0:
                    yield _without_lease(state, request.id)
                elif request.id in state.leases:
                    yield state
                return
            case LeaseTimeToLive():
                yield from self._time_to_live(state, request, output)
                return
            case Compact():
                if request.revision <= state.revision and revision == state.revision:
                    yield state
                return
            case Range() if role in (HISTORICAL, WEAK):
                read_at = request.revision or revision
                if not read_at <= revision <= state.revision:
                    return
                expected, _ = execute(request, state.at(read_at))
                if response_mismatch(expected, output, check_revision=False) is None:
                    yield state
                return
        try:
            expected, changes = execute(request, state)
        except LeaseNotFound:
            return
        if response_mismatch(expected, output) is not None:
            return
        after = state.apply(changes)
        if isinstance(request, LeaseRevoke):
            after = after.with_lease(request.id, None)
        yield after

    def _grant(self, state: EtcdState, request: LeaseGrant,
               output: Mapping[str, Any]) -> Iterator[EtcdState]:
        lease = output.get("id", request.id)
        ttl = output.get("ttl_s", request.ttl_s)
        if output.get("revision", state.revision) != state.revision:
            return
        if (request.id and lease != request.id) or lease <= 0 or ttl < request.ttl_s:
            return
        if lease in state.leases:
            if state.lease_keys(lease):
                return
            state = state.with_lease(lease, None)  # it expired silently first
        yield state.with_lease(lease, ttl)

    def _time_to_live(self, state: EtcdState, request: LeaseTimeToLive,
                      output: Mapping[str, Any]) -> Iterator[EtcdState]:
        revision = output.get("revision", state.revision)
        if revision > state.revision:
            return
        if output.get("ttl_s", 0) == -1:
            yield _without_lease(state, request.id)
            return
        granted = state.leases.get(request.id)
        if granted is None or output.get("granted_ttl_s", granted) != granted:
            return
        keys = output.get("keys")
        if keys is not None and request.keys and \
                list(keys) != state.at(revision).lease_keys(request.id):
            return
        yield state


def describe_operation(input: Any, output: Any) -> str:
    """A one-line rendering of an etcd operation, e.g. "put k=v -> r5"."""
    request = parse_request(input)
    match request:
        case Put():
            text = f"put {request.key}={request.value!r}"
            if request.lease:
                text += f" lease {request.lease}"
        case Range():
            text = f"range {_describe_range(request.key, request.range_end)}"
            if request.revision:
                text += f" @{request.revision}"
        case Delete():
            text = f"delete {_describe_range(request.key, request.range_end)}"
        case Txn():
            text = f"txn({len(request.compare)} cmp, {len(request.success)}/" \
                   f"{len(request.failure)} ops)"
        case LeaseGrant():
            text = f"lease_grant {request.id or '?'} ttl {request.ttl_s}s"
        case LeaseRevoke() | LeaseKeepAlive() | LeaseTimeToLive():
            text = f"{type(request).__name__} {request.id}"
        case Compact():
            text = f"compact {request.revision}"
    if output is None:
        return text + " -> ?"
    obj = as_object(output, "output")
    if "error" in obj:
        return f"{text} -> error {obj['error']}"
    parts = [f"r{obj['revision']}"] if "revision" in obj else []
    if "kvs" in obj:
        parts.append("[" + ", ".join(f"{e[0]}={e[1]!r}@{e[2]}" for e in obj["kvs"]) + "]")
    for name in ("deleted", "succeeded", "id"):
        if name in obj:
            parts.append(f"{name}={obj[name]}")
    return f"{text} -> {' '.join(parts)}"


def _describe_range(key: str, range_end: str) -> str:
    if not range_end:
        return key
    return f"[{key!r}, {'∞' if range_end == ALL_KEYS else repr(range_end)})"


# -- a reference server and a history generator -------------------------------------


def serve(store: MutableStore, input: Any) -> dict[str, Any]:
    """Answer one request sequentially on `store` (made with track_leases),
    as a correct server would; returns the JSON output."""
    assert store.leases is not None, "serve needs a store that tracks leases"
    request = parse_request(input)
    match request:
        case LeaseGrant():
            lease = request.id or max(store.leases, default=0) + 1
            if lease in store.leases:
                return {"error": "lease_exists"}
            store.leases[lease] = request.ttl_s
            return {"revision": store.revision, "id": lease, "ttl_s": request.ttl_s}
        case LeaseKeepAlive():
            if request.id not in store.leases:
                return {"error": "lease_not_found"}
            return {"revision": store.revision, "ttl_s": store.leases[request.id]}
        case LeaseTimeToLive():
            ttl = store.leases.get(request.id)
            return {"revision": store.revision, "ttl_s": -1 if ttl is None else ttl,
                    "granted_ttl_s": ttl or 0,
                    "keys": store.lease_keys(request.id) if request.keys else []}
        case Compact():
            return {"revision": store.revision}
        case Range() if request.revision:
            if request.revision > store.revision:
                return {"error": "future_revision"}
            response, _ = execute(request, store.at(request.revision))
            return to_json(response)  # type: ignore[no-any-return]
    try:
        response, changes = execute(request, store)
    except LeaseNotFound:
        return {"error": "lease_not_found"}
    store.apply(changes, store.revision + 1)
    if isinstance(request, LeaseRevoke):
        del store.leases[request.id]
    return to_json(response)  # type: ignore[no-any-return]


def expire(store: MutableStore, lease: int) -> None:
    """A lease expiring on the reference server: its keys go in one revision."""
    assert store.leases is not None
    changes: list[Change] = [(key, None) for key in store.lease_keys(lease)]
    store.apply(changes, store.revision + 1)
    store.leases.pop(lease, None)


def _random_request(rng: random.Random, store: MutableStore, keys: Sequence[str],
                    serial: int, known: set[int]) -> dict[str, Any]:
    """A random request; it names only leases whose grant a client saw (`known`)."""
    assert store.leases is not None
    key = rng.choice(keys)
    leases = sorted(known & set(store.leases))
    roll = rng.random()
    if roll < 0.28:
        lease = rng.choice(leases) if leases and rng.random() < 0.2 else 0
        return {"f": "put", "key": key, "value": f"v{serial}", "lease": lease,
                "prev_kv": rng.random() < 0.1}
    if roll < 0.55:
        if rng.random() < 0.15:
            return {"f": "range", "key": keys[0], "range_end": ALL_KEYS,
                    "limit": rng.choice((0, 0, 2))}
        past = rng.random() < 0.05 and store.revision > 0
        return {"f": "range", "key": key,
                "revision": rng.randint(max(1, store.revision - 20), store.revision) if past else 0}
    if roll < 0.63:
        if rng.random() < 0.2:
            low, high = sorted(rng.sample(list(keys), 2)) if len(keys) > 1 else (key, key + "~")
            return {"f": "delete", "key": low, "range_end": high}
        return {"f": "delete", "key": key, "prev_kv": rng.random() < 0.2}
    if roll < 0.85:
        return _random_txn(rng, store, keys, serial)
    if roll < 0.89:
        return {"f": "lease_grant", "ttl_s": 10}
    # an id no grant can have made (ids granted with an unknown outcome are unknown)
    lease = rng.choice(leases) if leases and rng.random() < 0.9 else rng.randint(1000, 1009)
    if roll < 0.92:
        return {"f": "lease_revoke", "id": lease}
    if roll < 0.97:
        return {"f": "lease_keepalive", "id": lease}
    return {"f": "lease_ttl", "id": lease, "keys": True}


def _random_txn(rng: random.Random, store: MutableStore, keys: Sequence[str],
                serial: int) -> dict[str, Any]:
    key, other = rng.choice(keys), rng.choice(keys)
    kv = store.get(key)
    compare: dict[str, Any]
    if rng.random() < 0.5:  # compare-and-swap on the value or the mod revision
        if rng.random() < 0.5:
            value = kv[0] if kv and rng.random() < 0.7 else f"v{rng.randint(0, serial)}"
            compare = {"key": key, "target": "value", "result": "=", "value": value}
        else:
            mod = kv[2] if kv and rng.random() < 0.7 else rng.randint(0, store.revision + 1)
            compare = {"key": key, "target": "mod", "result": "=", "value": mod}
        return {"f": "txn", "compare": [compare],
                "success": [{"f": "put", "key": key, "value": f"v{serial}"}],
                "failure": [{"f": "range", "key": key}]}
    third = rng.choice([k for k in keys if k not in (key, other)] or [key])
    compare = {"key": key, "target": rng.choice(("version", "create", "lease")),
               "result": rng.choice(COMPARE_RESULTS), "value": rng.randint(0, 3)}
    success: list[dict[str, Any]] = [{"f": "put", "key": other, "value": f"v{serial}"}]
    if third != other:
        success.append({"f": "delete", "key": third})
    failure: list[dict[str, Any]] = [{"f": "range", "key": key, "range_end": ALL_KEYS}]
    if rng.random() < 0.3:
        failure.append({"f": "txn", "compare": [{"key": other, "target": "version",
                                                 "result": ">", "value": 0}],
                        "success": [{"f": "delete", "key": other}], "failure": []})
    return {"f": "txn", "compare": [compare], "success": success, "failure": failure}


def simulate_history(rng: random.Random, *, operations: int, keys: int = 5,
                     window: float = 10.0, unknown_rate: float = 0.05,
                     revisionless_rate: float = 0.0, expiry_rate: float = 0.01,
                     initial_revision: int = EMPTY_STORE_REVISION) -> list[Operation]:
    """A linearizable etcd history: requests run one at a time on a reference
    server at increasing linearization points; each gets a call up to
    `window` before and a return up to `window` after its point. With
    `unknown_rate` an outcome is lost (half of those never took effect);
    with `revisionless_rate` an acknowledged read or put loses its revision;
    with `expiry_rate` a lease with keys expires between two requests."""
    store = MutableStore(initial_revision, track_leases=True)
    names = [f"k{i}" for i in range(keys)]
    known: set[int] = set()
    history: list[Operation] = []
    now = 0.0
    for serial in range(operations):
        now += rng.uniform(0.5, 1.5)
        assert store.leases is not None
        if rng.random() < expiry_rate and store.leases_with_keys():
            expire(store, rng.choice(store.leases_with_keys()))
        request = _random_request(rng, store, names, serial, known)
        call = now - rng.uniform(0, window)
        if rng.random() < unknown_rate:
            if rng.random() < 0.5:
                serve(store, request)
            history.append(Operation(id=serial, client=serial, input=request, call=call,
                                     return_time=UNKNOWN_RETURN, unknown=True))
            continue
        output = serve(store, request)
        if request["f"] == "lease_grant" and "id" in output:
            known.add(output["id"])
        if rng.random() < revisionless_rate and request["f"] in ("put", "range") \
                and not request.get("revision"):
            output.pop("revision", None)
        history.append(Operation(id=serial, client=serial, input=request, call=call,
                                 output=output, return_time=now + rng.uniform(0, window)))
    history.sort(key=lambda op: (op.call, op.id))
    return history


__all__ = [
    "ALL_KEYS",
    "CREATES",
    "EITHER",
    "EMPTY_STORE_REVISION",
    "HISTORICAL",
    "KV",
    "NO_LEASE",
    "OBSERVES",
    "WEAK",
    "AtRevision",
    "Change",
    "Compact",
    "Compare",
    "Delete",
    "EtcdModel",
    "EtcdState",
    "KvRequest",
    "LeaseGrant",
    "LeaseKeepAlive",
    "LeaseNotFound",
    "LeaseRevoke",
    "LeaseTimeToLive",
    "MutableStore",
    "Put",
    "Range",
    "Request",
    "SchemaError",
    "Txn",
    "View",
    "as_object",
    "describe_operation",
    "entry",
    "execute",
    "expire",
    "in_range",
    "may_write",
    "parse_request",
    "put_keys",
    "request_ranges",
    "response_mismatch",
    "revision_role",
    "serve",
    "simulate_history",
    "to_json",
    "txn_writes",
]
