"""Membership changes: compute the next (config, progress) from the current one.

Theory of operation
-------------------
A `Changer` wraps a tracker and the last log index, and computes the config
and progress map that a conf change leads to, *without touching the
tracker*: it works on a copy (sets of ids and cloned progress), checks the
result and returns it frozen; the caller installs it with
`ProgressTracker.set_config`. A rejected change raises `ConfChangeError`
and leaves nothing half-done. This is etcd-io/raft's `confchange.Changer`.

Three operations:

- `simple(changes)`: apply the changes to a non-joint config directly. Safe
  only if at most one voter is added or removed (the symmetric difference of
  the old and new voter sets has at most one id); more needs joint consensus.
- `enter_joint(auto_leave, changes)`: copy the voters into the outgoing half,
  apply the changes to the incoming half. Decisions then need a majority of
  both halves. `auto_leave` asks Raft to leave the joint config by itself
  once the change is committed.
- `leave_joint()`: drop the outgoing half. Learners-to-be become learners;
  peers that were only in the outgoing half lose their progress.

A single change on the working copy:

- ADD_NODE: make the node a voter of the incoming half (a learner is promoted).
- ADD_LEARNER: make the node a learner. A voter is demoted; if it is still a
  voter of the outgoing half it cannot be a learner yet (voters and learners
  are disjoint), so it goes to `learners_next` and becomes a learner on
  `leave_joint`.
- REMOVE_NODE: drop the node from the incoming half and the learners; keep
  its progress while it is still an outgoing voter.

New peers get a fresh progress probing at `last_index + 1`, marked recently
active. Checks (etcd's): no joint entry from a joint or zero-voter config,
no leave from a non-joint config, no simple change in a joint config, and no
change may leave the incoming half without voters. An empty config may be
filled by simple changes (bootstrap, restore).

`restore(conf_state, ...)` rebuilds a config from a `ConfState` (etcd's
`confchange.Restore`) by replaying changes on an empty config: the outgoing
voters one by one, then (if joint) entering the joint config with the
incoming voters, learners and learners-to-be. A ConfState that does not
round-trip is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import assert_never

from chainfire_core.errors import InvalidRequest
from chainfire_core.raft.messages import ConfChange, ConfChangeSingle, ConfChangeType, ConfState
from chainfire_core.raft.progress import Progress
from chainfire_core.raft.quorum import JointConfig, MajorityConfig
from chainfire_core.raft.tracker import (
    ProgressMap,
    ProgressTracker,
    TrackerConfig,
    check_config,
    describe_progress,
)
from chainfire_core.types import Index, NodeId


class ConfChangeError(InvalidRequest):
    """A membership change that cannot be applied to the current config."""


@dataclass(slots=True, kw_only=True)
class _Draft:
    """The mutable working copy a change is applied to."""

    incoming: set[NodeId]
    outgoing: set[NodeId]
    learners: set[NodeId]
    learners_next: set[NodeId]
    auto_leave: bool
    progress: ProgressMap = field(default_factory=dict)

    @classmethod
    def of(cls, tracker: ProgressTracker) -> _Draft:
        config = tracker.config
        return cls(
            incoming=set(config.voters.incoming), outgoing=set(config.voters.outgoing),
            learners=set(config.learners), learners_next=set(config.learners_next),
            auto_leave=config.auto_leave,
            progress={node_id: tracker.progress[node_id].clone()
                      for node_id in sorted(tracker.progress)})

    def freeze(self) -> tuple[TrackerConfig, ProgressMap]:
        voters = JointConfig(incoming=MajorityConfig.of(self.incoming),
                             outgoing=MajorityConfig.of(self.outgoing))
        config = TrackerConfig(
            voters=voters, learners=tuple(sorted(self.learners)),
            learners_next=tuple(sorted(self.learners_next)), auto_leave=self.auto_leave)
        check_config(config, self.progress)
        return config, self.progress


class Changer:
    """Computes configs that follow from `tracker`'s; never mutates it."""

    __slots__ = ("last_index", "tracker")

    def __init__(self, tracker: ProgressTracker, last_index: Index) -> None:
        assert last_index >= 0, last_index
        self.tracker = tracker
        self.last_index = last_index

    def apply(self, conf_change: ConfChange) -> tuple[TrackerConfig, ProgressMap]:
        """Dispatch like etcd's applyConfChange: a change that enters a joint
        config (several changes, or a non-AUTO transition) enters it; an empty
        AUTO change leaves it; anything else is a simple change."""
        if conf_change.enters_joint:
            return self.enter_joint(conf_change.auto_leave, conf_change.changes)
        if conf_change.leaves_joint:
            return self.leave_joint()
        return self.simple(conf_change.changes)

    def enter_joint(self, auto_leave: bool,
                    changes: tuple[ConfChangeSingle, ...]) -> tuple[TrackerConfig, ProgressMap]:
        """Enter a joint config: the current voters become the outgoing half,
        `changes` are applied to the incoming half."""
        draft = self._draft()
        if draft.outgoing:
            raise ConfChangeError("conf change: config is already joint")
        if not draft.incoming:
            raise ConfChangeError("conf change: can't make a zero-voter config joint")
        draft.outgoing = set(draft.incoming)
        self._apply(draft, changes)
        draft.auto_leave = auto_leave
        return draft.freeze()

    def leave_joint(self) -> tuple[TrackerConfig, ProgressMap]:
        """Leave the joint config: keep the incoming half only."""
        draft = self._draft()
        if not draft.outgoing:
            raise ConfChangeError("conf change: can't leave a non-joint config")
        for node_id in sorted(draft.learners_next):
            draft.learners.add(node_id)
            draft.progress[node_id].is_learner = True
        draft.learners_next = set()
        for node_id in sorted(draft.outgoing):
            if node_id not in draft.incoming and node_id not in draft.learners:
                del draft.progress[node_id]
        draft.outgoing = set()
        draft.auto_leave = False
        return draft.freeze()

    def simple(self, changes: tuple[ConfChangeSingle, ...]) -> tuple[TrackerConfig, ProgressMap]:
        """Apply `changes` to a non-joint config; at most one voter may change."""
        draft = self._draft()
        if draft.outgoing:
            raise ConfChangeError("conf change: can't apply simple config change in joint config")
        self._apply(draft, changes)
        changed = set(self.tracker.config.voters.incoming) ^ draft.incoming
        if len(changed) > 1:
            raise ConfChangeError(
                "conf change: more than one voter changed without entering joint config")
        return draft.freeze()

    def _draft(self) -> _Draft:
        self.tracker.check_invariants()
        return _Draft.of(self.tracker)

    def _apply(self, draft: _Draft, changes: tuple[ConfChangeSingle, ...]) -> None:
        for change in changes:
            match change.type:
                case ConfChangeType.ADD_NODE:
                    self._make_voter(draft, change.node_id)
                case ConfChangeType.ADD_LEARNER:
                    self._make_learner(draft, change.node_id)
                case ConfChangeType.REMOVE_NODE:
                    _remove(draft, change.node_id)
                case _:
                    assert_never(change.type)
        if not draft.incoming:
            raise ConfChangeError("conf change: removed all voters")

    def _make_voter(self, draft: _Draft, node_id: NodeId) -> None:
        pr = draft.progress.get(node_id)
        if pr is None:
            draft.progress[node_id] = self._new_progress(is_learner=False)
        else:
            pr.is_learner = False
            draft.learners.discard(node_id)
            draft.learners_next.discard(node_id)
        draft.incoming.add(node_id)

    def _make_learner(self, draft: _Draft, node_id: NodeId) -> None:
        pr = draft.progress.get(node_id)
        if pr is None:
            draft.progress[node_id] = self._new_progress(is_learner=True)
            draft.learners.add(node_id)
            return
        if pr.is_learner:
            return
        _remove(draft, node_id)
        draft.progress[node_id] = pr  # demoted, not forgotten
        if node_id in draft.outgoing:
            draft.learners_next.add(node_id)
        else:
            pr.is_learner = True
            draft.learners.add(node_id)

    def _new_progress(self, *, is_learner: bool) -> Progress:
        return self.tracker.make_progress(Index(self.last_index + 1), is_learner=is_learner)


