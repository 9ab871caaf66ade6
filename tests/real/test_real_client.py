"""real.client against a real single-node member (embedded, on free ports):
every KV operation, compare-and-swap outcomes, the txn builder, watch,
leases with keepalive, members and status; the sync client; the error map."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from real_client_harness import POLICY, builder

from chainfire_core.errors import EmptyKey
from chainfire_core.mvcc.messages import EventType, RangeResponse, SortOrder, SortTarget
from real.client import (
    AsyncClient,
    Client,
    Txn,
    create_revision,
    mod_revision,
    op_delete,
    op_get,
    op_put,
    value,
    version,
)
from real.client import errors as E
from real.client.errors import classify

Code = grpc.StatusCode


def test_real_client_kv_operations(tmp_path: Path) -> None:
    async def body() -> None:
        async with builder("solo", tmp_path).build() as node, \
                AsyncClient([node.endpoint], POLICY) as client:
            first = await client.put("a/1", "one")
            await client.put(b"a/2", b"two")
            await client.put("a/3", "three")
            await client.put("b/1", "other")
            kv = await client.get("a/1")
            assert kv is not None and kv.value == b"one"
            assert kv.mod_revision == first.header.revision
            assert await client.get("missing") is None
            assert [kv.key for kv in await client.get_prefix("a/")] == [b"a/1", b"a/2", b"a/3"]
            replaced = await client.put("a/1", "uno", prev_kv=True)
            assert replaced.prev_kv is not None and replaced.prev_kv.value == b"one"
            # at a revision, limit, sort, keys_only, count_only, serializable
            old = await client.get("a/1", revision=first.header.revision)
            assert old is not None and old.value == b"one"
            limited = await client.range("a/", prefix=True, limit=2, sort_order=SortOrder.DESCEND)
            assert [kv.key for kv in limited.kvs] == [b"a/3", b"a/2"] and limited.more
            by_value = await client.get_prefix("a/", sort_target=SortTarget.VALUE)
            assert [kv.value for kv in by_value] == [b"three", b"two", b"uno"]
            keys = await client.get_prefix("a/", keys_only=True)
            assert all(kv.value == b"" for kv in keys) and len(keys) == 3
            counted = await client.range("a/", prefix=True, count_only=True)
            assert isinstance(counted, RangeResponse) and counted.count == 3 and not counted.kvs
            local = await client.get("b/1", serializable=True)
            assert local is not None and local.value == b"other"
            # delete, delete_prefix
            deleted = await client.delete("b/1", prev_kv=True)
            assert deleted.deleted == 1 and deleted.prev_kvs[0].value == b"other"
            assert (await client.delete_prefix("a/")).deleted == 3
            assert await client.get_prefix("a/") == ()
            # compaction and the typed errors it leads to
            now = (await client.put("c", "x")).header.revision
            await client.compact(now)
            with pytest.raises(E.CompactedError):
                await client.get("a/1", revision=first.header.revision)
            with pytest.raises(E.FutureRevisionError):
                await client.get("c", revision=now + 100)
            with pytest.raises(EmptyKey):  # refused before anything is sent
                await client.put("", "x")
    asyncio.run(body())


def test_real_client_cas_and_txn(tmp_path: Path) -> None:
    async def body() -> None:
        async with builder("solo", tmp_path).build() as node, \
                AsyncClient([node.endpoint], POLICY) as client:
            created = await client.compare_and_swap("lock", "me")  # absent -> create
            assert created.succeeded and created.previous is None
            taken = await client.compare_and_swap("lock", "you")
            assert not taken.succeeded and taken.current is not None
            assert taken.current.value == b"me" and taken.current.mod_revision == created.revision
            wrong = await client.compare_and_swap("lock", "you", expected_value="nobody")
            assert not wrong.succeeded and wrong.current is not None
            swapped = await client.compare_and_swap("lock", "you", expected_value="me")
            assert swapped.succeeded and swapped.previous is not None
            assert swapped.previous.value == b"me"
            stale = await client.compare_and_swap("lock", "x",
                                                  expected_mod_revision=created.revision)
            assert not stale.succeeded and stale.current is not None
            assert stale.current.mod_revision == swapped.revision
            fresh = await client.compare_and_swap("lock", "x",
                                                  expected_mod_revision=swapped.revision)
            assert fresh.succeeded
            gone = await client.compare_and_swap("nothing", "x", expected_value="y")
            assert not gone.succeeded and gone.current is None

            # The builder: compares on value / version / create / mod revision.
            await client.put("k", "v1")
            kv = await client.get("k")
            assert kv is not None
            txn = (Txn().if_(value("k").eq("v1"), version("k").eq(1),
                             create_revision("k").eq(kv.create_revision),
                             mod_revision("k").lt(kv.mod_revision + 1))
                   .then(op_put("k", "v2"), op_put("other", "o"), op_get("k"))
                   .else_(op_delete("k")))
            done = await client.txn(txn)
            assert done.succeeded and len(done.responses) == 3
            read = done.responses[2]
            assert isinstance(read, RangeResponse) and read.kvs[0].value == b"v2"
            again = await client.txn(txn)  # the compares fail now: else branch
            assert not again.succeeded and await client.get("k") is None
            read_only = await client.txn(Txn().if_(version("other").gt(0)).then(op_get("other")),
                                         serializable=True)
            assert read_only.succeeded
    asyncio.run(body())


def test_real_client_watch(tmp_path: Path) -> None:
    async def body() -> None:
        async with builder("solo", tmp_path).build() as node, \
                AsyncClient([node.endpoint], POLICY) as client:
            start = (await client.put("w/0", "a")).header.revision
            await client.put("w/1", "b")
            watch = await client.watch_prefix("w/", prev_kv=True)
            history = await client.watch("w/", prefix=True, start_revision=start)
            await client.put("w/0", "c")
            await client.delete("w/1")
            seen = [await anext(watch), await anext(watch)]
            assert [(e.type, e.kv.key) for e in seen] == [(EventType.PUT, b"w/0"),
                                                          (EventType.DELETE, b"w/1")]
            assert seen[0].prev_kv is not None and seen[0].prev_kv.value == b"a"
            replay = [await anext(history) for _ in range(4)]
            assert [e.kv.mod_revision for e in replay] == list(range(start, start + 4))
            assert watch.next_revision == replay[-1].kv.mod_revision + 1
            await watch.aclose()
            assert [e async for e in watch] == []
            await history.aclose()
            await client.compact(start + 2)
            compacted = await client.watch("w/0", start_revision=start)
            with pytest.raises(E.CompactedError) as caught:
                await anext(compacted)
            assert caught.value.compact_revision == start + 2
    asyncio.run(body())


def test_real_client_lease_keepalive(tmp_path: Path) -> None:
    """A 1 s lease outlives its TTL while kept alive; closed without a revoke
    its key goes when the TTL runs out; closed with one, at once."""
    async def body() -> None:
        async with builder("solo", tmp_path).build() as node, \
                AsyncClient([node.endpoint], POLICY) as client:
            lease = await client.lease(1).start()
            await client.put("held", "x", lease=lease.id)
            watch = await client.watch("held")
            await asyncio.sleep(2.5)  # 2.5 TTLs of wall time: what is under test
            assert await client.get("held") is not None and lease.renewals >= 3
            ttl = await lease.time_to_live(keys=True)
            assert ttl.keys == (b"held",) and 0 <= ttl.ttl_s <= 1
            await lease.close(revoke=False)
            renewals = lease.renewals
            deleted = await asyncio.wait_for(anext(watch), timeout=5)
            assert deleted.type == EventType.DELETE and lease.renewals == renewals
            assert (await client.time_to_live(lease.id)).ttl_s == -1
            await watch.aclose()
            async with client.lease(30) as scoped:
                await client.put("scoped", "y", lease=scoped.id)
                assert scoped.id in (await client.leases()).leases
                assert (await client.keepalive_once(scoped.id)).ttl_s == 30
            assert await client.get("scoped") is None and scoped.expired.is_set()
            granted = await client.grant(10)
            await client.revoke(granted.id)
            with pytest.raises(E.LeaseNotFoundError):
                await client.revoke(granted.id)
            assert (await client.keepalive_once(granted.id)).ttl_s == 0
    asyncio.run(body())


def test_real_client_members_and_status(tmp_path: Path) -> None:
    async def body() -> None:
        async with builder("solo", tmp_path).build() as node, \
                AsyncClient([node.endpoint], POLICY) as client:
            members = await client.member_list()
            assert [(m.id, m.name) for m in members] == [(node.member_id, "solo")]
            status = await client.status()
            assert status.member_id == node.member_id and status.leader == node.member_id
            assert (await client.status(f"http://{node.endpoint}")).member_id == node.member_id
            learner = await client.member_add(["http://127.0.0.1:1"], is_learner=True)
            assert learner.member is not None and learner.member.is_learner
            assert len(learner.members) == 2
            with pytest.raises(E.LearnerNotReadyError):
                await client.member_promote(learner.member.id)
            left = await client.member_remove(learner.member.id)
            assert [m.id for m in left] == [node.member_id]
            with pytest.raises(E.MemberNotFoundError):
                await client.member_remove(learner.member.id)
    asyncio.run(body())


def test_real_client_sync(tmp_path: Path) -> None:
    """The sync client, against a member running on a background thread."""
    with builder("solo", tmp_path).build() as node, Client([node.endpoint], POLICY) as client:
        client.put("s/1", "a")
        kv = client.get("s/1")
        assert kv is not None and kv.value == b"a"
        assert client.compare_and_swap("s/1", "b", expected_value="a").succeeded
        assert not client.compare_and_swap("s/1", "c", expected_value="a").succeeded
        assert client.txn(Txn().if_(value("s/1").eq("b")).then(op_put("s/2", "z"))).succeeded
        with client.watch_prefix("s/") as watch:
            client.put("s/3", "w")
            client.delete("s/1")
            events = [watch.next(timeout_s=10), watch.next(timeout_s=10)]
            assert [(e.type, e.kv.key) for e in events] == [(EventType.PUT, b"s/3"),
                                                            (EventType.DELETE, b"s/1")]
            with pytest.raises(TimeoutError):
                watch.next(timeout_s=0.05)
        with pytest.raises(StopIteration):
            watch.next(timeout_s=5)
        with client.lease(20) as lease:
            client.put("s/l", "v", lease=lease.id)
            assert lease.time_to_live().ttl_s > 0
        assert client.get("s/l") is None and lease.expired
        (me,) = client.member_list()
        assert me.name == "solo"
        moved = client.member_update(me.id, [*me.peer_urls, "http://127.0.0.1:9"])
        assert [m.peer_urls for m in moved] == [(*me.peer_urls, "http://127.0.0.1:9")]
        with pytest.raises(E.MemberNotFoundError):
            client.member_update(me.id + 1, ["http://127.0.0.1:8"])
        with pytest.raises(E.ClientError) as bad:
            client.member_update(me.id, ["nope"])
        assert bad.value.code == Code.INVALID_ARGUMENT
        assert client.status().leader == node.member_id
        assert [kv.key for kv in client.get_prefix("s/")] == [b"s/2", b"s/3"]


@pytest.mark.parametrize(("code", "details", "kind", "read", "write"), [
    (Code.UNAVAILABLE, "etcdserver: no leader", E.NoLeaderError, True, True),
    (Code.UNAVAILABLE, "etcdserver: leader changed", E.LeaderChangedError, True, True),
    (Code.UNAVAILABLE, "raft: proposal dropped: node removed", E.ProposalDroppedError, True,
     True),
    (Code.RESOURCE_EXHAUSTED, "etcdserver: too many requests", E.TooManyRequestsError, True,
     True),
    (Code.FAILED_PRECONDITION, "etcdserver: not leader", E.NotLeaderError, True, True),
    (Code.UNAVAILABLE, "failed to connect to all addresses; last error: refused",
     E.EndpointUnreachableError, True, True),
    (Code.UNAVAILABLE, "etcdserver: request timed out", E.RequestTimeoutError, True, False),
    (Code.UNAVAILABLE, "etcdserver: server stopped", E.ServerStoppedError, True, False),
    (Code.UNAVAILABLE, "Socket closed", E.ConnectionLostError, True, False),
    (Code.CANCELLED, "CANCELLED", E.ConnectionLostError, True, False),
    (Code.DEADLINE_EXCEEDED, "Deadline Exceeded", E.DeadlineExceededError, True, False),
    (Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted",
     E.CompactedError, False, False),
    (Code.NOT_FOUND, "etcdserver: requested lease not found", E.LeaseNotFoundError, False,
     False),
    (Code.INVALID_ARGUMENT, "etcdserver: key is not provided", E.EmptyKeyError, False, False),
    (Code.INVALID_ARGUMENT, "something new", E.InvalidArgumentError, False, False),
    (Code.INTERNAL, "boom", E.ServerError, False, False),
])
def test_real_client_error_classes(code: Code, details: str, kind: type[E.ClientError],
                                   read: bool, write: bool) -> None:
    error = classify(code, details, "h:1")
    assert type(error) is kind and error.endpoint == "h:1" and error.code == code
    assert (error.retry_read, error.retry_write) == (read, write)
    assert error.outcome_unknown() == (read and not write)
