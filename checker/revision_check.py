"""Witness-based checking of etcd histories: revisions fix the order.

Theory of operation
-------------------
In an etcd history every acknowledged write carries the revision it created,
and every read the revision it saw. Revisions are one global order, so
partitioning by key is unsound for this model; but they are also witnesses
(as Elle uses version orders): they say where each operation sits, so the
checker need not search for an order. It checks that the claimed order is
possible and searches only where no witness exists.

Roles (see etcd_model.revision_role): an acknowledged operation with a
revision r either *creates* r (a put, a delete that deleted, a txn whose
branch wrote), *observes* r (a linearizable read, a delete of nothing, a
read-only txn, a lease grant, a compaction: r was current when it ran),
*either* of the two (a lease revoke: it created r if its lease had keys), or
is *weak* (a serializable read, keepalive, lease_ttl: the state at r, and r
existed by its return) or *historical* (a read at an explicit revision R:
the state at R, its header revision existed by its return).

Time. Let t_r be the instant revision r was created (t strictly increases
with r) and p_o the instant operation o took effect (call <= p_o <= return).
A creator o of r has p_o = t_r: t_r in [call_o, return_o]. An observer o of
r has t_r <= p_o < t_(r+1): this holds for some p_o exactly when t_r <=
return_o and t_(r+1) > call_o. Weak and historical reads give t_h <= return.
So every constraint is a lower or an upper bound on one t_r, and one sweep
in revision order that keeps each t_r as early as possible (a value plus a
"strictly after" flag) decides whether they can all hold: keeping t_r early
only loosens what follows. A write A that returned before write B was
called with rev(A) > rev(B), or a read that missed a write acknowledged
before it was called, shows up as a t_r whose lower bound passes its upper
bound; the explanation names the two operations that set those bounds.

State. The same sweep replays the revisions: at r the state S(r-1) is
known; the creator of r is executed on it (a txn's compares are evaluated on
S(r-1), so a wrong branch is caught) and its response checked, giving S(r);
then every observer of r, and every historical or weak read of r, is
executed on S(r) and its response compared (kvs, count, deleted, ...).

Facts. Responses also state facts about revisions, independent of any
choice: a read that returned (k, v, mod=m, create=c) says revision m put
k=v (positive evidence), that k did not change in (m, R] for the revision R
it read, that k was created at c and absent at c-1, and alive over (c, R];
a read that did not return k says k was absent at R; a txn that succeeded
says its equality compares held (k had that value, mod, create; or was
absent). The replay checks each fact at its revision.

Gaps. A revision no acknowledged operation created was created by an
operation with no witness: an unknown-outcome write, an acknowledged write
whose response carried no revision, or a lease expiry (of a lease that
holds keys). Only these are searched, revision by revision, depth first.
The facts filter the candidates: with positive evidence only the writes of
the value seen qualify (values are usually unique, so one does), a write
that would change a key a read saw unchanged, or put a key a later read
found absent with no revision in between able to delete it, is ruled out.
The rest are tried most likely first: those claiming the revision, writes
without a revision (earliest deadline), writes a txn's compare later
needs, then unknown-outcome writes called by the revision's earliest
possible time (latest first) and after it (earliest first), produced
lazily, one per kind of effect (`_shape`: the write with the values no one
ever observes blanked), then lease expiries. Two candidates of one kind with
the same effect at the gap are interchangeable but for their call time, so
only the one called earliest is tried.

Backtracking is conflict-directed (backjumping). Each failure states what
it depends on: the state of some keys from some revision on (for a key's
value, mod, lease or presence: from its last change; for its create
revision and version: from its last deletion by an acknowledged write;
the key that depends on the fewest choices is enough for a read), the
choice that set a violated time bound, the unknown-outcome writes used up
elsewhere, the writes without a revision that could have been placed. The
search resumes at the latest choice that could change any of that,
skipping the others and, at that choice, skipping the candidates that could
not either. A gap whose every candidate failed is remembered with the state
it depended on (a nogood), so returning to it no better off fails at once.
A failure that depends on no choice (a stale read of a key last written by
an acknowledged write, two writes claiming one revision, a time bound set
by witnessed operations only, a value no write has) ends the check at once
with an explanation (the operations at fault) and the longest prefix that
checked.

Reads without a revision are checked as soon as the sweep passes the
latest revision they can have seen, and placed at the end: each at the
latest revision whose state it matches and whose time allows, which adds
the weakest lower bound (t_(r+1) > call); the sweep is redone until the
placements settle. Acknowledged writes without a revision must fill a gap
before their return, or go after the last witnessed revision in order of
return.

Cost: classification, the sweep and the replay are linear in the number of
operations (times the log of the keys a range covers); the search costs
extra at ambiguous gaps and when it backtracks. With `unknown_delay` (how
long after its call an unknown-outcome write can still take effect: the
simulator knows its request timeout) old unknown-outcome writes drop out of
the candidates and the whole check stays linear; without it every unknown
write stays a candidate for every later gap (Porcupine's assumption), which
costs more in long histories with many of them. The budget (`timeout_s`,
`max_backtracks`) turns an exhausted search into Unknown. The search is
exponential in the worst case (many overlapping unknown outcomes whose
effects no read observes); benchmarks/etcd_checker.py measures it.

What is not checked here: the existence of leases (that a put named a live
lease, that a revoked lease is not used again: EtcdModel checks these),
lease timing (lease_check.py), responses inside a txn beyond what
`response_mismatch` compares, and operations that failed with an error
(they are taken not to have happened).
"""

from __future__ import annotations

import bisect
import gc
import importlib
import itertools
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checker.etcd_model import (
    ALL_KEYS,
    CREATES,
    EITHER,
    EMPTY_STORE_REVISION,
    HISTORICAL,
    KV,
    OBSERVES,
    Change,
    Compact,
    Delete,
    EtcdModel,
    LeaseRevoke,
    LeaseTimeToLive,
    MutableStore,
    Put,
    Range,
    Request,
    SchemaError,
    Txn,
    as_object,
    execute,
    in_range,
    may_write,
    parse_request,
    put_keys,
    request_ranges,
    response_mismatch,
    revision_role,
    txn_writes,
)
from checker.history import Operation
from checker.result import CheckResult, PartitionResult, Verdict

Label = int | str  # an operation id, or "expire:<lease>"
Span = tuple[str, str | None]  # [low, high) over keys; None: no upper bound
Low = tuple[float, bool, "Label | None"]  # t >= value (> if strict), set by label
High = tuple[float, "Label | None"]  # t <= value, set by label

_FACTS = {"absent": "was absent", "created": "was created", "touched": "was written",
          "value": "had that value"}
_NO_LOW: Low = (-math.inf, False, None)
_NO_HIGH: High = (math.inf, None)
_PARTITION = "etcd"


def _leased_keys(request: Request) -> list[str]:
    """Keys a request may attach to a lease."""
    match request:
        case Put() if request.lease:
            return [request.key]
        case Txn():
            return [key for op in request.success + request.failure for key in _leased_keys(op)]
    return []


def _may_delete(request: Request, key: str) -> bool:
    """Whether a request may delete `key` (a delete covering it, in any txn branch)."""
    match request:
        case Delete():
            return in_range(key, request.key, request.range_end)
        case Txn():
            return any(_may_delete(op, key) for op in request.success + request.failure)
    return False


def _compared_values(request: Request) -> list[str]:
    """The values a request's value compares test (nested txns included)."""
    match request:
        case Txn():
            found = [str(c.value) for c in request.compare if c.target == "value"]
            for op in request.success + request.failure:
                found += _compared_values(op)
            return found
    return []


def _shape(request: Request, observable: set[str | None]) -> Any:
    """What of a write's effect the history can observe: the request with the
    values no read, prev_kv, compare or hint ever mentions blanked out."""
    match request:
        case Put():
            value = request.value if request.value in observable else None
            return ("put", request.key, request.lease, value)
        case Txn():
            return ("txn", request.compare, tuple(_shape(op, observable) for op in request.success),
                    tuple(_shape(op, observable) for op in request.failure))
    return request


def _entries(request: Request, output: Mapping[str, Any]) -> list[Any]:
    """Every entry a response shows: kvs, prev_kv, prev_kvs, and those of the
    responses inside a txn (on the branch its output says it took)."""
    match request:
        case Range():
            return list(output.get("kvs", ()))
        case Put():
            return [] if output.get("prev_kv") is None else [output["prev_kv"]]
        case Delete():
            return list(output.get("prev_kvs", ()))
        case Txn():
            succeeded, responses = output.get("succeeded"), output.get("responses")
            if succeeded is None or not isinstance(responses, list | tuple):
                return []
            branch = request.success if succeeded else request.failure
            found: list[Any] = []
            for op, response in zip(branch, responses, strict=False):
                found += _entries(op, as_object(response, "txn response"))
            return found
    return []


def _uses(request: Request, uses: dict[str, bool], ranges: list[tuple[str, str, bool]]) -> None:
    """What of the state a request's response depends on: single keys (True:
    their create/version too, not just value, mod, lease and presence) and
    multi-key ranges (key, range_end, deep)."""
    def use(key: str, range_end: str, deep: bool) -> None:
        if range_end:
            ranges.append((key, range_end, deep))
        else:
            uses[key] = uses.get(key, False) or deep

    match request:
        case Put() if request.prev_kv:
            use(request.key, "", True)
        case Range():
            use(request.key, request.range_end, True)
        case Delete():
            use(request.key, request.range_end, request.prev_kv)
        case Txn():
            for compare in request.compare:
                use(compare.key, compare.range_end, compare.target in ("version", "create"))
            for op in request.success + request.failure:
                _uses(op, uses, ranges)


