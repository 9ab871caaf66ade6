"""Tests of the watchable store: etcd v3 watch semantics over the MVCC store."""

from __future__ import annotations

import contextlib
from dataclasses import FrozenInstanceError, dataclass, replace

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chainfire_core.config import StateMachineConfig
from chainfire_core.errors import (
    EmptyKey,
    InvalidRequest,
    TooManyWatchers,
    WatchNotFound,
)
from chainfire_core.mvcc.messages import (
    ALL_KEYS,
    CompactionRequest,
    DeleteRangeRequest,
    Event,
    EventType,
    PutRequest,
    TxnRequest,
    prefix_end,
)
from chainfire_core.mvcc.store import MvccStore
from chainfire_core.mvcc.watch_messages import (
    WatchCreateRequest,
    WatchFilter,
    WatchIdInUse,
    WatchResponse,
)
from chainfire_core.mvcc.watchable import WatchableStore
from chainfire_core.storage import MemoryBackend
from chainfire_core.types import Revision, WatchId

# -- helpers ---------------------------------------------------------------------


def make(**limits: int) -> tuple[MvccStore, WatchableStore]:
    config = StateMachineConfig(**limits)
    store = MvccStore(MemoryBackend(), config)
    return store, WatchableStore(store, config)


def put(store: MvccStore, key: bytes, value: bytes = b"v") -> None:
    store.put(PutRequest(key=key, value=value))


def delete(store: MvccStore, key: bytes, range_end: bytes = b"") -> None:
    store.delete_range(DeleteRangeRequest(key=key, range_end=range_end))


def put_many(store: MvccStore, *keys: bytes, value: bytes = b"v") -> None:
    store.txn(TxnRequest(success=tuple(PutRequest(key=k, value=value) for k in keys)))


def compact(store: MvccStore, revision: int) -> None:
    store.compact(CompactionRequest(revision=Revision(revision)))


def watch(ws: WatchableStore, key: bytes, **options: object) -> WatchId:
    return ws.watch(WatchCreateRequest(key=key, **options))  # type: ignore[arg-type]


def drain(ws: WatchableStore, max_responses: int = 100) -> list[WatchResponse]:
    out: list[WatchResponse] = []
    for _ in range(10_000):
        if not ws.has_pending():
            return out
        out.extend(ws.poll(max_responses))
        ws.check_invariants()
    raise AssertionError("the watchable store never drained")


def of(responses: list[WatchResponse], watch_id: WatchId) -> list[WatchResponse]:
    return [r for r in responses if r.watch_id == watch_id]


def events(responses: list[WatchResponse], watch_id: WatchId) -> list[Event]:
    return [e for r in of(responses, watch_id) for e in r.events]


def history(store: MvccStore, start: int, *, with_prev: bool = False) -> list[Event]:
    return list(store.events_between(start, store.current_revision, with_prev=with_prev))


def summary(evs: list[Event]) -> list[tuple[str, bytes, int]]:
    return [(e.type.name, e.kv.key, e.kv.mod_revision) for e in evs]


# -- messages --------------------------------------------------------------------


def test_create_request_validates() -> None:
    with pytest.raises(EmptyKey):
        WatchCreateRequest(key=b"")
    with pytest.raises(InvalidRequest):
        WatchCreateRequest(key=b"a", start_revision=-1)
    with pytest.raises(InvalidRequest):
        WatchCreateRequest(key=b"a", watch_id=-3)
    with pytest.raises(InvalidRequest):
        WatchCreateRequest(key=b"a", filters=(0,))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        WatchCreateRequest(key=b"a", filters=[WatchFilter.NOPUT])  # type: ignore[arg-type]
    request = WatchCreateRequest(key=b"a", filters=(WatchFilter.NODELETE,))
    with pytest.raises(FrozenInstanceError):
        request.key = b"b"  # type: ignore[misc]
    assert (WatchFilter.NOPUT, WatchFilter.NODELETE) == (0, 1)  # etcd's numbers


def test_watch_id_in_use_is_an_invalid_request() -> None:
    assert issubclass(WatchIdInUse, InvalidRequest)


# -- live events -----------------------------------------------------------------


def test_created_response_comes_first_with_the_current_revision() -> None:
    store, ws = make()
    put(store, b"a")
    wid = watch(ws, b"a")
    first = ws.poll(10)
    assert first == (WatchResponse(watch_id=wid, revision=Revision(2), created=True),)
    assert ws.is_synced(wid) and not ws.has_pending()


