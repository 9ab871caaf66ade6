"""The planted bug single_server_change_no_fix, shown doing damage at the Raft level.

Our conf changes take effect when applied (as in etcd), not when appended
(as in the Raft thesis), so Ongaro's 2015 sequence does not apply as such.
The damage in these semantics: a new leader that takes a change while a
change of an earlier term is still unapplied in its log lets a follower
receive both in one append whose commit index is below the first. The
leader then commits the two at once and jumps two voters away from the
old config, while that follower, not yet told of the commit, still counts
votes in the old config. Three voters {1, 2, 3} and learners {4, 5}:

1. leader 1 appends "promote 4"; it reaches node 2 only; 1 crashes;
2. node 2 wins term 3 (votes 2, 3) and, without the fix, at once takes
   "promote 5" behind its empty entry;
3. node 3 receives [promote 4, empty, promote 5] with commit 3 and acks;
   every later message of node 2 to node 3 is lost;
4. node 2 commits all three with {2, 3}, applies both changes (voters
   {1..5}) and commits a write at index 7 with {2, 4, 5};
5. node 1 restarts; {1, 3} | {2, 4, 5}: node 3, still in {1, 2, 3}, wins
   with {1, 3} although it lacks the committed write at 7.

With the fix node 2 refuses step 2 (its own entry is not applied yet), the
write at 7 needs three of {1, 2, 3, 4} and is not committed, and node 3's
election breaks nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chainfire_core.raft.messages import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    Message,
    RequestVote,
    VoteResponse,
)
from chainfire_core.raft.raft import Role
from chainfire_core.types import Index, NodeId

BUG = "single_server_change_no_fix"


def _network_module() -> ModuleType:
    """tests/chainfire_core/raft/network.py, under the name its own tests use."""
    loaded = sys.modules.get("network")
    if loaded is not None and hasattr(loaded, "Network"):
        return loaded
    path = Path(__file__).parents[1] / "chainfire_core" / "raft" / "network.py"
    spec = importlib.util.spec_from_file_location("network", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["network"] = module
    spec.loader.exec_module(module)
    return module


def _promote(node_id: int) -> ConfChange:
    return ConfChange(changes=(ConfChangeSingle(type=ConfChangeType.ADD_NODE,
                                                node_id=NodeId(node_id)),))


def _steps_1_to_4(bugs: frozenset[str]) -> tuple[Any, bool, Index]:
    """Run steps 1-4; (the network, whether node 2 took the second change,
    the index of the first)."""
    net = _network_module().Network(3, learners=(4, 5), pre_vote=False, check_quorum=False,
                                    bugs=bugs)
    net.elect(1)
    net.propose(1, b"x")
    net.stabilize()
    # 1. "promote 4" reaches node 2 (its ack is lost with node 1).
    assert net.propose_conf_change(1, _promote(4))
    net.process(1)
    net.deliver_all(lambda m: m.to == 2)
    net.process(2)
    net.crash(1)
    net.wire.clear()
    first = net.node(2).raft.log.last_index()
    # 2. node 2 wins, and is asked for the next change straight away.
    net.campaign(2)
    for _ in range(3):  # the vote requests, the answers
        net.process_all()
        net.deliver_all(lambda m: isinstance(m, RequestVote | VoteResponse))
    assert net.node(2).raft.role == Role.LEADER
    took_second = net.propose_conf_change(2, _promote(5))

    # 3. node 3 catches up, but never hears that the first change is committed.
    def tells_3_first_is_committed(m: Message) -> bool:
        return m.sender == 2 and m.to == 3 and getattr(m, "commit", 0) >= first

    net.block(tells_3_first_is_committed)
    net.stabilize()
    assert net.node(3).raft.log.committed < first
    # 4. a client write at node 2.
    assert net.propose(2, b"w")
    net.stabilize()
    return net, took_second, first


def _step_5(net: Any) -> None:
    net.start(NodeId(1))
    net.partition([1, 3], [2, 4, 5])
    net.campaign(3)
    net.stabilize()


def test_without_the_fix_a_committed_write_is_lost() -> None:
    net, took_second, first = _steps_1_to_4(frozenset({BUG}))
    assert took_second
    write_index = Index(first + 3)  # promote 4, empty entry, promote 5, the write
    leader = net.node(2).raft
    assert sorted(leader.tracker.config.voters.ids()) == [1, 2, 3, 4, 5]
    assert leader.log.committed == write_index
    assert net.node(3).raft.log.last_index() == write_index - 1
    with pytest.raises(AssertionError, match=f"lacks committed entry {write_index}"):
        _step_5(net)


def test_with_the_fix_the_same_script_breaks_nothing() -> None:
    net, took_second, first = _steps_1_to_4(frozenset())
    assert not took_second
    leader = net.node(2).raft
    assert sorted(leader.tracker.config.voters.ids()) == [1, 2, 3, 4]
    write_index = Index(first + 2)  # promote 4, empty entry, the write
    assert leader.log.last_index() == write_index
    assert leader.log.committed == write_index - 1  # the write lacks a quorum
    _step_5(net)
    assert net.node(3).raft.role == Role.LEADER
    net.check_logs()
