"""The etcd gRPC servicers end to end: a real grpc.aio server on a free
loopback port, generated stubs as the client, and a single in-process node
behind a test-double NodeHandle (real_api_double.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import pytest
from real_api_double import CLUSTER_ID, SyncNodeHandle, serve

from real.api.servicers.maintenance import ETCD_VERSION
from real.etcdpb import kv_pb2, rpc_pb2, rpc_pb2_grpc

Scenario = Callable[[SyncNodeHandle, grpc.aio.Channel], Awaitable[None]]
STEP_TIMEOUT_S = 10.0


def run(scenario: Scenario, **options: object) -> SyncNodeHandle:
    handle = SyncNodeHandle()

    async def main() -> None:
        async with serve(handle, **options) as channel:
            await asyncio.wait_for(scenario(handle, channel), timeout=60)

    asyncio.run(main())
    return handle


async def put(kv: rpc_pb2_grpc.KVAsyncStub, key: bytes, value: bytes,
              **fields: object) -> rpc_pb2.PutResponse:
    return await kv.Put(rpc_pb2.PutRequest(key=key, value=value, **fields))  # type: ignore[arg-type]


# -- KV ----------------------------------------------------------------------------------


def test_put_get_range_delete() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        kv = rpc_pb2_grpc.KVStub(channel)
        first = await put(kv, b"a", b"1")
        assert first.header.revision == 2  # an empty store is at 1, as etcd's
        assert first.header.member_id == 1 and first.header.cluster_id == CLUSTER_ID
        assert first.header.raft_term >= 1
        again = await put(kv, b"a", b"2", prev_kv=True)
        assert again.prev_kv.value == b"1" and again.prev_kv.mod_revision == 2
        for key in (b"b", b"c", b"d"):
            await put(kv, key, key * 2)
        got = await kv.Range(rpc_pb2.RangeRequest(key=b"a"))
        assert [(x.key, x.value, x.version) for x in got.kvs] == [(b"a", b"2", 2)]
        assert got.count == 1 and not got.more
        old = await kv.Range(rpc_pb2.RangeRequest(key=b"a", revision=2))
        assert old.kvs[0].value == b"1"
        page = await kv.Range(rpc_pb2.RangeRequest(key=b"a", range_end=b"\0", limit=2,
                                                   sort_order=rpc_pb2.RangeRequest.DESCEND))
        assert [x.key for x in page.kvs] == [b"d", b"c"] and page.more and page.count == 4
        counted = await kv.Range(rpc_pb2.RangeRequest(key=b"b", range_end=b"d",
                                                      count_only=True, serializable=True))
        assert counted.count == 2 and not counted.kvs
        keys = await kv.Range(rpc_pb2.RangeRequest(key=b"a", range_end=b"z", keys_only=True,
                                                   min_mod_revision=5))
        assert [(x.key, x.value) for x in keys.kvs] == [(b"c", b""), (b"d", b"")]
        deleted = await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"c", range_end=b"e",
                                                                  prev_kv=True))
        assert deleted.deleted == 2 and [x.key for x in deleted.prev_kvs] == [b"c", b"d"]
        left = await kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"))
        assert [x.key for x in left.kvs] == [b"a", b"b"]

    run(scenario)


def test_put_ignore_value_and_lease_rules() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        kv = rpc_pb2_grpc.KVStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await put(kv, b"k", b"", ignore_value=True)
        assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert missing.value.details() == "etcdserver: key not found"
        await put(kv, b"k", b"v")
        await put(kv, b"k", b"", ignore_value=True)
        got = await kv.Range(rpc_pb2.RangeRequest(key=b"k"))
        assert got.kvs[0].value == b"v" and got.kvs[0].version == 2
        with pytest.raises(grpc.aio.AioRpcError) as both:
            await put(kv, b"k", b"x", ignore_value=True)
        assert both.value.details() == "etcdserver: value is provided"

    run(scenario)


def test_txn_compare_success_failure_and_nested() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        kv = rpc_pb2_grpc.KVStub(channel)
        await put(kv, b"x", b"1")
        compare = rpc_pb2.Compare(key=b"x", target=rpc_pb2.Compare.VALUE,
                                  result=rpc_pb2.Compare.EQUAL, value=b"1")
        swap = rpc_pb2.TxnRequest(
            compare=[compare],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"x", value=b"2")),
                     rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(success=[
                         rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"x"))]))],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"x"))])
        won = await kv.Txn(swap)
        assert won.succeeded and won.header.revision == 3
        assert won.responses[0].WhichOneof("response") == "response_put"
        inner = won.responses[1].response_txn
        assert inner.succeeded and inner.responses[0].response_range.kvs[0].value == b"2"
        lost = await kv.Txn(swap)
        assert not lost.succeeded and lost.header.revision == 3
        assert lost.responses[0].response_range.kvs[0].value == b"2"
        by_version = rpc_pb2.Compare(key=b"x", target=rpc_pb2.Compare.VERSION,
                                     result=rpc_pb2.Compare.GREATER, version=1)
        read = await kv.Txn(rpc_pb2.TxnRequest(compare=[by_version], success=[
            rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"x", serializable=True))]))
        assert read.succeeded and read.header.revision == 3
        dup = rpc_pb2.TxnRequest(success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"d", value=b"1")),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"d", value=b"2"))])
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await kv.Txn(dup)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == "etcdserver: duplicate key given in txn request"

    run(scenario)


def test_compact_then_old_revision_is_out_of_range() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        kv = rpc_pb2_grpc.KVStub(channel)
        for value in (b"1", b"2", b"3"):
            await put(kv, b"k", value)
        done = await kv.Compact(rpc_pb2.CompactionRequest(revision=3, physical=True))
        assert done.header.revision == 4
        with pytest.raises(grpc.aio.AioRpcError) as old:
            await kv.Range(rpc_pb2.RangeRequest(key=b"k", revision=2))
        assert old.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert old.value.details() == "etcdserver: mvcc: required revision has been compacted"
        with pytest.raises(grpc.aio.AioRpcError) as future:
            await kv.Range(rpc_pb2.RangeRequest(key=b"k", revision=99))
        assert future.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert future.value.details() == (
            "etcdserver: mvcc: required revision is a future revision")
        kept = await kv.Range(rpc_pb2.RangeRequest(key=b"k", revision=3))
        assert kept.kvs[0].value == b"2"

    run(scenario)


def test_malformed_requests_get_invalid_argument_and_the_server_keeps_serving() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        kv = rpc_pb2_grpc.KVStub(channel)
        bad: list[Awaitable[object]] = [
            kv.Put(rpc_pb2.PutRequest(key=b"", value=b"v")),
            kv.Range(rpc_pb2.RangeRequest(key=b"")),
            kv.Range(rpc_pb2.RangeRequest(key=b"a", sort_target=17)),  # type: ignore[arg-type]
            kv.Txn(rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp()])),
            kv.Txn(rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"a", target=9)])),  # type: ignore[arg-type]
            kv.Range(rpc_pb2.RangeRequest(key=b"a", min_mod_revision=-1)),
            kv.Compact(rpc_pb2.CompactionRequest(revision=-5)),
        ]
        for call in bad:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await call
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value
        empty = await kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"))
        assert empty.count == 0
        # Bytes that are no protobuf at all: an error, and still serving.
        raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/etcdserverpb.KV/Put")
        with pytest.raises(grpc.aio.AioRpcError) as garbage:
            await raw(b"\xff\xff\xff\xff")
        assert garbage.value.code() != grpc.StatusCode.OK
        assert (await put(kv, b"ok", b"1")).header.revision == 2

    run(scenario)


# -- leases --------------------------------------------------------------------------


def test_lease_grant_keepalive_ttl_leases_revoke() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        lease = rpc_pb2_grpc.LeaseStub(channel)
        kv = rpc_pb2_grpc.KVStub(channel)
        granted = await lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30, ID=77))
        assert (granted.ID, granted.TTL, granted.error) == (77, 30, "")
        auto = await lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=5))
        assert auto.ID > 0 and auto.ID != 77
        await put(kv, b"leased", b"v", lease=77)
        handle.tick(20)  # two seconds pass
        ttl = await lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=77, keys=True))
        assert ttl.grantedTTL == 30 and 26 <= ttl.TTL <= 28 and list(ttl.keys) == [b"leased"]
        stream = lease.LeaseKeepAlive()
        await stream.write(rpc_pb2.LeaseKeepAliveRequest(ID=77))
        renewed = await stream.read()
        assert isinstance(renewed, rpc_pb2.LeaseKeepAliveResponse)
        assert (renewed.ID, renewed.TTL) == (77, 30)
        await stream.write(rpc_pb2.LeaseKeepAliveRequest(ID=12345))
        unknown = await stream.read()
        assert isinstance(unknown, rpc_pb2.LeaseKeepAliveResponse)
        assert (unknown.ID, unknown.TTL) == (12345, 0)
        await stream.done_writing()
        listed = await lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest())
        assert sorted(s.ID for s in listed.leases) == sorted([77, auto.ID])
        await lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=77))
        gone = await kv.Range(rpc_pb2.RangeRequest(key=b"leased"))
        assert gone.count == 0
        expired = await lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=77))
        assert expired.TTL == -1
        with pytest.raises(grpc.aio.AioRpcError) as again:
            await lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=77))
        assert again.value.code() == grpc.StatusCode.NOT_FOUND
        assert again.value.details() == "etcdserver: requested lease not found"
        with pytest.raises(grpc.aio.AioRpcError) as exists:
            await lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=5, ID=auto.ID))
        assert exists.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert exists.value.details() == "etcdserver: lease already exists"

    run(scenario)


# -- cluster and maintenance ----------------------------------------------------------


def test_member_list_and_status() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        cluster = rpc_pb2_grpc.ClusterStub(channel)
        members = await cluster.MemberList(rpc_pb2.MemberListRequest())
        assert [m.ID for m in members.members] == [1]
        assert members.header.cluster_id == CLUSTER_ID
        with pytest.raises(grpc.aio.AioRpcError) as nobody:
            await cluster.MemberRemove(rpc_pb2.MemberRemoveRequest(ID=42))
        assert nobody.value.code() == grpc.StatusCode.NOT_FOUND
        assert nobody.value.details() == "etcdserver: member not found"
        await put(rpc_pb2_grpc.KVStub(channel), b"k", b"v")
        maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        status = await maintenance.Status(rpc_pb2.StatusRequest())
        assert status.version == ETCD_VERSION and status.leader == 1
        assert status.header.member_id == 1 and status.header.revision == 2
        assert status.raftTerm >= 1 and status.raftAppliedIndex >= 2 and not status.isLearner
        with pytest.raises(grpc.aio.AioRpcError) as defrag:
            await maintenance.Defragment(rpc_pb2.DefragmentRequest())
        assert defrag.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # The test double passes no MaintenanceOps: Defragment is not served. Auth
        # is: enabling it without a root user is refused with etcd's error.
        auth = rpc_pb2_grpc.AuthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as no_root:
            await auth.AuthEnable(rpc_pb2.AuthEnableRequest())
        assert (no_root.value.code(), no_root.value.details()) == (
            grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: root user does not exist")

    run(scenario)


def test_member_update_changes_peer_urls_and_checks_them() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        cluster = rpc_pb2_grpc.ClusterStub(channel)
        urls = ["http://127.0.0.1:7003", "http://127.0.0.1:7004"]
        updated = await cluster.MemberUpdate(rpc_pb2.MemberUpdateRequest(ID=1, peerURLs=urls))
        assert updated.header.member_id == 1 and updated.header.cluster_id == CLUSTER_ID
        assert updated.header.revision == 0  # as etcd: membership is not in the store
        assert [(m.ID, list(m.peerURLs), m.isLearner) for m in updated.members] == [
            (1, urls, False)]
        listed = await cluster.MemberList(rpc_pb2.MemberListRequest())
        assert [list(m.peerURLs) for m in listed.members] == [urls]
        for bad_urls in (["foo"], ["http://127.0.0.1"], ["http://h:1/path"], []):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await cluster.MemberUpdate(rpc_pb2.MemberUpdateRequest(ID=1, peerURLs=bad_urls))
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad_urls
        with pytest.raises(grpc.aio.AioRpcError) as nobody:
            await cluster.MemberUpdate(rpc_pb2.MemberUpdateRequest(
                ID=42, peerURLs=["http://127.0.0.1:7005"]))
        assert nobody.value.code() == grpc.StatusCode.NOT_FOUND
        assert nobody.value.details() == "etcdserver: member not found"
        listed = await cluster.MemberList(rpc_pb2.MemberListRequest())
        assert [list(m.peerURLs) for m in listed.members] == [urls]  # refusals changed nothing

    run(scenario)


def test_member_add_then_promote_learner() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        cluster = rpc_pb2_grpc.ClusterStub(channel)
        added = await cluster.MemberAdd(rpc_pb2.MemberAddRequest(
            peerURLs=["http://127.0.0.1:2380"], isLearner=True))
        assert added.member.isLearner and added.member.ID != 1
        assert list(added.member.peerURLs) == ["http://127.0.0.1:2380"]
        assert sorted(m.ID for m in added.members) == sorted([1, added.member.ID])
        with pytest.raises(grpc.aio.AioRpcError) as duplicate:
            await cluster.MemberAdd(rpc_pb2.MemberAddRequest(peerURLs=["http://127.0.0.1:2380"]))
        assert duplicate.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert duplicate.value.details() == "etcdserver: Peer URLs already exists"
        with pytest.raises(grpc.aio.AioRpcError) as not_learner:
            await cluster.MemberPromote(rpc_pb2.MemberPromoteRequest(ID=1))
        assert not_learner.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    run(scenario)


# -- watch ------------------------------------------------------------------------------


async def read(call: grpc.aio.StreamStreamCall[rpc_pb2.WatchRequest, rpc_pb2.WatchResponse]
               ) -> rpc_pb2.WatchResponse:
    response = await asyncio.wait_for(call.read(), STEP_TIMEOUT_S)
    assert isinstance(response, rpc_pb2.WatchResponse), response
    return response


def create(key: bytes, **fields: object) -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key, **fields))  # type: ignore[arg-type]


def test_watch_create_events_prev_kv_filters_and_cancel() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        kv = rpc_pb2_grpc.KVStub(channel)
        call = rpc_pb2_grpc.WatchStub(channel).Watch()
        await call.write(create(b"w", range_end=b"x", prev_kv=True))
        created = await read(call)
        assert created.created and created.watch_id == 0 and created.header.revision == 1
        await call.write(create(b"w", range_end=b"x",
                                filters=[rpc_pb2.WatchCreateRequest.NOPUT]))
        second = await read(call)
        assert second.created and second.watch_id == 1
        await put(kv, b"w1", b"a")
        await put(kv, b"w1", b"b")
        await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"w1"))
        seen: dict[int, list[kv_pb2.Event]] = {0: [], 1: []}
        while len(seen[0]) < 3 or len(seen[1]) < 1:
            response = await read(call)
            seen[response.watch_id].extend(response.events)
        assert [(e.type, e.kv.value, e.kv.mod_revision) for e in seen[0]] == [
            (kv_pb2.Event.PUT, b"a", 2), (kv_pb2.Event.PUT, b"b", 3),
            (kv_pb2.Event.DELETE, b"", 4)]
        assert seen[0][1].prev_kv.value == b"a" and seen[0][2].prev_kv.value == b"b"
        assert [e.type for e in seen[1]] == [kv_pb2.Event.DELETE]
        await call.write(rpc_pb2.WatchRequest(
            cancel_request=rpc_pb2.WatchCancelRequest(watch_id=0)))
        canceled = await read(call)
        assert canceled.canceled and canceled.watch_id == 0
        await put(kv, b"w2", b"c")  # watcher 1 filters puts: nothing comes
        await call.write(create(b"w2"))
        again = await read(call)
        assert again.created and again.watch_id == 2  # ids count on, as in etcd
        await call.write(create(b"other", watch_id=1))
        taken = await read(call)
        assert taken.created and taken.canceled and taken.watch_id == -1
        assert "duplicate watch ID" in taken.cancel_reason
        call.cancel()
        # The stream's watchers were released with it.
        for _ in range(100):
            if handle.node.sm.watches.watcher_count == 0:
                break
            await asyncio.sleep(0.01)
        assert handle.node.sm.watches.watcher_count == 0

    run(scenario)


def test_watch_from_start_revision_replays_and_compacted_cancels() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        kv = rpc_pb2_grpc.KVStub(channel)
        for value in (b"1", b"2", b"3", b"4"):
            await put(kv, b"h", value)
        call = rpc_pb2_grpc.WatchStub(channel).Watch()
        await call.write(create(b"h", start_revision=3))
        assert (await read(call)).created
        replayed: list[kv_pb2.Event] = []
        while len(replayed) < 3:
            replayed.extend((await read(call)).events)
        assert [e.kv.value for e in replayed] == [b"2", b"3", b"4"]
        await kv.Compact(rpc_pb2.CompactionRequest(revision=4))
        await call.write(create(b"h", start_revision=3))
        created = await read(call)
        assert created.created and not created.canceled
        gone = await read(call)
        assert gone.canceled and gone.compact_revision == 4 and gone.watch_id == created.watch_id
        assert gone.cancel_reason == "etcdserver: mvcc: required revision has been compacted"
        await call.write(create(b""))
        refused = await read(call)
        assert refused.created and refused.canceled and refused.watch_id == -1
        assert refused.cancel_reason == "etcdserver: key is not provided"
        call.cancel()

    run(scenario)


def test_watch_progress_request_and_progress_notify() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        kv = rpc_pb2_grpc.KVStub(channel)
        await put(kv, b"p", b"1")
        call = rpc_pb2_grpc.WatchStub(channel).Watch()
        await call.write(create(b"p", progress_notify=True))
        assert (await read(call)).created
        await call.write(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
        progress = await read(call)
        assert progress.watch_id == 0 and not progress.events and not progress.created
        assert progress.header.revision == 2
        await put(kv, b"q", b"1")  # not watched: the revision moves on
        handle.tick()  # the node's progress tick notifies idle watchers
        notified = await read(call)
        assert not notified.events and notified.header.revision == 3
        call.cancel()

    run(scenario)


def test_watch_fragments_large_revisions_only_when_asked() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        kv = rpc_pb2_grpc.KVStub(channel)
        call = rpc_pb2_grpc.WatchStub(channel).Watch()
        await call.write(create(b"f", range_end=b"g", fragment=True))
        assert (await read(call)).created
        await call.write(create(b"f", range_end=b"g"))
        assert (await read(call)).created
        ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"f%d" % i, value=b"x" * 300))
               for i in range(10)]
        await kv.Txn(rpc_pb2.TxnRequest(success=ops))
        pieces: dict[int, list[rpc_pb2.WatchResponse]] = {0: [], 1: []}
        while not pieces[1] or not pieces[0] or pieces[0][-1].fragment:
            response = await read(call)
            pieces[response.watch_id].append(response)
        assert len(pieces[1]) == 1 and len(pieces[1][0].events) == 10
        assert len(pieces[0]) > 1 and all(p.fragment for p in pieces[0][:-1])
        assert sum(len(p.events) for p in pieces[0]) == 10
        call.cancel()

    run(scenario, fragment_bytes=1024)


def test_many_watch_streams_close_cleanly() -> None:
    async def scenario(handle: SyncNodeHandle, channel: grpc.aio.Channel) -> None:
        kv = rpc_pb2_grpc.KVStub(channel)
        calls = [rpc_pb2_grpc.WatchStub(channel).Watch() for _ in range(5)]
        for call in calls:
            await call.write(create(b"m"))
            assert (await read(call)).created
        await put(kv, b"m", b"1")
        for call in calls:
            response = await read(call)
            assert [e.kv.value for e in response.events] == [b"1"]
            call.cancel()
        for _ in range(100):
            if handle.hub.session_count == 0:
                break
            await asyncio.sleep(0.01)
        assert handle.hub.session_count == 0 and handle.node.sm.watches.watcher_count == 0

    run(scenario)