def _remove(draft: _Draft, node_id: NodeId) -> None:
    if node_id not in draft.progress:
        return
    draft.incoming.discard(node_id)
    draft.learners.discard(node_id)
    draft.learners_next.discard(node_id)
    if node_id not in draft.outgoing:
        del draft.progress[node_id]


def _restore_changes(
    conf_state: ConfState,
) -> tuple[tuple[ConfChangeSingle, ...], tuple[ConfChangeSingle, ...]]:
    """(changes building the outgoing voters, changes then entering the
    incoming config): remove every outgoing voter, add the voters, the
    learners and the learners-to-be (who land in learners_next because they
    are still outgoing voters)."""

    def changes(kind: ConfChangeType, ids: tuple[NodeId, ...]) -> tuple[ConfChangeSingle, ...]:
        return tuple(ConfChangeSingle(type=kind, node_id=node_id) for node_id in ids)

    outgoing = changes(ConfChangeType.ADD_NODE, conf_state.voters_outgoing)
    incoming = (changes(ConfChangeType.REMOVE_NODE, conf_state.voters_outgoing)
                + changes(ConfChangeType.ADD_NODE, conf_state.voters)
                + changes(ConfChangeType.ADD_LEARNER, conf_state.learners)
                + changes(ConfChangeType.ADD_LEARNER, conf_state.learners_next))
    return outgoing, incoming


def restore(conf_state: ConfState, *, tracker: ProgressTracker,
            last_index: Index) -> tuple[TrackerConfig, ProgressMap]:
    """The config and progress map described by `conf_state`, built from an
    empty config (only `tracker`'s inflight limits are used; it is not
    mutated). Raises `ConfChangeError` if `conf_state` is not a valid config."""
    scratch = ProgressTracker(tracker.max_inflight_msgs, tracker.max_inflight_bytes)
    outgoing, incoming = _restore_changes(conf_state)
    steps = outgoing if outgoing else incoming
    for change in steps:
        scratch.set_config(*Changer(scratch, last_index).simple((change,)))
    if outgoing:
        scratch.set_config(
            *Changer(scratch, last_index).enter_joint(conf_state.auto_leave, incoming))
    if scratch.conf_state() != conf_state:
        raise ConfChangeError(
            f"conf change: invalid conf state {conf_state} (restores as {scratch.conf_state()})")
    return scratch.config, scratch.progress


def describe(config: TrackerConfig, progress: ProgressMap | None = None) -> str:
    """Datadriven rendering: the config line, then one `id: progress` line
    per peer, e.g. `voters=(1 2 3)&&(1 2) learners=(4) learners_next=(5) autoleave`."""
    if not progress:
        return str(config)
    return f"{config}\n{describe_progress(progress)}"


__all__ = ["ConfChangeError", "Changer", "describe", "restore"]