def _parsed(op: Operation) -> Request:
    try:
        return parse_request(op.input)
    except SchemaError as error:
        raise SchemaError(f"operation {op.id}: {error}") from error


def _sync(copy: list[Any], source: Sequence[Any], keep: int, length: int) -> None:
    """Make `copy` equal `source[:length]`, knowing they agree up to `keep`."""
    keep = min(keep, len(copy), length)
    del copy[keep:]
    copy.extend(source[keep:length])


def _keyfixed(request: Request, *, top: bool) -> bool:
    match request:
        case Delete():
            return top and not request.range_end
        case Txn():
            return all(_keyfixed(op, top=False) for op in request.success + request.failure)
    return True


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open (low, high] intervals, sorted and merged."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        elif low < high:
            merged.append((low, high))
    return merged


def _within(facts: Mapping[str, list[tuple[int, int]]], key: str, revision: int) -> bool:
    """Whether `revision` lies in one of the merged (low, high] intervals of `key`."""
    spans = facts.get(key)
    if not spans:
        return False
    position = bisect.bisect_left(spans, (revision, revision)) - 1
    return position >= 0 and spans[position][0] < revision <= spans[position][1]


def _between(keys: Sequence[str], start: str, range_end: str) -> Sequence[str]:
    low = bisect.bisect_left(keys, start)
    high = len(keys) if range_end == ALL_KEYS else bisect.bisect_left(keys, range_end)
    return keys[low:high]


def _span(key: str, range_end: str) -> Span:
    if not range_end:
        return (key, key + "\0")
    if range_end == ALL_KEYS:
        return (key, None)
    return (key, range_end)


def _later(a: Low, b: Low) -> bool:
    return a[0] > b[0] or (a[0] == b[0] and a[1] and not b[1])


def _fits(low: Low, high: float) -> bool:
    return low[0] < high or (low[0] == high and not low[1])


# -- classified operations ---------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Item:
    index: int
    op: Operation
    request: Request
    output: Mapping[str, Any] | None
    revision: int | None
    spans: tuple[Span, ...]

    @property
    def label(self) -> int:
        return self.op.id


@dataclass(slots=True, eq=False)
class _Candidate:
    label: Label
    item: _Item | None  # None: a lease expiry
    lease: int
    call: float
    ret: float
    keys: frozenset[str]  # the keys it may write
    mandatory: bool = False


@dataclass(slots=True)
class _Conflict:
    """What a failure depends on: the state of keys from some revision on
    (`keys`: key -> since), choices that picked one of `chosen`, choices that
    picked an unknown-outcome write among the first `consumed` (by call),
    choices that offered one of `offered` (acknowledged writes without a
    revision), or `everything`."""

    everything: bool = False
    keys: dict[str, int] = field(default_factory=dict)
    chosen: set[Label] = field(default_factory=set)
    consumed: int = 0
    offered: set[Label] = field(default_factory=set)

    def merge(self, other: _Conflict) -> None:
        self.everything = self.everything or other.everything
        for key, since in other.keys.items():
            self.add(key, since)
        self.chosen |= other.chosen
        self.consumed = max(self.consumed, other.consumed)
        self.offered |= other.offered

    def add(self, key: str, since: int) -> None:
        if since < self.keys.get(key, since + 1):
            self.keys[key] = since


@dataclass(slots=True, eq=False)
class _Failure:
    revision: int
    reason: str
    ops: tuple[Label, ...]
    conflict: _Conflict
    inexact: bool = False


@dataclass(slots=True, eq=False)
class _Choice:
    """The candidates for one gap: `before` and `after` listed, the
    unknown-outcome writes among the first `top` (by call) in between,
    produced lazily by `lazy` (one per kind of effect)."""

    revision: int
    mark: tuple[int, int, int, int, int]
    gap: _Conflict
    before: list[_Candidate]
    lazy: Iterator[_Candidate] | None
    top: int
    after: list[_Candidate]
    conflict: _Conflict = field(default_factory=_Conflict)
    position: int = 0
    current: _Candidate | None = None
    exhausted: bool = False
    tried: list[Label] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    effects: dict[Any, float] = field(default_factory=dict)

    def next_candidate(self) -> _Candidate | None:
        """The next alternative: `before`, then the lazy ones, then `after`."""
        found: _Candidate | None = None
        if self.position < len(self.before):
            found = self.before[self.position]
            self.position += 1
        if found is None and self.lazy is not None:
            found = next(self.lazy, None)
            if found is None:
                self.lazy = None
        if found is None:
            index = self.position - len(self.before)
            if index < len(self.after):
                found = self.after[index]
                self.position += 1
        self.current = found
        self.exhausted = found is None
        if found is not None and len(self.tried) < 5:
            self.tried.append(found.label)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class _DeadEnd:
    keys: tuple[str, ...]
    values: tuple[KV | None, ...]
    low: Low
    used: frozenset[int]
    conflict: _Conflict


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdHistoryAnalysis:
    """A check's result plus the revision sequence it reconstructed (the whole
    of it when Ok; up to the deepest point the search reached otherwise)."""

    result: CheckResult
    initial_revision: int
    last_revision: int
    changes: Mapping[int, tuple[Change, ...]]
    creators: Mapping[int, Label]


class _Budget(Exception):
    pass


# -- the checker ----------------------------------------------------------------------


