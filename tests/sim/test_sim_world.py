"""The simulator's components: partition shapes, the network, the host's
persistence rule, the nemesis's heal, options, and that every check can fail."""

from __future__ import annotations

import dataclasses
import random

import networkx as nx
import pytest

from chainfire_core.raft.messages import ForwardedProposal, Heartbeat
from chainfire_core.types import NodeId, Term
from sim import partitions
from sim.checks import run_checks
from sim.options import (
    FAULT_KINDS,
    OptionError,
    RunOptions,
    draw_params,
    parse_duration_ms,
    parse_faults,
)
from sim.rng import RngTree
from sim.trace import Trace
from sim.world import World

NODES = [NodeId(n) for n in range(1, 6)]


def _world(**options: object) -> World:
    return World(RunOptions(**options), Trace(full=False))  # type: ignore[arg-type]


# -- partitions -------------------------------------------------------------------


def _reach(graph: nx.DiGraph, node: NodeId) -> set[NodeId]:
    return {v for _, v in graph.out_edges(node)} | {node}


def test_halves_leave_one_majority_side() -> None:
    graph, groups = partitions.build("halves", NODES, None, random.Random(1))
    assert sorted(len(g) for g in groups) == [2, 3]
    for group in groups:
        for node in group:
            assert _reach(graph, node) == set(group)


def test_isolate_leader_cuts_the_leader_off() -> None:
    graph, groups = partitions.build("isolate_leader", NODES, NodeId(4), random.Random(1))
    assert groups[0] == [4]
    assert _reach(graph, NodeId(4)) == {4}


def test_majority_ring_gives_everyone_a_different_majority() -> None:
    graph, _ = partitions.build("majority_ring", NODES, None, random.Random(3))
    views = {node: frozenset(_reach(graph, node)) for node in NODES}
    assert all(len(view) == 3 for view in views.values())
    assert len(set(views.values())) == 5, "no two nodes see the same majority"
    # non-transitive: some a -> b -> c without a -> c
    assert any(c not in views[a] for a in NODES for b in views[a] for c in views[b])


def test_a_ring_of_three_is_not_offered() -> None:
    assert "majority_ring" not in partitions.shapes_for(3)
    assert "majority_ring" in partitions.shapes_for(5)


def test_bridge_node_sees_both_sides_and_the_sides_do_not_meet() -> None:
    graph, (left, right) = partitions.build("bridge", NODES, None, random.Random(2))
    bridge = (set(left) & set(right)).pop()
    assert _reach(graph, bridge) == set(NODES)
    for a in set(left) - {bridge}:
        for b in set(right) - {bridge}:
            assert not graph.has_edge(a, b) and not graph.has_edge(b, a)


def test_one_way_cuts_only_one_direction() -> None:
    graph, groups = partitions.build("one_way", NODES, None, random.Random(5))
    victim = groups[0][0]
    others = [n for n in NODES if n != victim]
    out = [graph.has_edge(victim, o) for o in others]
    back = [graph.has_edge(o, victim) for o in others]
    assert (not any(out) and all(back)) or (all(out) and not any(back))


# -- the network --------------------------------------------------------------------


def test_network_drops_across_a_partition_and_never_duplicates_forwarded_proposals() -> None:
    world = _world(seed=1, nodes=3)
    network = world.network
    network.duplicate = 1.0  # every packet duplicated ...
    delivered: list[object] = []
    network.deliver = lambda packet: bool(delivered.extend(packet)) or True
    network.send(Heartbeat(sender=NodeId(1), to=NodeId(2), term=Term(1), commit=0))
    network.send(ForwardedProposal(sender=NodeId(2), to=NodeId(1), term=Term(1), entries=()))
    world.env.run(until=1000)
    kinds = sorted(type(m).__name__ for m in delivered)
    assert kinds == ["ForwardedProposal", "Heartbeat", "Heartbeat"]  # ... but the proposal
    delivered.clear()
    network.partition(frozenset({(NodeId(1), NodeId(1))}), frozenset(NODES[:3]))
    network.send(Heartbeat(sender=NodeId(1), to=NodeId(2), term=Term(1), commit=0))
    world.env.run(until=2000)
    assert delivered == [] and network.dropped == 1