def test_future_watch_sees_puts_and_deletes_in_order() -> None:
    store, ws = make()
    put(store, b"a", b"old")
    wid = watch(ws, b"a")
    put(store, b"a", b"1")
    put(store, b"b", b"x")
    delete(store, b"a")
    put(store, b"a", b"2")
    got = drain(ws)
    assert got[0].created
    assert summary(events(got, wid)) == [
        ("PUT", b"a", 3), ("DELETE", b"a", 5), ("PUT", b"a", 6)
    ]
    assert [r.revision for r in got[1:]] == [3, 5, 6]
    assert events(got, wid) == [e for e in history(store, 3) if e.kv.key == b"a"]


def test_a_transaction_is_one_response() -> None:
    store, ws = make()
    wid = watch(ws, b"k", range_end=b"l")
    put_many(store, b"k1", b"k2", b"k3")
    got = of(drain(ws), wid)
    assert len(got) == 2 and got[1].revision == 2
    assert [e.kv.key for e in got[1].events] == [b"k1", b"k2", b"k3"]


def test_filters_drop_puts_or_deletes() -> None:
    store, ws = make()
    no_put = watch(ws, b"a", filters=(WatchFilter.NOPUT,))
    no_delete = watch(ws, b"a", filters=(WatchFilter.NODELETE,))
    both = watch(ws, b"a", filters=(WatchFilter.NOPUT, WatchFilter.NODELETE))
    put(store, b"a")
    delete(store, b"a")
    put(store, b"a")
    got = drain(ws)
    assert summary(events(got, no_put)) == [("DELETE", b"a", 3)]
    assert summary(events(got, no_delete)) == [("PUT", b"a", 2), ("PUT", b"a", 4)]
    # Created on the empty store: its revision is 1, as etcd's.
    assert of(got, both) == [WatchResponse(watch_id=both, revision=Revision(1), created=True)]


def test_prev_kv_live_and_historical() -> None:
    store, ws = make()
    put(store, b"a", b"1")
    live = watch(ws, b"a", prev_kv=True)
    plain = watch(ws, b"a")
    put(store, b"a", b"2")
    delete(store, b"a")
    replay = watch(ws, b"a", prev_kv=True, start_revision=1)
    got = drain(ws)
    with_prev = history(store, 1, with_prev=True)
    assert events(got, live) == with_prev[1:]
    assert events(got, replay) == with_prev
    assert [e.prev_kv.value for e in with_prev[1:] if e.prev_kv] == [b"1", b"2"]
    assert events(got, plain) == history(store, 3)
    assert all(e.prev_kv is None for e in events(got, plain))


@pytest.mark.parametrize(
    ("key", "range_end", "expected"),
    [
        (b"a", b"", [b"a"]),
        (b"ab", prefix_end(b"ab"), [b"ab", b"abc"]),
        (b"ab", b"b", [b"ab", b"abc"]),
        (b"ab", ALL_KEYS, [b"ab", b"abc", b"b", b"\xff"]),
        (ALL_KEYS, ALL_KEYS, [b"a", b"ab", b"abc", b"b", b"\xff"]),
        (b"b", b"a", []),
    ],
)
def test_range_and_prefix_watches(key: bytes, range_end: bytes, expected: list[bytes]) -> None:
    store, ws = make()
    live = watch(ws, key, range_end=range_end)
    for k in (b"a", b"ab", b"abc", b"b", b"\xff"):
        put(store, k)
    replay = watch(ws, key, range_end=range_end, start_revision=1)
    got = drain(ws)
    assert [e.kv.key for e in events(got, live)] == expected
    assert events(got, replay) == events(got, live)


def test_future_start_revision_skips_earlier_events() -> None:
    store, ws = make()
    wid = watch(ws, b"a", start_revision=4)
    assert ws.is_synced(wid) and ws.next_revision(wid) == 4
    for value in (b"1", b"2", b"3", b"4"):  # revisions 2 to 5
        put(store, b"a", value)
    assert [e.kv.value for e in events(drain(ws), wid)] == [b"3", b"4"]


