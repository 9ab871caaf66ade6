"""The write side of Raft storage, and the persist-before-send check.

Theory of operation
-------------------
`ChainfireNode` only *reads* its Raft log through the core's `Storage`
protocol (plus `create_snapshot` / `compact`, which it calls itself when it
snapshots). The driver owns the writes: for every `Ready` it calls
`save(hard_state, entries, snapshot)` (written, not yet durable) and, when
`ready.must_sync`, `sync()` (fsync: everything saved before is durable when
it returns). `DurableStorage` names that whole surface; `real.storage.DiskStorage`
(on disk) and `real.memstore.MemStore` (in memory, for tests) implement it.

Threading: the runtime calls `save`, `compact`, `create_snapshot`, `close`
and every read on the event loop thread. It may call `sync` in a worker
thread while the loop keeps serving *reads* of the storage (Raft reading
entries to send); no write happens while a `sync` runs, because the runtime
persists one Ready at a time.

`DurabilityCheck` is the runtime's copy of the simulator's `_assert_durable`
(sim/host.py): it follows what the runtime has saved and synced, and before
a Ready's messages leave it asserts that each one depends only on durable
state: the term it carries, a vote it grants, the entries an append
response acknowledges. A failure is a broken invariant (`AssertionError`),
never an expected error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chainfire_core.node import SnapshotStorage
from chainfire_core.raft.messages import (
    AppendResponse,
    Entry,
    HardState,
    Message,
    RequestVote,
    Snapshot,
    VoteResponse,
)
from chainfire_core.types import Index


class DurableStorage(SnapshotStorage, Protocol):
    """Raft storage the runtime can persist Readies into."""

    def save(self, hard_state: HardState | None, entries: Sequence[Entry],
             snapshot: Snapshot | None) -> None:
        """Write the snapshot, then the entries, then the hard state (not yet durable)."""
        ...

    def sync(self) -> None:
        """Make everything saved so far durable (fsync)."""
        ...

    def close(self) -> None: ...


class DurabilityCheck:
    """What this node has made durable, as far as its runtime knows."""

    __slots__ = ("_durable_hard", "_durable_last", "_saved_hard", "_saved_last", "node_id")

    def __init__(self, node_id: int, hard_state: HardState, last_index: Index) -> None:
        self.node_id = node_id
        self._durable_hard = self._saved_hard = hard_state
        self._durable_last = self._saved_last = last_index

    @property
    def durable_hard_state(self) -> HardState:
        return self._durable_hard

    @property
    def durable_last_index(self) -> Index:
        return self._durable_last

    def saved(self, hard_state: HardState | None, entries: Sequence[Entry],
              snapshot: Snapshot | None) -> None:
        if snapshot is not None:
            self._saved_last = snapshot.metadata.index
        if entries:
            # Appended entries replace any suffix from their first index on.
            self._saved_last = entries[-1].index
        if hard_state is not None:
            self._saved_hard = hard_state

    def synced(self) -> None:
        self._durable_hard = self._saved_hard
        self._durable_last = self._saved_last

    def check(self, messages: Sequence[Message]) -> None:
        """Raft's persistence rule: nothing leaves before what it depends on is durable."""
        hard = self._durable_hard
        for message in messages:
            if isinstance(message, RequestVote | VoteResponse) and message.pre_vote:
                continue  # a pre-vote promises nothing and carries a future term
            assert hard.term >= message.term, (
                f"node {self.node_id} sent term {message.term} before persisting it "
                f"(durable {hard.term})")
            if isinstance(message, VoteResponse) and message.granted:
                assert hard.term > message.term or hard.vote == message.to, (
                    f"node {self.node_id} granted a vote to {message.to} before persisting it")
            if isinstance(message, AppendResponse) and not message.reject:
                assert self._durable_last >= message.index, (
                    f"node {self.node_id} acknowledged index {message.index} before it "
                    f"was durable (durable last index {self._durable_last})")


__all__ = ["DurabilityCheck", "DurableStorage"]
