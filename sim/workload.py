"""Clients: the workload, and how it is recorded.

Each client is a SimPy process issuing one operation at a time, with a
drawn think time between them. An operation is a put, a get (linearizable
or serializable), a range over every key, a read at a past revision, a
delete, a txn (compare-and-swap on a value it read, a multi-key write, a
conditional delete), a lease grant / put with lease / keepalive / TTL query
/ revoke, or, rarely, a compaction.

Finding the leader is the client's job, as with etcd clients: a client
talks to one endpoint; a refused connection (the process is down) or a
definite refusal (`NotLeader`, whose hint it follows, or `ProposalDropped`)
makes it back off and retry the same operation elsewhere until the
operation's deadline. A definite error the retry cannot fix (compacted,
lease not found, ...) is the operation's output. No answer within
`client_timeout_ms`, or the node's `RequestTimeout`, makes the outcome
indeterminate: recorded with `unknown: true`, never retried (a write might
have happened).

Watchers are separate processes: each watches every key from when it
starts, and when its stream breaks (its node crashed) resumes on another
node from the revision after the last it saw, as etcd clients do.

The history (checker JSON schema, sim/history_json.py) and the watch
streams are collected by the world.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import simpy

from chainfire_core.errors import ChainfireError, NotLeader, ProposalDropped
from chainfire_core.lease.messages import (
    LeaseGrantRequest,
    LeaseKeepAliveRequest,
    LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
)
from chainfire_core.mvcc.messages import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from chainfire_core.mvcc.watch_messages import WatchCreateRequest, WatchResponse
from chainfire_core.node_messages import ClientRequest, ClientResponse, ReadConsistency
from chainfire_core.types import LeaseId, NodeId, Revision
from checker.watch_check import WatchStream, stream_from_json
from sim.history_json import error_json, is_definite, watch_delivery_json

if TYPE_CHECKING:
    from sim.world import World

REFUSED = "refused"
TIMED_OUT = "timeout"
BACKOFF_MS = (20.0, 200.0)
KEY_PREFIX = b"k"

Event = Generator[simpy.Event, Any, Any]


@dataclass(slots=True)
class Outcome:
    ok: bool
    output: dict[str, Any] | None  # None: indeterminate


class Client:
    def __init__(self, world: World, client_id: int, rng: random.Random) -> None:
        self.world = world
        self.env = world.env
        self.id = client_id
        self.rng = rng
        self.endpoint = self._any_node()
        self.counter = 0
        self.values: dict[bytes, bytes] = {}
        self.revisions: list[int] = []
        self.leases: list[LeaseId] = []
        self.liveness_done_ms: float | None = None

    def _any_node(self) -> NodeId:
        return self.rng.choice(self.world.endpoints())

    def key(self) -> bytes:
        return KEY_PREFIX + str(self.rng.randrange(self.world.params.keys)).encode()

    def value(self) -> bytes:
        self.counter += 1
        return f"c{self.id}-{self.counter}".encode()

    # -- the process -------------------------------------------------------------

    def run(self) -> Event:
        world = self.world
        yield self.env.timeout(self.rng.uniform(0, world.params.think_ms))
        while not world.safety_over:
            request, consistency = self.pick()
            yield from self.execute(request, consistency,
                                    deadline=self.env.now + world.params.client_timeout_ms * 3)
            think_ms = world.params.think_ms
            yield self.env.timeout(self.rng.expovariate(1.0 / think_ms) if think_ms else 0.0)
        yield world.healed
        # Liveness: writes until one succeeds (an indeterminate one proves
        # nothing), within the budget.
        deadline = world.liveness_deadline_ms
        while self.env.now < deadline:
            outcome = yield from self.execute(PutRequest(key=self.key(), value=self.value()),
                                              ReadConsistency.LINEARIZABLE, deadline=deadline)
            if outcome.ok:
                self.liveness_done_ms = self.env.now
                return
            yield self.env.timeout(self.rng.uniform(*BACKOFF_MS))

    def pick(self) -> tuple[ClientRequest, ReadConsistency]:
        roll = self.rng.random()
        linear = ReadConsistency.LINEARIZABLE
        if roll < 0.25:
            return PutRequest(key=self.key(), value=self.value()), linear
        if roll < 0.45:
            consistency = (ReadConsistency.SERIALIZABLE if self.rng.random() < 0.3 else linear)
            return RangeRequest(key=self.key()), consistency
        if roll < 0.50:
            return RangeRequest(key=KEY_PREFIX, range_end=b"l"), linear
        if roll < 0.53 and self.revisions:
            return RangeRequest(key=self.key(), revision=self.rng.choice(self.revisions)), linear
        if roll < 0.60:
            return DeleteRangeRequest(key=self.key()), linear
        if roll < 0.72:
            return self.txn(), linear
        if roll < 0.99:
            return self.lease_op(), linear
        if self.revisions:
            return CompactionRequest(revision=Revision(max(1, max(self.revisions) - 50))), linear
        return PutRequest(key=self.key(), value=self.value()), linear

    def txn(self) -> TxnRequest:
        key = self.key()
        roll = self.rng.random()
        if roll < 0.5:  # compare-and-swap on the value this client last saw
            seen = self.values.get(key, b"")
            return TxnRequest(
                compare=(Compare(key=key, target=CompareTarget.VALUE,
                                 result=CompareResult.EQUAL, value=seen),),
                success=(PutRequest(key=key, value=self.value()),),
                failure=(RangeRequest(key=key),))
        if roll < 0.8:  # multi-key write
            other = self.key()
            if other == key:
                return TxnRequest(success=(PutRequest(key=key, value=self.value()),))
            return TxnRequest(success=(PutRequest(key=key, value=self.value()),
                                       PutRequest(key=other, value=self.value())))
        return TxnRequest(  # delete if present, else create
            compare=(Compare(key=key, target=CompareTarget.VERSION,
                             result=CompareResult.GREATER, value=0),),
            success=(DeleteRangeRequest(key=key, prev_kv=True),),
            failure=(PutRequest(key=key, value=self.value()),))

    def lease_op(self) -> ClientRequest:
        roll = self.rng.random()
        if not self.leases or roll < 0.2:
            return LeaseGrantRequest(ttl_s=self.rng.randint(*self.world.params.lease_ttl_s))
        lease = self.rng.choice(self.leases)
        if roll < 0.6:
            return PutRequest(key=self.key(), value=self.value(), lease=lease)
        if roll < 0.8:
            return LeaseKeepAliveRequest(id=lease)
        if roll < 0.9:
            return LeaseTimeToLiveRequest(id=lease, keys=True)
        return LeaseRevokeRequest(id=lease)

    # -- one operation ---------------------------------------------------------------

    def execute(self, request: ClientRequest, consistency: ReadConsistency, *,
                deadline: float) -> Generator[simpy.Event, Any, Outcome]:
        world = self.world
        op = world.history.begin(self.id, self.endpoint, request,
                                 consistency == ReadConsistency.SERIALIZABLE)
        last_error: ChainfireError | None = None
        while True:
            remaining = deadline - self.env.now
            if remaining <= 0:
                break
            timeout = min(world.params.client_timeout_ms, remaining)
            answer = yield from world.call(self.endpoint, request, consistency, timeout)
            if answer == REFUSED:
                self.endpoint = self._any_node()
            elif answer == TIMED_OUT:
                self.endpoint = self._any_node()
                world.history.indeterminate(op)
                return Outcome(ok=False, output=None)
            else:
                assert isinstance(answer, ClientResponse)
                if answer.error is None:
                    self.learn(request, answer.response)
                    return Outcome(ok=True, output=world.history.finish(op, answer.response))
                error = answer.error
                if not is_definite(error):
                    self.endpoint = self._any_node()
                    world.history.indeterminate(op)
                    return Outcome(ok=False, output=None)
                if not isinstance(error, NotLeader | ProposalDropped):
                    output = error_json(error)
                    world.history.fail(op, output)
                    if "lease" in output.get("error", ""):
                        self.forget_leases(request)
                    return Outcome(ok=False, output=output)
                last_error = error
                hint = error.leader_hint if isinstance(error, NotLeader) else 0
                self.endpoint = NodeId(hint) if hint and world.has_node(NodeId(hint)) \
                    else self._any_node()
            yield self.env.timeout(self.rng.uniform(*BACKOFF_MS))
        # No error at all: every attempt was refused at the door.
        output = {"error": "unavailable"} if last_error is None else error_json(last_error)
        world.history.fail(op, output)
        return Outcome(ok=False, output=output)

    def learn(self, request: ClientRequest, response: object) -> None:
        revision = getattr(getattr(response, "header", None), "revision", None)
        if isinstance(revision, int) and revision > 0:
            self.revisions.append(revision)
            del self.revisions[:-20]
        if isinstance(request, RangeRequest) and not request.range_end and not request.revision:
            kvs = getattr(response, "kvs", ())
            self.values[request.key] = kvs[0].value if kvs else b""
        elif isinstance(request, PutRequest):
            self.values[request.key] = request.value
        elif isinstance(request, LeaseGrantRequest):
            self.leases.append(LeaseId(response.id))  # type: ignore[attr-defined]
            del self.leases[:-3]
        elif isinstance(request, LeaseRevokeRequest) and request.id in self.leases:
            self.leases.remove(request.id)

    def forget_leases(self, request: ClientRequest) -> None:
        lease = LeaseId(getattr(request, "lease", 0) or getattr(request, "id", 0))
        if lease in self.leases:
            self.leases.remove(lease)


@dataclass(slots=True)
class _StreamRecord:
    id: str
    key: str
    range_end: str
    start_revision: int
    resumes: str | None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    broken: bool = False
    # A stream is one ordered connection: nothing overtakes what was sent before.
    last_arrival_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "range_end": self.range_end,
                "start_revision": self.start_revision, "resumes": self.resumes,
                "filters": [], "deliveries": self.deliveries}

    def as_stream(self) -> WatchStream:
        """The checker's view, which knows where a stream starts and what it saw."""
        return stream_from_json(self.to_json())