def test_watches_from_revision_zero_or_one_of_an_empty_store() -> None:
    # etcd: an empty store is at revision 1 with nothing stored there; a watch
    # from 0 starts at the next revision, one from 1 replays from revision 1
    # (nothing) and is then synced; both see the first write (revision 2).
    store, ws = make()
    now = watch(ws, b"a")
    from_one = watch(ws, b"a", start_revision=1)
    assert ws.next_revision(now) == 2 and ws.is_synced(now)
    assert drain(ws)[0] == WatchResponse(watch_id=now, revision=Revision(1), created=True)
    assert ws.is_synced(from_one) and not ws.has_pending()
    put(store, b"a")
    got = drain(ws)
    assert summary(events(got, now)) == summary(events(got, from_one)) == [("PUT", b"a", 2)]


def test_no_watchers_cost_nothing_on_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    store, ws = make()

    def refuse(*_: object, **__: object) -> Event:
        raise AssertionError("an event was built that nobody watches")

    monkeypatch.setattr(store, "event_of", refuse)
    put(store, b"a")
    watch(ws, b"z")
    watch(ws, b"a", filters=(WatchFilter.NODELETE,))
    watch(ws, b"m", range_end=b"n")
    put(store, b"b")
    delete(store, b"a")
    ws.check_invariants()


# -- history ---------------------------------------------------------------------


def test_historical_replay_equals_store_history() -> None:
    store, ws = make()
    for i in range(10):
        put(store, b"k%d" % (i % 3), b"%d" % i)
        if i % 4 == 3:
            delete(store, b"k0")
    wid = watch(ws, b"k", range_end=b"l", start_revision=4)
    assert not ws.is_synced(wid) and ws.next_revision(wid) == 4
    got = drain(ws)
    assert events(got, wid) == history(store, 4)
    assert ws.is_synced(wid) and ws.next_revision(wid) == store.current_revision + 1
    put(store, b"k9")
    assert events(drain(ws), wid) == history(store, store.current_revision)


@pytest.mark.parametrize("start", [1, 2, 4, 5])
def test_compacted_start_is_canceled_with_the_compact_revision(start: int) -> None:
    store, ws = make()
    for i in range(6):  # revisions 2 to 7
        put(store, b"a", b"%d" % i)
    compact(store, 5)
    wid = watch(ws, b"a", start_revision=start)
    assert ws.watcher_count == 0
    got = drain(ws)
    assert got[0].created
    assert got[1:] == [
        WatchResponse(
            watch_id=wid, revision=Revision(7), canceled=True, compact_revision=Revision(5),
            cancel_reason="etcdserver: mvcc: required revision has been compacted",
        )
    ]
    with pytest.raises(WatchNotFound):
        ws.cancel(wid)
    assert events(drain(ws), wid) == []


def test_start_just_after_compaction_replays() -> None:
    store, ws = make()
    for i in range(6):
        put(store, b"a", b"%d" % i)
    delete(store, b"a")
    compact(store, 4)
    wid = watch(ws, b"a", start_revision=5)
    assert events(drain(ws), wid) == history(store, 5)


def test_slow_watcher_catches_up_without_gaps_or_duplicates() -> None:
    store, ws = make(watcher_buffer_events=2, watcher_catchup_batch_events=3)
    slow = watch(ws, b"k", range_end=b"l")
    other = watch(ws, b"k1")
    delivered: list[WatchResponse] = list(ws.poll(10))
    for i in range(5):
        put(store, b"k%d" % (i % 2), b"%d" % i)
    put_many(store, b"k1", b"k2", b"k3")  # larger than the buffer: travels alone
    assert not ws.is_synced(slow) and ws.next_revision(slow) == 4
    ws.check_invariants()
    for i in range(5):
        put(store, b"k%d" % (i % 3), b"x%d" % i)
        delivered.extend(ws.poll(1))
        ws.check_invariants()
    delivered.extend(drain(ws, max_responses=1))
    assert events(delivered, slow) == history(store, 1)
    assert events(delivered, other) == [e for e in history(store, 1) if e.kv.key == b"k1"]
    assert ws.is_synced(slow)
    txn_responses = [r for r in of(delivered, slow) if r.revision == 7]
    assert [len(r.events) for r in txn_responses] == [3]


