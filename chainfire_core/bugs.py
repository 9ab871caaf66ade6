"""Planted bugs: known Raft and etcd bugs the simulator can reintroduce, to
measure how fast the testbed finds them (`chainfire-sim hunt`).

Simulation only and off by default: a config carries a frozenset of bug
names (`RaftConfig.bugs`, `NodeConfig.bugs`), every name must be one of
`BUGS`, and each site in the code that misbehaves on purpose is marked with
`# planted bug: NAME` so it is easy to audit. The real runtime refuses any.
"""

from __future__ import annotations

from chainfire_core.errors import InvalidRequest

# name -> the real bug it reintroduces (first line: what the code does wrong).
BUGS: dict[str, str] = {
    "figure8_commit": (
        "A leader commits entries of an earlier term by counting replicas. Raft paper "
        "section 5.4.2 and Figure 8: such an entry can still be overwritten by a later leader."),
    "single_server_change_no_fix": (
        "A new leader accepts a membership change before committing an entry of its own term. "
        "Ongaro's 2015 raft-dev note: two overlapping single-server changes across a leader "
        "change can produce two disjoint majorities."),
    "unpersisted_vote": (
        "The driver sends a vote (and a new term) before the hard state is durable; a crash "
        "forgets the vote and the node votes twice in one term."),
    "ack_before_fsync": (
        "The driver sends append acknowledgements before the entries are fsynced; a crash "
        "loses entries a majority was counted on (committed writes disappear)."),
    "stale_local_reads": (
        "Linearizable reads are served from local state without ReadIndex: a deposed leader "
        "that has not heard of its successor answers stale reads (etcd issue #741)."),
    "lease_reads_no_check_quorum": (
        "Lease-based reads without check-quorum: a leader keeps serving reads from its lease "
        "after a partition let a new leader commit writes."),
    "truncate_committed": (
        "A follower truncates its log at any conflicting-looking stale or duplicated append, "
        "even below its commit index, dropping committed entries."),
    "no_prevote_checkquorum": (
        "Pre-vote and check-quorum off: under a partial (non-transitive) partition a node that "
        "sees only some peers keeps raising the term and deposes every leader (liveness loss)."),
    "watch_catchup_loss": (
        "A slow watcher catching up from history skips the revision at the boundary where it "
        "rejoins the synced group (events lost), as etcd issue #17529."),
    "lease_reset_on_leader_change": (
        "A new leader resets every lease to its full TTL instead of the remaining TTL, so under "
        "leader churn leases never expire (etcd issue #9888, fixed by lease checkpoints)."),
    "follower_lease_expiry": (
        "Followers expire leases on their own clocks and revoke them, deleting keys early when "
        "their clock runs fast (etcd keeps expiry on the leader)."),
    "stale_snapshot_on_restart": (
        "A restarted node restores its last snapshot but takes its durable commit index as "
        "applied, skipping the entries in between (etcd 3.5's consistent index ahead of the "
        "data): it serves, and builds on, an older state."),
}


def check_bugs(bugs: frozenset[str]) -> None:
    unknown = sorted(bugs - BUGS.keys())
    if unknown:
        raise InvalidRequest(f"unknown planted bug(s): {', '.join(unknown)}; "
                             f"known: {', '.join(BUGS)}")


__all__ = ["BUGS", "check_bugs"]
