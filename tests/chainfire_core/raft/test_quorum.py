"""Quorum arithmetic: examples, and the fast code checked against naive
definitions (try every candidate index; try every completion of the votes)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainfire_core.raft.quorum import (
    EMPTY_MAJORITY,
    MAX_INDEX,
    JointConfig,
    MajorityConfig,
    VoteResult,
)
from chainfire_core.types import Index, NodeId


def majority(*ids: int) -> MajorityConfig:
    return MajorityConfig.of(NodeId(i) for i in ids)


def acks(**by_id: int) -> dict[NodeId, Index]:
    return {NodeId(int(k[1:])): Index(v) for k, v in by_id.items()}


def votes(**by_id: bool) -> dict[NodeId, bool]:
    return {NodeId(int(k[1:])): v for k, v in by_id.items()}


# -- naive definitions ------------------------------------------------------------


def naive_committed(config: MajorityConfig, acked: Mapping[NodeId, Index]) -> Index:
    """Try every candidate index: the largest acked by at least a majority."""
    if not config:
        return MAX_INDEX
    quorum = len(config) // 2 + 1
    candidates = {Index(0)} | {acked.get(i, Index(0)) for i in config}
    return max(c for c in candidates
               if sum(1 for i in config if acked.get(i, Index(0)) >= c) >= quorum)


def naive_joint_committed(config: JointConfig, acked: Mapping[NodeId, Index]) -> Index:
    """The largest candidate index a majority of each half has acked."""
    candidates = {Index(0), MAX_INDEX} | {acked.get(i, Index(0)) for i in config.ids()}

    def ok(half: MajorityConfig, c: Index) -> bool:
        if not half:
            return True
        return sum(1 for i in half if acked.get(i, Index(0)) >= c) >= len(half) // 2 + 1

    return max(c for c in candidates if ok(config.incoming, c) and ok(config.outgoing, c))


def _completions(ids: tuple[NodeId, ...], cast: Mapping[NodeId, bool]) -> list[dict[NodeId, bool]]:
    missing = [i for i in ids if i not in cast]
    out = []
    for choice in itertools.product((False, True), repeat=len(missing)):
        full = {i: cast[i] for i in ids if i in cast}
        full.update(zip(missing, choice, strict=True))
        out.append(full)
    return out


def _wins(half: MajorityConfig, full: Mapping[NodeId, bool]) -> bool:
    return sum(1 for i in half if full[i]) * 2 > len(half) or not half


def naive_vote(config: JointConfig, cast: Mapping[NodeId, bool]) -> VoteResult:
    """WON if every completion of the missing votes wins both halves, LOST if
    none does, else PENDING."""
    outcomes = [_wins(config.incoming, full) and _wins(config.outgoing, full)
                for full in _completions(config.ids(), cast)]
    if all(outcomes):
        return VoteResult.WON
    if not any(outcomes):
        return VoteResult.LOST
    return VoteResult.PENDING


# -- strategies -----------------------------------------------------------------

ids_st = st.frozensets(st.integers(1, 9).map(NodeId), max_size=7).map(MajorityConfig.of)
acked_st = st.dictionaries(st.integers(1, 9).map(NodeId), st.integers(0, 20).map(Index))
votes_st = st.dictionaries(st.integers(1, 9).map(NodeId), st.booleans())
joint_st = st.builds(lambda a, b: JointConfig(incoming=a, outgoing=b), ids_st, ids_st)


# -- examples -------------------------------------------------------------------


@pytest.mark.parametrize(("config", "acked", "expected"), [
    (majority(1), acks(n1=5), 5),
    (majority(1), {}, 0),
    (majority(1, 2), acks(n1=5, n2=3), 3),
    (majority(1, 2, 3), acks(n1=100, n2=101, n3=99), 100),
    (majority(1, 2, 3), acks(n1=100), 0),
    (majority(1, 2, 3), acks(n1=100, n2=7), 7),
    (majority(1, 2, 3, 4), acks(n1=1, n2=2, n3=3, n4=4), 2),
    (majority(1, 2, 3, 4, 5), acks(n1=1, n2=2, n3=3, n4=4, n5=5), 3),
    (majority(1, 2, 3), acks(n1=9, n2=9, n3=9, n7=100, n8=100), 9),  # strangers ignored
])
def test_majority_committed_examples(config: MajorityConfig, acked: dict[NodeId, Index],
                                     expected: int) -> None:
    assert config.committed_index(acked) == expected


def test_empty_majority_is_neutral() -> None:
    assert EMPTY_MAJORITY.committed_index(acks(n1=3)) == MAX_INDEX
    assert EMPTY_MAJORITY.vote_result({}) == VoteResult.WON
    assert str(EMPTY_MAJORITY) == "()"


@pytest.mark.parametrize(("config", "cast", "expected"), [
    (majority(1), {}, VoteResult.PENDING),
    (majority(1), votes(n1=True), VoteResult.WON),
    (majority(1), votes(n1=False), VoteResult.LOST),
    (majority(1, 2), votes(n1=True), VoteResult.PENDING),
    (majority(1, 2), votes(n1=True, n2=False), VoteResult.LOST),
    (majority(1, 2, 3), votes(n1=True, n2=True), VoteResult.WON),
    (majority(1, 2, 3), votes(n1=False, n2=True), VoteResult.PENDING),
    (majority(1, 2, 3), votes(n1=False, n2=False), VoteResult.LOST),
    (majority(1, 2, 3), votes(n4=True, n5=True), VoteResult.PENDING),  # strangers ignored
])
def test_majority_vote_examples(config: MajorityConfig, cast: dict[NodeId, bool],
                                expected: VoteResult) -> None:
    assert config.vote_result(cast) == expected


def test_joint_committed_is_min_of_halves() -> None:
    joint = JointConfig(incoming=majority(1, 2, 3), outgoing=majority(3, 4, 5))
    acked = acks(n1=10, n2=10, n3=5, n4=1, n5=1)
    assert joint.committed_index(acked) == 1
    assert JointConfig(incoming=majority(1, 2, 3)).committed_index(acked) == 10


def test_joint_vote_needs_both_halves() -> None:
    joint = JointConfig(incoming=majority(1, 2, 3), outgoing=majority(3, 4, 5))
    assert joint.vote_result(votes(n1=True, n2=True)) == VoteResult.PENDING
    assert joint.vote_result(votes(n1=True, n2=True, n3=True)) == VoteResult.PENDING
    assert joint.vote_result(votes(n1=True, n3=True, n4=True)) == VoteResult.WON
    assert joint.vote_result(votes(n1=True, n2=True, n4=False, n5=False)) == VoteResult.LOST
    assert joint.vote_result(votes(n1=False, n2=False, n4=True)) == VoteResult.LOST


def test_rendering_and_membership() -> None:
    joint = JointConfig(incoming=majority(3, 1, 2), outgoing=majority(1, 2))
    assert str(joint) == "(1 2 3)&&(1 2)"
    assert str(JointConfig(incoming=majority(2, 1))) == "(1 2)"
    assert joint.joint and not JointConfig(incoming=majority(1)).joint
    assert joint.ids() == (1, 2, 3)
    assert NodeId(3) in joint and NodeId(4) not in joint
    assert list(majority(3, 1, 2, 2)) == [1, 2, 3] and len(majority(3, 1, 2, 2)) == 3


def test_unsorted_ids_are_refused() -> None:
    with pytest.raises(AssertionError):
        MajorityConfig(ids=(NodeId(2), NodeId(1)))
    with pytest.raises(AssertionError):
        MajorityConfig(ids=(NodeId(1), NodeId(1)))


# -- fast vs naive --------------------------------------------------------------


@given(ids_st, acked_st)
def test_majority_committed_matches_naive(config: MajorityConfig,
                                          acked: dict[NodeId, Index]) -> None:
    assert config.committed_index(acked) == naive_committed(config, acked)


@given(joint_st, acked_st)
def test_joint_committed_matches_naive(config: JointConfig, acked: dict[NodeId, Index]) -> None:
    assert config.committed_index(acked) == naive_joint_committed(config, acked)


@given(ids_st, votes_st)
def test_majority_vote_matches_naive(config: MajorityConfig, cast: dict[NodeId, bool]) -> None:
    assert config.vote_result(cast) == naive_vote(JointConfig(incoming=config), cast)


@given(joint_st, votes_st)
def test_joint_vote_matches_naive(config: JointConfig, cast: dict[NodeId, bool]) -> None:
    assert config.vote_result(cast) == naive_vote(config, cast)


@given(ids_st, acked_st)
def test_joint_with_itself_is_the_majority(config: MajorityConfig,
                                           acked: dict[NodeId, Index]) -> None:
    # etcd's property: (c && c) and (c && ()) behave like c.
    for joint in (JointConfig(incoming=config, outgoing=config), JointConfig(incoming=config)):
        assert joint.committed_index(acked) == config.committed_index(acked)