class _Checker:
    def __init__(self, operations: Sequence[Operation], *, initial_revision: int,
                 deadline: float, max_backtracks: int,
                 hints: Mapping[int, Sequence[tuple[str, str | None]]] | None,
                 unknown_delay: float | None = None) -> None:
        self.operations = operations
        self.delay = math.inf if unknown_delay is None else unknown_delay
        self.base = initial_revision
        self.deadline = deadline
        self.max_backtracks = max_backtracks
        self.hints = hints or {}
        self.backtracks = 0
        self.steps = 0
        self.r_max = initial_revision
        self.unsupported: list[int] = []
        self.creators: dict[int, list[_Item]] = {}
        self.either: dict[int, list[_Item]] = {}
        self.observers: dict[int, list[_Item]] = {}
        self.checks: dict[int, list[_Item]] = {}  # weak/historical state checks at r
        self.placed: dict[int, list[int]] = {}  # linearization slots of weak/historical
        self.static_failures: list[_Failure] = []
        self.lows: dict[int, Low] = {}
        self.highs: dict[int, High] = {}
        self.evidence: dict[int, list[tuple[str, tuple[Any, ...], _Item]]] = {}
        self.unchanged: dict[str, list[tuple[int, int]]] = {}
        self.alive: dict[str, list[tuple[int, int]]] = {}
        self.created: dict[int, set[str]] = {}
        self.touched: dict[int, set[str]] = {}  # keys a revision wrote (not deleted)
        self.facts: dict[int, list[tuple[str, str, Label, str]]] = {}
        self.value_facts: list[tuple[str, str, int]] = []
        self.prefer: dict[int, set[tuple[str, str]]] = {}
        self.absent: dict[str, list[int]] = {}
        self.requests = [_parsed(op) for op in operations]
        self.universe = sorted({key for request in self.requests
                                for key, _ in put_keys(request)})
        self.optional: list[_Item] = []
        self.mandatory: list[_Item] = []
        self.floating: list[_Item] = []
        self.by_put: dict[tuple[str, str], list[_Item]] = {}
        self.reserved: set[int] = set()
        self.shapes: dict[int, Any] = {}
        self.observable: set[str | None] = set()  # values some response or compare shows
        self.ignored: list[_Item] = []
        self.leased_keys: list[str] = []
        self._classify()
        self._index_fillers()
        self._reset_search()

    def _reset_search(self) -> None:
        self.store = MutableStore(self.base)
        self.times: list[Low] = []
        self.own_lows: list[Low] = []
        self.own_highs: list[High] = []
        self.labels: list[Label] = []
        self.lin: list[int] = []
        self.lin_marks: list[int] = []
        self.used: set[int] = set()
        self.used_log: list[int] = []
        self.stack: list[_Choice] = []
        self.floating_at: dict[int, list[int]] = {}
        self.deepest: _Failure | None = None
        self.deepest_lin: list[int] = []
        self.dead_ends: dict[int, list[_DeadEnd]] = {}
        self.water = (0, 0, 0)  # how far back the search undid since the last note
        self.deepest_log: list[tuple[int, str, KV | None]] = []
        self.deepest_labels: list[Label] = []
        self.inexact = False

    # -- classification ------------------------------------------------------------

    def _classify(self) -> None:
        for index, op in enumerate(self.operations):
            request = self.requests[index]
            try:
                output = None if op.output is None else as_object(op.output, "output")
            except SchemaError as error:
                raise SchemaError(f"operation {op.id}: {error}") from error
            spans = tuple(_span(k, e) for k, e in request_ranges(request))
            item = _Item(index=index, op=op, request=request, output=output, revision=None,
                         spans=spans)
            if op.unknown:
                if may_write(request):
                    self.optional.append(item)
                else:
                    self.ignored.append(item)
                continue
            if output is None or "error" in output:
                self.ignored.append(item)
                continue
            revision = output.get("revision")
            if revision is None:
                self._classify_revisionless(item)
                continue
            if isinstance(revision, bool) or not isinstance(revision, int):
                raise SchemaError(f"operation {op.id}: revision must be an integer")
            item.revision = revision
            self._classify_witnessed(item, revision_role(request, output), revision)
            self._gather_evidence(item)

    def _classify_revisionless(self, item: _Item) -> None:
        request, output = item.request, item.output
        assert output is not None
        match request:
            case Put():
                self.mandatory.append(item)
            case Delete() | Txn():
                writes: bool | None
                if isinstance(request, Delete):
                    deleted = output.get("deleted")
                    writes = None if deleted is None else deleted > 0
                else:
                    writes = txn_writes(request, output)
                if writes is None:
                    self.unsupported.append(item.op.id)
                elif writes:
                    self.mandatory.append(item)
                else:
                    self.floating.append(item)
            case Range() if request.revision:
                self._check_at(item, request.revision, request.revision)
            case Range():
                self.floating.append(item)
            case LeaseRevoke():
                self.unsupported.append(item.op.id)
            case _:
                self.ignored.append(item)
        self._gather_evidence(item)

    def _classify_witnessed(self, item: _Item, role: str, revision: int) -> None:
        op = item.op
        if revision < self.base or (role == CREATES and revision == self.base):
            self.static_failures.append(_Failure(
                revision=self.base + 1, ops=(op.id,), conflict=_Conflict(),
                reason=f"operation {op.id} reports revision {revision}, which is not after "
                       f"the initial revision {self.base}"))
            return
        self.r_max = max(self.r_max, revision)
        if role == CREATES:
            self.creators.setdefault(revision, []).append(item)
            self._low(revision, (op.call, False, op.id))
            self._high(revision, (op.return_time, op.id))
        elif role in (OBSERVES, EITHER):
            (self.observers if role == OBSERVES else self.either).setdefault(
                revision, []).append(item)
            self._high(revision, (op.return_time, op.id))
            self._low(revision + 1, (op.call, True, op.id))
        else:
            read_at = revision
            if role == HISTORICAL:
                assert isinstance(item.request, Range)
                read_at = item.request.revision
                if read_at > revision:
                    self.static_failures.append(_Failure(
                        revision=min(read_at, revision), ops=(op.id,), conflict=_Conflict(),
                        reason=f"operation {op.id} read at revision {read_at} but its header "
                               f"says revision {revision}"))
                    return
            self._check_at(item, read_at, revision)

    def _check_at(self, item: _Item, read_at: int, header: int) -> None:
        if read_at < self.base:
            return
        self.r_max = max(self.r_max, read_at, header)
        self.checks.setdefault(read_at, []).append(item)
        self.placed.setdefault(header, []).append(item.op.id)
        self._high(header, (item.op.return_time, item.op.id))

    def _low(self, revision: int, low: Low) -> None:
        if _later(low, self.lows.get(revision, _NO_LOW)):
            self.lows[revision] = low

    def _high(self, revision: int, high: High) -> None:
        if high[0] < self.highs.get(revision, _NO_HIGH)[0]:
            self.highs[revision] = high

    def _gather_evidence(self, item: _Item) -> None:
        """Facts a response states about revisions: positive evidence (the
        change at mod_revision wrote this entry), keys unchanged or alive
        over an interval, keys created at a revision, keys absent at one."""
        request, output = item.request, item.output
        assert output is not None
        entries: list[Any] = []
        seen: int | None = None
        if isinstance(request, Range) and "kvs" in output:
            entries = list(output["kvs"])
            seen = item.revision if not request.revision else request.revision
            if seen is not None and not request.count_only and not request.limit:
                returned = {got[0] for got in entries}
                if request.range_end:
                    keys = [k for k in _between(self.universe, request.key, request.range_end)
                            if k not in returned]
                else:
                    keys = [] if request.key in returned else [request.key]
                for key in keys:
                    self._fact("absent", key, seen, item.label)
        elif isinstance(request, Put | Delete):
            entries = _entries(request, output)
            seen = None if item.revision is None else item.revision - 1
        elif isinstance(request, Txn):
            entries = _entries(request, output)
            if output.get("succeeded") is True and item.revision is not None:
                writes = txn_writes(request, output)
                if writes is not None:
                    self._compare_evidence(request, item.revision - 1 if writes
                                           else item.revision, item.label)
        for got in entries:
            if not isinstance(got, list | tuple) or len(got) < 3:
                raise SchemaError(f"operation {item.op.id}: bad entry {got!r}")
            key, mod = got[0], got[2]
            self.r_max = max(self.r_max, mod)
            self.evidence.setdefault(mod, []).append((key, tuple(got), item))
            if seen is not None:
                self.unchanged.setdefault(key, []).append((mod, seen))
            if len(got) > 3:
                self._fact("created", key, got[3], item.label)
                self.alive.setdefault(key, []).append((got[3], max(mod, seen or mod)))

    def _fact(self, kind: str, key: str, revision: int, label: Label, value: str = "") -> None:
        """Record that `key` was absent at, created at, written (touched) at, or
        had `value` at `revision`; the replay checks it there, and gap
        candidates are filtered by it."""
        if revision < self.base:
            return
        self.facts.setdefault(revision, []).append((kind, key, label, value))
        if kind == "absent":
            self.absent.setdefault(key, []).append(revision)
        elif kind == "created":
            self.created.setdefault(revision, set()).add(key)
            self._fact("absent", key, revision - 1, label)
        elif kind == "touched":
            self.touched.setdefault(revision, set()).add(key)

    def _compare_evidence(self, txn: Txn, seen: int, label: Label) -> None:
        """A txn that succeeded says its equality compares held at `seen`."""
        for compare in txn.compare:
            if compare.result != "=" or compare.range_end:
                continue
            key, value = compare.key, compare.value
            if isinstance(value, str):
                self.value_facts.append((key, value, seen))
                self._fact("value", key, seen, label, value)
                continue
            if value == 0 and compare.target in ("mod", "create", "version"):
                self._fact("absent", key, seen, label)
            elif compare.target == "mod" and value > 0:
                self.unchanged.setdefault(key, []).append((value, seen))
                self._fact("touched", key, value, label)
            elif compare.target == "create" and value > 0:
                self.alive.setdefault(key, []).append((value, seen))
                self._fact("created", key, value, label)

    def _index_fillers(self) -> None:
        leased = {key for request in self.requests for key in _leased_keys(request)}
        self.leased_keys = sorted(leased)
        self.optional.sort(key=lambda item: (item.op.call, item.op.id))
        self.optional_calls = [item.op.call for item in self.optional]
        self.mandatory.sort(key=lambda item: (item.op.return_time, item.op.id))
        self.mandatory_returns = [item.op.return_time for item in self.mandatory]
        self.placed_by = {item.index for item in self.mandatory}  # must be used
        self.floating.sort(key=lambda item: (item.op.return_time, item.op.id))
        self.floating_returns = [item.op.return_time for item in self.floating]
        for item in self.optional + self.mandatory:
            for key_value in put_keys(item.request):
                self.by_put.setdefault(key_value, []).append(item)
        seen = self.observable
        seen.update(got[1] for found in self.evidence.values() for _, got, _ in found)
        seen.update(value for hinted in self.hints.values() for _, value in hinted)
        for request in self.requests:
            seen.update(_compared_values(request))
        # writes of a value something observes are kept for last at a gap
        # with no evidence: that value's revision is probably another one
        for item in self.optional + self.mandatory:
            if any(value in seen for _, value in put_keys(item.request)):
                self.reserved.add(item.index)
        for item in self.optional:
            self.shapes[item.index] = _shape(item.request, seen)
        for facts in (self.unchanged, self.alive):
            for key, spans in facts.items():
                facts[key] = _merged(spans)
        for revisions in self.absent.values():
            revisions.sort()
        self.gaps = [r for r in range(self.base + 1, self.r_max + 1) if r not in self.creators]
        # revisions whose acknowledged creator's effect on each key is fixed by
        # its request and response alone (no delete whose reach the state decides)
        self.keyfixed = {r for r, items in self.creators.items()
                         if len(items) == 1 and _keyfixed(items[0].request, top=True)}
        self.deleters: dict[str, list[int]] = {}
        claimed = [(r, items) for r, items in self.creators.items()]
        claimed += [(r, items) for r, items in self.either.items()]
        for revision, items in claimed:
            for item in items:
                for key in self._may_delete(item.request):
                    self.deleters.setdefault(key, []).append(revision)
        for revisions in self.deleters.values():
            revisions.sort()
        # suffix minimum of the upper bounds: no revision r can come after it
        self.limit: dict[int, float] = {}
        bound = math.inf
        for revision in range(self.r_max, self.base, -1):
            bound = min(bound, self.highs.get(revision, _NO_HIGH)[0])
            self.limit[revision] = bound
        self.limit_list = [self.limit[r] for r in range(self.base + 1, self.r_max + 1)]
        # for relevance: where in call order the first unknown write of each key is
        self.optional_rank = {item.index: rank for rank, item in enumerate(self.optional)}
        self.first_write: dict[str, int] = {}
        for rank, item in enumerate(self.optional):
            for key in self._write_keys(item.request):
                self.first_write.setdefault(key, rank)
        self._preferences()

    def _preferences(self) -> None:
        """A txn that found key == value at `seen` needs a write of that value
        after the key's last acknowledged write before `seen`: if only writes
        without a witness make it, try them first at the gaps in between."""
        writes: dict[str, list[int]] = {}
        for revision, items in self.creators.items():
            for item in items:
                for key in self._write_keys(item.request):
                    writes.setdefault(key, []).append(revision)
        for revisions in writes.values():
            revisions.sort()
        for key, value, seen in self.value_facts:
            revisions = writes.get(key, [])
            position = bisect.bisect_right(revisions, seen) - 1
            low = revisions[position] if position >= 0 else self.base
            if low > self.base and (key, value) in put_keys(self.creators[low][0].request):
                continue
            first = bisect.bisect_right(self.gaps, low)
            last = bisect.bisect_right(self.gaps, seen)
            for gap in self.gaps[first:last]:
                self.prefer.setdefault(gap, set()).add((key, value))

    def _write_keys(self, request: Request) -> frozenset[str]:
        """The keys a request may write (only keys some put names can exist;
        a revoke: every key ever put with a lease)."""
        match request:
            case Put():
                return frozenset((request.key,))
            case Delete():
                if not request.range_end:
                    return frozenset((request.key,))
                return frozenset(_between(self.universe, request.key, request.range_end))
            case Txn():
                return frozenset().union(
                    *(self._write_keys(op) for op in request.success + request.failure))
            case LeaseRevoke():
                return frozenset(self.leased_keys)
        return frozenset()

    def _read_keys(self, request: Request) -> list[str]:
        """The keys a request reads or writes (ranges over the keys that can exist)."""
        found: dict[str, None] = {}
        for key, range_end in request_ranges(request):
            for name in (_between(self.universe, key, range_end) if range_end else (key,)):
                found[name] = None
        return list(found)

    def _may_delete(self, request: Request) -> list[str]:
        match request:
            case Delete():
                if not request.range_end:
                    return [request.key]
                return list(_between(self.universe, request.key, request.range_end))
            case Txn():
                return [k for op in request.success + request.failure
                        for k in self._may_delete(op)]
            case LeaseRevoke():
                return list(self.leased_keys)
        return []

    def _deletable(self, key: str, after: int, upto: int) -> bool:
        """Whether some revision in (after, upto] may delete `key`."""
        for revisions in (self.gaps, self.deleters.get(key, ())):
            position = bisect.bisect_right(revisions, after)
            if position < len(revisions) and revisions[position] <= upto:
                return True
        return False

    def _kept(self, key: str, revision: int) -> bool:
        """Whether a read says `key` did not change at `revision`."""
        return _within(self.unchanged, key, revision)

    # -- search state ------------------------------------------------------------------

    def _mark(self) -> tuple[int, int, int, int, int]:
        return (len(self.store.log), self.store.revision, len(self.times), len(self.lin),
                len(self.used_log))

    def _undo(self, mark: tuple[int, int, int, int, int]) -> None:
        log_length, revision, times, lin, used = mark
        water = self.water
        self.water = (min(water[0], log_length), min(water[1], times), min(water[2], lin))
        self.store.undo_to(log_length, revision)
        del self.times[times:], self.own_lows[times:], self.own_highs[times:]
        del self.labels[times:], self.lin_marks[times:], self.lin[lin:]
        while len(self.used_log) > used:
            self.used.discard(self.used_log.pop())

    def _chain_low(self, revision: int) -> Low:
        low = self.lows.get(revision, _NO_LOW)
        if self.times:
            previous = self.times[-1]
            chained: Low = (previous[0], True, previous[2])
            if _later(chained, low):
                low = chained
        return low

    def _tick(self) -> None:
        self.steps += 1
        if self.steps & 1023 == 0 and time.monotonic() > self.deadline:
            raise _Budget("time budget exhausted")

    # -- one revision --------------------------------------------------------------------

    def enter(self, revision: int) -> _Failure | None:
        self._tick()
        creators = self.creators.get(revision, ())
        if len(creators) > 1:
            ids = tuple(item.label for item in creators)
            return _Failure(revision=revision, ops=ids, conflict=_Conflict(),
                            reason=f"operations {', '.join(map(str, ids))} all claim to have "
                                   f"created revision {revision}")
        if creators:
            item = creators[0]
            candidate = _Candidate(label=item.label, item=item, lease=0, call=item.op.call,
                                   ret=item.op.return_time, keys=self._write_keys(item.request))
            outcome = self._try(revision, candidate, definite=True)
            assert not isinstance(outcome, _Conflict)
            return outcome
        impossible = self._unwritable(revision) or self._known_dead_end(revision)
        if impossible is not None:
            return impossible
        choice = self._choice(revision)
        self.stack.append(choice)
        return self.next_alternative(choice)

    def next_alternative(self, choice: _Choice,
                         failed: _Conflict | None = None) -> _Failure | None:
        """Try the choice's next candidate. After a failure (`failed`), skip the
        candidates that write none of the keys it depends on when the one that
        failed wrote none either: they would fail the same way."""
        same: frozenset[str] | None = None
        if failed is not None and not (failed.everything or failed.chosen or failed.consumed
                                       or failed.offered) and choice.current is not None:
            keys = frozenset(k for k, since in failed.keys.items() if choice.revision >= since)
            if not choice.current.keys & keys:
                same = keys
        while True:
            self._undo(choice.mark)
            candidate = choice.next_candidate()
            if candidate is None:
                conflict = _Conflict()
                conflict.merge(choice.conflict)
                conflict.merge(choice.gap)
                self._remember_dead_end(choice, conflict)
                return self._gap_failure(choice, conflict)
            if candidate.item is not None and candidate.item.index in self.used:
                choice.gap.chosen.add(candidate.label)
                continue
            if same is not None and not candidate.keys & same:
                continue
            outcome = self._try(choice.revision, candidate, definite=False,
                                effects=choice.effects)
            if isinstance(outcome, _Conflict):
                choice.gap.merge(outcome)
                continue
            return outcome

    def relevant(self, choice: _Choice, conflict: _Conflict) -> bool:
        """Whether another candidate at `choice` could avoid the failure."""
        if conflict.everything:
            return True
        current = choice.current
        if current is not None:
            if current.label in conflict.chosen:
                return True
            if current.item is not None and current.item.op.unknown and \
                    self.optional_rank.get(current.item.index, len(self.optional)) < \
                    conflict.consumed:
                return True
        if conflict.offered and any(c.mandatory and c.label in conflict.offered
                                    for c in choice.before):
            return True
        for key, since in conflict.keys.items():
            if choice.revision >= since and (
                    key in choice.keys or self.first_write.get(key, len(self.optional)) <
                    choice.top):
                return True
        return False

    def _remember_dead_end(self, choice: _Choice, conflict: _Conflict) -> None:
        """No candidate at this gap led anywhere. What that depended on: the
        state of `conflict.keys`, the time left (the revision's lower bound)
        and which writes without a witness were still free. Remember it (a
        nogood), so that coming back to the gap no better off fails at once."""
        if conflict.everything:
            return
        self._undo(choice.mark)
        keys = tuple(sorted(conflict.keys))
        values = tuple(self.store.get(key) for key in keys)
        low = self._chain_low(choice.revision)
        used = frozenset(self.used)
        self.dead_ends.setdefault(choice.revision, []).append(
            _DeadEnd(keys=keys, values=values, low=low, used=used, conflict=conflict))

    def _known_dead_end(self, revision: int) -> _Failure | None:
        for dead in self.dead_ends.get(revision, ()):
            if tuple(self.store.get(key) for key in dead.keys) != dead.values:
                continue
            if _later(dead.low, self._chain_low(revision)):
                continue  # it was tried with more time to spare than there is now
            # no better off: at least as few unknown-outcome writes free, the
            # same writes without a revision still to place
            if not dead.used <= self.used or any(
                    index not in dead.used for index in self.used if index in self.placed_by):
                continue
            conflict = dead.conflict
            again = _Conflict()
            again.merge(conflict)
            return _Failure(revision=revision, ops=(), conflict=again,
                            reason=f"revision {revision}: no candidate works in this state "
                                   f"(as found before)")
        return None

    def _unwritable(self, revision: int) -> _Failure | None:
        """A read saw a value written at `revision`, a gap, that no operation
        without a witness (nor one claiming the revision) can have written."""
        for key, got, reader in self.evidence.get(revision, ()):
            if self.by_put.get((key, got[1])):
                continue
            if any((key, got[1]) in put_keys(item.request)
                   for item in self.either.get(revision, ())):
                continue
            return _Failure(
                revision=revision, ops=(reader.label,), conflict=_Conflict(),
                reason=f"operation {reader.label} saw {key}={got[1]!r} written at revision "
                       f"{revision}, which no acknowledged write created, and no write "
                       f"without a witness writes that value")
        return None

    def _gap_failure(self, choice: _Choice, conflict: _Conflict) -> _Failure:
        revision = choice.revision
        ops: list[Label] = [item.label for item in self.observers.get(revision, ())]
        ops += [item.label for _, _, item in self.evidence.get(revision, ())]
        ops += [item.label for item in self.either.get(revision, ())]
        tried = ", ".join(str(label) for label in choice.tried)
        return _Failure(
            revision=revision, ops=tuple(dict.fromkeys(ops)), conflict=conflict,
            reason=f"revision {revision} was created by no acknowledged write, and no "
                   f"unknown-outcome write or lease expiry can have created it"
                   + (f" (tried {tried})" if tried else ""))

    def _choice(self, revision: int) -> _Choice:
        """The candidates for a gap, most likely first: operations claiming the
        revision; with positive evidence, the writes of the value seen; else
        writes without a revision (by deadline), hinted writes, the
        unknown-outcome writes (lazily), lease expiries."""
        gap = _Conflict()
        evidence = self.evidence.get(revision, ())
        for key, _, _ in evidence:
            gap.add(key, self.base)
        before = [self._candidate(item) for item in self.either.get(revision, ())]
        limit = self.limit.get(revision, math.inf)
        top = bisect.bisect_right(self.optional_calls, limit)
        if evidence:
            wanted = {(key, got[1]) for key, got, _ in evidence}
            pool: dict[int, _Item] = {}
            for key_value in sorted(wanted):
                for item in self.by_put.get(key_value, ()):
                    if item.op.call <= limit:
                        pool[item.index] = item
            ordered = sorted(pool.values(), key=lambda i: (i.op.unknown, -i.op.call, i.index))
            before += [self._candidate(item) for item in ordered]
            return self._new_choice(revision, gap, before=before)
        for key in self.leased_keys:  # which leases can expire: the keys they hold
            gap.add(key, self._since(key, revision - 1, deep=False))
        gap.consumed = top  # any unknown-outcome write used elsewhere could go here
        for item in self.mandatory:
            if item.op.call <= limit:
                if item.index in self.used:
                    gap.chosen.add(item.label)
                else:
                    before.append(self._candidate(item))
        hints = list(self.hints.get(revision, ())) + sorted(self.prefer.get(revision, ()))
        for key, value in hints:
            if value is not None:
                for item in self.by_put.get((key, value), ()):
                    if item.op.unknown and item.op.call <= limit and item.index not in self.used:
                        before.append(self._candidate(item))
        after: list[_Candidate] = []
        for lease in self.store.leases_with_keys():
            keys = frozenset(self.store.lease_keys(lease))
            after.append(_Candidate(label=f"expire:{lease}", item=None, lease=lease,
                                    call=-math.inf, ret=math.inf, keys=keys))
        deleted = {key for key, value in hints if value is None}
        if deleted:
            # Candidates that may delete hinted keys, those covering the most first.
            ranked: list[tuple[int, int, _Candidate]] = []
            for item in self.optional[:top]:
                if item.index in self.used:
                    continue
                request = item.request
                revoked = set(self.store.lease_keys(request.id)) \
                    if isinstance(request, LeaseRevoke) else set()
                covered = len(revoked & deleted) or sum(
                    _may_delete(request, key) for key in sorted(deleted))
                if covered:
                    ranked.append((-covered, len(ranked), self._candidate(item)))
            for candidate in after:
                if candidate.keys & deleted:
                    ranked.append((-len(candidate.keys & deleted), len(ranked), candidate))
            before += [candidate for _, _, candidate in sorted(ranked, key=lambda r: r[:2])]
            after = [c for c in after if not c.keys & deleted]
        lazy = self._unknown_writes(revision, top, {c.label for c in before})
        return self._new_choice(revision, gap, before=before, lazy=lazy, top=top, after=after)

    def _new_choice(self, revision: int, gap: _Conflict, *, before: list[_Candidate],
                    lazy: Iterator[_Candidate] | None = None, top: int = 0,
                    after: list[_Candidate] | None = None) -> _Choice:
        after = after or []
        keys: set[str] = set()
        for candidate in before + after:
            keys |= candidate.keys
        return _Choice(revision=revision, mark=self._mark(), gap=gap, before=before,
                       lazy=lazy, top=top, after=after, keys=keys)

    def _unknown_writes(self, revision: int, top: int,
                        skip: set[Label]) -> Iterator[_Candidate]:
        """The unknown-outcome writes called before the revision's latest
        possible time, one of each kind of effect: first those called by its
        earliest possible time (the latest first; their calls bind nothing, so
        any one of a kind stands for all), then those called after it (the
        earliest first, which bounds the time least); values something
        observes last. Reads `self.used` when the choice resumes, which is
        then as it was when the choice was made."""
        now = self._chain_low(revision)[0]
        split = bisect.bisect_right(self.optional_calls, now, hi=top)
        # with a bounded delay, writes called too long before cannot take effect now
        oldest = bisect.bisect_left(self.optional_calls, now - self.delay, hi=split)
        tried: set[Any] = set()
        for reserved in (False, True):
            for index in itertools.chain(range(split - 1, oldest - 1, -1), range(split, top)):
                item = self.optional[index]
                if (item.index in self.reserved) != reserved or item.index in self.used \
                        or item.label in skip:
                    continue
                shape = self.shapes[item.index]
                if shape in tried:
                    continue
                tried.add(shape)
                yield self._candidate(item)

    def _candidate(self, item: _Item) -> _Candidate:
        acknowledged = not item.op.unknown
        ret = item.op.call + self.delay if item.op.unknown else item.op.return_time
        return _Candidate(label=item.label, item=item, lease=0, call=item.op.call,
                          ret=ret, keys=self._write_keys(item.request),
                          mandatory=acknowledged and item.revision is None)

    def _effect(self, candidate: _Candidate) -> tuple[dict[str, Any] | None, list[Change]]:
        if candidate.item is None:
            return None, [(key, None) for key in self.store.lease_keys(candidate.lease)]
        expected, changes = execute(candidate.item.request, self.store)
        return expected, changes

    def _try(self, revision: int, candidate: _Candidate, *, definite: bool,
             effects: dict[Any, float] | None = None) -> _Failure | _Conflict | None:
        """Make `candidate` the creator of `revision` and check the revision.
        A candidate that cannot be the creator gives the _Conflict saying why
        (for the gap); a check that fails afterwards gives a _Failure. A
        candidate with the same observable effect as one already tried at
        this gap (`effects`) is skipped: it would fare the same."""
        self._tick()
        expected, changes = self._effect(candidate)
        item = candidate.item
        if effects is not None and (item is None or item.output is None):
            # Two operations of the same kind (`_shape`) with the same effect
            # here are interchangeable, except that the one called earlier
            # bounds the time less: if it failed, the other fails too.
            kind = candidate.lease if item is None else self.shapes.get(item.index, item.index)
            effect = (item is None, kind, tuple(
                (key, None if kv is None else
                 (kv[0] if kv[0] in self.observable else None, *kv[1:]))
                for key, kv in changes))
            call = max(candidate.call, self._chain_low(revision)[0])
            if call >= effects.get(effect, math.inf):
                return _Conflict()
            effects[effect] = min(call, effects.get(effect, math.inf))
        if not changes:
            if definite:
                return self._creator_failure(revision, candidate, "it changes nothing", expected)
            return self._depends(item, revision - 1, expected)
        if item is not None and item.output is not None and expected is not None:
            why = response_mismatch(expected, item.output,
                                    check_revision=item.revision is not None)
            if why is not None:
                if definite:
                    return self._creator_failure(revision, candidate, why, expected)
                return self._depends(item, revision - 1, expected)
        if not definite:
            rejected = self._against_evidence(revision, candidate, changes)
            if rejected is not None:
                return rejected
        low = self._chain_low(revision)
        own_low = self.lows.get(revision, _NO_LOW)
        mine: Low = (candidate.call, False, candidate.label)
        if _later(mine, low):
            low = mine
        if _later(mine, own_low):
            own_low = mine
        high = self.highs.get(revision, _NO_HIGH)
        if candidate.ret < high[0]:
            high = (candidate.ret, candidate.label)
        if not _fits(low, high[0]):
            conflict = _Conflict(chosen={x for x in (low[2], high[1]) if x is not None})
            if definite:
                return self._time_failure(revision, low, high, conflict)
            return conflict
        self.store.apply(changes, revision)
        self.times.append(low)
        self.own_lows.append(own_low)
        self.own_highs.append(high)
        self.labels.append(candidate.label)
        if item is not None:
            self.lin.append(item.label)
            if not definite:
                self.used.add(item.index)
                self.used_log.append(item.index)
        if definite:
            failure = self._definite_evidence(revision, candidate, changes)
            if failure is not None:
                return failure
        return self._after(revision, low)

    def _against_evidence(self, revision: int, candidate: _Candidate,
                          changes: Sequence[Change]) -> _Conflict | None:
        """Why the facts reads state about `revision` rule the candidate out
        (None: they do not). The rejection depends on what decided the
        candidate's effect, and for a seen entry on the key's whole generation."""
        made = dict(changes)
        for key, got, _ in self.evidence.get(revision, ()):
            kv = made.get(key)
            if kv is None or got[1:] != (kv[0], kv[2], kv[1], kv[3], kv[4])[: len(got) - 1]:
                return self._rejected(candidate, revision, key)
        for key in self.created.get(revision, ()):
            kv = made.get(key)
            if kv is None or kv[1] != revision:
                return self._rejected(candidate, revision, key)
        for key in self.touched.get(revision, ()):
            if made.get(key) is None:
                return self._rejected(candidate, revision, None)
        for key, kv in made.items():
            if self._kept(key, revision) or (kv is None and _within(self.alive, key, revision)):
                return self._rejected(candidate, revision, None)
            if kv is not None:
                absent = self.absent.get(key)
                if absent:
                    position = bisect.bisect_left(absent, revision)
                    if position < len(absent) and (
                            absent[position] == revision
                            or not self._deletable(key, revision, absent[position])):
                        return self._rejected(candidate, revision, None)
        return None

    def _rejected(self, candidate: _Candidate, revision: int, key: str | None) -> _Conflict:
        conflict = self._depends(candidate.item, revision - 1)
        if key is not None:
            conflict.add(key, self._since(key, revision - 1, deep=True))
        return conflict

    def _since(self, key: str, at: int, *, deep: bool) -> int:
        """The earliest revision whose choice can matter for `key` in the state
        at `at`: for its value, mod, lease and presence, its last change; for
        its create revision and version (`deep`), everything after its last
        deletion by an acknowledged write (choices before that cannot reach
        past it; choices after it can start the key's generation earlier)."""
        last = self.store.last_change(key, at)
        if last is None:
            return self.base
        revisions = self.store.revisions(key)
        if not deep:
            position = bisect.bisect_right(revisions, at) - 1
            while position > 0 and revisions[position] in self.creators and \
                    revisions[position] not in self.keyfixed:
                position -= 1  # a range delete: whether it hit `key` was decided earlier
            return revisions[position]
        position = bisect.bisect_right(revisions, at)
        while position > 0:
            position -= 1
            changed = revisions[position]
            if changed in self.keyfixed and self.store.get_at(key, changed) is None:
                return changed + 1
        return self.base

    def _depends(self, item: _Item | None, at: int,
                 expected: Mapping[str, Any] | None = None) -> _Conflict:
        """The choices the outcome of running `item` (None: a lease expiry) on
        the state at `at` depends on; given the `expected` response of a txn
        that took the other branch than recorded, only its compares."""
        if item is None or isinstance(item.request, LeaseRevoke | LeaseTimeToLive):
            # which keys a lease holds: the lease field of each leased key's last change
            conflict = _Conflict()
            for key in self.leased_keys:
                conflict.add(key, self._since(key, at, deep=False))
            return conflict
        uses: dict[str, bool] = {}
        ranges: list[tuple[str, str, bool]] = []
        request = item.request
        if isinstance(request, Txn) and expected is not None and item.output is not None \
                and "succeeded" in item.output:
            if item.output["succeeded"] != expected.get("succeeded"):
                request = Txn(compare=request.compare)  # the compares decided
            elif item.output["succeeded"]:
                request = Txn(compare=request.compare, success=request.success)
            else:
                request = Txn(compare=request.compare, failure=request.failure)
        _uses(request, uses, ranges)
        for start, range_end, deep in ranges:  # only keys some write names can exist
            for key in _between(self.universe, start, range_end):
                uses[key] = uses.get(key, False) or deep
        conflict = _Conflict()
        for key, deep in uses.items():
            conflict.add(key, self._since(key, at, deep=deep))
        return conflict

    def _definite_evidence(self, revision: int, candidate: _Candidate,
                           changes: Sequence[Change]) -> _Failure | None:
        """A read saw a value written at `revision` that its creator did not write."""
        made = dict(changes)
        for key, got, reader in self.evidence.get(revision, ()):
            kv = made.get(key)
            if kv is not None and kv[0] == got[1] and (len(got) < 6 or kv[4] == got[5]):
                continue
            return _Failure(
                revision=revision, ops=(reader.label, candidate.label), conflict=_Conflict(),
                reason=f"operation {reader.label} saw {key}={got[1]!r} written at revision "
                       f"{revision}, but operation {candidate.label}, which created revision "
                       f"{revision}, did not write that")
        return None

    def _creator_failure(self, revision: int, candidate: _Candidate, why: str,
                         expected: Mapping[str, Any] | None) -> _Failure:
        assert candidate.item is not None
        if expected is not None and candidate.item.output is not None:
            conflict = self._read_conflict(candidate.item, expected, revision - 1)
        else:
            conflict = self._depends(candidate.item, revision - 1, expected)
        spans = candidate.item.spans if candidate.item is not None else candidate.spans
        return _Failure(revision=revision, ops=(candidate.label, *self._writers(spans)),
                        conflict=conflict,
                        reason=f"operation {candidate.label} created revision {revision} but "
                               f"does not match the state before it: {why}")

    def _time_failure(self, revision: int, low: Low, high: High,
                      conflict: _Conflict) -> _Failure:
        return _Failure(
            revision=revision, ops=tuple(x for x in (low[2], high[1]) if x is not None),
            conflict=conflict,
            reason=f"revision {revision} cannot be placed in real time: operation {low[2]} "
                   f"(called at {low[0]}) puts it {'after' if low[1] else 'at or after'} "
                   f"{low[0]}, but operation {high[1]} returned at {high[0]} and needs it "
                   f"by then")

    def _writers(self, spans: Sequence[Span]) -> list[Label]:
        """The creators of the last change of each key in `spans` (for explanations)."""
        found: list[Label] = []
        store = self.store
        for span in spans:
            for key in _between(store.all_keys(), span[0], span[1] or ALL_KEYS):
                last = store.last_change(key, store.revision)
                if last is not None and last[0] - self.base - 1 < len(self.labels):
                    label = self.labels[last[0] - self.base - 1]
                    if label not in found:
                        found.append(label)
        return found[:4]

    def _after(self, revision: int, low: Low) -> _Failure | None:
        """The checks once `revision` exists: deadlines, observers, reads."""
        previous = self.times[-2][0] if len(self.times) > 1 else -math.inf
        start = bisect.bisect_left(self.mandatory_returns, previous)
        for item in self.mandatory[start:]:
            if item.op.return_time > low[0]:
                break
            if item.index not in self.used:  # its deadline passed with this revision
                return _Failure(
                    revision=revision, ops=(item.label,),
                    conflict=_Conflict(chosen={low[2]} if low[2] is not None else set(),
                                       offered={item.label}),
                    reason=f"operation {item.label} was acknowledged without a revision, "
                           f"but no revision it could have created is left before its return")
        failure = self._floating_deadlines(revision, low)
        if failure is not None:
            return failure
        failure = self._check_facts(revision)
        if failure is not None:
            return failure
        creator = self.labels[-1]
        for item in self.observers.get(revision, ()):
            failure = self._check_read(item, revision)
            if failure is not None:
                return failure
            self.lin.append(item.label)
        for item in self.either.get(revision, ()):
            if item.label != creator:
                failure = self._check_read(item, revision)
                if failure is not None:
                    return failure
                self.lin.append(item.label)
        for item in self.checks.get(revision, ()):
            failure = self._check_read(item, revision)
            if failure is not None:
                return failure
        self.lin.extend(self.placed.get(revision, ()))
        self.lin_marks.append(len(self.lin))
        return None

    def _check_facts(self, revision: int) -> _Failure | None:
        """The facts responses stated about `revision` hold in its state."""
        for kind, key, label, value in self.facts.get(revision, ()):
            kv = self.store.get(key)
            if kind == "absent":
                ok = kv is None
            elif kind == "value":
                ok = kv is not None and kv[0] == value
            elif kind == "created":
                ok = kv is not None and kv[1] == revision
            else:
                ok = kv is not None and kv[2] == revision
            if not ok:
                since = self._since(key, revision, deep=kind == "created")
                return _Failure(
                    revision=revision, ops=(label, *self._writers([_span(key, "")])),
                    conflict=_Conflict(keys={key: since}),
                    reason=f"operation {label} implies that {key} {_FACTS[kind]} at "
                           f"revision {revision}{'' if kind != 'value' else f' ({value!r})'}, "
                           f"but in the order the revisions give it did not")
        return None

    def _floating_deadlines(self, revision: int, low: Low) -> _Failure | None:
        """Reads without a revision that returned before `revision` can have
        been created must match some earlier revision they can have seen
        (checked here, early; they are placed for good at the end)."""
        previous = self.times[-2] if len(self.times) > 1 else _NO_LOW
        start = bisect.bisect_left(self.floating_returns, previous[0])
        for item in self.floating[start:]:
            ret = item.op.return_time
            if _fits(low, ret):
                break
            if not _fits(previous, ret):
                continue
            bottom = self.base
            if not _Floating.weak(item):
                position = bisect.bisect_left(self.limit_list, item.op.call) - 1
                bottom = self.base + 1 + position if position >= 0 else self.base
            if not any(self._matches_at(item, r) for r in range(revision - 1, bottom - 1, -1)):
                conflict = _Conflict(keys=dict.fromkeys(self._read_keys(item.request), self.base),
                                     chosen={low[2]} if low[2] is not None else set())
                return _Failure(
                    revision=revision, ops=(item.label, *self._writers(item.spans)),
                    conflict=conflict,
                    reason=f"operation {item.label} (no revision) matches the state at no "
                           f"revision it can have observed (revisions {bottom} to "
                           f"{revision - 1})")
        return None

    def _matches_at(self, item: _Item, revision: int) -> bool:
        assert item.output is not None
        expected, changes = execute(item.request, self.store.at(revision))
        return not changes and response_mismatch(
            expected, item.output, check_revision=False) is None

    def _expected_read(self, item: _Item) -> tuple[dict[str, Any] | None, list[Change]]:
        """The response `item` should have had in the current state (None: nothing
        to compare) and the changes it would have made."""
        request = item.request
        store = self.store
        match request:
            case Range():
                plain = Range(key=request.key, range_end=request.range_end,
                              limit=request.limit, count_only=request.count_only)
                return execute(plain, store)
            case Put() | Delete() | Txn() | LeaseRevoke():
                return execute(request, store)
            case LeaseTimeToLive() if request.keys:
                return {"keys": tuple(store.lease_keys(request.id))}, []
        return None, []

    def _check_read(self, item: _Item, revision: int) -> _Failure | None:
        """Check an operation that observed the state at `revision` (the current state)."""
        assert item.output is not None
        if isinstance(item.request, Compact):
            if item.request.revision <= revision:
                return None
            return _Failure(revision=revision, ops=(item.label,), conflict=_Conflict(),
                            reason=f"operation {item.label} compacted at revision "
                                   f"{item.request.revision}, after the current {revision}")
        expected, changes = self._expected_read(item)
        if changes:
            return _Failure(
                revision=revision, ops=(item.label, *self._writers(item.spans)),
                conflict=self._depends(item, revision),
                reason=f"operation {item.label} observed revision {revision} without writing, "
                       f"but in the state at revision {revision} it would have written")
        if expected is None:
            return None
        why = response_mismatch(expected, item.output, check_revision=False)
        if why is None:
            return None
        conflict = self._read_conflict(item, expected, revision)
        return _Failure(revision=revision, ops=(item.label, *self._writers(item.spans)),
                        conflict=conflict,
                        reason=f"operation {item.label} does not match the state at revision "
                               f"{revision}: {why}")

    def _read_conflict(self, item: _Item, expected: Mapping[str, Any],
                       revision: int) -> _Conflict:
        """What could make a failed response match (see `_entries_conflict`)."""
        request, output = item.request, item.output
        assert output is not None
        want: list[Any] = []
        got: list[Any] = []
        if isinstance(request, Range) and not request.limit and "kvs" in output and \
                output.get("count", len(output["kvs"])) == len(output["kvs"]):
            want, got = list(expected["kvs"]), list(output["kvs"])
        elif isinstance(request, Put) and "prev_kv" in output and "prev_kv" in expected:
            want = [] if expected["prev_kv"] is None else [expected["prev_kv"]]
            got = [] if output["prev_kv"] is None else [output["prev_kv"]]
        elif isinstance(request, Delete) and "prev_kvs" in output and \
                output.get("deleted", expected["deleted"]) == expected["deleted"]:
            want, got = list(expected.get("prev_kvs", ())), list(output["prev_kvs"])
        else:
            return self._depends(item, revision, expected)
        conflict = self._entries_conflict(want, got, revision)
        return self._depends(item, revision, expected) if conflict is None else conflict

    def _entries_conflict(self, want: Sequence[Any], got: Sequence[Any],
                          at: int) -> _Conflict | None:
        """The choices that could fix the one mismatching entry (in the state
        at `at`) that depends on the fewest of them; an empty conflict when
        some entry cannot be fixed by any choice; None if none mismatches."""
        mine_by_key = {e[0]: e for e in want}
        theirs_by_key = {e[0]: tuple(e) for e in got}
        best: tuple[int, str] | None = None
        for key in sorted(set(mine_by_key) | set(theirs_by_key)):
            mine, theirs = mine_by_key.get(key), theirs_by_key.get(key)
            if mine is not None and theirs is not None and mine[: len(theirs)] == theirs:
                continue
            if theirs is not None:
                since = theirs[2]  # the change at mod_revision must be the last one
                if since > at or self._definitely_changed(key, since, at):
                    return _Conflict()
                if mine is not None and mine[1:3] == theirs[1:3]:
                    # only create/version/lease differ: the changes since the
                    # earlier of the two generation starts
                    since = min(mine[3], theirs[3])
            else:
                since = self._last_definite(key, at) + 1
            if best is None or since > best[0]:
                best = (since, key)
        if best is None:
            return None
        return _Conflict(keys={best[1]: best[0]})

    def _definitely_changed(self, key: str, after: int, upto: int) -> bool:
        revisions = self.store.revisions(key)
        position = bisect.bisect_right(revisions, upto)
        while position > 0 and revisions[position - 1] > after:
            position -= 1
            if revisions[position] in self.keyfixed:
                return True
        return False

    def _last_definite(self, key: str, upto: int) -> int:
        revisions = self.store.revisions(key)
        position = bisect.bisect_right(revisions, upto)
        while position > 0:
            position -= 1
            if revisions[position] in self.keyfixed:
                return revisions[position]
        return self.base

    # -- the end: writes without a revision, reads without a revision ---------------------

    def finish(self) -> _Failure | None:
        revision = self.r_max
        tail = [item for item in self.mandatory if item.index not in self.used]
        for item in tail:
            revision += 1
            candidate = self._candidate(item)
            outcome = self._try(revision, candidate, definite=False)
            if outcome is not None:
                return _Failure(
                    revision=revision, ops=(item.label,), conflict=_Conflict(everything=True),
                    inexact=len(tail) > 1,
                    reason=f"operation {item.label}, acknowledged without a revision, cannot "
                           f"take effect after the last revision {self.r_max}")
        return _Floating(self).place()

    # -- driving the search --------------------------------------------------------------

    def note(self, failure: _Failure) -> None:
        """Keep the failure that got furthest, with the prefix it had checked.
        The copies are updated from where the search last undid to, so the
        cost is that of what changed since the last deepest failure."""
        self.inexact = self.inexact or failure.inexact
        if self.deepest is not None and failure.revision <= self.deepest.revision:
            return
        self.deepest = failure
        done = max(failure.revision - self.base - 1, 0)
        water_log, water_times, water_lin = self.water
        prefix_length = self.lin_marks[done - 1] if 0 < done <= len(self.lin_marks) else 0
        _sync(self.deepest_lin, self.lin, min(water_lin, prefix_length), prefix_length)
        _sync(self.deepest_labels, self.labels, min(water_times, done), min(done, len(self.labels)))
        log = self.store.log
        log_length = bisect.bisect_left(log, (failure.revision, ""))
        keep = min(water_log, log_length, len(self.deepest_log))
        del self.deepest_log[keep:]
        self.deepest_log.extend((r, k, self.store.get_at(k, r)) for r, k in log[keep:log_length])
        self.water = (len(log), len(self.times), len(self.lin))

    def backtrack(self, failure: _Failure) -> int | None:
        """Resume the search at the latest choice the failure depends on;
        the revision to go on from, or None when no choice is left."""
        self.note(failure)
        conflict = failure.conflict
        while self.stack:
            choice = self.stack[-1]
            if choice.exhausted or not self.relevant(choice, conflict):
                self.stack.pop()
                continue
            self.backtracks += 1
            if self.backtracks > self.max_backtracks:
                raise _Budget(f"more than {self.max_backtracks} backtracks")
            choice.conflict.merge(conflict)
            failure_or_none = self.next_alternative(choice, conflict)
            if failure_or_none is None:
                return choice.revision + 1
            self.note(failure_or_none)
            conflict = failure_or_none.conflict
        return None

    def run(self) -> Verdict:
        if self.static_failures:
            self.note(min(self.static_failures, key=lambda f: f.revision))
            return Verdict.ILLEGAL
        revision = self.base + 1
        while True:
            failure = self.enter(revision) if revision <= self.r_max else self.finish()
            if failure is None:
                if revision > self.r_max:
                    return Verdict.OK
                revision += 1
                continue
            resumed = self.backtrack(failure)
            if resumed is None:
                return Verdict.ILLEGAL
            revision = resumed

    def linearization(self) -> tuple[int, ...]:
        """The full order found: revisions with their observers, reads without
        a revision where they were placed, failed operations at their call,
        unused unknown-outcome writes last."""
        groups: list[list[int]] = []
        start = 0
        for end in self.lin_marks:
            groups.append(self.lin[start:end])
            start = end
        before: list[int] = list(self.floating_at.get(self.base, ()))
        for offset, group in enumerate(groups):
            group.extend(self.floating_at.get(self.base + 1 + offset, ()))
        values = [t[0] for t in self.times]
        for item in self.ignored:
            if item.op.unknown:
                continue
            position = bisect.bisect_right(values, item.op.call) - 1
            (groups[position] if position >= 0 else before).append(item.label)
        order = before + [label for group in groups for label in group]
        placed = set(order)
        order += [item.label for item in self.optional + self.ignored
                  if item.label not in placed]
        return tuple(order)