def test_slow_watcher_survives_compaction_below_its_position() -> None:
    store, ws = make(watcher_buffer_events=1, watcher_catchup_batch_events=2)
    wid = watch(ws, b"a")
    for i in range(6):
        put(store, b"a", b"%d" % i)
    full = history(store, 1)
    assert not ws.is_synced(wid) and ws.next_revision(wid) == 3
    got = list(ws.poll(100)) + list(ws.poll(100))  # revisions 2 and 3 handed out
    assert ws.next_revision(wid) == 4
    compact(store, 3)  # below what it still needs
    got += drain(ws)
    assert events(got, wid) == full
    assert not any(r.canceled for r in got)


def test_slow_watcher_canceled_when_its_history_is_compacted() -> None:
    store, ws = make(watcher_buffer_events=2, watcher_catchup_batch_events=2)
    wid = watch(ws, b"a")
    full: list[Event] = []
    for i in range(8):
        put(store, b"a", b"%d" % i)
    full = history(store, 1)
    got = list(ws.poll(100))
    assert not ws.is_synced(wid)
    compact(store, 6)
    got += drain(ws)
    last = of(got, wid)[-1]
    assert last.canceled and last.compact_revision == 6
    delivered = events(got, wid)
    assert delivered == full[: len(delivered)] and len(delivered) < len(full)
    with pytest.raises(WatchNotFound):
        ws.poll_watcher(wid, 10)


def test_catch_up_respects_the_scan_batch() -> None:
    store, ws = make(watcher_catchup_batch_events=3)
    for i in range(10):
        put(store, b"other%d" % i)
    put(store, b"a")
    wid = watch(ws, b"a", start_revision=1)
    nexts = []
    while not ws.is_synced(wid):
        ws.poll(10)
        nexts.append(ws.next_revision(wid))
    # Batches of 3 events from revision 1 (the empty store's: none) to 12.
    assert nexts == [5, 8, 11, 13]


# -- cancel, ids, limits ---------------------------------------------------------


def test_cancel_queues_canceled_after_pending_events() -> None:
    store, ws = make()
    wid = watch(ws, b"a")
    put(store, b"a")
    ws.cancel(wid)
    put(store, b"a")
    got = drain(ws)
    assert [(bool(r.events), r.canceled) for r in got] == [(False, False), (True, False),
                                                           (False, True)]
    assert ws.watcher_count == 0
    with pytest.raises(WatchNotFound):
        ws.cancel(wid)
    with pytest.raises(WatchNotFound):
        ws.cancel(WatchId(99))


def test_watch_ids_are_allocated_deterministically() -> None:
    _, ws = make()
    assert watch(ws, b"a") == 1
    assert watch(ws, b"a", watch_id=3) == 3
    assert watch(ws, b"a") == 2
    assert watch(ws, b"a") == 4
    with pytest.raises(WatchIdInUse):
        watch(ws, b"a", watch_id=2)
    assert ws.watcher_count == 4


def test_too_many_watchers() -> None:
    _, ws = make(max_watchers=2)
    first = watch(ws, b"a")
    watch(ws, b"b")
    with pytest.raises(TooManyWatchers):
        watch(ws, b"c")
    ws.cancel(first)
    with pytest.raises(TooManyWatchers):  # the slot is held until the cancel is polled
        watch(ws, b"c")
    drain(ws)
    watch(ws, b"c")


def test_poll_round_robins_by_watch_id() -> None:
    store, ws = make()
    one, two = watch(ws, b"a"), watch(ws, b"a")
    put(store, b"a")
    got = ws.poll(3)
    assert [(r.watch_id, r.created) for r in got] == [(one, True), (two, True), (one, False)]
    assert [(r.watch_id, r.created) for r in ws.poll(3)] == [(two, False)]


def test_poll_watcher_hands_out_whole_responses() -> None:
    store, ws = make()
    wid = watch(ws, b"k", range_end=b"l")
    put_many(store, b"k1", b"k2")
    put(store, b"k1")
    got = ws.poll_watcher(wid, 1)
    assert [len(r.events) for r in got] == [0, 2]  # never split a revision
    assert [len(r.events) for r in ws.poll_watcher(wid, 1)] == [1]
    assert ws.poll_watcher(wid, 1) == ()
    with pytest.raises(WatchNotFound):
        ws.poll_watcher(WatchId(7), 1)


# -- progress --------------------------------------------------------------------


