"""Quorum arithmetic: majority and joint configurations.

Theory of operation
-------------------
This module knows nothing of Raft. A *majority configuration* is a set of
voter ids; it answers two questions:

- `committed_index(acked)`: given the highest index each voter has acked,
  the largest index that a majority has acked. Sort the acked indexes of the
  n voters in descending order (a voter that has not reported counts as 0);
  the value at position n // 2 (0-based) is acked by n // 2 + 1 voters, the
  smallest majority, and no larger value is.
- `vote_result(votes)`: given the yes/no votes cast so far, WON once a
  majority said yes, LOST once a majority can no longer say yes, PENDING
  otherwise. Votes from ids outside the configuration are ignored.

An *empty* majority configuration is a neutral element, as in etcd-io/raft:
it has committed everything (`MAX_INDEX`) and has won every vote. That lets a
joint configuration with an empty outgoing half behave exactly like its
incoming half.

A *joint configuration* (incoming, outgoing) is the pair used during a
membership change (Raft thesis section 4.3): a decision needs a majority of
*both* halves. Its committed index is the minimum of the two halves; its
vote is WON only if both halves win, LOST if either loses, PENDING otherwise.

Ids are kept as sorted tuples and every loop runs in id order, so nothing
depends on set or hash order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from chainfire_core.types import Index, NodeId

# What an empty majority config reports as committed: "no constraint".
# etcd uses math.MaxUint64; indexes never get near it.
MAX_INDEX = Index(2**64 - 1)


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class MajorityConfig:
    """A set of voter ids (a sorted tuple without duplicates)."""

    ids: tuple[NodeId, ...] = ()

    def __post_init__(self) -> None:
        assert list(self.ids) == sorted(set(self.ids)), f"ids not sorted/unique: {self.ids}"
        assert all(node_id > 0 for node_id in self.ids), f"ids must be > 0: {self.ids}"

    @classmethod
    def of(cls, ids: Iterable[NodeId]) -> MajorityConfig:
        """Build from ids in any order; duplicates collapse."""
        return cls(ids=tuple(sorted(set(ids))))

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.ids

    def __iter__(self) -> Iterator[NodeId]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __str__(self) -> str:
        return "(" + " ".join(str(node_id) for node_id in self.ids) + ")"

    def committed_index(self, acked: Mapping[NodeId, Index]) -> Index:
        """The largest index acked by a majority; voters missing from
        `acked` count as having acked 0. Empty config: `MAX_INDEX`."""
        if not self.ids:
            return MAX_INDEX
        descending = sorted((acked.get(node_id, Index(0)) for node_id in self.ids), reverse=True)
        return descending[len(self.ids) // 2]

    def vote_result(self, votes: Mapping[NodeId, bool]) -> VoteResult:
        """WON, LOST or PENDING for the votes cast so far. Empty config: WON."""
        if not self.ids:
            return VoteResult.WON
        granted = sum(1 for node_id in self.ids if votes.get(node_id) is True)
        missing = sum(1 for node_id in self.ids if node_id not in votes)
        quorum = len(self.ids) // 2 + 1
        if granted >= quorum:
            return VoteResult.WON
        if granted + missing >= quorum:
            return VoteResult.PENDING
        return VoteResult.LOST


EMPTY_MAJORITY = MajorityConfig()


@dataclass(frozen=True, slots=True, kw_only=True)
class JointConfig:
    """Two majority configs that must both agree. Not joint while `outgoing`
    is empty; then it behaves exactly like `incoming`."""

    incoming: MajorityConfig = field(default_factory=MajorityConfig)
    outgoing: MajorityConfig = field(default_factory=MajorityConfig)

    @property
    def joint(self) -> bool:
        return bool(self.outgoing)

    def ids(self) -> tuple[NodeId, ...]:
        """Every voter of either half, sorted."""
        return tuple(sorted(set(self.incoming.ids) | set(self.outgoing.ids)))

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.incoming or node_id in self.outgoing

    def __str__(self) -> str:
        if self.outgoing:
            return f"{self.incoming}&&{self.outgoing}"
        return str(self.incoming)

    def committed_index(self, acked: Mapping[NodeId, Index]) -> Index:
        """The largest index acked by a majority of both halves."""
        return min(self.incoming.committed_index(acked), self.outgoing.committed_index(acked))

    def vote_result(self, votes: Mapping[NodeId, bool]) -> VoteResult:
        """WON if both halves won, LOST if either lost, else PENDING."""
        first = self.incoming.vote_result(votes)
        second = self.outgoing.vote_result(votes)
        if first == second:
            return first
        if VoteResult.LOST in (first, second):
            return VoteResult.LOST
        return VoteResult.PENDING


__all__ = ["EMPTY_MAJORITY", "MAX_INDEX", "JointConfig", "MajorityConfig", "VoteResult"]