class _Floating:
    """Places the reads that carry no revision (see the module docstring)."""

    def __init__(self, checker: _Checker) -> None:
        self.c = checker
        self.extra: dict[int, Low] = {}
        self.limits: list[float] = []
        self.matches: dict[tuple[int, int], bool] = {}

    def place(self) -> _Failure | None:
        c = self.c
        if not c.floating:
            return None
        times = list(c.times)
        self.limits = [c.limit.get(c.base + 1 + offset, math.inf) for offset in range(len(times))]
        assigned: dict[int, int] = {}
        while True:
            changed = False
            for item in c.floating:
                revision = self._latest(item, times)
                if revision is None:
                    return _Failure(
                        revision=c.base + len(times) + 1, ops=(item.label,),
                        conflict=_Conflict(everything=True), inexact=c.inexact,
                        reason=f"operation {item.label} (no revision) matches the state at no "
                               f"revision it can have observed")
                if assigned.get(item.index) != revision:
                    assigned[item.index] = revision
                    changed = True
            if not changed:
                break
            self.extra = {}
            for item in c.floating:
                if not self.weak(item):
                    bound: Low = (item.op.call, True, item.label)
                    at = assigned[item.index] + 1
                    if _later(bound, self.extra.get(at, _NO_LOW)):
                        self.extra[at] = bound
            failure = self._sweep(times)
            if failure is not None:
                return failure
        c.floating_at = {}
        for item in c.floating:
            c.floating_at.setdefault(assigned[item.index], []).append(item.label)
        return None

    @staticmethod
    def weak(item: _Item) -> bool:
        return isinstance(item.request, Range) and item.request.serializable

    def _sweep(self, times: list[Low]) -> _Failure | None:
        c = self.c
        previous: Low = _NO_LOW
        for offset in range(len(times)):
            revision = c.base + 1 + offset
            low = c.own_lows[offset]
            if offset:
                chained: Low = (previous[0], True, previous[2])
                low = chained if _later(chained, low) else low
            extra = self.extra.get(revision, _NO_LOW)
            low = extra if _later(extra, low) else low
            high = c.own_highs[offset]
            if not _fits(low, high[0]):
                return _Failure(revision=revision,
                                ops=tuple(x for x in (low[2], high[1]) if x is not None),
                                conflict=_Conflict(everything=True), inexact=c.inexact,
                                reason=f"reads without a revision push revision {revision} "
                                       f"past the return of operation {high[1]}")
            times[offset] = low
            previous = low
        return None

    def _latest(self, item: _Item, times: list[Low]) -> int | None:
        """The latest revision the read can have observed and matches, if any."""
        c = self.c
        top = bisect.bisect_right(times, (item.op.return_time, False),
                                  key=lambda t: (t[0], t[1])) - 1
        bottom = -1
        if not self.weak(item):
            bottom = bisect.bisect_left(self.limits, item.op.call) - 1
        for offset in range(top, bottom - 1, -1):
            if self._matches(item, c.base + 1 + offset):
                return c.base + 1 + offset
        return None

    def _matches(self, item: _Item, revision: int) -> bool:
        key = (item.index, revision)
        found = self.matches.get(key)
        if found is None:
            view = self.c.store.at(revision)
            assert item.output is not None
            expected, changes = execute(item.request, view)
            found = not changes and response_mismatch(
                expected, item.output, check_revision=False) is None
            self.matches[key] = found
        return found


