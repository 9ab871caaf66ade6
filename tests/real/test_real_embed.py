"""real.embed: the builder, nodes in the caller's loop and on a thread, and
the cluster and KV callbacks (leader changed, became leader, cluster ready,
joined / left, departed by gossip, key changed / deleted, prefix changed;
gossip's suspected / failed / recovered: test_real_gossip_wiring.py)."""

from __future__ import annotations

import asyncio
import functools
import queue
from pathlib import Path

import pytest
from real_client_harness import POLICY, Recorder, builder, cluster_builders, start_all, wait_leader

from chainfire_core.node_messages import Member
from chainfire_core.types import NodeId
from real.client import AsyncClient, Client, Txn, op_put
from real.config import ConfigError
from real.embed import ClusterBuilder, EmbedError
from real.embed_events import (
    ClusterEvent,
    ClusterEventKind,
    ClusterObserver,
    KvEvent,
    KvEventKind,
)

K = ClusterEventKind


def kinds(events: list[ClusterEvent]) -> list[ClusterEventKind]:
    return [event.kind for event in events]


def test_real_embed_builder_checks_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="election-timeout-ms"):
        builder("x", tmp_path).timing(heartbeat_interval_ms=100,
                                      election_timeout_ms=200).build()
    with pytest.raises(ConfigError, match="initial-cluster"):
        builder("x", tmp_path).initial_cluster({"other": "http://127.0.0.1:1"}).peer_port(2).build()
    with pytest.raises(ValueError, match="exactly one"):
        ClusterBuilder("x").on_kv_event(print)
    node = builder("x", tmp_path).client_port(0).build()
    assert node.config.name == "x" and node.config.listen_peer_urls[0].port != 0
    assert node.config.gossip and node.config.gossip_period_ms == 1000
    quiet = builder("x", tmp_path).gossip(False).build()
    assert not quiet.config.gossip
    assert builder("x", tmp_path).gossip(period_ms=250).build().config.gossip_period_ms == 250
    with pytest.raises(ConfigError, match="gossip-period-ms"):
        builder("x", tmp_path).gossip(period_ms=1).build()


def test_real_embed_single_node_callbacks(tmp_path: Path) -> None:
    async def body() -> None:
        cluster = Recorder[ClusterEvent]()
        keys = Recorder[KvEvent]()
        prefixed = Recorder[KvEvent]()
        seen_async: list[ClusterEvent] = []

        async def async_handler(event: ClusterEvent) -> None:
            await asyncio.sleep(0)
            seen_async.append(event)

        def broken(event: ClusterEvent) -> None:
            raise RuntimeError("a handler bug")

        node = (builder("solo", tmp_path).on_cluster_event(broken).on_cluster_event(async_handler)
                .on_cluster_event(cluster).on_kv_event(keys, key="cfg")
                .on_kv_event(prefixed, prefix="app/").build())
        async with node, AsyncClient([node.endpoint], POLICY) as client:
            await cluster.wait(lambda events: K.CLUSTER_READY in kinds(events))
            assert kinds(cluster.events) == [K.LEADER_CHANGED, K.BECAME_LEADER, K.CLUSTER_READY]
            assert all(event.leader == node.member_id for event in cluster.events)
            assert kinds(seen_async) == kinds(cluster.events)  # handlers run in order
            assert node.is_leader
            await client.put("cfg", "1")
            await client.put("cfg", "2")
            await client.delete("cfg")
            await client.put("unrelated", "x")
            both = await client.txn(Txn().then(op_put("app/a", "1"), op_put("app/b", "2")))
            await keys.wait(lambda events: len(events) == 3)
            assert [(e.kind, e.value, e.prev_value) for e in keys.events] == [
                (KvEventKind.KEY_CHANGED, b"1", None), (KvEventKind.KEY_CHANGED, b"2", b"1"),
                (KvEventKind.KEY_DELETED, b"", b"2")]
            await prefixed.wait(lambda events: len(events) == 3)
            assert [(e.kind, e.key, e.keys) for e in prefixed.events] == [
                (KvEventKind.KEY_CHANGED, b"app/a", ()), (KvEventKind.KEY_CHANGED, b"app/b", ()),
                (KvEventKind.PREFIX_CHANGED, b"", (b"app/a", b"app/b"))]
            assert {e.revision for e in prefixed.events} == {both.header.revision}
        assert node.exit_code == 0
    asyncio.run(body())


