"""Checks of recorded watch streams against the key-value history.

A watch stream is what one client's watch received, in order: the created
response, event deliveries and progress notifications, maybe a cancel. The
streams are checked against the revision sequence that revision_check.py
reconstructs from the operations (`analyze_etcd_history`), whose changes
say, for every revision, which keys it wrote and how.

Stream schema
-------------
`WatchStream` (JSON: one object per stream, `stream_from_json`):

    {"id": "w1", "key": "a", "range_end": "", "start_revision": 0,
     "filters": ["noput" | "nodelete", ...], "resumes": "w0" | null,
     "deliveries": [
        {"revision": 4, "created": true},
        {"revision": 6, "events": [{"type": "put", "key": "a", "value": "x",
                                    "mod_revision": 5, "create_revision": 5,
                                    "version": 1}, ...]},
        {"revision": 9, "progress": true},
        {"revision": 9, "canceled": true, "compact_revision": 0}]}

`revision` is the response header's revision; an event's `value`,
`create_revision` and `version` may be left out (then not checked; a delete
has none). `start_revision` 0 means "from now": the stream then starts after
the created response's revision. `resumes` names the stream this one
continues after a disconnect; a resumed stream must start right after what
its predecessor had seen.

Properties (the `kind` of a `WatchViolation`):

- ordered: event revisions never decrease along a stream (nor across a
  resumption), and no event precedes the stream's start;
- unique: no (revision, key) is delivered twice in a stream chain;
- atomic: the events of one revision arrive in one delivery, and all of the
  revision's changes in the watched range (after filters) are there;
- reliable: no revision with changes in the range is skipped between the
  stream's start and its last delivered event;
- valid: each event matches the history (a change at that revision, of that
  key, of that type and value);
- resumable: a resumed stream starts at the revision after the last one its
  predecessor saw (an event or a progress notification);
- progress: a progress notification at revision h comes after every event
  of the range up to h, and no event at or below h comes after it.

Revisions the reconstruction did not reach (an Illegal or Unknown history)
are not checked for reliability, atomicity or validity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checker.etcd_model import EMPTY_STORE_REVISION, KV, as_object, in_range
from checker.history import Operation
from checker.revision_check import EtcdHistoryAnalysis, analyze_etcd_history

KINDS = ("ordered", "unique", "atomic", "reliable", "valid", "resumable", "progress")


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchEvent:
    type: str  # "put" or "delete"
    key: str
    mod_revision: int
    value: str | None = None
    create_revision: int | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        if self.type not in ("put", "delete"):
            raise ValueError(f"event type must be put or delete, not {self.type!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchDelivery:
    revision: int
    events: tuple[WatchEvent, ...] = ()
    created: bool = False
    progress: bool = False
    canceled: bool = False
    compact_revision: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchStream:
    id: str
    key: str
    range_end: str = ""
    start_revision: int = 0
    deliveries: tuple[WatchDelivery, ...] = ()
    filters: tuple[str, ...] = ()
    resumes: str | None = None

    def covers(self, key: str, kind: str) -> bool:
        return in_range(key, self.key, self.range_end) and f"no{kind}" not in self.filters

    def start(self) -> int | None:
        """The first revision the stream owes events for (None: unknown)."""
        if self.start_revision:
            return self.start_revision
        for delivery in self.deliveries:
            if delivery.created:
                return delivery.revision + 1
        return None

    def seen(self) -> int:
        """The last revision the stream had seen: its last event or progress."""
        last = 0
        for delivery in self.deliveries:
            for event in delivery.events:
                last = max(last, event.mod_revision)
            if delivery.progress:
                last = max(last, delivery.revision)
        return last


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchViolation:
    stream: str
    kind: str
    revision: int
    message: str
    delivery: int | None = None


def stream_from_json(value: Any) -> WatchStream:
    """A `WatchStream` from its JSON object (see the module docstring)."""
    obj = as_object(value, "watch stream")
    deliveries = []
    for raw in obj.get("deliveries", ()):
        item = as_object(raw, "delivery")
        events = tuple(
            WatchEvent(type=e["type"], key=e["key"], mod_revision=e["mod_revision"],
                       value=e.get("value"), create_revision=e.get("create_revision"),
                       version=e.get("version"))
            for e in (as_object(x, "event") for x in item.get("events", ())))
        deliveries.append(WatchDelivery(
            revision=item["revision"], events=events, created=bool(item.get("created")),
            progress=bool(item.get("progress")), canceled=bool(item.get("canceled")),
            compact_revision=item.get("compact_revision", 0)))
    return WatchStream(id=str(obj["id"]), key=obj["key"], range_end=obj.get("range_end", ""),
                       start_revision=obj.get("start_revision", 0),
                       deliveries=tuple(deliveries), filters=tuple(obj.get("filters", ())),
                       resumes=obj.get("resumes"))


@dataclass(slots=True)
class _Checking:
    analysis: EtcdHistoryAnalysis
    violations: list[WatchViolation] = field(default_factory=list)

    def report(self, stream: WatchStream, kind: str, revision: int, message: str,
               delivery: int | None = None) -> None:
        self.violations.append(WatchViolation(stream=stream.id, kind=kind, revision=revision,
                                              message=message, delivery=delivery))

    def owed(self, stream: WatchStream, revision: int) -> dict[str, KV | None]:
        """The changes of `revision` the stream must deliver (key -> record)."""
        owed: dict[str, KV | None] = {}
        for key, kv in self.analysis.changes.get(revision, ()):
            if stream.covers(key, "put" if kv is not None else "delete"):
                owed[key] = kv
        return owed

    def known(self, revision: int) -> bool:
        return self.analysis.initial_revision < revision <= self.analysis.last_revision


def check_watch_streams(
    streams: Iterable[WatchStream], operations: Sequence[Operation] | None = None, *,
    analysis: EtcdHistoryAnalysis | None = None, timeout_s: float | None = None,
    initial_revision: int = EMPTY_STORE_REVISION,
) -> list[WatchViolation]:
    """Every violation of the properties in the module docstring. The history
    is reconstructed from `operations` (with the streams' events as hints for
    ambiguous revisions) unless an `analysis` is given."""
    streams = list(streams)
    if analysis is None:
        if operations is None:
            raise ValueError("give the operations or their analysis")
        analysis = analyze_etcd_history(operations, timeout_s=timeout_s,
                                        initial_revision=initial_revision,
                                        hints=stream_hints(streams))
    checking = _Checking(analysis)
    by_id = {stream.id: stream for stream in streams}
    for stream in streams:
        _check_stream(checking, stream)
        if stream.resumes is not None:
            _check_resumption(checking, stream, by_id.get(stream.resumes))
    return checking.violations


def stream_hints(streams: Sequence[WatchStream]) -> dict[int, list[tuple[str, str | None]]]:
    """The streams' events as `analyze_etcd_history` hints: revision -> changes."""
    hints: dict[int, list[tuple[str, str | None]]] = {}
    for stream in streams:
        for delivery in stream.deliveries:
            for event in delivery.events:
                value = event.value if event.type == "put" else None
                if event.type == "put" and value is None:
                    continue
                hints.setdefault(event.mod_revision, []).append((event.key, value))
    return hints


