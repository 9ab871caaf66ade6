"""The watchable store: etcd v3 watch semantics over an `MvccStore`, sans-IO.

Theory of operation
-------------------
Every active watcher is in exactly one of two groups (etcd's design):

* **synced**: it has been given every event it is owed up to the store's
  current revision. It is indexed by key (single-key watchers) or kept in a
  list (range watchers), and `on_write`, which the store calls once per write
  transaction, queues the transaction's matching events for it as ONE
  response, so a revision is never split. With no synced watcher `on_write`
  returns at once; events are only built for changes somebody watches, and
  filtered-out changes are dropped by their tombstone bit before any read.
* **unsynced**: it is behind and reads history instead. `next_revision` is
  the first revision whose events it has not been given. `poll` and
  `poll_watcher` run a bounded catch-up: at most
  `watcher_catchup_batch_events` history events scanned and at most the free
  room of its buffer queued per call, always whole revisions. Once it has
  reached the current revision it rejoins the synced group.

A watcher's queue holds responses not yet handed to the driver; the events in
it are bounded by `watcher_buffer_events` (a single revision larger than the
buffer travels alone in an otherwise empty queue). A synced watcher whose
next revision does not fit becomes unsynced at that revision and catches up
from history later: no event is ever dropped or given twice. If history it
still needs has been compacted (its next revision is at or below the
compaction revision), it gets a `canceled` response carrying
`compact_revision` and is removed, as etcd does. A revision equal to the
compaction revision counts as compacted: compaction drops its tombstones, so
its events can no longer be replayed whole.

Watch ids come from a counter (skipping ids in use) or from the request. A
canceled watcher leaves both groups at once but keeps its id and its slot
under `max_watchers` until its last response (the `canceled` one) is polled.

Progress: a progress notification (no events, header revision = current) is
queued only for a watcher that is synced with an empty queue, so it can never
run ahead of the events handed out. `request_progress` marks watchers and
serves the mark as soon as the watcher qualifies; `tick_progress`, called by
the driver on its own schedule (no clocks here), notifies the idle synced
`progress_notify` watchers. Iteration over watchers always goes by sorted id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chainfire_core.config import StateMachineConfig
from chainfire_core.errors import Compacted, TooManyWatchers, WatchNotFound
from chainfire_core.mvcc.messages import Event
from chainfire_core.mvcc.revision import TOMBSTONE_BIT
from chainfire_core.mvcc.store import MvccStore
from chainfire_core.mvcc.watch_messages import (
    WatchCreateRequest,
    WatchFilter,
    WatchIdInUse,
    WatchResponse,
)
from chainfire_core.mvcc.watcher import EventCache, State, Watcher, check_queue, read_history
from chainfire_core.types import Revision, WatchId

_COMPACTED_REASON = str(Compacted(0, 0))


class WatchableStore:
    """Watchers over one `MvccStore`; installs itself as the store's observer."""

    def __init__(self, store: MvccStore, config: StateMachineConfig, *,
                 catchup_loss: bool = False) -> None:
        """`catchup_loss` is the planted bug watch_catchup_loss (simulation
        only; see `_catch_up`)."""
        assert store.observer is None, "the store already has an observer"
        self._store = store
        self._config = config
        self._catchup_loss = catchup_loss
        self._watchers: dict[WatchId, Watcher] = {}
        self._by_key: dict[bytes, dict[WatchId, Watcher]] = {}
        self._by_range: dict[WatchId, Watcher] = {}
        self._unsynced: dict[WatchId, Watcher] = {}
        self._pending: dict[WatchId, Watcher] = {}  # watchers with queued responses
        self._notify: dict[WatchId, Watcher] = {}  # progress_notify watchers
        self._marked: dict[WatchId, Watcher] = {}  # progress requested, not yet served
        self._next_id = 1
        self._seen_revision = int(store.current_revision)
        store.observer = self

    # -- queries ---------------------------------------------------------------

    @property
    def watcher_count(self) -> int:
        """Active watchers (canceled ones awaiting their last poll excluded)."""
        return len(self._watchers) - sum(
            1 for w in self._watchers.values() if w.state is State.CLOSING
        )

    def is_synced(self, watch_id: WatchId) -> bool:
        return self._get(watch_id).state is State.SYNCED

    def next_revision(self, watch_id: WatchId) -> Revision:
        """The first revision whose events the watcher has not been given."""
        w = self._get(watch_id)
        if w.state is State.SYNCED:
            return Revision(max(w.next_revision, self._store.current_revision + 1))
        return Revision(w.next_revision)

    def has_pending(self) -> bool:
        """Whether `poll` has something to do (responses or catch-up)."""
        return bool(self._pending or self._unsynced)

    def _get(self, watch_id: WatchId) -> Watcher:
        w = self._watchers.get(watch_id)
        if w is None:
            raise WatchNotFound(watch_id)
        return w

    # -- create and cancel -------------------------------------------------------

    def watch(self, request: WatchCreateRequest) -> WatchId:
        watch_id = self._claim_id(request.watch_id)
        current = self._store.current_revision
        start = request.start_revision or current + 1
        w = Watcher(
            watch_id=watch_id, key=request.key, range_end=request.range_end,
            no_put=WatchFilter.NOPUT in request.filters,
            no_delete=WatchFilter.NODELETE in request.filters,
            prev_kv=request.prev_kv, progress_notify=request.progress_notify,
            next_revision=start, state=State.UNSYNCED,
        )
        self._watchers[watch_id] = w
        self._push(w, WatchResponse(watch_id=watch_id, revision=current, created=True))
        if start <= current:
            self._unsynced[watch_id] = w
        else:
            self._add_synced(w)
        if request.progress_notify:
            self._notify[watch_id] = w
        if start <= self._store.compact_revision:
            self._close(w, self._compacted_response(w))
        return watch_id

    def _claim_id(self, requested: int) -> WatchId:
        if len(self._watchers) >= self._config.max_watchers:
            raise TooManyWatchers(self._config.max_watchers)
        if requested:
            if requested in self._watchers:
                raise WatchIdInUse(requested)
            return WatchId(requested)
        for _ in range(len(self._watchers) + 1):
            if self._next_id not in self._watchers:
                break
            self._next_id += 1
        watch_id = WatchId(self._next_id)
        assert watch_id not in self._watchers
        self._next_id += 1
        return watch_id

    def cancel(self, watch_id: WatchId) -> None:
        """Stop the watcher; a `canceled` response follows what it already has queued."""
        w = self._watchers.get(watch_id)
        if w is None or w.state is State.CLOSING:
            raise WatchNotFound(watch_id)
        current = self._store.current_revision
        self._close(w, WatchResponse(watch_id=watch_id, revision=current, canceled=True))

    def _compacted_response(self, w: Watcher) -> WatchResponse:
        return WatchResponse(
            watch_id=w.watch_id, revision=self._store.current_revision, canceled=True,
            compact_revision=self._store.compact_revision, cancel_reason=_COMPACTED_REASON,
        )

    def _close(self, w: Watcher, last: WatchResponse) -> None:
        self._detach(w)
        self._notify.pop(w.watch_id, None)
        self._marked.pop(w.watch_id, None)
        w.state = State.CLOSING
        self._push(w, last)

    # -- group membership --------------------------------------------------------

    def _add_synced(self, w: Watcher) -> None:
        w.state = State.SYNCED
        if w.range_end:
            self._by_range[w.watch_id] = w
        else:
            self._by_key.setdefault(w.key, {})[w.watch_id] = w

    def _detach(self, w: Watcher) -> None:
        if w.state is State.UNSYNCED:
            del self._unsynced[w.watch_id]
        elif w.state is State.SYNCED and w.range_end:
            del self._by_range[w.watch_id]
        elif w.state is State.SYNCED:
            same_key = self._by_key[w.key]
            del same_key[w.watch_id]
            if not same_key:
                del self._by_key[w.key]

    def _fall_behind(self, w: Watcher, revision: int) -> None:
        """A synced watcher whose `revision` does not fit its buffer."""
        self._detach(w)
        w.state = State.UNSYNCED
        w.next_revision = revision
        self._unsynced[w.watch_id] = w

    # -- queues ------------------------------------------------------------------

    def _push(self, w: Watcher, response: WatchResponse) -> None:
        w.queue.append(response)
        w.queued_events += len(response.events)
        if response.events:
            w.active_since_tick = True
        self._pending[w.watch_id] = w

    def _pop(self, w: Watcher) -> WatchResponse:
        response = w.queue.popleft()
        w.queued_events -= len(response.events)
        if not w.queue:
            del self._pending[w.watch_id]
            if w.state is State.CLOSING:
                del self._watchers[w.watch_id]
        return response

    # -- live events -------------------------------------------------------------

    def on_write(self, revision: Revision, changes: Sequence[tuple[bytes, int]]) -> None:
        """The store's observer hook: one write transaction at `revision`."""
        assert revision == self._seen_revision + 1, (revision, self._seen_revision)
        self._seen_revision = revision
        if not self._by_key and not self._by_range:
            return
        matched = self._match(revision, changes)
        if not matched:
            return
        cache = EventCache(self._store, changes)
        for watch_id in sorted(matched):
            w = self._watchers[watch_id]
            self._deliver(w, revision, [cache.get(i, w.prev_kv) for i in matched[watch_id]])

    def _match(
        self, revision: int, changes: Sequence[tuple[bytes, int]]
    ) -> dict[WatchId, list[int]]:
        """Indexes of the changes each synced watcher wants."""
        matched: dict[WatchId, list[int]] = {}
        no_watchers: dict[WatchId, Watcher] = {}
        for index, (key, packed) in enumerate(changes):
            tombstone = bool(packed & TOMBSTONE_BIT)
            for watch_id, w in self._by_key.get(key, no_watchers).items():
                if w.next_revision <= revision and w.wants_kind(tombstone):
                    matched.setdefault(watch_id, []).append(index)
            for watch_id, w in self._by_range.items():
                if w.next_revision <= revision and w.covers(key) and w.wants_kind(tombstone):
                    matched.setdefault(watch_id, []).append(index)
        return matched

    def _deliver(self, w: Watcher, revision: Revision, events: list[Event]) -> None:
        if w.queued_events + len(events) > self._config.watcher_buffer_events:
            self._fall_behind(w, revision)
            return
        self._push(w, WatchResponse(watch_id=w.watch_id, revision=revision, events=tuple(events)))
        w.next_revision = revision + 1

    # -- catch-up from history ---------------------------------------------------

    def _catch_up(self, w: Watcher) -> None:
        assert w.state is State.UNSYNCED
        if w.next_revision <= self._store.compact_revision:
            self._close(w, self._compacted_response(w))
            return
        room = self._config.watcher_buffer_events - w.queued_events
        if room <= 0:
            return
        end = self._store.current_revision
        if self._catchup_loss:
            # planted bug: watch_catchup_loss. The catch-up leaves the current
            # revision to the synced group (an exclusive end), but the synced
            # group only sees later writes: that revision's events are lost.
            end = Revision(end - 1)
        events, through = read_history(
            self._store, w, room_events=room,
            batch_events=self._config.watcher_catchup_batch_events, end_revision=end,
        )
        if events:
            self._push(w, WatchResponse(watch_id=w.watch_id, revision=Revision(through),
                                        events=events))
        w.next_revision = through + 1
        if w.next_revision > end:
            del self._unsynced[w.watch_id]
            self._add_synced(w)

    # -- handing out ---------------------------------------------------------------

    def poll(self, max_responses: int) -> tuple[WatchResponse, ...]:
        """Catch up the unsynced watchers (bounded), then hand out at most
        `max_responses` queued responses, one per watcher per round, by id."""
        assert max_responses > 0, max_responses
        for watch_id in sorted(self._unsynced):
            self._catch_up(self._unsynced[watch_id])
        self._serve_progress_marks()
        out: list[WatchResponse] = []
        while self._pending and len(out) < max_responses:
            for watch_id in sorted(self._pending)[: max_responses - len(out)]:
                out.append(self._pop(self._pending[watch_id]))
        self._serve_progress_marks()  # for watchers whose queue just emptied
        return tuple(out)

    def poll_watcher(self, watch_id: WatchId, max_events: int) -> tuple[WatchResponse, ...]:
        """One watcher's responses, whole, up to `max_events` events (but
        always the first response with events, however large)."""
        assert max_events > 0, max_events
        w = self._get(watch_id)
        if w.state is State.UNSYNCED:
            self._catch_up(w)
        self._maybe_progress(w)
        out: list[WatchResponse] = []
        events = 0
        while w.queue and (not events or events + len(w.queue[0].events) <= max_events):
            response = self._pop(w)
            out.append(response)
            events += len(response.events)
        self._maybe_progress(w)
        return tuple(out)

    # -- progress ----------------------------------------------------------------

    def request_progress(self, watch_ids: Iterable[WatchId] | None = None) -> None:
        """etcd's progress request, for the given watchers (default: all
        active). Served now if a watcher is synced with nothing queued, else
        as soon as it is."""
        ids = sorted(self._watchers if watch_ids is None else watch_ids)
        for watch_id in ids:
            w = self._get(watch_id)
            if w.state is not State.CLOSING:
                self._marked[watch_id] = w
                self._maybe_progress(w)

    def tick_progress(self) -> None:
        """The driver's periodic progress tick: notify every idle synced
        `progress_notify` watcher (no events queued since the last tick)."""
        for watch_id in sorted(self._notify):
            w = self._notify[watch_id]
            if not w.active_since_tick and self._progress_allowed(w):
                self._push(w, self._progress_response(w))
            w.active_since_tick = False

    def _serve_progress_marks(self) -> None:
        for watch_id in sorted(self._marked):
            self._maybe_progress(self._marked[watch_id])

    def _maybe_progress(self, w: Watcher) -> None:
        if w.watch_id in self._marked and self._progress_allowed(w):
            del self._marked[w.watch_id]
            self._push(w, self._progress_response(w))

    def _progress_allowed(self, w: Watcher) -> bool:
        return w.state is State.SYNCED and not w.queue

    def _progress_response(self, w: Watcher) -> WatchResponse:
        return WatchResponse(watch_id=w.watch_id, revision=self._store.current_revision)

    # -- restore and invariants --------------------------------------------------

    def on_restore(self) -> None:
        """The store was reloaded (snapshot install): synced watchers missed
        the revisions in between, so they catch up from history."""
        current = self._store.current_revision
        for watch_id in sorted(self._watchers):
            w = self._watchers[watch_id]
            if w.state is State.SYNCED:
                w.next_revision = max(w.next_revision, self._seen_revision + 1)
                if w.next_revision <= current:
                    self._fall_behind(w, w.next_revision)
        self._seen_revision = current

    def check_invariants(self) -> None:
        current = self._store.current_revision
        assert self._seen_revision == current, (self._seen_revision, current)
        assert len(self._watchers) <= self._config.max_watchers
        synced = set(self._by_range)
        for key, same_key in self._by_key.items():
            assert same_key, key
            assert all(w.key == key and not w.range_end for w in same_key.values())
            assert synced.isdisjoint(same_key)
            synced.update(same_key)
        assert synced.isdisjoint(self._unsynced)
        for watch_id in sorted(self._watchers):
            w = self._watchers[watch_id]
            assert w.watch_id == watch_id > 0
            assert (watch_id in synced) == (w.state is State.SYNCED)
            assert (watch_id in self._unsynced) == (w.state is State.UNSYNCED)
            assert (watch_id in self._pending) == bool(w.queue)
            live = w.state is not State.CLOSING
            assert (watch_id in self._notify) == (w.progress_notify and live)
            if w.state is State.UNSYNCED:
                assert w.next_revision <= current, (watch_id, w.next_revision, current)
            check_queue(w, buffer_events=self._config.watcher_buffer_events, current=current)
        assert set(self._pending) <= set(self._watchers)
        assert all(w.state is not State.CLOSING for w in self._marked.values())
        assert set(self._marked) <= set(self._watchers)


__all__ = ["WatchableStore"]
