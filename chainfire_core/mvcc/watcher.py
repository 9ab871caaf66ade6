"""One watcher's state, and the pure pieces of the watchable store.

The watchable store (watchable.py) owns the groups and the control flow; this
module holds what concerns a single watcher: its record, which changes it
wants, reading its next whole revisions from history within limits, and the
invariants of its response queue. Internal to the mvcc package.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from itertools import groupby

from chainfire_core.mvcc.messages import ALL_KEYS, Event, EventType
from chainfire_core.mvcc.store import MvccStore
from chainfire_core.mvcc.watch_messages import WatchResponse
from chainfire_core.types import WatchId


class State(Enum):
    SYNCED = "synced"
    UNSYNCED = "unsynced"
    CLOSING = "closing"  # canceled; its last responses wait to be polled


@dataclass(slots=True, kw_only=True, eq=False)
class Watcher:
    watch_id: WatchId
    key: bytes
    range_end: bytes
    no_put: bool
    no_delete: bool
    prev_kv: bool
    progress_notify: bool
    # Unsynced: the first revision not yet queued. Synced: the first revision
    # it may receive (later than current + 1 for a future start revision).
    next_revision: int
    state: State
    queue: deque[WatchResponse] = field(default_factory=deque)
    queued_events: int = 0
    # Whether events were queued since the last progress tick.
    active_since_tick: bool = False

    def covers(self, key: bytes) -> bool:
        if not self.range_end:
            return key == self.key
        return key >= self.key and (self.range_end == ALL_KEYS or key < self.range_end)

    def wants_kind(self, tombstone: bool) -> bool:
        return not (self.no_delete if tombstone else self.no_put)

    def wants(self, event: Event) -> bool:
        return self.covers(event.kv.key) and self.wants_kind(event.type == EventType.DELETE)


class EventCache:
    """The events of one write transaction, built on first use and shared
    by every watcher that wants them."""

    def __init__(self, store: MvccStore, changes: Sequence[tuple[bytes, int]]) -> None:
        self._store = store
        self._changes = changes
        self._built: dict[tuple[int, bool], Event] = {}

    def get(self, index: int, with_prev: bool) -> Event:
        event = self._built.get((index, with_prev))
        if event is None:
            event = self._store.event_of(self._changes[index][1], with_prev=with_prev)
            self._built[(index, with_prev)] = event
        return event


def _revision_of(event: Event) -> int:
    return event.kv.mod_revision


def read_history(
    store: MvccStore, w: Watcher, *, room_events: int, batch_events: int,
    end_revision: int | None = None,
) -> tuple[tuple[Event, ...], int]:
    """The watcher's events from whole revisions starting at `next_revision`
    through `end_revision` (default: the current revision): at most
    `batch_events` history events scanned (but always one revision), at most
    `room_events` taken (unless the queue is empty and it is the first
    revision taken). Returns the events and the last revision read (one below
    `next_revision` when none was; `end` when nothing was left unread)."""
    end = store.current_revision if end_revision is None else end_revision
    history = store.events_between(w.next_revision, end)
    scanned = 0
    taken: list[Event] = []
    through = w.next_revision - 1
    for revision, group_events in groupby(history, key=_revision_of):
        group = list(group_events)
        wanted = [event for event in group if w.wants(event)]
        fits_scan = not scanned or scanned + len(group) <= batch_events
        fits_room = len(taken) + len(wanted) <= room_events or not (taken or w.queued_events)
        if not (fits_scan and fits_room):
            break
        scanned += len(group)
        taken.extend(_with_prev(store, wanted) if w.prev_kv else wanted)
        through = revision
    else:
        # All history through `end` was read: revisions without events (the
        # empty store's revision 1) count as read too.
        through = max(through, end)
    return tuple(taken), through


def _with_prev(store: MvccStore, events: Iterable[Event]) -> Iterator[Event]:
    """Add prev_kv only to the events a watcher takes (the store's rule:
    the key's value one revision earlier)."""
    for event in events:
        yield replace(event, prev_kv=store.kv_at(event.kv.key, event.kv.mod_revision - 1))


def check_queue(w: Watcher, *, buffer_events: int, current: int) -> None:
    with_events = [r for r in w.queue if r.events]
    assert w.queued_events == sum(len(r.events) for r in with_events)
    # A revision larger than the buffer travels alone.
    assert w.queued_events <= buffer_events or len(with_events) == 1, w.watch_id
    headers = [r.revision for r in with_events]
    assert headers == sorted(set(headers)), headers
    if with_events:
        assert with_events[-1].revision <= current
        assert with_events[-1].revision < w.next_revision
    canceled = [i for i, r in enumerate(w.queue) if r.canceled]
    expected = [len(w.queue) - 1] if w.state is State.CLOSING else []
    assert canceled == expected, (w.watch_id, canceled)
    assert all(r.watch_id == w.watch_id for r in w.queue)


__all__ = ["EventCache", "State", "Watcher", "check_queue", "read_history"]
