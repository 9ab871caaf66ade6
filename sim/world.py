"""The simulated world: one SimPy environment, N hosts, the network, the
clients, the watchers and the nemesis, and the three phases of a run.

Theory of operation
-------------------
`World(options)` derives every random stream from the seed (sim/rng.py),
draws the run's parameters (sim/options.py), and builds the hosts on a
bootstrap snapshot naming the initial voters. `run()`:

1. safety phase (`duration_ms`): clients and watchers work, the nemesis
   injects faults, the network loses, duplicates and reorders;
2. heal: every fault undone (partitions healed, crashed nodes restarted,
   paused ones resumed, clocks reset, network rates zeroed);
3. liveness phase: within `liveness_budget_ms` the cluster must have a
   leader and every client must complete one more write.

Client traffic (`rpc`) crosses a client link with its own latency but no
partitions (clients sit on the operators' network, as in Jepsen): a request
to a process that is not running is refused after one hop, a request that a
node accepted but never answered times out at the client.

An assertion inside the world (a node's invariants, the persistence rule in
the host) stops the run at once; `run()` returns it as `aborted`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import simpy

from chainfire_core.node_messages import ClientRequest, ReadConsistency
from chainfire_core.raft.messages import InstallSnapshot
from chainfire_core.raft.raft import Role
from chainfire_core.raft.storage import MemoryStorage
from chainfire_core.types import NodeId
from sim.clock import draw_clock
from sim.host import NodeHost, bootstrap_storage
from sim.monitor import SafetyMonitor
from sim.nemesis import Nemesis
from sim.network import Network
from sim.options import RunOptions, SimParams, draw_params
from sim.recorder import History
from sim.rng import RngTree
from sim.schedule import FaultEvent
from sim.trace import Trace
from sim.workload import REFUSED, TIMED_OUT, Client, Watcher

CLIENT_LATENCY_MS = (0.1, 1.0)


class World:
    def __init__(self, options: RunOptions, trace: Trace,
                 script: Sequence[FaultEvent] | None = None) -> None:
        self.options = options
        self.rngs = RngTree(options.seed)
        self.params: SimParams = draw_params(options, self.rngs.child("params"))
        self.trace = trace
        self.env = simpy.Environment()
        self.monitor = SafetyMonitor()
        self.network = Network(self.env, self.rngs.child("network"), self.params, trace=trace,
                               deliver=self._deliver, feedback=self._feedback,
                               on_send=self.monitor.message_sent)
        self._client_net = self.rngs.child("client-network")
        self._clock_rng = self.rngs.child("clocks")
        self.history = History(lambda: self.env.now, trace)
        self.hosts: dict[NodeId, NodeHost] = {}
        self.base_rates: dict[NodeId, float] = {}
        self._next_request_id = 1
        self._next_node_id = options.nodes + 1
        self.safety_over = False
        self.finished = False
        self.healed = self.env.event()
        self.liveness_deadline_ms = 0.0
        self.heal_ms = 0.0
        self.leader_changes = 0
        self._current_leader: NodeId | None = None
        self.aborted: str | None = None
        voters = tuple(NodeId(i) for i in range(1, options.nodes + 1))
        for node_id in voters:
            self._make_host(node_id, bootstrap_storage(voters))
        self.clients = [Client(self, c, self.rngs.child(f"client/{c}"))
                        for c in range(1, options.clients + 1)]
        self.watchers = [Watcher(self, w, self.rngs.child(f"watcher/{w}"))
                         for w in range(1, self.params.watchers + 1)]
        self.nemesis = Nemesis(self, self.rngs.child("nemesis"), script)

    # -- membership of the world ------------------------------------------------------

    def _make_host(self, node_id: NodeId, storage: MemoryStorage) -> NodeHost:
        clock = draw_clock(self._clock_rng, self.params)
        self.base_rates[node_id] = clock.rate
        host = NodeHost(self, node_id, storage, clock.rate, clock.phase_ms)
        self.hosts[node_id] = host
        return host

    def next_node_id(self) -> NodeId:
        node_id = NodeId(self._next_node_id)
        self._next_node_id += 1
        return node_id

    def add_host(self, node_id: NodeId) -> None:
        """A member just added: a new process with an empty disk joins."""
        self._make_host(node_id, MemoryStorage()).start()

    def remove_host(self, node_id: NodeId) -> None:
        host = self.hosts[node_id]
        host.crash()
        host.removed = True

    def endpoints(self) -> list[NodeId]:
        return [n for n in sorted(self.hosts) if not self.hosts[n].removed]

    def has_node(self, node_id: NodeId) -> bool:
        return node_id in self.hosts and not self.hosts[node_id].removed

    def voters(self) -> list[NodeId]:
        for node_id in self.endpoints():
            host = self.hosts[node_id]
            if host.state == "up" and host.node is not None and host.node.is_leader:
                return sorted(host.node.raw.raft.tracker.conf_state().voters)
        return [n for n in self.endpoints() if n <= self.options.nodes]

    def leader(self) -> NodeId | None:
        """The leader with the highest term among running nodes (the nemesis's view)."""
        best: tuple[int, NodeId] | None = None
        for node_id in self.endpoints():
            host = self.hosts[node_id]
            if host.state == "up" and host.node is not None and host.node.is_leader:
                term = host.node.raw.raft.term
                if best is None or term > best[0]:
                    best = (term, node_id)
        return None if best is None else best[1]

    def on_role(self, node: NodeId, role: Role, term: int) -> None:
        if role == Role.LEADER:
            self.monitor.leader(term, node, self.env.now)
            if node != self._current_leader:
                self.leader_changes += 1
                self._current_leader = node

    # -- messages -------------------------------------------------------------------------

    def _deliver(self, packet: tuple[Any, ...]) -> bool:
        host = self.hosts.get(packet[0].to)
        return host is not None and host.deliver(packet)

    def _feedback(self, message: Any, delivered: bool) -> None:
        host = self.hosts.get(message.sender)
        if host is None or host.state != "up" or host.node is None:
            return
        if isinstance(message, InstallSnapshot):
            host.node.report_snapshot(message.to, ok=delivered)
        else:
            host.node.report_unreachable(message.to)
        host.kick()

    def client_latency_ms(self) -> float:
        return self._client_net.uniform(*CLIENT_LATENCY_MS)

    def rpc(self, node: NodeId, request: ClientRequest, consistency: ReadConsistency,
            finish: Callable[[object], None]) -> None:
        """Send a client request to `node`; `finish` gets the answer (or REFUSED) at the client."""
        request_id = self._next_request_id
        self._next_request_id += 1

        def back(value: object) -> None:
            timer = self.env.timeout(self.client_latency_ms(), value)
            timer.callbacks.append(lambda event: finish(event.value))

        def arrive(_event: simpy.Event) -> None:
            host = self.hosts.get(node)
            if host is None or host.removed or not host.submit(request_id, request,
                                                               consistency, back):
                back(REFUSED)

        timer = self.env.timeout(self.client_latency_ms())
        timer.callbacks.append(arrive)

    def call(self, node: NodeId, request: ClientRequest, consistency: ReadConsistency,
             timeout_ms: float) -> Generator[simpy.Event, Any, object]:
        """`rpc` with a client-side timeout: the answer, REFUSED or TIMED_OUT."""
        done = self.env.event()

        def finish(value: object) -> None:
            if not done.triggered:
                done.succeed(value)

        self.rpc(node, request, consistency, finish)
        timer = self.env.timeout(timeout_ms)
        timer.callbacks.append(lambda _event: finish(TIMED_OUT))
        value = yield done
        return value

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> None:
        env, trace = self.env, self.trace
        for node_id in sorted(self.hosts):
            self.hosts[node_id].start()
        trace.emit(env.now, "phase", phase="safety")
        processes = [env.process(client.run()) for client in self.clients]
        for watcher in self.watchers:
            env.process(watcher.run())
        env.process(self.nemesis.run())
        try:
            env.run(until=self.options.duration_ms)
            self.safety_over = True
            self.heal_ms = env.now
            trace.emit(env.now, "phase", phase="heal")
            self.nemesis.heal_all()
            self.liveness_deadline_ms = env.now + self.options.liveness_budget_ms
            trace.emit(env.now, "phase", phase="liveness")
            self.healed.succeed()
            done = simpy.AllOf(env, processes)
            env.run(until=simpy.AnyOf(env, [done, env.timeout(self.options.liveness_budget_ms)]))
            self.finished = True
            for node_id in self.endpoints():
                host = self.hosts[node_id]
                if host.node is not None:
                    host.node.check_invariants()
        except AssertionError as error:
            where = traceback.extract_tb(error.__traceback__)[-1]
            self.aborted = (f"AssertionError at {Path(where.filename).name}:{where.lineno} "
                            f"({where.line}): {error}")
            self.finished = True
        self.history.close_open()


__all__ = ["World"]
