"""Turning a `ServerConfig` and a storage into a `ChainfireNode`.

Theory of operation
-------------------
A new cluster starts from a Raft snapshot at index 1, term 1, that names the
bootstrap voters (as the simulator's `bootstrap_storage` does). Here its data
is a `NodeSnapshot` of an empty state machine plus the member table with
every member's name and peer URLs, so MemberList answers with names from the
first moment. Every member writes the same snapshot from the same
`--initial-cluster`, so their logs agree. `bootstrap` writes it only into an
empty storage (a restart finds its own state and keeps it) and syncs it.

A member joining an existing cluster (`--initial-cluster-state existing`,
after a MemberAdd) starts empty: it is in no configuration, never campaigns,
and the leader catches it up with a snapshot.
"""

from __future__ import annotations

import random
import secrets

from chainfire_core.codec import Codec
from chainfire_core.config import StateMachineConfig
from chainfire_core.node import ChainfireNode, NodeConfig
from chainfire_core.node_codec import NODE_CODEC
from chainfire_core.node_messages import Member, NodeSnapshot
from chainfire_core.raft.config import RaftConfig
from chainfire_core.raft.messages import ConfState, Snapshot, SnapshotMetadata
from chainfire_core.state_machine import StateMachine
from chainfire_core.types import Index, NodeId, Term
from real.config import ServerConfig
from real.durability import DurableStorage
from real.recovery import recover_state_machine
from real.storage.mvcc_backend import SqliteBackend


def is_empty(storage: DurableStorage) -> bool:
    hard_state, _ = storage.initial_state()
    return (storage.last_index() == 0 and storage.snapshot().metadata.index == 0
            and hard_state.term == 0)


def bootstrap_snapshot(members: tuple[Member, ...]) -> Snapshot:
    """Index 1, term 1: the voters, an empty state machine, the member table."""
    assert members, "a cluster needs a member"
    voters = tuple(sorted(member.id for member in members))
    data = NODE_CODEC.encode(NodeSnapshot(state_machine=StateMachine().snapshot(),
                                          members=tuple(sorted(members, key=lambda m: m.id))))
    return Snapshot(metadata=SnapshotMetadata(index=Index(1), term=Term(1),
                                              conf_state=ConfState(voters=voters)), data=data)


def initial_members(config: ServerConfig) -> tuple[Member, ...]:
    ids = config.member_ids()
    return tuple(Member(id=ids[name], name=name, peer_urls=config.peer_urls_of(name))
                 for name in config.member_names())


def bootstrap(storage: DurableStorage, members: tuple[Member, ...]) -> bool:
    """Write the bootstrap snapshot into an empty storage; False if it was not empty."""
    if not is_empty(storage):
        return False
    storage.save(None, (), bootstrap_snapshot(members))
    storage.sync()
    return True


def node_config(config: ServerConfig, node_id: NodeId | None = None) -> NodeConfig:
    raft = RaftConfig(id=config.node_id if node_id is None else node_id,
                      election_ticks=config.election_ticks, heartbeat_ticks=1)
    return NodeConfig(raft=raft, tick_ms=config.tick_ms,
                      quota_backend_bytes=config.quota_backend_bytes,
                      snapshot_every_entries=config.snapshot_count,
                      snapshot_catchup_entries=min(5_000, config.snapshot_count))


def build_node(config: ServerConfig, storage: DurableStorage,
               state_machine: StateMachine | None = None,
               rng: random.Random | None = None, codec: Codec | None = None, *,
               backend: SqliteBackend | None = None) -> ChainfireNode:
    """Bootstrap (a new cluster, empty storage) and build this member's node
    (`codec`: the node's entry codec, default NODE_CODEC). With a durable
    `backend` the state machine lives in it and starts from it when it can
    (real/recovery.py); what the start wrote into it is committed."""
    if config.initial_cluster_state == "new":
        bootstrap(storage, initial_members(config))
    node_rng = rng if rng is not None else random.Random()  # election jitter only
    sm_config = StateMachineConfig(auth_token_ttl_ms=config.auth_token_ttl * 1000)
    if backend is not None:
        assert state_machine is None, "a durable backend brings its own state machine"
        state_machine, _ = recover_state_machine(storage, backend, sm_config)
    elif state_machine is None:
        state_machine = StateMachine(sm_config)
    # Password salts and token prefixes must be unguessable: the OS's entropy.
    node = ChainfireNode(node_config(config), storage, node_rng, state_machine=state_machine,
                         codec=codec if codec is not None else NODE_CODEC,
                         entropy=secrets.token_bytes)
    if backend is not None:
        backend.commit()  # a snapshot restored into a rebuilt backend
    return node


__all__ = ["bootstrap", "bootstrap_snapshot", "build_node", "initial_members", "is_empty",
           "node_config"]
