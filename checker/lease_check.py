"""Lease timing checks: keys attached to a lease live as long as promised,
and no longer than the TTL plus a bound.

The models treat a lease expiry as something that may happen at any moment;
this module checks when. Times are the operations' call and return times,
in units of `time_unit_ms` milliseconds (the simulator records simulated
milliseconds: 1.0). TTLs are in seconds, as in the schema (etcd_model.py).

Rules
-----
A lease's *renewals* are its acknowledged grant and every acknowledged
keepalive that reported a TTL > 0. A renewal R was processed at some instant
in [call_R, return_R] while the lease was alive, and from then on the lease
lives at least its TTL by the leader's clock.

1. No early expiry ("early_expiry"). Let P be an acknowledged put that
   attached key k to lease L, and R a later read (called after P returned; a
   linearizable range at the current revision, not truncated by a limit)
   that saw k absent. If no other operation that may have removed k could
   have taken effect between P's call and R's return (a delete or txn that
   touches k, another put of k, a revoke of L; acknowledged or of unknown
   outcome, not failed), k disappeared because L expired, at some instant
   before R returned. Every renewal of L was processed while L was alive,
   hence before that instant, so L cannot have expired before
       max over renewals (call_R + TTL_R) - clock_bound_ms.
   A read that saw k gone earlier than that is a violation. `clock_bound_ms`
   bounds how much shorter than the TTL the leader's clock can make a lease
   live (drift over the TTL plus skew between leaders).

2. Timely removal ("late_expiry"). Let D = max over renewals (return_R +
   TTL_R): after D no renewal can still be running, so the lease is due by
   D + clock_bound_ms. A read called after D + clock_bound_ms +
   revoke_bound_ms that still saw k attached to L (its entry's lease is L,
   or its mod_revision is that of an attaching put) is a violation.
   `revoke_bound_ms` covers proposing and applying the revoke, leader
   changes included (a new leader extends leases by the election timeout).
   A keepalive with unknown outcome may have been processed at any time:
   with `unknown_renewal_ms` = None the lease is skipped by this rule; a
   number says how long after its call such a keepalive can have taken
   effect (it then counts as a renewal returning then).

Only operations with known inputs are used; failed operations (an "error"
output) took no effect and are ignored.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checker.etcd_model import (
    Delete,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseRevoke,
    Put,
    Range,
    Request,
    Txn,
    as_object,
    in_range,
    parse_request,
)
from checker.history import Operation


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseViolation:
    kind: str  # "early_expiry" | "late_expiry"
    lease: int
    key: str
    operations: tuple[int, ...]
    message: str


@dataclass(frozen=True, slots=True)
class _Attach:
    op: Operation
    key: str
    lease: int
    revision: int | None


@dataclass(frozen=True, slots=True)
class _Observation:
    op: Operation
    key: str
    entry: tuple[Any, ...] | None  # None: the key was absent


def _puts(request: Request, output: Mapping[str, Any]) -> Iterator[Put]:
    """The puts an acknowledged request made (a txn: on the branch it took)."""
    match request:
        case Put():
            yield request
        case Txn():
            succeeded = output.get("succeeded")
            if succeeded is None:
                return
            responses = output.get("responses")
            for index, op in enumerate(request.success if succeeded else request.failure):
                response: Mapping[str, Any] = {}
                if isinstance(responses, list | tuple) and index < len(responses):
                    response = as_object(responses[index], "txn response")
                yield from _puts(op, response)


def _may_remove(request: Request, key: str) -> bool:
    """Whether some outcome of `request` deletes `key` or replaces its record."""
    match request:
        case Put():
            return request.key == key
        case Delete():
            return in_range(key, request.key, request.range_end)
        case Txn():
            return any(_may_remove(op, key) for op in request.success + request.failure)
    return False


class _Leases:
    def __init__(self, operations: Sequence[Operation], *, time_unit_ms: float,
                 unknown_renewal_ms: float | None) -> None:
        self.unit = time_unit_ms
        self.unknown_renewal = unknown_renewal_ms
        # lease -> (call, return, TTL seconds, operation id) of each renewal
        self.renewals: dict[int, list[tuple[float, float, float, int]]] = {}
        self.open_renewals: dict[int, list[float]] = {}  # unknown keepalives: calls
        self.attaches: list[_Attach] = []
        self.removers: list[tuple[Operation, Request]] = []
        self.revokes: dict[int, list[Operation]] = {}
        self.observations: dict[str, list[_Observation]] = {}
        self.keys: set[str] = set()
        requests = [(op, parse_request(op.input)) for op in operations]
        for op, request in requests:
            self._gather(op, request)
        self.keys = {attach.key for attach in self.attaches}
        for op, request in requests:
            self._observe(op, request)
        for found in self.observations.values():
            found.sort(key=lambda o: (o.op.return_time, o.op.id))

    def _gather(self, op: Operation, request: Request) -> None:
        output = None if op.unknown or op.output is None else as_object(op.output, "output")
        if output is not None and "error" in output:
            return
        match request:
            case LeaseGrant() if output is not None and "id" in output:
                ttl = output.get("ttl_s", request.ttl_s)
                self.renewals.setdefault(output["id"], []).append(
                    (op.call, op.return_time, ttl, op.id))
            case LeaseKeepAlive():
                if output is None:
                    self.open_renewals.setdefault(request.id, []).append(op.call)
                elif output.get("ttl_s", 0) > 0:
                    self.renewals.setdefault(request.id, []).append(
                        (op.call, op.return_time, output["ttl_s"], op.id))
            case LeaseRevoke():
                self.revokes.setdefault(request.id, []).append(op)
            case Put() | Delete() | Txn():
                self.removers.append((op, request))
                if output is not None:
                    for put in _puts(request, output):
                        if put.lease:
                            self.attaches.append(_Attach(op, put.key, put.lease,
                                                         output.get("revision")))

    def _observe(self, op: Operation, request: Request) -> None:
        if op.unknown or op.output is None or not isinstance(request, Range):
            return
        output = as_object(op.output, "output")
        if "error" in output or "kvs" not in output or request.revision or \
                request.serializable or request.count_only or request.limit:
            return
        seen = {entry[0]: tuple(entry) for entry in output["kvs"]}
        for key in self.keys:
            if in_range(key, request.key, request.range_end):
                self.observations.setdefault(key, []).append(
                    _Observation(op, key, seen.get(key)))

    def ms(self, value: float) -> float:
        return value * self.unit

    def removed_by_other(self, attach: _Attach, before: Operation) -> bool:
        """Whether something but an expiry may have removed the key between
        `attach` and the return of `before`."""
        start, end = attach.op.call, before.return_time
        for op, request in self.removers:
            if op is attach.op or op.call > end or op.return_time < start:
                continue
            if _may_remove(request, attach.key):
                return True
        return any(not (op.call > end or op.return_time < start)
                   for op in self.revokes.get(attach.lease, ()))


def check_leases(operations: Sequence[Operation], *, clock_bound_ms: float,
                 revoke_bound_ms: float | None = None, time_unit_ms: float = 1.0,
                 unknown_renewal_ms: float | None = None,
                 revoke_deadline: Callable[[float, float], float] | None = None,
                 ) -> list[LeaseViolation]:
    """Every violation of the two rules in the module docstring. Rule 2 needs
    one of: `revoke_bound_ms` (a fixed bound past the due time), or
    `revoke_deadline(renewed_ms, ttl_ms)` (when a lease renewed then, living
    that long, must be gone, in ms; for a runtime that knows when leaders
    held office)."""
    if revoke_deadline is None:
        if revoke_bound_ms is None:
            raise ValueError("check_leases needs revoke_bound_ms or revoke_deadline")
        bound_ms = revoke_bound_ms
        revoke_deadline = lambda renewed_ms, ttl_ms: renewed_ms + ttl_ms + bound_ms  # noqa: E731
    leases = _Leases(operations, time_unit_ms=time_unit_ms,
                     unknown_renewal_ms=unknown_renewal_ms)
    found: list[LeaseViolation] = []
    for attach in leases.attaches:
        found += _early(leases, attach, clock_bound_ms)
        found += _late(leases, attach, clock_bound_ms, revoke_deadline)
    return found


def _early(leases: _Leases, attach: _Attach, clock_bound_ms: float) -> list[LeaseViolation]:
    observations = leases.observations.get(attach.key, [])
    for seen in observations:
        if seen.op.call <= attach.op.return_time:
            continue
        if seen.entry is not None:
            continue
        if leases.removed_by_other(attach, seen.op):
            return []  # later reads have even more possible causes
        renewals = leases.renewals.get(attach.lease, [])
        if not renewals:
            return []
        call, _, ttl, renewal = max(renewals, key=lambda r: leases.ms(r[0]) + r[2] * 1000)
        earliest_ms = leases.ms(call) + ttl * 1000 - clock_bound_ms
        if leases.ms(seen.op.return_time) < earliest_ms:
            return [LeaseViolation(
                kind="early_expiry", lease=attach.lease, key=attach.key,
                operations=(attach.op.id, seen.op.id, renewal),
                message=f"{attach.key} (lease {attach.lease}, attached by operation "
                        f"{attach.op.id}) was gone when operation {seen.op.id} returned at "
                        f"{leases.ms(seen.op.return_time):g} ms, but the lease was renewed "
                        f"(called at {leases.ms(call):g} ms, TTL {ttl} s) and cannot expire "
                        f"before {earliest_ms:g} ms (clock bound {clock_bound_ms:g} ms)")]
        return []
    return []


def _late(leases: _Leases, attach: _Attach, clock_bound_ms: float,
          revoke_deadline: Callable[[float, float], float]) -> list[LeaseViolation]:
    renewals = leases.renewals.get(attach.lease, [])
    if not renewals:
        return []
    # The renewal that runs longest: (when it returned, its TTL in ms).
    renewed_ms, ttl_ms = max(((leases.ms(ret), ttl * 1000.0) for _, ret, ttl, _ in renewals),
                             key=lambda pair: pair[0] + pair[1])
    for call in leases.open_renewals.get(attach.lease, ()):
        if leases.unknown_renewal is None:
            return []
        ttl = max(t for _, _, t, _ in renewals)
        if leases.ms(call) + leases.unknown_renewal + ttl * 1000 > renewed_ms + ttl_ms:
            renewed_ms, ttl_ms = leases.ms(call) + leases.unknown_renewal, ttl * 1000.0
    due_ms = renewed_ms + ttl_ms
    deadline_ms = revoke_deadline(renewed_ms, ttl_ms + clock_bound_ms)
    observations = leases.observations.get(attach.key, [])
    position = bisect.bisect_left([leases.ms(o.op.return_time) for o in observations],
                                  deadline_ms)
    for seen in observations[position:]:
        entry = seen.entry
        if entry is None or leases.ms(seen.op.call) <= deadline_ms:
            continue
        attached = entry[5] == attach.lease if len(entry) > 5 else \
            attach.revision is not None and entry[2] == attach.revision
        if attached:
            return [LeaseViolation(
                kind="late_expiry", lease=attach.lease, key=attach.key,
                operations=(attach.op.id, seen.op.id),
                message=f"{attach.key} was still attached to lease {attach.lease} when "
                        f"operation {seen.op.id} was called at {leases.ms(seen.op.call):g} ms, "
                        f"after the lease was due at {due_ms:g} ms plus the clock bound "
                        f"({clock_bound_ms:g} ms): it had to be gone by {deadline_ms:g} ms")]
    return []


__all__ = ["LeaseViolation", "check_leases"]
