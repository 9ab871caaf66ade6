"""A scenario for the `aetcd` PyPI client (an asyncio etcd v3 client with its
own generated copy of etcd's protos), run as its own process by
test_real_etcdctl.py: etcd's protos cannot share a process with ours.

    python real_etcd_pyclient.py HOST:PORT PREFIX

Runs put / get / get_prefix / delete / transaction / leases / watch (live
and replayed from a revision) / members / status / compaction against the
endpoint, under keys starting with PREFIX, and prints one JSON object:
each step's result with revisions made relative to the scenario's first
write and lease ids replaced by "LEASE", so the output of Chainfire and of
etcd can be compared as they are. Exit status 0 even when a step fails:
failures are results too (the exception's class and message).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aetcd  # type: ignore[import-not-found, unused-ignore]
from aetcd import exceptions as aetcd_exceptions  # type: ignore[import-not-found, unused-ignore]

STEP_TIMEOUT_S = 10.0


class Scenario:
    def __init__(self, client: Any, prefix: bytes) -> None:
        self.client = client
        self.prefix = prefix
        self.base = 0
        self.leases: dict[int, str] = {}
        self.results: dict[str, Any] = {}

    def key(self, name: str) -> bytes:
        return self.prefix + name.encode()

    def rev(self, revision: int) -> int | None:
        return revision - self.base if revision else None

    def lease(self, lease_id: int) -> str | None:
        if not lease_id:
            return None
        return self.leases.setdefault(lease_id, f"LEASE{len(self.leases)}")

    def kv(self, kv: Any) -> dict[str, Any] | None:
        if kv is None:
            return None
        key = kv.key[len(self.prefix):] if kv.key.startswith(self.prefix) else kv.key
        return {"key": key.decode(), "value": kv.value.decode(),
                "create": self.rev(kv.create_revision), "mod": self.rev(kv.mod_revision),
                "version": kv.version, "lease": self.lease(kv.lease)}

    async def step(self, name: str, work: Any) -> None:
        try:
            self.results[name] = await asyncio.wait_for(work, STEP_TIMEOUT_S)
        except (TimeoutError, aetcd_exceptions.ClientError) as error:
            self.results[name] = {"error": type(error).__name__, "message": str(error)}

    async def run(self) -> dict[str, Any]:
        c, k = self.client, self.key
        first = await c.put(k("a"), b"1")
        self.base = first.header.revision - 1
        self.results["first_put_revision"] = self.rev(first.header.revision)
        await self.step("put_prev_kv", self._put(k("a"), b"2", prev_kv=True))
        await self.step("put_b", self._put(k("b"), b"x"))
        await self.step("get", self._get(k("a")))
        await self.step("get_missing", self._get(k("zzz")))
        await self.step("get_prefix", self._prefix(self.prefix))
        await self.step("delete", self._delete(k("b")))
        await self.step("delete_missing", self._delete(k("b")))
        await self.step("txn_success", self._txn(k("a"), b"2"))
        await self.step("txn_failure", self._txn(k("a"), b"nope"))
        await self.step("replace", c.replace(k("a"), b"2", b"replaced"))
        await self.step("lease", self._lease(k("leased")))
        await self.step("watch_live", self._watch_live(k("w")))
        await self.step("watch_replay", self._watch_replay(k("a")))
        await self.step("delete_prefix", self._delete_prefix(self.prefix))
        await self.step("members", self._members())
        await self.step("status", self._status())
        await self.step("compact", self._compact(k("c")))
        return self.results

    async def _put(self, key: bytes, value: bytes, *, prev_kv: bool = False) -> Any:
        response = await self.client.put(key, value, prev_kv=prev_kv)
        return {"revision": self.rev(response.header.revision),
                "prev_kv": self.kv(response.prev_kv)}

    async def _get(self, key: bytes) -> Any:
        response = await self.client.get(key)
        return None if response is None else self.kv(response)

    async def _prefix(self, prefix: bytes) -> Any:
        response = await self.client.get_prefix(prefix)
        return {"count": response.count, "more": response.more,
                "kvs": [self.kv(kv) for kv in response]}

    async def _delete(self, key: bytes) -> Any:
        response = await self.client.delete(key, prev_kv=True)
        if response is None:
            return None
        return {"deleted": response.deleted, "prev_kv": self.kv(response.prev_kv)}

    async def _delete_prefix(self, prefix: bytes) -> Any:
        response = await self.client.delete_prefix(prefix, prev_kv=True)
        keys = sorted(kv.key[len(prefix):].decode() for kv in response)
        return {"deleted": response.deleted, "keys": keys}

    async def _txn(self, key: bytes, expected: bytes) -> Any:
        c = self.client
        t = c.transactions
        succeeded, responses = await c.transaction(
            compare=[t.value(key) == expected, t.version(key) > 0],
            success=[t.get(key), t.put(key + b"-txn", b"yes")],
            failure=[t.get(key + b"-nothing"), t.delete(key + b"-txn")])
        shaped = []
        for response in responses:
            if isinstance(response, list):
                shaped.append([self.kv(get) for _, get in response])
            else:
                kind = response.WhichOneof("response")
                inner = getattr(response, kind)
                header = inner.header
                shaped.append({kind: {"revision": self.rev(header.revision),
                                      "member_id_set": header.member_id != 0}})
        return {"succeeded": succeeded, "responses": shaped}

    async def _lease(self, key: bytes) -> Any:
        c = self.client
        lease = await c.lease(60)
        granted_ttl = lease.ttl
        await c.put(key, b"v", lease=lease)
        attached = await self._get(key)
        refreshed = (await c.refresh_lease(lease.id)).TTL
        info = await c.get_lease_info(lease.id)
        keys = sorted(bytes(item)[len(self.prefix):].decode() for item in info.keys)
        await c.revoke_lease(lease.id)
        after = await self._get(key)
        gone = await c.get_lease_info(lease.id)
        short = await c.lease(0)  # below the minimum: raised to it, as etcd does
        await c.revoke_lease(short.id)
        try:
            await c.revoke_lease(short.id)
            revoked_twice: Any = "no error"
        except aetcd_exceptions.ClientError as error:
            revoked_twice = {"error": type(error).__name__, "message": str(error)}
        return {"granted_ttl": granted_ttl, "id": self.lease(lease.id), "attached": attached,
                "refreshed": refreshed, "info_ttl_ok": 55 <= info.TTL <= 60,
                "info_granted": info.grantedTTL, "info_keys": keys, "after_revoke": after,
                "ttl_after_revoke": gone.TTL, "short_ttl_positive": short.ttl > 0,
                "revoke_twice": revoked_twice}

    async def _watch_live(self, key: bytes) -> Any:
        c = self.client
        watch = await c.watch(key, prev_kv=True)
        await c.put(key, b"1")
        await c.put(key, b"2")
        await c.delete(key)
        events = []
        async for event in watch:
            events.append(self._event(event))
            if len(events) == 3:
                break
        await watch.cancel()
        return events

    async def _watch_replay(self, key: bytes) -> Any:
        c = self.client
        watch = await c.watch(key, start_revision=self.base + 1)
        events = []
        async for event in watch:
            events.append(self._event(event))
            if event.kv.value == b"replaced":
                break
        await watch.cancel()
        return events

    def _event(self, event: Any) -> dict[str, Any]:
        return {"kind": str(event.kind), "kv": self.kv(event.kv),
                "prev_kv": self.kv(event.prev_kv)}

    async def _members(self) -> Any:
        members = [m async for m in self.client.members()]
        return {"count": len(members),
                "all_named": all(m.name for m in members),
                "all_have_peer_urls": all(m.peer_urls for m in members),
                "ids_unique": len({m.id for m in members}) == len(members)}

    async def _status(self) -> Any:
        status = await self.client.status()
        return {"version_major_minor": ".".join(status.version.split(".")[:2]),
                "leader_found": status.leader is not None,
                "raft_index_positive": status.raft_index > 0,
                "raft_term_positive": status.raft_term > 0}

    async def _compact(self, key: bytes) -> Any:
        c = self.client
        old = await c.put(key, b"old")
        await c.put(key, b"new")
        await c.compact(old.header.revision + 1)
        try:
            watch = await c.watch(key, start_revision=old.header.revision)
            async for _event in watch:
                break
            watched: Any = "no error"
        except aetcd_exceptions.RevisionCompactedError as error:
            watched = {"error": "RevisionCompactedError",
                       "compacted": self.rev(error.compacted_revision)}
        return {"watch_compacted": watched}


async def main(endpoint: str, prefix: str) -> None:
    host, _, port = endpoint.rpartition(":")
    async with aetcd.Client(host=host, port=int(port), timeout=STEP_TIMEOUT_S) as client:
        results = await Scenario(client, prefix.encode()).run()
    json.dump(results, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
