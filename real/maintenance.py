"""The operator's maintenance calls over a running member: backup, hashes,
defragmentation, leadership transfer (what Maintenance serves besides Status).

Theory of operation
-------------------
`NodeMaintenance` reads the member's state on the event loop that drives the
node, between two Readys, so what it reads is one applied state: a backup is
the state machine's snapshot at that moment (real/backup.py), HashKV hashes
the live keys at a revision, Hash digests the whole replicated state.

MoveLeader follows etcd's server: only the leader accepts it (a follower
answers "not leader"), the target must be a voting member, and the call
returns once the target leads or fails after the timeout ("leader transfer
took too long"). The core's Raft does the transfer (catching the target up,
then telling it to campaign at once); the runtime's `wait_until` re-checks
the condition after every Ready.

Defragment compacts the member's on-disk files (SQLite's VACUUM of the Raft
log database `raft.db` and of the state machine's backend `state.db`). Like
etcd, it blocks the member's writes while it runs (it runs on the event
loop, between Readies).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from chainfire_core.errors import ChainfireError, NotLeader, RequestTimeout
from chainfire_core.mvcc.store import KVHash
from chainfire_core.node import ChainfireNode
from chainfire_core.types import NodeId
from real.backup import backup_bytes

# etcd's default for how long MoveLeader waits (its request timeout, 5 s, x2).
MOVE_LEADER_TIMEOUT_S = 10.0


class BadLeaderTransferee(ChainfireError):
    grpc_code = "FAILED_PRECONDITION"

    def __init__(self, target: int) -> None:
        super().__init__("etcdserver: bad leader transferee")
        self.target = target


class LeaderTransferTimeout(ChainfireError):
    grpc_code = "UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("etcdserver: request timed out, leader transfer took too long")


class MaintenanceOps(Protocol):
    """What the Maintenance servicer needs beyond the NodeHandle."""

    def backup(self) -> bytes: ...

    def hash_kv(self, revision: int) -> KVHash: ...

    def hash(self) -> int: ...

    async def defragment(self) -> None: ...

    async def move_leader(self, target: int) -> None: ...


WaitUntil = Callable[[Callable[[], bool], float], Awaitable[None]]


class NodeMaintenance:
    """`MaintenanceOps` over one node (the runtime's, or a test double's)."""

    def __init__(self, node: ChainfireNode, wait_until: WaitUntil, *,
                 defragment: Callable[[], None] | None = None,
                 move_leader_timeout_s: float = MOVE_LEADER_TIMEOUT_S) -> None:
        self.node = node
        self._wait_until = wait_until
        self._defragment = defragment
        self.move_leader_timeout_s = move_leader_timeout_s

    def backup(self) -> bytes:
        return backup_bytes(self.node.sm)

    def hash_kv(self, revision: int) -> KVHash:
        """Raises Compacted / FutureRevision as a range at `revision` would."""
        return self.node.sm.store.hash_kv(revision)

    def hash(self) -> int:
        """A 32-bit digest of the whole replicated state (etcd's Hash is meant
        for tests: equal on members that applied the same entries)."""
        return int.from_bytes(hashlib.sha256(self.node.sm.snapshot()).digest()[:4], "big")

    async def defragment(self) -> None:
        if self._defragment is not None:
            self._defragment()

    async def move_leader(self, target: int) -> None:
        raft = self.node.raw.raft
        if not self.node.is_leader:
            raise NotLeader(raft.lead)
        voters = self.node.raw.raft.tracker.conf_state().voters
        if target not in voters:
            raise BadLeaderTransferee(target)
        if target == self.node.id:
            return
        self.node.transfer_leader(NodeId(target))

        def done() -> bool:
            return self.node.raw.raft.lead == target

        try:
            await self._wait_until(done, self.move_leader_timeout_s)
        except (TimeoutError, RequestTimeout) as error:
            raise LeaderTransferTimeout() from error


__all__ = ["MOVE_LEADER_TIMEOUT_S", "BadLeaderTransferee", "LeaderTransferTimeout",
           "MaintenanceOps", "NodeMaintenance"]
