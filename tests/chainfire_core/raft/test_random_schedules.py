"""Random schedules over the in-memory wire: Raft's safety properties hold
after every step, whatever the network and the crashes do; once everything
heals, the cluster makes progress again.

Each step is one of: tick some or all peers, handle Readys, deliver a random
subset of the wire, drop / duplicate / reorder / delay messages, partition
or cut one link, heal, crash a peer (losing what it has not persisted) and
restart it, propose, compact a peer's log (so laggards need a snapshot),
ask for a ReadIndex, transfer leadership, flip peers between voter and
learner (simply or through a joint configuration).

After every step (besides what `SafetyMonitor` asserts on every single
input): election safety, log matching, leader completeness, state machine
safety, monotonic commit/applied per incarnation, every peer's
`check_invariants()`, and every ReadIndex answer at or above every index
known committed when the read was asked. At the end: heal, restart everyone, and require a
leader and a new proposal applied on every peer within a bound.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import suppress

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from network import Network

from chainfire_core.errors import ProposalDropped
from chainfire_core.raft.messages import ConfChange, ConfChangeSingle, ConfChangeType
from chainfire_core.types import NodeId

LIVENESS_TICKS_MAX = 400
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def check_liveness(net: Network, ticks_max: int = LIVENESS_TICKS_MAX) -> int:
    """Heal, restart every peer, and require a leader and a new proposal
    applied everywhere within `ticks_max` ticks; the ticks it took."""
    net.heal()
    for node_id in net.ids:
        if node_id not in net.nodes:
            net.start(node_id)
    data = b"liveness-probe"
    proposed_terms: set[int] = set()
    for elapsed in range(ticks_max):
        net.run(1)
        leader = net.leader()
        if leader is not None and net.leader_is_stable(leader):
            term = net.node(leader).raft.term
            if term not in proposed_terms and net.propose(leader, data):
                proposed_terms.add(term)
                net.stabilize()
        if all(data in net.applied_data(node_id) for node_id in net.ids):
            net.check_logs()
            return elapsed
    statuses = {i: net.node(i).status() for i in net.ids}
    raise AssertionError(f"no progress within {ticks_max} ticks after healing: {statuses}")


# A step is (kind, node, amount, seed); kinds repeat to weight them. Most
# steps are normal operation (a "round": every peer ticks once, most of the
# wire is delivered, Readys are handled); faults come every few steps.
KINDS = (
    *["round"] * 12, *["tick_all"] * 2, "tick_one", *["stabilize"] * 2, *["deliver_some"] * 2,
    *["propose"] * 5, "drop_some", "duplicate", "reorder", "delay", "partition",
    "cut_one_way", *["heal"] * 2, "crash", *["restart"] * 2, "crash_restart", "campaign",
    *["compact"] * 3, *["read"] * 2, "transfer", "reconfigure",
)
Step = tuple[str, int, int, int]


def make_step(step_seed: int) -> Step:
    """A step from a seed: Hypothesis' own choices skew to small values, which
    would make nearly every step the first kind; a seeded draw is uniform."""
    rng = random.Random(step_seed)
    return rng.choice(KINDS), rng.randrange(5), rng.randint(1, 6), rng.getrandbits(32)


def make_network(size: int, seed: int, pre_vote: bool, check_quorum: bool,
                 max_inflight_msgs: int) -> Network:
    return Network(size, seed=seed, election_ticks=5, heartbeat_ticks=1, pre_vote=pre_vote,
                   check_quorum=check_quorum, max_inflight_msgs=max_inflight_msgs,
                   max_size_per_msg_bytes=16)


class Schedule:
    """Carries out steps on a network and checks what steps alone can see:
    a ReadIndex answer is at least every index known committed when the
    read was asked (the read is linearizable)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.proposals = 0
        self.reads = 0
        self.read_floor: dict[bytes, int] = {}
        self.reads_checked: dict[NodeId, int] = {}

    def run(self, steps: list[Step]) -> None:
        for step in steps:
            note(f"step {step}")
            self.apply(step)
            self.check()
        check_liveness(self.net)
        self.check()

    def check(self) -> None:
        self.net.check_logs()
        for node_id, states in sorted(self.net.read_states.items()):
            for state in states[self.reads_checked.get(node_id, 0):]:
                floor = self.read_floor[state.context]
                assert state.index >= floor, f"stale read {state} at {node_id}: floor {floor}"
            self.reads_checked[node_id] = len(states)

    def apply(self, step: Step) -> None:
        kind, position, amount, seed = step
        node_id = self.net.ids[position % len(self.net.ids)]
        getattr(self, f"step_{kind}")(node_id, amount, random.Random(seed))

    # -- time and delivery ---------------------------------------------------------

    def step_round(self, _node: NodeId, _amount: int, rng: random.Random) -> None:
        self.net.tick_all()
        self.net.process_all()
        self.net.deliver_some(rng, 0.9)
        self.net.process_all()

    def step_tick_all(self, _node: NodeId, amount: int, _rng: random.Random) -> None:
        self.net.tick_all(amount)
        self.net.process_all()

    def step_tick_one(self, node: NodeId, amount: int, _rng: random.Random) -> None:
        if node in self.net.nodes:
            self.net.tick(node, amount)

    def step_process(self, node: NodeId, _amount: int, _rng: random.Random) -> None:
        self.net.process(node)

    def step_stabilize(self, _node: NodeId, _amount: int, _rng: random.Random) -> None:
        self.net.stabilize()

    def step_deliver_some(self, _node: NodeId, amount: int, rng: random.Random) -> None:
        self.net.deliver_some(rng, amount / 6)
        self.net.process_all()

    # -- network faults ----------------------------------------------------------------

    def step_drop_some(self, _node: NodeId, amount: int, rng: random.Random) -> None:
        self.net.drop_random(rng, amount / 6)

    def step_duplicate(self, _node: NodeId, _amount: int, rng: random.Random) -> None:
        self.net.duplicate(lambda _message: rng.random() < 0.3)

    def step_reorder(self, _node: NodeId, _amount: int, rng: random.Random) -> None:
        self.net.reorder(rng)

    def step_delay(self, _node: NodeId, amount: int, rng: random.Random) -> None:
        self.net.delay(lambda _message: rng.random() < 0.3, amount)

    def step_partition(self, _node: NodeId, _amount: int, rng: random.Random) -> None:
        ids = list(self.net.ids)
        rng.shuffle(ids)
        cut = rng.randrange(1, len(ids))
        self.net.partition(ids[:cut], ids[cut:])

    def step_cut_one_way(self, node: NodeId, amount: int, _rng: random.Random) -> None:
        ids = self.net.ids
        other = ids[(ids.index(node) + amount) % len(ids)]
        if other != node:
            self.net.cut(node, other, both=False)

    def step_heal(self, _node: NodeId, _amount: int, _rng: random.Random) -> None:
        self.net.heal()

    # -- peers -------------------------------------------------------------------------

    def step_crash(self, node: NodeId, _amount: int, _rng: random.Random) -> None:
        if node in self.net.nodes and len(self.net.nodes) > 1:
            self.net.crash(node)

    def step_restart(self, node: NodeId, _amount: int, _rng: random.Random) -> None:
        if node not in self.net.nodes:
            self.net.start(node)

    def step_crash_restart(self, node: NodeId, _amount: int, _rng: random.Random) -> None:
        self.net.restart(node)

    def step_compact(self, node: NodeId, _amount: int, _rng: random.Random) -> None:
        self.net.compact(node)

    # -- requests ----------------------------------------------------------------------

    def step_propose(self, node: NodeId, amount: int, _rng: random.Random) -> None:
        if node in self.net.nodes:
            for _ in range(amount % 3 + 1):
                self.proposals += 1
                self.net.propose(node, b"p%d" % self.proposals)

    def step_campaign(self, node: NodeId, _amount: int, _rng: random.Random) -> None:
        if node in self.net.nodes:
            self.net.campaign(node)

    def step_read(self, node: NodeId, _amount: int, _rng: random.Random) -> None:
        if node not in self.net.nodes:
            return
        self.reads += 1
        context = b"read-%d" % self.reads
        self.read_floor[context] = max(self.net.monitor.committed, default=0)
        with suppress(ProposalDropped):
            self.net.node(node).read_index(context)

    def step_transfer(self, node: NodeId, amount: int, _rng: random.Random) -> None:
        ids = self.net.ids
        target = ids[(ids.index(node) + amount) % len(ids)]
        if node in self.net.nodes:
            self.net.node(node).transfer_leader(target)

    def step_reconfigure(self, _node: NodeId, amount: int, rng: random.Random) -> None:
        """Flip one peer (voter <-> learner) simply, or two through a joint
        config left automatically; never down to zero voters."""
        leader = self.net.leader()
        if leader is None:
            return
        conf_state = self.net.node(leader).status().conf_state
        if conf_state.joint:
            return
        flips = rng.sample(self.net.ids, 1 if amount <= 3 else 2)
        changes = tuple(
            ConfChangeSingle(type=ConfChangeType.ADD_LEARNER if i in conf_state.voters
                             else ConfChangeType.ADD_NODE, node_id=i)
            for i in flips)
        if not set(conf_state.voters) - set(flips) and all(i in conf_state.voters for i in flips):
            return
        self.net.propose_conf_change(leader, ConfChange(changes=changes))