# -- the host ---------------------------------------------------------------------------


def test_the_driver_refuses_to_send_what_is_not_durable(monkeypatch: pytest.MonkeyPatch) -> None:
    # A disk that forgets to sync: the first vote or append acknowledgement
    # must trip the persistence rule and abort the run as an invariant failure.
    from sim.disk import SimDisk

    monkeypatch.setattr(SimDisk, "sync", lambda self, seq: None)
    world = _world(seed=2, nodes=3, duration_ms=3_000, clients=2, faults=())
    world.run()
    assert world.aborted is not None and "before persisting" in world.aborted
    outcomes = {c.name: c for c in run_checks(world)}
    assert outcomes["invariant"].status == "fail"


def test_heal_undoes_every_fault() -> None:
    world = _world(seed=4, nodes=5, duration_ms=20_000, clients=3)
    world.env.process(world.nemesis.run())
    for node in sorted(world.hosts):
        world.hosts[node].start()
    world.env.run(until=15_000)
    world.nemesis.heal_all()
    assert not world.network.partitioned
    assert world.network.loss == world.network.duplicate == world.network.reorder == 0
    for node in world.endpoints():
        host = world.hosts[node]
        assert host.state in ("up", "failed"), (node, host.state)
        assert host.rate == world.base_rates[node]


# -- every check can fail ---------------------------------------------------------------


def test_a_tampered_history_fails_linearizability() -> None:
    world = _world(seed=6, nodes=3, duration_ms=3_000, clients=3, faults=())
    world.run()
    assert {c.name: c.status for c in run_checks(world)}["linearizability"] == "pass"
    ops = world.history.operations
    index = next(i for i, op in enumerate(ops) if op.input["f"] == "put" and op.output)
    # The put claims a revision the cluster never reached.
    ops[index] = dataclasses.replace(ops[index], output={"revision": 10**6})
    outcomes = {c.name: c.status for c in run_checks(world)}
    assert outcomes["linearizability"] == "fail"


def test_a_cluster_that_never_recovers_fails_liveness(monkeypatch: pytest.MonkeyPatch) -> None:
    world = _world(seed=7, nodes=3, duration_ms=2_000, clients=2, faults=(),
                   liveness_budget_ms=3_000)

    def crash_majority() -> None:
        for node in (NodeId(1), NodeId(2)):
            world.hosts[node].crash()

    monkeypatch.setattr(world.nemesis, "heal_all", crash_majority)
    world.run()
    outcome = {c.name: c for c in run_checks(world)}["liveness"]
    assert outcome.status == "fail" and "did not complete a write" in outcome.messages[-1]


# -- options ------------------------------------------------------------------------------


def test_options_parse_and_refuse_clearly() -> None:
    assert parse_faults("crash,partition") == ("partition", "crash")
    assert parse_faults("all") == FAULT_KINDS and parse_faults("none") == ()
    assert parse_duration_ms("60s") == 60_000 and parse_duration_ms("1500ms") == 1500
    assert parse_duration_ms("2m") == 120_000 and parse_duration_ms("3") == 3000
    with pytest.raises(OptionError, match="meteor"):
        parse_faults("meteor")
    with pytest.raises(OptionError, match="duration"):
        parse_duration_ms("later")
    with pytest.raises(OptionError, match="nodes"):
        RunOptions(nodes=0)
    with pytest.raises(OptionError, match="unknown run options: warp"):
        RunOptions.from_json({"seed": 1, "warp": 9})
    assert RunOptions.from_json(RunOptions(seed=3).to_json()) == RunOptions(seed=3)


def test_disabled_faults_draw_no_rates() -> None:
    params = draw_params(RunOptions(faults=("partition",)), RngTree(1).child("params"))
    assert params.loss == params.duplicate == params.reorder == params.spike == 0
    assert params.max_clock_rate == 1.0 and not params.torn_writes
    assert params.corrupt_on_crash == 0


def test_child_rngs_do_not_depend_on_each_other() -> None:
    tree = RngTree(5)
    first = tree.child("network").random()
    tree.child("clients").random()
    assert RngTree(5).child("network").random() == first
    assert RngTree(6).child("network").random() != first