def test_request_progress_for_an_idle_synced_watcher() -> None:
    store, ws = make()
    put(store, b"x")
    wid = watch(ws, b"a")
    ws.poll(10)
    ws.request_progress()
    (progress,) = ws.poll(10)
    assert progress == WatchResponse(watch_id=wid, revision=Revision(2))
    assert progress.is_progress_notify


def test_progress_never_runs_ahead_of_delivered_events() -> None:
    store, ws = make(watcher_buffer_events=1, watcher_catchup_batch_events=1)
    wid = watch(ws, b"a")
    for i in range(4):
        put(store, b"a", b"%d" % i)
    ws.request_progress()
    seen: list[Event] = []
    for _ in range(20):
        for response in ws.poll(1):
            assert response.watch_id == wid
            if response.is_progress_notify:
                assert all(e.kv.mod_revision <= response.revision for e in seen)
                assert len(seen) == 4 and response.revision == 5
            seen.extend(response.events)
    assert len(seen) == 4


def test_request_progress_waits_for_queued_events() -> None:
    store, ws = make()
    wid = watch(ws, b"a")
    put(store, b"a")
    ws.request_progress([wid])
    got = drain(ws)
    assert [r.is_progress_notify for r in got] == [False, False, True]
    with pytest.raises(WatchNotFound):
        ws.request_progress([WatchId(42)])


def test_tick_progress_notifies_only_idle_progress_watchers() -> None:
    store, ws = make()
    notify = watch(ws, b"a", progress_notify=True)
    busy = watch(ws, b"b", progress_notify=True)
    quiet = watch(ws, b"c")
    ws.poll(10)
    put(store, b"b")
    ws.tick_progress()
    got = ws.poll(10)
    assert [(r.watch_id, r.is_progress_notify) for r in got] == [(notify, True), (busy, False)]
    ws.tick_progress()  # busy was idle since the last tick now
    assert [r.watch_id for r in ws.poll(10)] == [notify, busy]
    assert quiet not in [r.watch_id for r in ws.poll(10)]


# -- restore ---------------------------------------------------------------------


def test_on_restore_replays_the_revisions_a_snapshot_skipped() -> None:
    store, ws = make()
    wid = watch(ws, b"a")
    put(store, b"a", b"1")
    donor = MvccStore(MemoryBackend())
    for value in (b"1", b"2", b"3"):
        put(donor, b"a", value)
    store.backend.restore(donor.backend.snapshot())
    store.reload()
    ws.on_restore()
    ws.check_invariants()
    assert [e.kv.value for e in events(drain(ws), wid)] == [b"1", b"2", b"3"]


# -- a random model check --------------------------------------------------------

KEYS = (b"a", b"ab", b"b", b"c")


@dataclass(frozen=True)
class Spec:
    key: bytes
    range_end: bytes
    start: int
    no_put: bool
    no_delete: bool
    prev_kv: bool

    def owed(self, event: Event) -> bool:
        key = event.kv.key
        if self.range_end:
            covered = key >= self.key and (self.range_end == ALL_KEYS or key < self.range_end)
        else:
            covered = key == self.key
        skip = self.no_delete if event.type == EventType.DELETE else self.no_put
        return covered and not skip and event.kv.mod_revision >= self.start


