"""The drawn append size limit (SimParams.max_size_per_msg_bytes): a third of
the seeds draw a small one, the draw shifts no other parameter, the host
hands it to Raft, and the leader then paginates catch-up: no append over the
limit (unless it is one oversized entry), and many appends stop short of the
leader's log end."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from chainfire_core.raft.messages import AppendEntries, Message
from sim.options import (
    MAX_SIZE_PER_MSG_BYTES,
    SMALL_MAX_SIZE_PER_MSG_BYTES,
    RunOptions,
    draw_append_size_limit,
    draw_params,
    parse_faults,
)
from sim.rng import RngTree
from sim.trace import Trace
from sim.world import World

# Seed 32 draws a 64-byte limit: one or two client entries per append.
SMALL_LIMIT_SEED = 32
OPTIONS = RunOptions(seed=SMALL_LIMIT_SEED, nodes=5, duration_ms=20_000, clients=8,
                     faults=parse_faults("partition,crash"), full_trace=False)


def test_a_third_of_the_seeds_draw_a_small_append_limit() -> None:
    limits = [draw_append_size_limit(RngTree(seed).child("flow")) for seed in range(600)]
    small = [limit for limit in limits if limit != MAX_SIZE_PER_MSG_BYTES]
    assert set(small) == set(SMALL_MAX_SIZE_PER_MSG_BYTES)
    assert 0.25 < len(small) / len(limits) < 0.42


def test_the_limit_comes_from_its_own_stream() -> None:
    """Only the seed's "flow" child decides it: the params stream draws the
    same values whatever limit the seed gets."""
    small = draw_params(RunOptions(seed=SMALL_LIMIT_SEED), RngTree(7).child("params"))
    default = draw_params(RunOptions(seed=0), RngTree(7).child("params"))
    assert small.max_size_per_msg_bytes == 64
    assert default.max_size_per_msg_bytes == MAX_SIZE_PER_MSG_BYTES
    assert dataclasses.replace(small, max_size_per_msg_bytes=0) == \
        dataclasses.replace(default, max_size_per_msg_bytes=0)
    assert small.to_json()["max_size_per_msg_bytes"] == 64


@dataclasses.dataclass(frozen=True)
class _Sent:
    message: Message
    sender_last_index: int


def _record_sends(world: World) -> list[_Sent]:
    """Every message the nodes send, as it leaves."""
    sent: list[_Sent] = []
    send_all = world.network.send_all

    def recording(messages: Sequence[Message]) -> None:
        for message in messages:
            node = world.hosts[message.sender].node
            last = node.raw.raft.log.last_index() if node is not None else 0
            sent.append(_Sent(message, last))
        send_all(messages)

    world.network.send_all = recording  # type: ignore[method-assign]
    return sent


def test_the_leader_paginates_catch_up_by_the_drawn_limit() -> None:
    world = World(OPTIONS, Trace(full=False))
    limit = world.params.max_size_per_msg_bytes
    assert limit == 64
    sent = _record_sends(world)
    world.run()
    for host in world.hosts.values():
        if host.node is not None:
            assert host.node.raw.raft.config.max_size_per_msg_bytes == limit
    appends = [(s.message, s.sender_last_index) for s in sent
               if isinstance(s.message, AppendEntries) and s.message.entries]
    assert appends
    for append, _ in appends:
        size_bytes = sum(entry.size_bytes for entry in append.entries)
        assert size_bytes <= limit or len(append.entries) == 1, append
    # The limit did bind: many appends stopped short of the leader's log end.
    assert sum(1 for append, last in appends if append.entries[-1].index < last) > 10
