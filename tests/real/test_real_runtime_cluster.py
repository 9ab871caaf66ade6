"""Three NodeRuntimes in one event loop over the in-process loopback
transport: election, replication, forwarding, reads, a leader's isolation.
Every message sent is checked against its sender's own record of what its
syncs made durable (the persist-before-send rule, as sim/host.py asserts)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from real_runtime_harness import cluster, start_all, stop_all, wait_leader

from chainfire_core.mvcc.messages import PutRequest, PutResponse, RangeRequest, RangeResponse
from chainfire_core.mvcc.watch_messages import WatchCreateRequest
from chainfire_core.node_messages import ReadConsistency
from chainfire_core.types import NodeId
from real.runtime import NodeRuntime


def applied_through(runtime: NodeRuntime, revision: int) -> Callable[[], bool]:
    return lambda: runtime.node.sm.revision >= revision


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_real_runtime_cluster_elects_and_replicates() -> None:
    async def main() -> None:
        net = cluster(3)
        start_all(net)
        leader = await wait_leader(net)
        followers = [node_id for node_id in sorted(net.runtimes) if node_id != leader]
        # A write through the leader and one forwarded by a follower.
        first = await net.runtimes[leader].request(PutRequest(key=b"x", value=b"1"))
        second = await net.runtimes[followers[0]].request(PutRequest(key=b"y", value=b"2"))
        assert isinstance(first, PutResponse) and isinstance(second, PutResponse)
        # A linearizable read on the other follower sees both.
        read = await net.runtimes[followers[1]].request(RangeRequest(key=b"x", range_end=b"z"))
        assert isinstance(read, RangeResponse)
        assert [(kv.key, kv.value) for kv in read.kvs] == [(b"x", b"1"), (b"y", b"2")]
        # Every node applies both writes.
        revision = second.header.revision
        for node_id in sorted(net.runtimes):
            runtime = net.runtimes[node_id]
            await runtime.wait_until(applied_through(runtime, revision), 5.0)
            local = await runtime.request(RangeRequest(key=b"y"), ReadConsistency.SERIALIZABLE)
            assert isinstance(local, RangeResponse) and local.kvs[0].value == b"2"
        assert all(store.sync_count > 0 for store in net.stores.values())
        await stop_all(net)
    run(main())


def test_real_runtime_cluster_group_commits_on_leader_and_followers() -> None:
    async def main() -> None:
        net = cluster(3)
        start_all(net)
        leader = await wait_leader(net)
        before = {node_id: store.sync_count for node_id, store in net.stores.items()}
        count = 300
        results = await asyncio.gather(*(
            net.runtimes[leader].request(PutRequest(key=b"g%d" % i, value=b"v"))
            for i in range(count)))
        assert all(isinstance(result, PutResponse) for result in results)
        syncs = {node_id: store.sync_count - before[node_id]
                 for node_id, store in net.stores.items()}
        assert syncs[leader] <= 10, syncs
        await stop_all(net)
    run(main())


def test_real_runtime_cluster_survives_leader_isolation() -> None:
    async def main() -> None:
        net = cluster(3)
        start_all(net)
        old = await wait_leader(net)
        await net.runtimes[old].request(PutRequest(key=b"before", value=b"1"))
        net.isolated.add(old)
        rest = [node_id for node_id in sorted(net.runtimes) if node_id != old]
        new = await wait_leader(net, among=rest)
        assert new != old
        after = await net.runtimes[rest[0]].request(PutRequest(key=b"after", value=b"2"))
        assert isinstance(after, PutResponse)
        net.isolated.clear()
        await wait_leader(net)
        runtime = net.runtimes[old]
        await runtime.wait_until(lambda: runtime.node.sm.revision >= after.header.revision, 10.0)
        read = await runtime.request(RangeRequest(key=b"after"))
        assert isinstance(read, RangeResponse) and read.kvs[0].value == b"2"
        await stop_all(net)
    run(main())


def test_real_runtime_cluster_watch_on_follower_sees_leader_writes() -> None:
    async def main() -> None:
        net = cluster(3)
        start_all(net)
        leader = await wait_leader(net)
        follower = next(node_id for node_id in sorted(net.runtimes) if node_id != leader)
        session = net.runtimes[NodeId(follower)].watch_session()
        await session.create(WatchCreateRequest(key=b"w"))
        created = await session.responses()
        assert created[0].created
        await net.runtimes[leader].request(PutRequest(key=b"w", value=b"hello"))
        events = await session.responses()
        assert events[0].events[0].kv.value == b"hello"
        await stop_all(net)
    run(main())


def test_real_runtime_cluster_spy_catches_a_driver_that_skips_fsync() -> None:
    """The check above has teeth: with sync a no-op, the first vote request
    leaves before its term is durable, and that node stops on the assertion."""
    async def main() -> None:
        net = cluster(3)
        for store in net.stores.values():
            store.sync = lambda: None  # type: ignore[method-assign]
        start_all(net)
        first = net.runtimes[NodeId(1)]

        def someone_failed() -> bool:
            return any(runtime.failed is not None for runtime in net.runtimes.values())

        await first.wait_until(someone_failed, 10.0)
        failures = [runtime.failed for runtime in net.runtimes.values() if runtime.failed]
        assert all(isinstance(failure, AssertionError) for failure in failures)
        await stop_all(net)
    run(main())