def _check_stream(checking: _Checking, stream: WatchStream) -> None:
    start = stream.start()
    delivered: dict[int, dict[str, WatchEvent]] = {}  # revision -> key -> event
    where: dict[int, int] = {}  # revision -> the delivery it came in
    last = 0
    for index, delivery in enumerate(stream.deliveries):
        for event in delivery.events:
            revision = event.mod_revision
            if revision < last:
                checking.report(stream, "ordered", revision,
                                f"event {event.key}@{revision} after an event at {last}", index)
            if start is not None and revision < start:
                checking.report(stream, "ordered", revision,
                                f"event {event.key}@{revision} before the start {start}", index)
            last = max(last, revision)
            seen = delivered.setdefault(revision, {})
            if event.key in seen:
                checking.report(stream, "unique", revision,
                                f"event {event.key}@{revision} delivered twice", index)
            seen[event.key] = event
            if where.setdefault(revision, index) != index:
                checking.report(stream, "atomic", revision,
                                f"the events of revision {revision} came in deliveries "
                                f"{where[revision]} and {index}", index)
        if delivery.progress:
            _check_progress(checking, stream, index, start, delivered)
    _check_against_history(checking, stream, start, delivered, last)


def _check_against_history(checking: _Checking, stream: WatchStream, start: int | None,
                           delivered: Mapping[int, Mapping[str, WatchEvent]],
                           last: int) -> None:
    for revision, events in sorted(delivered.items()):
        if not checking.known(revision):
            continue
        owed = checking.owed(stream, revision)
        for key, event in sorted(events.items()):
            why = _mismatch(event, key in owed, owed.get(key))
            if why:
                checking.report(stream, "valid", revision, f"event {key}@{revision}: {why}")
        missing = sorted(set(owed) - set(events))
        if missing:
            checking.report(stream, "atomic", revision,
                            f"revision {revision} delivered without {', '.join(missing)}")
    begin = start if start is not None else min(delivered, default=last + 1)
    for revision in range(max(begin, checking.analysis.initial_revision + 1), last + 1):
        if revision not in delivered and checking.known(revision) and \
                checking.owed(stream, revision):
            checking.report(stream, "reliable", revision,
                            f"revision {revision} changed the watched range but was not "
                            f"delivered (start {begin}, last event {last})")


