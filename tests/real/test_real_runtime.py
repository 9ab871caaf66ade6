"""NodeRuntime on one node: requests, watches, group commit, persistence
order, failure and graceful stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from real_runtime_harness import single_node

from chainfire_core.errors import EmptyKey, FutureRevision, LeaseNotFound
from chainfire_core.lease.messages import (
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesRequest,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
)
from chainfire_core.mvcc.messages import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    EventType,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    TxnRequest,
    TxnResponse,
)
from chainfire_core.mvcc.watch_messages import WatchCreateRequest, WatchResponse
from chainfire_core.node_messages import (
    MemberAddRequest,
    MemberListRequest,
    MemberResponse,
    ReadConsistency,
)
from chainfire_core.raft.messages import HardState, VoteResponse
from chainfire_core.types import Index, LeaseId, NodeId, Term
from real.bootstrap import bootstrap, build_node, initial_members
from real.config import load_config, member_id
from real.durability import DurabilityCheck
from real.memstore import MemStore
from real.runtime import NodeRuntime, NodeStopped, RuntimeConfig


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


async def get(runtime: object, key: bytes, consistency: ReadConsistency =
              ReadConsistency.LINEARIZABLE) -> RangeResponse:
    response = await runtime.request(RangeRequest(key=key), consistency)  # type: ignore[attr-defined]
    assert isinstance(response, RangeResponse)
    return response


def test_real_runtime_single_node_serves_kv_and_txn() -> None:
    async def main() -> None:
        runtime, _ = single_node()
        runtime.start()
        put = await runtime.request(PutRequest(key=b"a", value=b"1"))
        assert isinstance(put, PutResponse)
        assert (await get(runtime, b"a")).kvs[0].value == b"1"
        serial = await get(runtime, b"a", ReadConsistency.SERIALIZABLE)
        assert serial.kvs[0].value == b"1"
        cas = TxnRequest(compare=(Compare(key=b"a", target=CompareTarget.VALUE,
                                          result=CompareResult.EQUAL, value=b"1"),),
                         success=(PutRequest(key=b"a", value=b"2"),),
                         failure=(RangeRequest(key=b"a"),))
        txn = await runtime.request(cas)
        assert isinstance(txn, TxnResponse) and txn.succeeded
        txn = await runtime.request(cas)
        assert isinstance(txn, TxnResponse) and not txn.succeeded
        deleted = await runtime.request(DeleteRangeRequest(key=b"a"))
        assert isinstance(deleted, DeleteRangeResponse) and deleted.deleted == 1
        assert (await get(runtime, b"a")).kvs == ()
        members = await runtime.request(MemberListRequest())
        assert isinstance(members, MemberResponse)
        assert [m.name for m in members.members] == ["n1"]
        status = runtime.status()
        assert status.leader == 1 and status.revision == txn.header.revision + 1
        await runtime.stop()
    run(main())


def test_real_runtime_single_node_serves_leases() -> None:
    async def main() -> None:
        runtime, _ = single_node()
        runtime.start()
        grant = await runtime.request(LeaseGrantRequest(ttl_s=60))
        assert isinstance(grant, LeaseGrantResponse) and grant.ttl_s == 60
        await runtime.request(PutRequest(key=b"k", value=b"v", lease=grant.id))
        alive = await runtime.request(LeaseKeepAliveRequest(id=grant.id))
        assert isinstance(alive, LeaseKeepAliveResponse) and alive.ttl_s == 60
        ttl = await runtime.request(LeaseTimeToLiveRequest(id=grant.id, keys=True))
        assert isinstance(ttl, LeaseTimeToLiveResponse) and ttl.keys == (b"k",)
        leases = await runtime.request(LeaseLeasesRequest())
        assert isinstance(leases, LeaseLeasesResponse) and leases.leases == (grant.id,)
        await runtime.request(LeaseRevokeRequest(id=grant.id))
        assert (await get(runtime, b"k")).kvs == ()
        with pytest.raises(LeaseNotFound):
            await runtime.request(LeaseRevokeRequest(id=LeaseId(grant.id)))
        await runtime.stop()
    run(main())


def test_real_runtime_lease_expires_by_loop_clock() -> None:
    async def main() -> None:
        runtime, _ = single_node()
        runtime.start()
        grant = await runtime.request(LeaseGrantRequest(ttl_s=1))
        assert isinstance(grant, LeaseGrantResponse)
        await runtime.request(PutRequest(key=b"short", value=b"v", lease=grant.id))
        loop = asyncio.get_running_loop()
        started = loop.time()

        def gone() -> bool:
            return runtime.node.sm.range(RangeRequest(key=b"short")).kvs == ()

        await runtime.wait_until(gone, timeout_s=5.0)
        # A 1 s lease is not revoked early (ticks follow the loop's clock).
        assert loop.time() - started >= 0.9
        await runtime.stop()
    run(main())


def test_real_runtime_errors_are_raised() -> None:
    async def main() -> None:
        runtime, _ = single_node()
        runtime.start()
        with pytest.raises(FutureRevision):
            await runtime.request(RangeRequest(key=b"a", revision=99))
        with pytest.raises(EmptyKey):
            await runtime.request(PutRequest(key=b"", value=b"x"))
        assert (await runtime.request(PutRequest(key=b"ok", value=b"1"))) is not None
        await runtime.stop()
    run(main())


def test_real_runtime_watch_session_gets_created_events_and_cancel() -> None:
    async def main() -> None:
        runtime, _ = single_node()
        runtime.start()
        await runtime.request(PutRequest(key=b"w/0", value=b"old"))
        session = runtime.watch_session()
        watch_id = await session.create(WatchCreateRequest(key=b"w/", range_end=b"w0",
                                                           start_revision=1))
        seen: list[WatchResponse] = []

        async def until(done: Callable[[], bool]) -> None:
            while not done():
                seen.extend(await session.responses())

        await until(lambda: sum(len(r.events) for r in seen) >= 1)
        assert seen[0].created and seen[1].events[0].kv.value == b"old"
        await runtime.request(PutRequest(key=b"w/1", value=b"new"))
        await runtime.request(DeleteRangeRequest(key=b"w/0"))
        await until(lambda: sum(len(r.events) for r in seen) >= 3)
        kinds = [(e.type, e.kv.key) for r in seen for e in r.events]
        assert kinds[1:] == [(EventType.PUT, b"w/1"), (EventType.DELETE, b"w/0")]
        await session.cancel(watch_id)
        await until(lambda: seen[-1].canceled)
        await runtime.stop()
        assert await session.responses() == ()
    run(main())


def test_real_runtime_watch_backpressure_loses_nothing() -> None:
    async def main() -> None:
        runtime, _ = single_node()
        runtime.start()
        session = runtime.watch_session()
        await session.create(WatchCreateRequest(key=b"p", range_end=b"q"))
        # Far more events than a watcher buffers (1024) while nobody reads.
        writes = [runtime.request(PutRequest(key=b"p%d" % i, value=b"v")) for i in range(1500)]
        await asyncio.gather(*writes)
        seen: list[bytes] = []
        while len(seen) < 1500:
            for response in await session.responses():
                assert not response.canceled
                seen += [event.kv.key for event in response.events]
        assert sorted(seen) == sorted(b"p%d" % i for i in range(1500))
        await runtime.stop()
        assert await session.responses() == ()
    run(main())


def test_real_runtime_group_commit_batches_concurrent_puts() -> None:
    async def main() -> None:
        runtime, store = single_node(sync_delay_s=0.005)
        runtime.start()
        await runtime.request(PutRequest(key=b"warm", value=b"up"))
        syncs_before = store.sync_count
        count = 400
        results = await asyncio.gather(*(runtime.request(PutRequest(key=b"k%d" % i, value=b"v"))
                                         for i in range(count)))
        assert all(isinstance(result, PutResponse) for result in results)
        syncs = store.sync_count - syncs_before
        # 400 concurrent puts: a handful of log appends and fsyncs, not 400.
        assert syncs <= 5, syncs
        assert max(store.entries_per_save) >= count // 2
        revisions = sorted(result.header.revision for result in results)  # type: ignore[attr-defined]
        assert len(set(revisions)) == count
        await runtime.stop()
    run(main())


def test_real_runtime_requests_arriving_during_fsync_share_the_next_one() -> None:
    async def main() -> None:
        runtime, store = single_node(sync_delay_s=0.02)
        runtime.start()
        await runtime.request(PutRequest(key=b"warm", value=b"up"))
        syncs_before = store.sync_count

        async def client(n: int) -> None:
            for i in range(20):
                await runtime.request(PutRequest(key=b"c%d/%d" % (n, i), value=b"v"))

        await asyncio.gather(*(client(n) for n in range(50)))
        syncs = store.sync_count - syncs_before
        # 1000 puts by 50 sequential clients: each fsync carries ~50 of them.
        assert syncs <= 1000 // 10, syncs
        await runtime.stop()
    run(main())


def test_real_runtime_durability_check_catches_an_unpersisted_vote() -> None:
    check = DurabilityCheck(1, HardState(term=Term(2), vote=NodeId(0)), Index(5))
    vote = VoteResponse(sender=NodeId(1), to=NodeId(3), term=Term(3), granted=True)
    with pytest.raises(AssertionError, match="before persisting"):
        check.check((vote,))
    check.saved(HardState(term=Term(3), vote=NodeId(3)), (), None)
    with pytest.raises(AssertionError):
        check.check((vote,))  # saved is not durable
    check.synced()
    check.check((vote,))


def test_real_runtime_storage_failure_stops_the_node() -> None:
    async def main() -> None:
        runtime, store = single_node()
        runtime.start()
        await runtime.request(PutRequest(key=b"a", value=b"1"))

        def broken_sync() -> None:
            raise OSError(5, "Input/output error")

        store.sync = broken_sync  # type: ignore[method-assign]
        with pytest.raises(NodeStopped):
            await runtime.request(PutRequest(key=b"b", value=b"2"))
        await runtime.wait_stopped()
        assert isinstance(runtime.failed, OSError)
        with pytest.raises(NodeStopped):
            await runtime.request(PutRequest(key=b"c", value=b"3"))
    run(main())


def test_real_runtime_stop_finishes_in_flight_writes() -> None:
    async def main() -> None:
        runtime, store = single_node(sync_delay_s=0.02)
        runtime.start()
        writes = [asyncio.ensure_future(runtime.request(PutRequest(key=b"f%d" % i, value=b"v")))
                  for i in range(100)]
        await asyncio.sleep(0)  # let them all be submitted
        await runtime.stop(drain_timeout_s=5.0)
        results = await asyncio.gather(*writes)
        assert all(isinstance(result, PutResponse) for result in results)
        assert not store.saved_since_sync
        with pytest.raises(NodeStopped):
            await runtime.request(PutRequest(key=b"late", value=b"v"))
    run(main())


def test_real_runtime_built_from_config_and_member_add_ids() -> None:
    async def main() -> None:
        config = load_config(["--name", "solo", "--listen-peer-urls",
                              "http://127.0.0.1:12380"], {})
        store = MemStore()
        node = build_node(config, store)
        assert node.id == config.node_id
        runtime = NodeRuntime(node, store, RuntimeConfig(tick_ms=config.tick_ms),
                              cluster_id=config.cluster_id,
                              cluster_token=config.initial_cluster_token)
        runtime.start()
        assert runtime.member_id == config.node_id and runtime.cluster_id == config.cluster_id
        await runtime.request(PutRequest(key=b"a", value=b"1"))
        assert runtime.raft_term() >= 1
        members = await runtime.request(MemberListRequest())
        assert isinstance(members, MemberResponse)
        assert [(m.name, m.peer_urls) for m in members.members] == [
            ("solo", ("http://127.0.0.1:12380",))]
        urls = ("http://127.0.0.1:22380",)
        added = await runtime.request(MemberAddRequest(peer_urls=urls, is_learner=True))
        assert isinstance(added, MemberResponse) and added.member is not None
        # The id the new member's own node derives from its peer URLs.
        assert added.member.id == member_id(urls, config.initial_cluster_token)
        await runtime.stop()
        # A restart finds its state and does not bootstrap again.
        assert not bootstrap(store, initial_members(config))
    run(main())
