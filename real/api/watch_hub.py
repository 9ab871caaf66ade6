"""`WatchHub`: watch sessions over a node's `WatchableStore`, on one event loop.

Theory of operation
-------------------
The core's watchable store queues responses per watcher and hands them out
when polled. The hub is the one poller: the driver must not call
`WatchableStore.poll` itself once a hub exists, or it would steal the
sessions' responses. Each `HubSession` remembers the node-wide ids of the
watchers it created. `responses()` polls exactly those watchers
(`poll_watcher`, at most `max_events_per_poll` events each, whole
revisions) and, if nothing is there, sleeps on the session's wake-up event
until the driver calls `notify()` (after every advance and tick: new
events, progress notifications) or the session itself queued something
(create, cancel, progress request). The event is cleared before polling,
so a notification that lands between the poll and the wait is not lost.

A watcher leaves its session when its `canceled` response is handed out
(a client cancel, or compaction of the history it needed); `close()`
cancels what is left, and the store frees each of those watchers when its
last response is polled (the hub polls them once more to drain them).

Everything here runs on the loop that drives the node: no locks.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from chainfire_core.errors import ChainfireError, WatchNotFound
from chainfire_core.mvcc.watch_messages import WatchCreateRequest, WatchResponse
from chainfire_core.mvcc.watchable import WatchableStore
from chainfire_core.types import WatchId

# Events handed out per watcher per poll (a larger single revision travels whole).
DEFAULT_MAX_EVENTS_PER_POLL = 1000
# Polls to empty a canceled watcher's queue on close (each poll takes at
# least one response; a queue holds at most the watcher buffer's worth).
DEFAULT_MAX_DRAIN_POLLS = 100_000


class HubSession:
    """One client stream's watchers (implements `real.api.handle.WatchSession`)."""

    def __init__(self, hub: WatchHub, number: int) -> None:
        self._hub = hub
        self.number = number
        self._ids: set[WatchId] = set()
        self._wake = asyncio.Event()
        self.closed = False

    @property
    def watch_ids(self) -> tuple[WatchId, ...]:
        return tuple(sorted(self._ids))

    async def create(self, request: WatchCreateRequest) -> WatchId:
        self._check_open()
        watch_id = self._hub.store.watch(request)
        self._ids.add(watch_id)
        self._wake.set()
        return watch_id

    async def cancel(self, watch_id: WatchId) -> None:
        self._check_open()
        if watch_id not in self._ids:
            raise WatchNotFound(watch_id)
        self._hub.store.cancel(watch_id)
        self._wake.set()

    async def request_progress(self) -> None:
        self._check_open()
        live = [w for w in sorted(self._ids) if self._is_live(w)]
        self._hub.store.request_progress(live)
        self._wake.set()

    async def responses(self) -> tuple[WatchResponse, ...]:
        while not self.closed:
            self._wake.clear()
            out = self._poll()
            if out:
                return out
            await self._wake.wait()
        return ()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._wake.set()
        store = self._hub.store
        for watch_id in sorted(self._ids):
            with suppress(ChainfireError):  # already canceled (compaction, client)
                store.cancel(watch_id)
            self._drain(watch_id)
        self._ids.clear()
        self._hub.forget(self)

    def wake(self) -> None:
        self._wake.set()

    # -- internals ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise WatchNotFound(0)

    def _is_live(self, watch_id: WatchId) -> bool:
        try:
            self._hub.store.next_revision(watch_id)
        except WatchNotFound:
            return False
        return True

    def _poll(self) -> tuple[WatchResponse, ...]:
        out: list[WatchResponse] = []
        store = self._hub.store
        for watch_id in sorted(self._ids):
            for response in store.poll_watcher(watch_id, self._hub.max_events_per_poll):
                out.append(response)
                if response.canceled:
                    self._ids.discard(watch_id)
        return tuple(out)

    def _drain(self, watch_id: WatchId) -> None:
        """Poll a canceled watcher until the store has freed it."""
        store = self._hub.store
        for _ in range(self._hub.max_drain_polls):
            try:
                responses = store.poll_watcher(watch_id, self._hub.max_events_per_poll)
            except WatchNotFound:
                return
            if any(r.canceled for r in responses):
                return
        raise AssertionError(f"watcher {watch_id} did not drain")


class WatchHub:
    """Routes one `WatchableStore` to any number of `HubSession`s."""

    def __init__(self, store: WatchableStore, *,
                 max_events_per_poll: int = DEFAULT_MAX_EVENTS_PER_POLL,
                 max_drain_polls: int = DEFAULT_MAX_DRAIN_POLLS) -> None:
        assert max_events_per_poll > 0 and max_drain_polls > 0
        self.store = store
        self.max_events_per_poll = max_events_per_poll
        self.max_drain_polls = max_drain_polls
        self._sessions: dict[int, HubSession] = {}
        self._next_number = 1
        self.closed = False

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def session(self) -> HubSession:
        session = HubSession(self, self._next_number)
        self._next_number += 1
        if self.closed:
            session.closed = True
        else:
            self._sessions[session.number] = session
        return session

    def notify(self) -> None:
        """The driver applied entries or ticked: wake every session."""
        for number in sorted(self._sessions):
            self._sessions[number].wake()

    def close(self) -> None:
        """The node is stopping: end every session (their streams end)."""
        self.closed = True
        for number in sorted(self._sessions):
            self._sessions[number].close()
        assert not self._sessions

    def forget(self, session: HubSession) -> None:
        self._sessions.pop(session.number, None)


__all__ = ["DEFAULT_MAX_DRAIN_POLLS", "DEFAULT_MAX_EVENTS_PER_POLL", "HubSession", "WatchHub"]