def _mismatch(event: WatchEvent, owed: bool, kv: KV | None) -> str:
    if not owed:
        return "the history has no such change at that revision"
    if (event.type == "delete") != (kv is None):
        return f"a {event.type}, but the history has a {'delete' if kv is None else 'put'}"
    if kv is None:
        return ""
    value, create, _, version, _ = kv
    for name, got, want in (("value", event.value, value),
                            ("create_revision", event.create_revision, create),
                            ("version", event.version, version)):
        if got is not None and got != want:
            return f"{name} {got!r}, but the history has {want!r}"
    return ""


def _check_progress(checking: _Checking, stream: WatchStream, index: int, start: int | None,
                    delivered: Mapping[int, Mapping[str, WatchEvent]]) -> None:
    notified = stream.deliveries[index].revision
    for later in stream.deliveries[index + 1:]:
        for event in later.events:
            if event.mod_revision <= notified:
                checking.report(stream, "progress", event.mod_revision,
                                f"event {event.key}@{event.mod_revision} came after a progress "
                                f"notification at {notified}", index)
    if start is None:
        return
    for revision in range(start, notified + 1):
        if checking.known(revision) and checking.owed(stream, revision) and \
                revision not in delivered:
            checking.report(stream, "progress", revision,
                            f"progress notification at {notified} before revision "
                            f"{revision} was delivered", index)


def _check_resumption(checking: _Checking, stream: WatchStream,
                      previous: WatchStream | None) -> None:
    if previous is None:
        checking.report(stream, "resumable", stream.start_revision,
                        f"resumes an unknown stream {stream.resumes!r}")
        return
    seen = previous.seen()
    start = stream.start()
    # Where the predecessor was owed events from: a stream that saw nothing
    # is resumed from its own start, not from revision 1.
    owed = max(seen + 1, previous.start() or 0)
    if start != owed:
        checking.report(stream, "resumable", start or 0,
                        f"resumes {previous.id} (seen up to {seen}) from {start}, "
                        f"not from {owed}")
    before = {(event.mod_revision, event.key)
              for delivery in previous.deliveries for event in delivery.events}
    for index, delivery in enumerate(stream.deliveries):
        for event in delivery.events:
            if (event.mod_revision, event.key) in before:
                checking.report(stream, "unique", event.mod_revision,
                                f"event {event.key}@{event.mod_revision} already delivered "
                                f"to {previous.id}", index)
            elif event.mod_revision <= seen:
                checking.report(stream, "ordered", event.mod_revision,
                                f"event {event.key}@{event.mod_revision} at or before what "
                                f"{previous.id} had seen ({seen})", index)


__all__ = [
    "KINDS",
    "WatchDelivery",
    "WatchEvent",
    "WatchStream",
    "WatchViolation",
    "check_watch_streams",
    "stream_from_json",
    "stream_hints",
]
