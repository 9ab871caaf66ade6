"""The state machine's durable progress: applied index, lease records, members.

Theory of operation
-------------------
A durable backend can stand for the state machine on its own only if it
also holds what the state machine keeps outside its buckets (etcd's
consistent index and lease bucket). These records sit in two buckets the
backend quota does not measure (the state machine writes them past its
`SizedBackend`):

- `sm`/`applied`: the index and term of the last applied entry, written by
  every apply, so in the same backend transaction as the data it wrote;
- `sm`/`lease_next_id` and `lease`/<id>: the lease id counter and each
  lease's granted and checkpointed TTL, written as grants, revokes and
  checkpoints apply (keys are attached from the KV data on load);
- `sm`/`members`: the node's member table, opaque bytes the node writes.

`load` reads them back (CorruptSnapshot when they do not hold together);
`sync_after_restore` makes them match a restored snapshot while writing
only differences (an absent record stands for its default), so a restored
backend equals the donor's byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from chainfire_core.errors import CorruptSnapshot
from chainfire_core.lease.lessor import LeaseRecord, Lessor
from chainfire_core.storage import BatchDelete, BatchOp, BatchPut, StorageBackend
from chainfire_core.types import LeaseId

STATE_BUCKET = "sm"
LEASE_BUCKET = "lease"
APPLIED_KEY = b"applied"
LEASE_NEXT_ID_KEY = b"lease_next_id"
MEMBERS_KEY = b"members"
APPLIED = struct.Struct(">QQ")  # applied index, its term
_LEASE_ID = struct.Struct(">q")
_LEASE_VALUE = struct.Struct(">qq")  # granted ttl, checkpointed remaining ttl


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """What `load` found (`leases` None: no lease records were ever written)."""

    applied_index: int
    applied_term: int
    leases: tuple[LeaseRecord, ...] | None
    lease_next_id: int


def save_applied(durable: StorageBackend, index: int, term: int) -> None:
    durable.put(STATE_BUCKET, APPLIED_KEY, APPLIED.pack(index, term))


def save_leases(durable: StorageBackend, lessor: Lessor, changed: tuple[LeaseId, ...],
                revoked: LeaseId | None = None) -> None:
    """Write the records of the `changed` leases (and the id counter), or
    drop the `revoked` one."""
    if revoked is not None:
        durable.delete(LEASE_BUCKET, _LEASE_ID.pack(revoked))
        return
    durable.put(STATE_BUCKET, LEASE_NEXT_ID_KEY, _LEASE_ID.pack(lessor.next_id))
    for lease_id in changed:
        found = lessor.lookup(lease_id)
        if found is not None:
            durable.put(LEASE_BUCKET, _LEASE_ID.pack(lease_id),
                        _LEASE_VALUE.pack(found.ttl_s, found.remaining_ttl_s))


def sync_after_restore(durable: StorageBackend, applied_index: int, lessor: Lessor) -> int:
    """Make the records match a restored state; the applied entry's term if
    the donor's record knew it, else 0."""
    term = 0
    raw = durable.get(STATE_BUCKET, APPLIED_KEY)
    if raw is not None and len(raw) == APPLIED.size and APPLIED.unpack(raw)[0] == applied_index:
        term = APPLIED.unpack(raw)[1]
    elif raw is not None or applied_index:
        save_applied(durable, applied_index, 0)
    next_id = _LEASE_ID.pack(lessor.next_id)
    raw_next = durable.get(STATE_BUCKET, LEASE_NEXT_ID_KEY)
    if raw_next != next_id and (raw_next is not None or lessor.next_id != 1):
        durable.put(STATE_BUCKET, LEASE_NEXT_ID_KEY, next_id)
    wanted = {_LEASE_ID.pack(r.id): _LEASE_VALUE.pack(r.ttl_s, r.remaining_ttl_s)
              for r in lessor.to_records()}
    held = dict(durable.range(LEASE_BUCKET, b""))
    ops: list[BatchOp] = [BatchDelete(bucket=LEASE_BUCKET, key=key)
                          for key in sorted(held.keys() - wanted.keys())]
    ops += [BatchPut(bucket=LEASE_BUCKET, key=key, value=value)
            for key, value in sorted(wanted.items()) if held.get(key) != value]
    if ops:
        durable.write_batch(ops)
    return term


def load(durable: StorageBackend) -> Progress:
    """The records in `durable` (defaults where absent)."""
    applied_index = applied_term = 0
    raw = durable.get(STATE_BUCKET, APPLIED_KEY)
    if raw is not None:
        if len(raw) != APPLIED.size:
            raise CorruptSnapshot("backend: malformed applied index record")
        applied_index, applied_term = APPLIED.unpack(raw)
    raw_next = durable.get(STATE_BUCKET, LEASE_NEXT_ID_KEY)
    if raw_next is None:
        return Progress(applied_index=applied_index, applied_term=applied_term, leases=None,
                        lease_next_id=1)
    if len(raw_next) != _LEASE_ID.size:
        raise CorruptSnapshot("backend: malformed lease id counter")
    records = []
    for key, value in durable.range(LEASE_BUCKET, b""):
        if len(key) != _LEASE_ID.size or len(value) != _LEASE_VALUE.size:
            raise CorruptSnapshot(f"backend: malformed lease record {key!r}")
        ttl_s, remaining = _LEASE_VALUE.unpack(value)
        records.append(LeaseRecord(id=LeaseId(_LEASE_ID.unpack(key)[0]), ttl_s=ttl_s,
                                   remaining_ttl_s=remaining))
    return Progress(applied_index=applied_index, applied_term=applied_term,
                    leases=tuple(records), lease_next_id=_LEASE_ID.unpack(raw_next)[0])


__all__ = ["APPLIED", "APPLIED_KEY", "LEASE_BUCKET", "MEMBERS_KEY", "STATE_BUCKET", "Progress",
           "load", "save_applied", "save_leases", "sync_after_restore"]
