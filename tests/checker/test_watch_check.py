"""Watch stream checks: a clean stream passes, and each property's violation
is reported."""

from __future__ import annotations

from typing import Any

import pytest

from checker.etcd_model import MutableStore, serve
from checker.history import Operation
from checker.revision_check import analyze_etcd_history
from checker.watch_check import (
    WatchDelivery,
    WatchEvent,
    WatchStream,
    check_watch_streams,
    stream_from_json,
)


def _history() -> tuple[list[Operation], MutableStore]:
    """Revisions 2..7 over keys a, b, c (the watched range is [a, c)); the
    empty store is at revision 1, as etcd's."""
    store = MutableStore(track_leases=True)
    requests: list[dict[str, Any]] = [
        {"f": "put", "key": "a", "value": "1"},                       # 2
        {"f": "put", "key": "c", "value": "x"},                       # 3 (outside)
        {"f": "txn", "compare": [], "success": [                      # 4: a and b at once
            {"f": "put", "key": "a", "value": "2"}, {"f": "put", "key": "b", "value": "1"}],
         "failure": []},
        {"f": "delete", "key": "a"},                                  # 5
        {"f": "put", "key": "b", "value": "2"},                       # 6
        {"f": "put", "key": "c", "value": "y"},                       # 7 (outside)
    ]
    history = []
    for index, request in enumerate(requests):
        output = serve(store, request)
        history.append(Operation(id=index, client=0, input=request, call=2 * index,
                                 output=output, return_time=2 * index + 1))
    return history, store


def _event(kind: str, key: str, revision: int, value: str | None = None) -> WatchEvent:
    return WatchEvent(type=kind, key=key, mod_revision=revision, value=value)


EVENTS = {2: [_event("put", "a", 2, "1")],
          4: [_event("put", "a", 4, "2"), _event("put", "b", 4, "1")],
          5: [_event("delete", "a", 5)],
          6: [_event("put", "b", 6, "2")]}


def _stream(deliveries: list[WatchDelivery], **fields: Any) -> WatchStream:
    return WatchStream(id=fields.pop("id", "w"), key="a", range_end="c",
                       deliveries=tuple(deliveries), **fields)


def _clean() -> list[WatchDelivery]:
    return [WatchDelivery(revision=1, created=True),
            WatchDelivery(revision=2, events=tuple(EVENTS[2])),
            WatchDelivery(revision=4, events=tuple(EVENTS[4])),
            WatchDelivery(revision=5, events=tuple(EVENTS[5])),
            WatchDelivery(revision=5, progress=True),
            WatchDelivery(revision=6, events=tuple(EVENTS[6])),
            WatchDelivery(revision=7, progress=True)]


def kinds(streams: list[WatchStream]) -> set[str]:
    history, _ = _history()
    return {v.kind for v in check_watch_streams(streams, history)}


def test_clean_stream_passes() -> None:
    history, _ = _history()
    assert check_watch_streams([_stream(_clean())], history) == []
    from_start = _stream(_clean()[1:], start_revision=2)
    assert check_watch_streams([from_start], history) == []
    from_one = _stream(_clean()[1:], start_revision=1)  # nothing happened at 1
    assert check_watch_streams([from_one], history) == []


def test_unordered_events_are_reported() -> None:
    deliveries = _clean()
    deliveries[2], deliveries[3] = deliveries[3], deliveries[2]
    assert "ordered" in kinds([_stream(deliveries[:4])])


def test_event_before_the_start_is_reported() -> None:
    stream = _stream(_clean()[1:4], start_revision=4)
    assert "ordered" in kinds([stream])


def test_duplicate_event_is_reported() -> None:
    deliveries = _clean()
    deliveries.insert(4, WatchDelivery(revision=5, events=tuple(EVENTS[5])))
    found = kinds([_stream(deliveries)])
    assert "unique" in found


def test_split_revision_is_reported() -> None:
    deliveries = _clean()
    deliveries[2:3] = [WatchDelivery(revision=4, events=(EVENTS[4][0],)),
                       WatchDelivery(revision=4, events=(EVENTS[4][1],))]
    assert "atomic" in kinds([_stream(deliveries)])


def test_partial_revision_is_reported() -> None:
    deliveries = _clean()
    deliveries[2] = WatchDelivery(revision=4, events=(EVENTS[4][0],))
    assert "atomic" in kinds([_stream(deliveries)])


def test_gap_is_reported() -> None:
    deliveries = [d for d in _clean() if d.revision != 4 or not d.events]
    deliveries = [d for d in deliveries if not d.progress]
    assert kinds([_stream(deliveries)]) == {"reliable"}


