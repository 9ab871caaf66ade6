"""Watch requests and responses (etcd's `WatchCreateRequest` / `WatchResponse`).

Frozen, slotted, keyword-only dataclasses like every other message: a request
checks its own shape on creation, so an invalid one cannot exist. Range
conventions are etcd's (see messages.py): `range_end == b""` is the single
key, `b"\\0"` is every key >= `key`, otherwise `[key, range_end)`.

A response's header `revision` is how far the watcher's stream has got: every
event the watcher is owed with a revision at or below it has been put into
this response or an earlier one (etcd's header revision, made exact). Kinds of
response: `created`; events (one or more whole revisions); a progress
notification (no events, not created, not canceled); `canceled`, with
`compact_revision` set when history the watcher needed was compacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from chainfire_core.errors import EmptyKey, InvalidRequest
from chainfire_core.mvcc.messages import Event
from chainfire_core.types import Revision, WatchId

_NOT_COMPACTED = Revision(0)


class WatchFilter(IntEnum):
    """Event types a watcher asks not to receive (etcd's numbers)."""

    NOPUT = 0
    NODELETE = 1


class WatchIdInUse(InvalidRequest):
    """A create request names a watch id that is already taken."""

    def __init__(self, watch_id: int) -> None:
        super().__init__("mvcc: duplicate watch ID provided on the WatchStream")
        self.watch_id = watch_id


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchCreateRequest:
    """Watch `key` (or a range) from `start_revision` (0: future events only).
    `watch_id` 0 lets the store allocate one."""

    key: bytes
    range_end: bytes = b""
    start_revision: int = 0
    progress_notify: bool = False
    filters: tuple[WatchFilter, ...] = ()
    prev_kv: bool = False
    watch_id: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or not isinstance(self.range_end, bytes):
            raise InvalidRequest("key and range_end must be bytes")
        if not self.key:
            raise EmptyKey()
        if self.start_revision < 0:
            raise InvalidRequest(f"start_revision must be >= 0, got {self.start_revision}")
        if self.watch_id < 0:
            raise InvalidRequest(f"watch_id must be >= 0, got {self.watch_id}")
        if not isinstance(self.filters, tuple):
            raise InvalidRequest("filters must be a tuple")
        for kind in self.filters:
            if not isinstance(kind, WatchFilter):
                raise InvalidRequest(f"unknown watch filter {kind!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchResponse:
    watch_id: WatchId
    revision: Revision
    events: tuple[Event, ...] = ()
    created: bool = False
    canceled: bool = False
    compact_revision: Revision = _NOT_COMPACTED
    cancel_reason: str = ""

    def __post_init__(self) -> None:
        assert not (self.events and (self.created or self.canceled)), self
        assert not self.compact_revision or self.canceled, self
        last = 0
        for event in self.events:
            assert last <= event.kv.mod_revision <= self.revision, (event, self.revision)
            last = event.kv.mod_revision

    @property
    def is_progress_notify(self) -> bool:
        """etcd's IsProgressNotify: nothing but a header revision."""
        return not (self.events or self.created or self.canceled)


__all__ = ["WatchCreateRequest", "WatchFilter", "WatchIdInUse", "WatchResponse"]
