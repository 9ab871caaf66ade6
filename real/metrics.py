"""NodeMetrics: a node's Prometheus metrics, under etcd's names.

Theory of operation
-------------------
One `NodeMetrics` per `NodeRuntime`, with its own `CollectorRegistry` (never
prometheus_client's global one), so several nodes can live in one process
(tests, embedding) without their figures mixing.

It gets its figures two ways:

* as the runtime's `observer` (real/runtime.py's `RuntimeObserver`) it
  hears of each request taken and finished and of each Ready carried out,
  and counts: proposals pending and failed, leases granted / revoked /
  renewed through this member, leader changes (from the Ready's soft
  state, as etcd counts them), and the time each persist and fsync took
  (two histograms with etcd's buckets);
* everything else is read from the node when the registry is scraped
  (`collect`): has_leader, is_leader, committed and applied index, keys,
  revision, watchers, leases. A scrape runs on the event loop thread
  (real/metrics_http.py), so it sees the node between two Readies.

With gossip on, `watch_gossip` adds a `GossipCollector` to the same
registry: the other members by gossip state, event counters and the UDP
agent's datagram counts (chainfire_gossip_*, Chainfire's own names).

Names and types follow etcd 3.4's /metrics (docs "Metrics" and the v3.4
metrics list): e.g. `etcd_server_proposals_committed_total` is a gauge there
too. Where Chainfire differs from etcd underneath, the help text says so:
the Raft log and the backend are one SQLite database, whose commit is the
fsync, so `etcd_disk_wal_fsync_duration_seconds` times that commit and
`etcd_disk_backend_commit_duration_seconds` the whole persist step (rows
written plus the commit). The counters only ever grow; they start at zero
when the process starts, as etcd's do.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chainfire_core.errors import ChainfireError
from chainfire_core.lease.messages import (
    LeaseGrantRequest,
    LeaseKeepAliveRequest,
    LeaseLeasesRequest,
    LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
)
from chainfire_core.mvcc.messages import RangeRequest
from chainfire_core.node import NodeReady
from chainfire_core.node_messages import ClientRequest, MemberListRequest, StatusRequest
from chainfire_core.types import NodeId
from real.gossip_cluster import REPORTED_STATES, ClusterGossip
from real.runtime import NodeRuntime

# etcd's buckets for both disk histograms: 1 ms doubling to about 8 s.
DISK_BUCKETS_S = tuple(0.001 * 2**i for i in range(14))
# Requests answered without a Raft proposal.
_NOT_PROPOSALS = (RangeRequest, StatusRequest, MemberListRequest, LeaseTimeToLiveRequest,
                  LeaseLeasesRequest, LeaseKeepAliveRequest)


class NodeMetrics(Collector):
    """The metrics of one runtime; attach with `runtime.observer = metrics`."""

    def __init__(self, runtime: NodeRuntime, registry: CollectorRegistry | None = None, *,
                 gossip: ClusterGossip | None = None) -> None:
        self.runtime = runtime
        self.registry = registry if registry is not None else CollectorRegistry()
        self.wal_fsync = Histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by the WAL (Chainfire: the "
            "SQLite commit that fsyncs a Ready's log entries and hard state).",
            buckets=DISK_BUCKETS_S, registry=self.registry)
        self.backend_commit = Histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by the backend (Chainfire: a "
            "Ready's whole persist step, rows written plus the fsynced commit).",
            buckets=DISK_BUCKETS_S, registry=self.registry)
        self.proposals_pending = 0
        self.proposals_failed = 0
        self.leader_changes = 0
        self.leases_granted = 0
        self.leases_revoked = 0
        self.leases_renewed = 0
        self._lead = NodeId(0)
        self.registry.register(self)
        if gossip is not None:
            self.watch_gossip(gossip)

    def watch_gossip(self, gossip: ClusterGossip) -> None:
        """Export `gossip`'s figures too (chainfire_gossip_*)."""
        self.registry.register(GossipCollector(gossip))

    def registry_text(self) -> str:
        """The registry in Prometheus' text format (what /metrics serves)."""
        return generate_latest(self.registry).decode()

    # -- RuntimeObserver --------------------------------------------------------------------

    def request_started(self, request: ClientRequest) -> None:
        if not isinstance(request, _NOT_PROPOSALS):
            self.proposals_pending += 1

    def request_finished(self, request: ClientRequest, error: BaseException | None) -> None:
        if not isinstance(request, _NOT_PROPOSALS):
            self.proposals_pending -= 1
            assert self.proposals_pending >= 0, self.proposals_pending
            if isinstance(error, ChainfireError):
                self.proposals_failed += 1
        if error is not None:
            return
        if isinstance(request, LeaseGrantRequest):
            self.leases_granted += 1
        elif isinstance(request, LeaseRevokeRequest):
            self.leases_revoked += 1
        elif isinstance(request, LeaseKeepAliveRequest):
            self.leases_renewed += 1

    def carried_out(self, ready: NodeReady, save_s: float, sync_s: float | None) -> None:
        raft = ready.raft
        if raft is None:
            return
        if sync_s is not None:
            self.wal_fsync.observe(sync_s)
            self.backend_commit.observe(save_s + sync_s)
        soft = raft.soft_state
        if soft is not None and soft.lead != self._lead:
            if soft.lead != 0:  # etcd counts each new leader, not the gaps between
                self.leader_changes += 1
            self._lead = soft.lead

    # -- Collector ----------------------------------------------------------------------------

    def describe(self) -> list[Metric]:
        return []  # collected on demand; nothing to check for clashes ahead of time

    def collect(self) -> Iterator[Metric]:
        node = self.runtime.node
        raft = node.raw.raft
        yield _gauge("etcd_server_has_leader",
                     "Whether or not a leader exists. 1 is existence, 0 is not.",
                     1 if raft.lead else 0)
        yield _gauge("etcd_server_is_leader",
                     "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                     1 if node.is_leader else 0)
        yield _counter("etcd_server_leader_changes_seen",
                       "The number of leader changes seen.", self.leader_changes)
        yield _gauge("etcd_server_proposals_committed_total",
                     "The total number of consensus proposals committed.", raft.log.committed)
        yield _gauge("etcd_server_proposals_applied_total",
                     "The total number of consensus proposals applied.", raft.log.applied)
        yield _gauge("etcd_server_proposals_pending",
                     "The current number of pending proposals to commit.",
                     self.proposals_pending)
        yield _counter("etcd_server_proposals_failed",
                       "The total number of failed proposals seen.", self.proposals_failed)
        yield from self._collect_store()
        yield from self._collect_leases()

    def _collect_store(self) -> Iterator[Metric]:
        node = self.runtime.node
        status = node.status()
        yield _gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.",
                     status.keys_total)
        yield _gauge("etcd_debugging_mvcc_current_revision",
                     "The current revision of store.", status.revision)
        yield _gauge("etcd_debugging_mvcc_compact_revision",
                     "The revision of the last compaction in store.", status.compact_revision)
        yield _gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.",
                     node.sm.watches.watcher_count)

    def _collect_leases(self) -> Iterator[Metric]:
        yield _counter("etcd_debugging_lease_granted",
                       "The total number of granted leases (through this member).",
                       self.leases_granted)
        yield _counter("etcd_debugging_lease_revoked",
                       "The total number of revoked leases (by clients of this member; "
                       "expiries are not counted).", self.leases_revoked)
        yield _counter("etcd_debugging_lease_renewed",
                       "The number of renewed leases seen by the leader.", self.leases_renewed)
        yield _gauge("chainfire_lease_active", "The number of leases that exist now.",
                     len(self.runtime.node.sm.lessor.leases()))


