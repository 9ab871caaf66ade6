"""real.gossip: three SWIM members over UDP on loopback, with short periods."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable

import pytest

from chainfire_core.swim import MemberDead, MemberEvent, MemberLeft, MemberState, SwimConfig
from chainfire_core.types import NodeId
from real.gossip import GossipAgent, format_address, parse_address

FAST = SwimConfig(member_id=NodeId(1), protocol_period_ms=100, probe_timeout_ms=50,
                  nack_timeout_ms=40)


async def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def drain(agent: GossipAgent) -> list[MemberEvent]:
    """Every event the agent queued so far (its `events` queue, emptied)."""
    events = []
    while not agent.events.empty():
        events.append(agent.events.get_nowait())
    return events


def states(agent: GossipAgent) -> dict[int, MemberState]:
    return {view.member: view.state for view in agent.members()}


async def three_members() -> list[GossipAgent]:
    agents = [GossipAgent(FAST.with_member(NodeId(i)), rng=random.Random(i)) for i in (1, 2, 3)]
    for agent in agents:
        await agent.start()
    for agent in agents[1:]:
        await agent.join([(NodeId(1), agents[0].address)])
    await wait_for(lambda: all(states(a) and all(s == MemberState.ALIVE for s in states(a).values())
                               and len(states(a)) == 2 for a in agents), 5.0)
    return agents


@pytest.mark.timeout(60)
def test_three_members_on_loopback_detect_a_crash() -> None:
    async def scenario() -> None:
        agents = await three_members()
        await agents[2].stop()  # a crash: no leave announced
        await wait_for(lambda: all(states(a).get(3) == MemberState.DEAD for a in agents[:2]),
                       10.0)
        dead = [e for e in drain(agents[0]) if isinstance(e, MemberDead)]
        assert [e.member for e in dead] == [3]
        assert states(agents[0])[2] == MemberState.ALIVE
        for agent in agents[:2]:
            await agent.stop()

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_leave_is_reported_and_garbage_datagrams_are_counted_and_dropped() -> None:
    async def scenario() -> None:
        agents = await three_members()
        host, port = parse_address(agents[0].address)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"\x01\x63garbage", (host, port))
            raw.sendto(b"", (host, port))
        await wait_for(lambda: agents[0].stats.malformed == 2, 5.0)
        await agents[1].leave(linger_s=0.5)
        await wait_for(lambda: states(agents[0]).get(2) == MemberState.LEFT, 5.0)
        left = [e for e in drain(agents[2]) if isinstance(e, MemberLeft)]
        assert [e.member for e in left] == [2]
        assert states(agents[0])[3] == MemberState.ALIVE
        for agent in (agents[0], agents[2]):
            await agent.stop()

    asyncio.run(scenario())


def test_addresses_parse_strictly() -> None:
    assert parse_address("127.0.0.1:7946") == ("127.0.0.1", 7946)
    assert parse_address("[::1]:7946") == ("::1", 7946)
    assert format_address(("::1", 7946)) == "[::1]:7946"
    for bad in ("localhost", ":80", "h:0", "h:70000", "h:x"):
        with pytest.raises(ValueError, match="host:port"):
            parse_address(bad)


def test_an_agent_must_be_started_first() -> None:
    agent = GossipAgent(FAST)
    with pytest.raises(RuntimeError, match="not started"):
        agent.members()