class Watcher:
    """Watches every key; resumes on another node when its stream breaks."""

    def __init__(self, world: World, watcher_id: int, rng: random.Random) -> None:
        self.world = world
        self.env = world.env
        self.id = watcher_id
        self.rng = rng
        self.streams: list[_StreamRecord] = []

    def run(self) -> Event:
        world = self.world
        previous: _StreamRecord | None = None
        while not world.finished:
            node = self.rng.choice(world.endpoints())
            start, resumes = 0, None
            stream = None if previous is None else previous.as_stream()
            if previous is not None and stream is not None and stream.start() is not None:
                start = max(stream.seen() + 1, stream.start() or 0)
                resumes = previous.id
            record = _StreamRecord(id=f"w{self.id}.{len(self.streams)}", key="k",
                                   range_end="l", start_revision=start, resumes=resumes)
            broken = self.env.event()
            opened = yield from self.open(node, record, broken)
            if opened:
                self.streams.append(record)
                yield broken
                canceled = any(d.get("canceled") for d in record.deliveries)
                previous = None if canceled else record
            yield self.env.timeout(self.rng.uniform(*BACKOFF_MS))

    def open(self, node: NodeId, record: _StreamRecord,
             broken: simpy.Event) -> Generator[simpy.Event, Any, bool]:
        world = self.world
        yield self.env.timeout(world.client_latency_ms())

        def sink(response: WatchResponse | None) -> None:
            def arrive(_event: simpy.Event) -> None:
                if record.broken:
                    return
                if response is None:
                    record.broken = True
                    world.trace.emit(self.env.now, "watch", stream=record.id, broken=True)
                    broken.succeed()
                    return
                delivery = watch_delivery_json(response)
                record.deliveries.append(delivery)
                world.trace.emit(self.env.now, "watch", stream=record.id, delivery=delivery)
                if response.canceled:
                    record.broken = True
                    broken.succeed()
            now = self.env.now
            arrival = max(now + world.client_latency_ms(), record.last_arrival_ms)
            record.last_arrival_ms = arrival
            timer = self.env.timeout(arrival - now)
            timer.callbacks.append(arrive)

        request = WatchCreateRequest(key=b"k", range_end=b"l",
                                     start_revision=record.start_revision)
        try:
            watch_id = world.hosts[node].open_watch(request, sink)
        except ChainfireError:
            return False  # e.g. start revision compacted away on this node
        if watch_id is not None:
            world.trace.emit(self.env.now, "watch", stream=record.id, watcher=self.id,
                             node=node, start_revision=record.start_revision,
                             resumes=record.resumes)
        return watch_id is not None


__all__ = ["REFUSED", "TIMED_OUT", "Client", "Outcome", "Watcher"]