# -- public API ----------------------------------------------------------------------------


def _fallback(operations: Sequence[Operation], timeout_s: float | None, initial_revision: int,
              why: str, started: float) -> CheckResult:
    try:
        module = importlib.import_module("checker.linearizability")
    except ImportError:
        return CheckResult(verdict=Verdict.UNKNOWN, model=_PARTITION,
                           elapsed_s=time.monotonic() - started, partitions=(PartitionResult(
                               name=_PARTITION, verdict=Verdict.UNKNOWN,
                               operations=len(operations),
                               reason=f"{why}; the fallback search (checker.linearizability) "
                                      f"is not available"),))
    result: CheckResult = module.check_operations(
        operations, EtcdModel(initial_revision=initial_revision), timeout_s=timeout_s)
    return result


def analyze_etcd_history(
    operations: Sequence[Operation], *, timeout_s: float | None = None,
    initial_revision: int = EMPTY_STORE_REVISION, max_backtracks: int = 100_000,
    fallback: bool = True,
    unknown_delay: float | None = None,
    hints: Mapping[int, Sequence[tuple[str, str | None]]] | None = None,
) -> EtcdHistoryAnalysis:
    """Check an etcd history (see the module docstring) and return the result
    with the revision sequence it reconstructed. `unknown_delay`, if given,
    is how long after its call an unknown-outcome write can still take effect
    (in history time units; None: any time, as Porcupine assumes). `hints`
    (revision -> (key, value, or None for a delete)) orders the candidates at
    ambiguous gaps, e.g. from watch events; they never decide the verdict."""
    # The checker allocates many small acyclic objects; the cyclic collector
    # would scan them all again and again (a third of the time at 10^5 ops).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _analyze(operations, timeout_s=timeout_s, initial_revision=initial_revision,
                        max_backtracks=max_backtracks, fallback=fallback,
                        unknown_delay=unknown_delay, hints=hints)
    finally:
        if collecting:
            gc.enable()


