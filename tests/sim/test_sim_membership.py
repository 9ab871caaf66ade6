"""Membership requests in the simulated world: MemberUpdate sent to a
follower, over the simulated network and disks, lands in every member's
table, survives a crash and restart of the member it moved, and the run
stays deterministic."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from chainfire_core.node_messages import (
    ClientResponse,
    Member,
    MemberResponse,
    MemberUpdateRequest,
    ReadConsistency,
)
from chainfire_core.types import NodeId
from sim.options import RunOptions
from sim.trace import Trace
from sim.world import World

MOVED = ("sim://n2-moved", "sim://n2-alt")
CALL_TIMEOUT_MS = 5_000.0


def _members(world: World) -> dict[NodeId, tuple[Member, ...]]:
    return {node_id: host.node.members.all() for node_id, host in sorted(world.hosts.items())
            if host.node is not None}


def _scenario(seed: int) -> tuple[object, dict[NodeId, tuple[Member, ...]]]:
    world = World(RunOptions(seed=seed, nodes=3, clients=1, faults=()), Trace(full=False))
    for node_id in sorted(world.hosts):
        world.hosts[node_id].start()
    answers: list[object] = []

    def operator() -> Generator[simpy.Event, Any, None]:
        while world.leader() is None:
            yield world.env.timeout(100.0)
        follower = next(n for n in world.endpoints() if n != world.leader())
        answer = yield from world.call(follower, MemberUpdateRequest(id=NodeId(2),
                                                                     peer_urls=MOVED),
                                       ReadConsistency.LINEARIZABLE, CALL_TIMEOUT_MS)
        answers.append(answer)
        yield world.env.timeout(1_000.0)
        world.hosts[NodeId(2)].crash()
        yield world.env.timeout(500.0)
        world.hosts[NodeId(2)].restart()

    world.env.process(operator())
    world.env.run(until=10_000)
    for host in world.hosts.values():
        assert host.node is not None
        host.node.check_invariants()
    assert len(answers) == 1
    return answers[0], _members(world)


def test_member_update_reaches_every_member_and_survives_a_restart() -> None:
    answered, tables = _scenario(seed=5)
    assert isinstance(answered, ClientResponse) and answered.error is None, answered
    answer = answered.response
    assert isinstance(answer, MemberResponse), answer
    assert answer.member is not None and answer.member.peer_urls == MOVED
    assert sorted(tables) == [1, 2, 3]
    for table in tables.values():
        by_id = {member.id: member for member in table}
        assert sorted(by_id) == [1, 2, 3]
        assert by_id[NodeId(2)].peer_urls == MOVED and not by_id[NodeId(2)].is_learner
        assert by_id[NodeId(1)].peer_urls != MOVED


def test_member_update_runs_are_deterministic() -> None:
    assert _scenario(seed=11) == _scenario(seed=11)