def test_event_that_did_not_happen_is_reported() -> None:
    deliveries = _clean()
    deliveries[1] = WatchDelivery(revision=2, events=(_event("put", "a", 2, "other"),))
    assert "valid" in kinds([_stream(deliveries)])
    deliveries[1] = WatchDelivery(revision=2, events=(_event("delete", "a", 2),))
    assert "valid" in kinds([_stream(deliveries)])


def test_filters_drop_event_types() -> None:
    history, _ = _history()
    no_delete = [WatchDelivery(revision=1, created=True),
                 WatchDelivery(revision=2, events=tuple(EVENTS[2])),
                 WatchDelivery(revision=4, events=tuple(EVENTS[4])),
                 WatchDelivery(revision=6, events=tuple(EVENTS[6]))]
    assert check_watch_streams([_stream(no_delete, filters=("nodelete",))], history) == []
    assert {v.kind for v in check_watch_streams([_stream(no_delete)], history)} == {"reliable"}


def test_resumed_stream_must_continue_exactly() -> None:
    first = _stream(_clean()[:3], id="w1")  # saw up to revision 4
    exact = _stream([WatchDelivery(revision=4, created=True), *_clean()[3:]], id="w2",
                    start_revision=5, resumes="w1")
    history, _ = _history()
    assert check_watch_streams([first, exact], history) == []
    skipped = _stream([WatchDelivery(revision=5, created=True), *_clean()[5:]], id="w2",
                      start_revision=6, resumes="w1")
    assert "resumable" in kinds([first, skipped])
    repeated = _stream([WatchDelivery(revision=3, created=True), *_clean()[2:]], id="w2",
                       start_revision=4, resumes="w1")
    found = kinds([first, repeated])
    assert {"resumable", "unique"} <= found
    assert "resumable" in kinds([_stream(_clean(), id="w2", resumes="nobody")])


def test_a_stream_that_saw_nothing_is_resumed_from_its_own_start() -> None:
    quiet = _stream([WatchDelivery(revision=5, created=True)], id="w1", start_revision=5)
    resumed = _stream([WatchDelivery(revision=5, created=True), *_clean()[4:]], id="w2",
                      start_revision=5, resumes="w1")
    assert "resumable" not in kinds([quiet, resumed])
    too_late = _stream([WatchDelivery(revision=6, created=True), *_clean()[5:]], id="w2",
                       start_revision=6, resumes="w1")
    assert "resumable" in kinds([quiet, too_late])


def test_progress_must_not_run_ahead() -> None:
    deliveries = _clean()
    early = [deliveries[0], deliveries[1], WatchDelivery(revision=5, progress=True),
             *deliveries[2:4]]
    found = check_watch_streams([_stream(early)], _history()[0])
    assert {v.kind for v in found} == {"progress"}
    assert {v.revision for v in found} == {4, 5}


def test_unreconstructed_revisions_are_not_judged() -> None:
    history, _ = _history()
    analysis = analyze_etcd_history(history[:3])  # knows revisions 2..4 only
    stream = _stream(_clean())
    assert check_watch_streams([stream], analysis=analysis) == []
    with pytest.raises(ValueError, match="operations"):
        check_watch_streams([stream])


def test_stream_from_json() -> None:
    stream = stream_from_json({
        "id": "w1", "key": "a", "range_end": "c", "start_revision": 0, "filters": [],
        "deliveries": [{"revision": 1, "created": True},
                       {"revision": 2, "events": [{"type": "put", "key": "a", "value": "1",
                                                   "mod_revision": 2}]},
                       {"revision": 4, "events": [
                           {"type": "put", "key": "a", "value": "2", "mod_revision": 4,
                            "create_revision": 2, "version": 2},
                           {"type": "put", "key": "b", "value": "1", "mod_revision": 4}]}]})
    assert stream.start() == 2 and stream.seen() == 4
    history, _ = _history()
    assert check_watch_streams([stream], history) == []
    with pytest.raises(ValueError):
        WatchEvent(type="update", key="a", mod_revision=1)


def test_watch_events_guide_an_ambiguous_reconstruction() -> None:
    """Two unknown puts could each have made revision 2; the watch says which."""
    history = [Operation(id=1, client=1, input={"f": "put", "key": "a", "value": "x"}, call=0,
                         unknown=True),
               Operation(id=2, client=2, input={"f": "put", "key": "a", "value": "y"}, call=0,
                         unknown=True),
               Operation(id=3, client=3, input={"f": "put", "key": "b", "value": "1"}, call=1,
                         output={"revision": 3}, return_time=2)]
    stream = WatchStream(id="w", key="a", start_revision=2, deliveries=(
        WatchDelivery(revision=2, events=(_event("put", "a", 2, "y"),)),))
    assert check_watch_streams([stream], history) == []
