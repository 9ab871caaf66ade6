"""Auth through the simulator: a 3-node SimPy cluster (real network delays,
simulated disks and clocks) takes auth commands from a client process like
any other request; every replica ends with the same auth state, and the
token an Authenticate returns is known to every member."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from chainfire_core.auth import (
    AuthEnableRequest,
    AuthenticateRequest,
    AuthenticateResponse,
    Permission,
    PermissionType,
    RoleAddRequest,
    RoleGrantPermissionRequest,
    UserAddRequest,
    UserGrantRoleRequest,
)
from chainfire_core.errors import RoleAlreadyExist, UserAlreadyExist
from chainfire_core.mvcc.messages import prefix_end
from chainfire_core.node_messages import ClientRequest, ClientResponse, ReadConsistency
from sim.options import RunOptions
from sim.trace import Trace
from sim.world import World

SETUP: tuple[ClientRequest, ...] = (
    UserAddRequest(name="root", password="rootpw"),
    UserGrantRoleRequest(user="root", role="root"),
    RoleAddRequest(name="app"),
    RoleGrantPermissionRequest(name="app", perm=Permission(
        perm_type=PermissionType.READWRITE, key=b"/app/", range_end=prefix_end(b"/app/"))),
    UserAddRequest(name="alice", password="alicepw"),
    UserGrantRoleRequest(user="alice", role="app"),
    AuthEnableRequest(),
    AuthenticateRequest(name="alice", password="alicepw"),
)
# A retried add whose first try applied (the answer was lost) is done.
DONE_ALREADY = (UserAlreadyExist, RoleAlreadyExist)


def _admin(world: World, answers: list[object]) -> Generator[simpy.Event, Any, None]:
    for request in SETUP:
        while True:
            leader = world.leader()
            if leader is not None:
                answer = yield from world.call(leader, request, ReadConsistency.LINEARIZABLE,
                                               timeout_ms=2_000)
                if isinstance(answer, ClientResponse) and (
                        answer.error is None or isinstance(answer.error, DONE_ALREADY)):
                    answers.append(answer.response)
                    break
            yield world.env.timeout(100)


def test_auth_commands_replicate_through_the_simulated_cluster() -> None:
    world = World(RunOptions(seed=11, nodes=3, clients=1, duration_ms=10_000, faults=(),
                             full_trace=False), Trace(full=False))
    for node in sorted(world.hosts):
        world.hosts[node].start()
    answers: list[object] = []
    world.env.process(_admin(world, answers))
    world.env.run(until=10_000)
    assert world.aborted is None
    assert len(answers) == len(SETUP)
    token = answers[-1]
    assert isinstance(token, AuthenticateResponse)
    nodes = [world.hosts[n].node for n in sorted(world.hosts)]
    assert all(node is not None for node in nodes)
    states = set()
    for node in nodes:
        assert node is not None
        sm = node.sm
        states.add((sm.auth.enabled, sm.auth.revision, sm.auth.user_list(), sm.auth.role_list(),
                    sm.auth.user_get("alice"), sm.auth.role_get("app")))
        assert node.auth_info(token.token).user == "alice"
        node.check_invariants()
    assert len(states) == 1
    assert states.pop()[:4] == (True, 7, ("alice", "root"), ("app",))