def _analyze(operations: Sequence[Operation], *, timeout_s: float | None,
             initial_revision: int, max_backtracks: int, fallback: bool,
             unknown_delay: float | None,
             hints: Mapping[int, Sequence[tuple[str, str | None]]] | None,
             ) -> EtcdHistoryAnalysis:
    started = time.monotonic()
    deadline = math.inf if timeout_s is None else started + timeout_s
    checker = _Checker(operations, initial_revision=initial_revision, deadline=deadline,
                       max_backtracks=max_backtracks, hints=hints, unknown_delay=unknown_delay)
    if checker.unsupported:
        why = (f"operations {checker.unsupported[:5]} carry no revision and their effect "
               f"is ambiguous")
        result = _fallback(operations, timeout_s, initial_revision, why, started) if fallback \
            else _unknown(len(operations), why, started)
        return EtcdHistoryAnalysis(result=result, initial_revision=initial_revision,
                                   last_revision=initial_revision, changes={}, creators={})
    try:
        verdict = checker.run()
    except _Budget as budget:
        result = _unknown(len(operations), f"search budget exhausted: {budget}", started,
                          prefix=tuple(checker.deepest_lin), steps=checker.steps)
        return _analysis(result, checker, ok=False) if checker.deepest else \
            EtcdHistoryAnalysis(result=result, initial_revision=initial_revision,
                                last_revision=initial_revision, changes={}, creators={})
    elapsed = time.monotonic() - started
    if verdict == Verdict.OK:
        partition = PartitionResult(name=_PARTITION, verdict=Verdict.OK,
                                    operations=len(operations),
                                    linearization=checker.linearization(),
                                    elapsed_s=elapsed, states_explored=checker.steps)
        result = CheckResult(verdict=Verdict.OK, partitions=(partition,), elapsed_s=elapsed,
                             model=_PARTITION)
        return _analysis(result, checker, ok=True)
    failure = checker.deepest
    assert failure is not None
    if checker.inexact:
        why = "the order of writes without a revision could not be settled"
        result = _fallback(operations, timeout_s, initial_revision, why, started) if fallback \
            else _unknown(len(operations), why, started)
        return _analysis(result, checker, ok=False)
    explanation = tuple(label for label in failure.ops if isinstance(label, int))
    partition = PartitionResult(
        name=_PARTITION, verdict=Verdict.ILLEGAL, operations=len(operations),
        linearization=tuple(checker.deepest_lin), explanation=explanation, reason=failure.reason,
        elapsed_s=elapsed, states_explored=checker.steps)
    result = CheckResult(verdict=Verdict.ILLEGAL, partitions=(partition,), elapsed_s=elapsed,
                         model=_PARTITION)
    return _analysis(result, checker, ok=False)