class WatchMachine(RuleBasedStateMachine):
    """Random writes, watches, cancels, compactions and polls with tiny limits;
    every watcher's stream must be exactly the store's history, in whole
    revisions, with headers and progress never ahead of it."""

    @initialize(buffer=st.integers(1, 4), batch=st.integers(1, 4))
    def setup(self, buffer: int, batch: int) -> None:
        self.store, self.ws = make(
            watcher_buffer_events=buffer, watcher_catchup_batch_events=batch, max_watchers=6
        )
        self.history: list[Event] = []
        self.specs: dict[WatchId, Spec] = {}
        self.delivered: dict[WatchId, list[Event]] = {}
        self.finished: set[WatchId] = set()

    def _wrote(self, before: int) -> None:
        if self.store.current_revision > before:
            self.history.extend(
                self.store.events_between(before + 1, self.store.current_revision, with_prev=True)
            )

    def _owed(self, wid: WatchId, up_to: int) -> list[Event]:
        spec = self.specs[wid]
        owed = [e for e in self.history if spec.owed(e) and e.kv.mod_revision <= up_to]
        return owed if spec.prev_kv else [replace(e, prev_kv=None) for e in owed]

    def _receive(self, responses: tuple[WatchResponse, ...]) -> None:
        for response in responses:
            wid = response.watch_id
            assert wid not in self.finished
            got = self.delivered[wid]
            if response.events or response.is_progress_notify:
                got.extend(response.events)
                # Exactly what is owed up to the header: no gap, no duplicate,
                # whole revisions, never ahead.
                assert got == self._owed(wid, response.revision)
            if response.canceled:
                assert got == self._owed(wid, 10**9)[: len(got)]
                self.finished.add(wid)

    @rule(key=st.sampled_from(KEYS), value=st.binary(max_size=2))
    def put(self, key: bytes, value: bytes) -> None:
        before = self.store.current_revision
        put(self.store, key, value)
        self._wrote(before)

    @rule(key=st.sampled_from(KEYS), ranged=st.booleans())
    def delete(self, key: bytes, ranged: bool) -> None:
        before = self.store.current_revision
        delete(self.store, key, prefix_end(key) if ranged else b"")
        self._wrote(before)

    @rule(keys=st.sets(st.sampled_from(KEYS), min_size=1))
    def txn(self, keys: set[bytes]) -> None:
        before = self.store.current_revision
        put_many(self.store, *sorted(keys))
        self._wrote(before)

    @rule(
        key=st.sampled_from((*KEYS, ALL_KEYS)),
        mode=st.sampled_from(("key", "prefix", "from")),
        back=st.integers(-2, 6),
        filters=st.sets(st.sampled_from(WatchFilter)),
        prev_kv=st.booleans(),
    )
    def watch(self, key: bytes, mode: str, back: int, filters: set[WatchFilter],
              prev_kv: bool) -> None:
        range_end = {"key": b"", "prefix": prefix_end(key), "from": ALL_KEYS}[mode]
        current = self.store.current_revision
        start = 0 if back == -2 else max(1, current + 1 - back)
        held = len(self.specs) - len(self.finished)
        try:
            wid = watch(self.ws, key, range_end=range_end, start_revision=start,
                        filters=tuple(sorted(filters)), prev_kv=prev_kv)
        except TooManyWatchers:
            assert held >= 6
            return
        assert held < 6
        self.specs[wid] = Spec(
            key=key, range_end=range_end, start=start or current + 1,
            no_put=WatchFilter.NOPUT in filters, no_delete=WatchFilter.NODELETE in filters,
            prev_kv=prev_kv,
        )
        self.delivered[wid] = []

    def _live(self) -> list[WatchId]:
        return [w for w in sorted(self.specs) if w not in self.finished]

    @precondition(lambda self: self.ws.watcher_count > 0)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        wid = data.draw(st.sampled_from(self._live()))
        # WatchNotFound: already canceled (by us or by compaction), not yet polled.
        with contextlib.suppress(WatchNotFound):
            self.ws.cancel(wid)

    @precondition(lambda self: self.store.compact_revision < self.store.current_revision)
    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        low = self.store.compact_revision + 1
        compact(self.store, data.draw(st.integers(low, self.store.current_revision)))

    @rule(max_responses=st.integers(1, 4))
    def poll(self, max_responses: int) -> None:
        self._receive(self.ws.poll(max_responses))

    @precondition(lambda self: bool(self.specs))
    @rule(data=st.data(), max_events=st.integers(1, 3))
    def poll_watcher(self, data: st.DataObject, max_events: int) -> None:
        wid = data.draw(st.sampled_from(sorted(self.specs)))
        try:
            self._receive(self.ws.poll_watcher(wid, max_events))
        except WatchNotFound:
            assert wid in self.finished

    @rule()
    def request_progress(self) -> None:
        self.ws.request_progress()

    @rule()
    def tick_progress(self) -> None:
        self.ws.tick_progress()

    @invariant()
    def invariants_hold(self) -> None:
        if hasattr(self, "ws"):
            self.ws.check_invariants()
            self.store.check_invariants()

    def teardown(self) -> None:
        if not hasattr(self, "ws"):
            return
        for _ in range(1000):
            if not self.ws.has_pending():
                break
            self._receive(self.ws.poll(3))
            self.ws.check_invariants()
        assert not self.ws.has_pending()
        for wid in self._live():
            assert self.delivered[wid] == self._owed(wid, self.store.current_revision)


WatchMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestWatchMachine = WatchMachine.TestCase