def schedule_test(size: int, steps_max: int) -> Callable[[], None]:
    @given(seed=SEEDS, pre_vote=st.booleans(), check_quorum=st.booleans(),
           max_inflight_msgs=st.sampled_from([1, 2, 4]),
           step_seeds=st.lists(SEEDS, min_size=steps_max // 2, max_size=steps_max))
    def run(seed: int, pre_vote: bool, check_quorum: bool, max_inflight_msgs: int,
            step_seeds: list[int]) -> None:
        net = make_network(size, seed, pre_vote, check_quorum, max_inflight_msgs)
        Schedule(net).run([make_step(step_seed) for step_seed in step_seeds])

    return run


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=1_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

test_three_nodes = FAST(schedule_test(3, steps_max=160))
test_five_nodes = FAST(schedule_test(5, steps_max=160))


def require_slow_selected(request: pytest.FixtureRequest) -> None:
    """The long sweeps run only when asked for (`-m slow`)."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("long sweep: select with -m slow")


@pytest.mark.slow
@pytest.mark.parametrize("size", [3, 5])
def test_long_sweep(request: pytest.FixtureRequest, size: int) -> None:
    require_slow_selected(request)
    SLOW(schedule_test(size, steps_max=400))()


def test_liveness_after_a_rough_start() -> None:
    """A fixed, readable schedule: partitions, losses and crashes, then healing."""
    net = Network(5, seed=7, election_ticks=5, max_inflight_msgs=2)
    net.run_until_leader()
    for round_number in range(30):
        rng = random.Random(round_number)
        net.partition(rng.sample(net.ids, 3))
        leader = net.leader()
        if leader is not None:
            net.propose(leader, b"r%d" % round_number)
        net.tick_all()
        net.deliver_some(rng, 0.6)
        net.process_all()
        if round_number % 7 == 3:
            net.restart(rng.choice(net.live()))
        if round_number % 5 == 0:
            net.compact(rng.choice(net.ids))
        net.check_logs()
    check_liveness(net)