def _unknown(count: int, why: str, started: float, *, prefix: tuple[int, ...] = (),
             steps: int = 0) -> CheckResult:
    elapsed = time.monotonic() - started
    partition = PartitionResult(name=_PARTITION, verdict=Verdict.UNKNOWN, operations=count,
                                linearization=prefix, reason=why, elapsed_s=elapsed,
                                states_explored=steps)
    return CheckResult(verdict=Verdict.UNKNOWN, partitions=(partition,), elapsed_s=elapsed,
                       model=_PARTITION)


def _analysis(result: CheckResult, checker: _Checker, *, ok: bool) -> EtcdHistoryAnalysis:
    changes: dict[int, list[Change]] = {}
    if ok:
        log = [(r, k, checker.store.get_at(k, r)) for r, k in checker.store.log]
        labels = checker.labels
    else:
        log, labels = checker.deepest_log, checker.deepest_labels
    for revision, key, kv in log:
        changes.setdefault(revision, []).append((key, kv))
    creators = {checker.base + 1 + offset: label for offset, label in enumerate(labels)}
    last = checker.base + len(labels)
    return EtcdHistoryAnalysis(result=result, initial_revision=checker.base, last_revision=last,
                               changes={r: tuple(c) for r, c in changes.items()},
                               creators=creators)


def check_etcd_history(operations: Sequence[Operation], *, timeout_s: float | None = None,
                       initial_revision: int = EMPTY_STORE_REVISION,
                       max_backtracks: int = 100_000,
                       fallback: bool = True, unknown_delay: float | None = None) -> CheckResult:
    """Ok, Illegal (with the operations at fault and the longest consistent
    prefix) or Unknown for an etcd history; see the module docstring and
    `analyze_etcd_history`. `fallback` hands histories the witnesses cannot
    decide (revision-less writes whose effect is ambiguous) to
    checker.linearizability's search."""
    return analyze_etcd_history(operations, timeout_s=timeout_s,
                                initial_revision=initial_revision,
                                max_backtracks=max_backtracks, fallback=fallback,
                                unknown_delay=unknown_delay).result


__all__ = ["EtcdHistoryAnalysis", "Label", "analyze_etcd_history", "check_etcd_history"]
