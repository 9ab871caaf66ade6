"""The leader's view of the cluster: membership config, progress, votes.

Theory of operation
-------------------
`ProgressTracker` holds three things (etcd-io/raft's `tracker` package):

- `config`: the membership in force, a frozen `TrackerConfig`: the voters
  as a `JointConfig` (incoming && outgoing; the outgoing half is empty unless
  a joint change is in progress), the learners, the learners-to-be
  (`learners_next`: voters of the outgoing half that become learners when
  the joint config is left) and whether the joint config is left
  automatically (`auto_leave`).
- `progress`: one `Progress` per member (voter of either half, learner or
  learner-to-be, and nobody else); `is_learner` is set exactly for `learners`.
- `votes`: the votes received in the current election; the first vote
  recorded from a peer wins.

The config and the progress map are replaced together, never edited in
place: the conf changer (confchange.py) computes a new pair from the old
one, and `set_config` installs it after checking `check_config`.

Quorum questions are delegated to quorum.py: `committed()` is the index a
quorum of voters has matched; `tally_votes()` counts the votes of voters
only (learners and strangers are ignored); `quorum_active()` asks whether
the voters heard from recently (`recent_active`) form a quorum. It does not
reset the flags: as in etcd, the leader calls `reset_recent_active(self_id)`
after each check-quorum round so the next round starts from scratch.

Everything that walks peers walks them in sorted id order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from chainfire_core.raft.inflights import Inflights
from chainfire_core.raft.messages import ConfState
from chainfire_core.raft.progress import Progress
from chainfire_core.raft.quorum import JointConfig, MajorityConfig, VoteResult
from chainfire_core.types import Index, NodeId

ProgressMap = dict[NodeId, Progress]


def _sorted_unique(ids: tuple[NodeId, ...]) -> bool:
    return list(ids) == sorted(set(ids))


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerConfig:
    """The membership in force. Id tuples are sorted and unique."""

    voters: JointConfig = field(default_factory=JointConfig)
    learners: tuple[NodeId, ...] = ()
    learners_next: tuple[NodeId, ...] = ()
    auto_leave: bool = False

    def __post_init__(self) -> None:
        assert _sorted_unique(self.learners), self.learners
        assert _sorted_unique(self.learners_next), self.learners_next
        voters = set(self.voters.ids())
        assert not voters & set(self.learners), f"learners and voters overlap: {self}"
        # A learner-to-be is still a voter of the outgoing half, and only there.
        for node_id in self.learners_next:
            assert node_id in self.voters.outgoing, f"{node_id} in learners_next, not outgoing"
            assert node_id not in self.voters.incoming, f"{node_id} in learners_next and incoming"
        if not self.joint:
            assert not self.learners_next, f"learners_next outside a joint config: {self}"
            assert not self.auto_leave, f"auto_leave outside a joint config: {self}"

    @property
    def joint(self) -> bool:
        return self.voters.joint

    def ids(self) -> tuple[NodeId, ...]:
        """Every member: voters of both halves and learners, sorted."""
        return tuple(sorted(set(self.voters.ids()) | set(self.learners)))

    def __str__(self) -> str:
        """etcd's rendering: voters=(1 2 3)&&(1 2) learners=(4) learners_next=(5) autoleave"""
        text = f"voters={self.voters}"
        if self.learners:
            text += f" learners={MajorityConfig(ids=self.learners)}"
        if self.learners_next:
            text += f" learners_next={MajorityConfig(ids=self.learners_next)}"
        if self.auto_leave:
            text += " autoleave"
        return text

    def conf_state(self) -> ConfState:
        return ConfState(
            voters=self.voters.incoming.ids, learners=self.learners,
            voters_outgoing=self.voters.outgoing.ids, learners_next=self.learners_next,
            auto_leave=self.auto_leave)


def check_config(config: TrackerConfig, progress: ProgressMap) -> None:
    """Assert that `progress` tracks exactly the members of `config`, with
    `is_learner` set exactly for its learners (`learners_next` are not
    learners yet). The config's own rules are checked when it is built."""
    assert sorted(progress) == list(config.ids()), (sorted(progress), str(config))
    learners = set(config.learners)
    for node_id in sorted(progress):
        pr = progress[node_id]
        assert pr.is_learner == (node_id in learners), f"{node_id}: is_learner={pr.is_learner}"


