"""The stability check: leader churn while a partial partition holds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chainfire_core.types import NodeId
from sim import partitions, stability
from sim.options import RunOptions
from sim.run import simulate
from sim.schedule import FaultEvent

N = NodeId
# 5 nodes; 3 bridges {1,2,3} and {3,4,5}: each node is linked with a quorum (its side).
BRIDGE = partitions.PartitionSpec(shape="bridge", groups=((N(1), N(2), N(3)), (N(3), N(4), N(5))))
HALVES = partitions.PartitionSpec(shape="halves", groups=((N(1), N(2)), (N(3), N(4), N(5))))
GRACE_MS = 1000.0


def _partition(at_ms: float, spec: partitions.PartitionSpec, hold_ms: float
               ) -> tuple[dict[str, Any], FaultEvent]:
    record = {"t": at_ms, "ev": "fault", "kind": "partition", "name": spec.shape,
              "groups": [list(g) for g in spec.groups], "hold_ms": hold_ms}
    return record, FaultEvent(at_ms=at_ms, kind="partition", hold_ms=hold_ms, partition=spec)


def _leader(t: float, node: int, term: int) -> dict[str, Any]:
    return {"t": t, "ev": "role", "node": node, "role": "leader", "term": term}


def _follower(t: float, node: int, term: int) -> dict[str, Any]:
    return {"t": t, "ev": "role", "node": node, "role": "follower", "term": term}


def _run(roles: list[dict[str, Any]], spec: partitions.PartitionSpec = BRIDGE,
         others: tuple[FaultEvent, ...] = ()) -> list[stability.Churn]:
    start, event = _partition(2000.0, spec, 8000.0)
    heal = {"t": 10_000.0, "ev": "fault", "kind": "heal"}
    records = sorted([_leader(100.0, 1, 1), start, *roles, heal], key=lambda r: r["t"])
    return stability.violations(records, (event, *others), safety_end_ms=20_000.0,
                                grace=GRACE_MS)


def test_shapes_that_are_partial_and_leave_a_quorum() -> None:
    ring = partitions.PartitionSpec(shape="majority_ring",
                                    groups=(tuple(N(i) for i in range(1, 6)),))
    one_way = partitions.PartitionSpec(shape="one_way", groups=((N(2),), (N(1), N(3))),
                                       direction="in")
    for spec in (BRIDGE, ring, one_way):
        graph = partitions.graph(spec)
        assert stability.is_partial(graph), spec.shape
        assert stability.quorum_holders(graph), spec.shape
    assert not stability.is_partial(partitions.graph(HALVES))
    assert stability.quorum_holders(partitions.graph(BRIDGE)) == [1, 2, 3, 4, 5]
    # 4 nodes bridged by 2: node 1 sees only the bridge, short of a quorum of 3
    small = partitions.PartitionSpec(shape="bridge", groups=((N(1), N(2)), (N(2), N(3), N(4))))
    assert stability.quorum_holders(partitions.graph(small)) == [2, 3, 4]
    # the victim of a one-way cut hears nobody
    assert stability.quorum_holders(partitions.graph(one_way)) == [1, 3]


def test_a_leader_that_keeps_its_quorum_passes() -> None:
    # Leader 1 is deposed at once (within the grace), node 2 takes over and stays.
    assert _run([_follower(2100.0, 1, 2), _leader(2500.0, 2, 2)]) == []


def test_leaders_following_a_settled_one_are_churn() -> None:
    churns = _run([_follower(4000.0, 1, 2), _leader(4300.0, 4, 3), _follower(5200.0, 4, 4),
                   _leader(5500.0, 2, 5), _leader(7000.0, 5, 7)])
    assert len(churns) == 1
    churn = churns[0]
    assert (churn.leader, churn.leader_term, churn.settled_ms) == (1, 1, 3000.0)
    assert [node for _t, node, _term in churn.successors] == [4, 2, 5]
    message = churn.describe()
    assert "leader 1 (term 1)" in message and "3 leader(s) followed it within 4.00s" in message
    assert "bridge partition {1,2,3|3,4,5}" in message and "term rose 1 -> 7" in message


def test_the_first_leader_after_the_grace_settles_when_none_was_in_office() -> None:
    churns = _run([_follower(2200.0, 1, 2), _leader(3500.0, 3, 3), _leader(6000.0, 4, 4)])
    assert [(c.leader, len(c.successors)) for c in churns] == [(3, 1)]


def test_a_transitive_partition_is_not_watched() -> None:
    assert _run([_leader(4300.0, 4, 3), _leader(5500.0, 2, 5)], spec=HALVES) == []


def test_other_faults_cut_the_watched_stretch() -> None:
    churny = [_leader(4300.0, 4, 3), _leader(5500.0, 2, 5), _leader(9000.0, 1, 9),
              _leader(9800.0, 3, 10)]
    crash = FaultEvent(at_ms=3500.0, kind="crash", hold_ms=5000.0, node=N(5))
    # Before the crash the grace is not over; after the restart at 8.5s the
    # grace runs to 9.5s: leader 1 (elected 9.0s) settles, 3 follows it.
    [churn] = _run(churny, others=(crash,))
    assert churn.stretch.start_ms == 8500.0 and churn.leader == 1
    assert [node for _t, node, _term in churn.successors] == [3]
    member = FaultEvent(at_ms=3500.0, kind="member", action="add")
    assert _run(churny, others=(member,)) == []


_HUNT = RunOptions(seed=33, nodes=3, duration_ms=20_000, clients=8, faults=("partition",),
                   full_trace=False)


def test_the_check_finds_no_prevote_checkquorum_and_passes_without_it() -> None:
    buggy = simulate(replace(_HUNT, bugs=("no_prevote_checkquorum",)))
    outcome = {c.name: c for c in buggy.checks}["stability"]
    assert outcome.status == "fail"
    assert "leader churn" in outcome.messages[0]

    clean = simulate(_HUNT)
    assert {c.name: c.status for c in clean.checks}["stability"] == "pass"
    # The pass means something: a partial partition was watched after its grace.
    heal_ms = next(r["t"] for r in clean.summary_records
                   if r["ev"] == "phase" and r["phase"] == "heal")
    records = list(clean.summary_records)
    grace = stability.grace_ms(clean.params.election_ticks, clean.params.tick_ms,
                               clean.params.drift)
    watched = [stability.churn(records, s, grace)
               for s in stability.stretches(records, clean.events, heal_ms)]
    assert any(c is not None for c in watched)