class GossipCollector(Collector):
    """The gossip figures of a member (real/gossip_cluster.py), read on scrape."""

    def __init__(self, gossip: ClusterGossip) -> None:
        self.gossip = gossip

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        gossip, counters = self.gossip, self.gossip.counters
        members = GaugeMetricFamily(
            "chainfire_gossip_members", "The other members of the Raft member table by "
            "their gossip state as this member sees it (unknown: never heard of).",
            labels=["state"])
        states = list(gossip.states().values())
        for state in REPORTED_STATES:
            members.add_metric([state], states.count(state))
        yield members
        yield _counter("chainfire_gossip_suspicions", "Members this member heard suspected.",
                       counters.suspicions)
        yield _counter("chainfire_gossip_refuted_suspicions", "Suspected members alive again "
                       "before being declared dead (false suspicions).",
                       counters.refuted_suspicions)
        yield _counter("chainfire_gossip_dead", "Members this member heard declared dead.",
                       counters.deaths)
        yield _counter("chainfire_gossip_recoveries", "Members declared dead or departed "
                       "that are alive again.", counters.recoveries)
        yield _counter("chainfire_gossip_departures", "Members that left gossip gracefully.",
                       counters.departures)
        yield _counter("chainfire_gossip_self_refutations", "Times this member refuted a "
                       "suspicion (or death) of itself.", counters.self_refutations)
        yield from self._collect_agent()

    def _collect_agent(self) -> Iterator[Metric]:
        agent = self.gossip.agent
        if agent is None:
            return
        stats = agent.stats
        yield _counter("chainfire_gossip_datagrams_received", "UDP datagrams received.",
                       stats.datagrams_in)
        yield _counter("chainfire_gossip_datagrams_sent", "UDP datagrams sent.",
                       stats.datagrams_out)
        dropped = CounterMetricFamily(
            "chainfire_gossip_datagrams_dropped", "Datagrams received and dropped: "
            "malformed (not one valid message) or misdelivered (for another member).",
            labels=["reason"])
        dropped.add_metric(["malformed"], stats.malformed)
        dropped.add_metric(["misdelivered"], stats.misdelivered)
        yield dropped
        yield _counter("chainfire_gossip_send_failures", "Datagrams not sent (no address "
                       "known) or refused (e.g. ICMP port unreachable).", stats.unreachable)
        node = agent.node
        if node is not None:
            yield _gauge("chainfire_gossip_local_health", "Lifeguard's local health "
                         "multiplier (0: healthy; probes are stretched by it + 1).",
                         node.health.score)
            yield _gauge("chainfire_gossip_incarnation", "This member's SWIM incarnation.",
                         node.incarnation)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    """A counter family; prometheus_client appends `_total` to `name`."""
    return CounterMetricFamily(name, documentation, value=value)


__all__ = ["DISK_BUCKETS_S", "GossipCollector", "NodeMetrics"]