def describe_progress(progress: ProgressMap) -> str:
    """One `id: progress` line per peer, in id order (etcd's ProgressMap.String)."""
    return "\n".join(f"{node_id}: {progress[node_id]}" for node_id in sorted(progress))


class VoteTally(NamedTuple):
    granted: int
    rejected: int
    result: VoteResult


class ProgressTracker:
    """Membership config, per-peer progress and election votes."""

    __slots__ = ("config", "max_inflight_bytes", "max_inflight_msgs", "progress", "votes")

    def __init__(self, max_inflight_msgs: int, max_inflight_bytes: int | None = None) -> None:
        assert max_inflight_msgs > 0, max_inflight_msgs
        assert max_inflight_bytes is None or max_inflight_bytes > 0, max_inflight_bytes
        self.max_inflight_msgs = max_inflight_msgs
        self.max_inflight_bytes = max_inflight_bytes
        self.config = TrackerConfig()
        self.progress: ProgressMap = {}
        self.votes: dict[NodeId, bool] = {}

    # -- membership -------------------------------------------------------------

    def make_progress(self, next_index: Index, *, is_learner: bool) -> Progress:
        """A fresh peer: probing at `next_index`, marked recently active so
        check-quorum does not step down before it had a chance to answer."""
        return Progress(
            next=next_index, is_learner=is_learner, recent_active=True,
            inflights=Inflights(self.max_inflight_msgs, self.max_inflight_bytes))

    def set_config(self, config: TrackerConfig, progress: ProgressMap) -> None:
        """Install a config and progress map made by the conf changer."""
        check_config(config, progress)
        self.config = config
        self.progress = progress

    def conf_state(self) -> ConfState:
        return self.config.conf_state()

    def is_singleton(self) -> bool:
        """True when the only voter is one node and no change is in progress."""
        return len(self.config.voters.incoming) == 1 and not self.config.joint

    def voter_nodes(self) -> tuple[NodeId, ...]:
        """Voters of either half, sorted."""
        return self.config.voters.ids()

    def learner_nodes(self) -> tuple[NodeId, ...]:
        """Learners (not learners-to-be), sorted."""
        return self.config.learners

    def visit(self, fn: Callable[[NodeId, Progress], None]) -> None:
        """Call `fn(id, progress)` for every peer in id order."""
        for node_id in sorted(self.progress):
            fn(node_id, self.progress[node_id])

    # -- quorum questions ---------------------------------------------------------

    def committed(self) -> Index:
        """The largest index matched by a quorum of the voters."""
        voters = self.config.voters
        acked = {node_id: self.progress[node_id].match for node_id in voters.ids()}
        return voters.committed_index(acked)

    def quorum_active(self) -> bool:
        """True when the recently active voters form a quorum. Does not reset
        the flags; see `reset_recent_active`."""
        active = {node_id: self.progress[node_id].recent_active
                  for node_id in self.config.voters.ids()}
        return self.config.voters.vote_result(active) == VoteResult.WON

    def reset_recent_active(self, except_id: NodeId) -> None:
        """Start a new check-quorum round: every peer but `except_id` (the
        leader itself) is inactive until heard from."""
        for node_id in sorted(self.progress):
            if node_id != except_id:
                self.progress[node_id].recent_active = False

    # -- votes ------------------------------------------------------------------

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, node_id: NodeId, granted: bool) -> None:
        """Record `node_id`'s vote; a later vote from the same node is ignored."""
        self.votes.setdefault(node_id, granted)

    def tally_votes(self) -> VoteTally:
        """Granted and rejected votes among the voters, and the outcome."""
        granted = rejected = 0
        for node_id in self.config.voters.ids():
            vote = self.votes.get(node_id)
            if vote is True:
                granted += 1
            elif vote is False:
                rejected += 1
        return VoteTally(granted, rejected, self.config.voters.vote_result(self.votes))

    def check_invariants(self) -> None:
        check_config(self.config, self.progress)
        for node_id in sorted(self.progress):
            pr = self.progress[node_id]
            pr.check_invariants()
            assert pr.inflights.capacity == self.max_inflight_msgs, node_id
            assert pr.inflights.max_bytes == self.max_inflight_bytes, node_id


__all__ = [
    "ProgressMap",
    "ProgressTracker",
    "TrackerConfig",
    "VoteTally",
    "check_config",
    "describe_progress",
]
