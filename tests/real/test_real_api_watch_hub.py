"""WatchHub: sessions over a node's watchable store (no gRPC), and the Watch
stream's end when the node stops."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from real_api_double import SyncNodeHandle, serve

from chainfire_core.config import StateMachineConfig
from chainfire_core.errors import WatchNotFound
from chainfire_core.lease.lessor import Lessor
from chainfire_core.mvcc.messages import PutRequest
from chainfire_core.mvcc.store import MvccStore
from chainfire_core.mvcc.watch_messages import WatchCreateRequest
from chainfire_core.mvcc.watchable import WatchableStore
from chainfire_core.storage import MemoryBackend
from real.api.server import ListenError, start_server
from real.api.watch_hub import WatchHub
from real.etcdpb import rpc_pb2, rpc_pb2_grpc


def make_store(buffer_events: int = 1024) -> tuple[MvccStore, WatchHub]:
    config = StateMachineConfig(watcher_buffer_events=buffer_events)
    store = MvccStore(MemoryBackend(), config, Lessor(config))
    return store, WatchHub(WatchableStore(store, config), max_events_per_poll=3)


def test_sessions_see_only_their_own_watchers_and_close_frees_them() -> None:
    async def main() -> None:
        store, hub = make_store()
        one, two = hub.session(), hub.session()
        a = await one.create(WatchCreateRequest(key=b"k"))
        b = await two.create(WatchCreateRequest(key=b"k"))
        assert [r.watch_id for r in await one.responses()] == [a]
        assert [r.watch_id for r in await two.responses()] == [b]
        store.put(PutRequest(key=b"k", value=b"v"))
        hub.notify()
        assert [(r.watch_id, len(r.events)) for r in await one.responses()] == [(a, 1)]
        with pytest.raises(WatchNotFound):
            await one.cancel(b)  # not this session's
        one.close()
        one.close()  # idempotent
        assert hub.store.watcher_count == 1 and hub.session_count == 1
        assert await one.responses() == ()
        hub.close()
        assert await two.responses() == ()
        assert hub.store.watcher_count == 0 and hub.session_count == 0
        assert await hub.session().responses() == ()  # a closed hub gives closed sessions

    asyncio.run(main())


def test_a_waiting_session_wakes_on_notify_and_a_slow_one_loses_nothing() -> None:
    async def main() -> None:
        store, hub = make_store(buffer_events=4)
        session = hub.session()
        watch_id = await session.create(WatchCreateRequest(key=b"k", start_revision=1))
        assert (await session.responses())[0].created
        waiter = asyncio.ensure_future(session.responses())
        await asyncio.sleep(0)
        assert not waiter.done()
        for i in range(20):  # far more than the watcher's buffer
            store.put(PutRequest(key=b"k", value=b"%d" % i))
        hub.notify()
        values = [e.kv.value for r in await waiter for e in r.events]
        while len(values) < 20:
            values += [e.kv.value for r in await session.responses() for e in r.events]
        assert values == [b"%d" % i for i in range(20)]
        await session.cancel(watch_id)
        last = await session.responses()
        assert last[-1].canceled
        assert session.watch_ids == ()

    asyncio.run(main())


def test_watch_stream_ends_unavailable_when_the_node_stops() -> None:
    handle = SyncNodeHandle()

    async def main() -> None:
        async with serve(handle) as channel:
            call = rpc_pb2_grpc.WatchStub(channel).Watch()
            await call.write(rpc_pb2.WatchRequest(
                create_request=rpc_pb2.WatchCreateRequest(key=b"k")))
            created = await asyncio.wait_for(call.read(), 10)
            assert isinstance(created, rpc_pb2.WatchResponse) and created.created
            handle.hub.close()
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(call.read(), 10)
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            assert ended.value.details() == "etcdserver: server stopped"
            kv = rpc_pb2_grpc.KVStub(channel)  # unary RPCs still work
            await kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"))

    asyncio.run(main())


def test_start_server_refuses_an_address_it_cannot_bind() -> None:
    handle = SyncNodeHandle()

    async def main() -> None:
        api = await start_server(handle, ["127.0.0.1:0"])
        try:
            (port,) = api.ports
            with pytest.raises(ListenError, match=f"127.0.0.1:{port}"):
                await start_server(handle, [f"127.0.0.1:{port}"])
        finally:
            await api.stop(None)

    asyncio.run(main())