def test_real_embed_cluster_leader_changes_and_membership(tmp_path: Path) -> None:
    async def body() -> None:
        recorders = [Recorder[ClusterEvent]() for _ in range(3)]
        builders = [b.on_cluster_event(r) for b, r in zip(cluster_builders(tmp_path), recorders,
                                                          strict=True)]
        nodes = await start_all(builders)
        try:
            leader = await wait_leader(nodes)
            for recorder in recorders:
                await recorder.wait(lambda events: K.CLUSTER_READY in kinds(events))
                changes = [e for e in recorder.events if e.kind == K.LEADER_CHANGED]
                assert changes[-1].leader == leader.member_id
            first = recorders[nodes.index(leader)]
            assert K.BECAME_LEADER in kinds(first.events)
            survivors = [node for node in nodes if node is not leader]
            marks = {id(r): len(r.events) for r in recorders}
            await leader.stop()
            new_leader = await wait_leader(survivors)
            winner = recorders[nodes.index(new_leader)]
            await winner.wait(lambda events: K.BECAME_LEADER in kinds(events[marks[id(winner)]:]))
            def moved_on(events: list[ClusterEvent], start: int) -> bool:
                return any(e.kind == K.LEADER_CHANGED and e.leader == new_leader.member_id
                           and e.previous_leader == leader.member_id for e in events[start:])

            def departed(events: list[ClusterEvent], start: int) -> bool:
                return any(e.kind == K.NODE_DEPARTED and e.member is not None
                           and e.member.id == leader.member_id for e in events[start:])

            for node in survivors:
                recorder = recorders[nodes.index(node)]
                await recorder.wait(functools.partial(moved_on, start=marks[id(recorder)]))
                # A graceful stop says goodbye over gossip: departed, not failed.
                await recorder.wait(functools.partial(departed, start=marks[id(recorder)]))
                assert K.NODE_FAILED not in kinds(recorder.events[marks[id(recorder)]:])
            async with AsyncClient([node.endpoint for node in survivors], POLICY) as client:
                await client.member_remove(leader.member_id)
            for node in survivors:
                recorder = recorders[nodes.index(node)]
                await recorder.wait(lambda events: K.MEMBERSHIP_CHANGED in kinds(events))
                left = [e for e in recorder.events if e.kind == K.NODE_LEFT]
                assert [e.member.id for e in left if e.member] == [leader.member_id]
        finally:
            for node in nodes:
                await node.stop()
    asyncio.run(body())


def test_real_embed_observer_leadership_sequence() -> None:
    """The pure event logic, including losing leadership and joins."""
    me, other = NodeId(1), NodeId(2)
    observer = ClusterObserver(me, (Member(id=me, name="a"),))
    assert observer.observe(NodeId(0), (Member(id=me, name="a"),)) == []
    assert kinds(observer.observe(me, (Member(id=me, name="a"),))) == [
        K.LEADER_CHANGED, K.BECAME_LEADER, K.CLUSTER_READY]
    both = (Member(id=me, name="a"), Member(id=other, name="b"))
    joined = observer.observe(me, both)
    assert kinds(joined) == [K.NODE_JOINED, K.MEMBERSHIP_CHANGED]
    assert joined[0].member == both[1] and joined[1].members == both
    assert kinds(observer.observe(NodeId(0), both)) == [K.LOST_LEADERSHIP]
    changed = observer.observe(other, both)
    assert kinds(changed) == [K.LEADER_CHANGED] and changed[0].previous_leader == me
    assert kinds(observer.observe(other, both[1:])) == [K.NODE_LEFT, K.MEMBERSHIP_CHANGED]
    assert {K.NODE_SUSPECTED, K.NODE_RECOVERED} <= set(ClusterEventKind)


def test_real_embed_background_thread(tmp_path: Path) -> None:
    """A node on its own thread and loop, used with the sync client; a second
    node on the same data directory cannot start."""
    changes: queue.Queue[KvEvent] = queue.Queue()
    node = builder("bg", tmp_path).on_kv_event(changes.put, prefix="jobs/").build()
    with node, Client([node.endpoint], POLICY) as client:
        client.put("jobs/1", "queued")
        event = changes.get(timeout=10)
        assert (event.kind, event.key, event.value) == (KvEventKind.KEY_CHANGED, b"jobs/1",
                                                        b"queued")
        assert changes.get(timeout=10).kind == KvEventKind.PREFIX_CHANGED
        clash = builder("bg", tmp_path).build()
        with pytest.raises(EmbedError, match="failed to start"):
            clash.start_in_thread()
    assert node.exit_code == 0
