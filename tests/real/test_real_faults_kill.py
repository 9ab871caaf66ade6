"""kill -9 under write load: three `chainfire serve` processes, concurrent
gRPC clients (puts, CAS txns, linearizable gets), SIGKILL of the leader or a
follower, a restart from its data directory, more load; then the recorded
history must be linearizable (checker.revision_check) and every
acknowledged write must still be there, on the restarted member too.

The single leader and follower kills run in CI; five kills in a row, with
members that snapshot every 50 entries (a restarted member is caught up by
snapshot), are marked slow (`pytest -m slow tests/real -k faults`)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from real_fault_harness import (
    Workload,
    channels,
    check_history,
    check_no_acked_write_lost,
    final_reads,
    kill9,
    leader_index,
    restart,
    run_workload,
    wait_serving,
)
from test_real_runtime_server import cluster

__all__ = ["cluster"]  # the fixture, imported for pytest

Procs = list[tuple[subprocess.Popen[bytes], int]]
CLIENTS = 6


async def kill_and_restart(procs: Procs, tmp_path: Path, *, victims: list[str],
                           writes_between: int) -> str:
    """Run the workload; for each victim ("leader" or "follower") wait for
    `writes_between` acknowledged writes, kill it, wait for more, restart it,
    wait for more; then stop, read back and check."""
    chans = channels(procs)
    workload = Workload(chans)
    everyone = list(range(len(procs)))
    try:
        await leader_index(chans, among=everyone)
        tasks = await run_workload(workload, CLIENTS, seed=len(victims))
        for round_, victim in enumerate(victims):
            await workload.wait_acked(writes_between)
            leader = await leader_index(chans, among=everyone)
            index = leader if victim == "leader" else (leader + 1 + round_ % 2) % len(procs)
            kill9(procs, index)
            await workload.wait_acked(writes_between)  # the other two carry on
            restart(procs, index, tmp_path / f"n{index + 1}.log")
            await wait_serving(chans[index])
            await workload.wait_acked(writes_between)
        workload.stopping.set()
        await asyncio.gather(*tasks)
        await final_reads(workload, everyone)
        for index in everyone:
            await check_no_acked_write_lost(workload, index)
    finally:
        for chan in chans:
            await chan.close()
    assert all(proc.poll() is None for proc, _ in procs), "a member died by itself"
    return check_history(workload.history, tmp_path / "history.jsonl")


def test_real_faults_kill_leader_under_load(cluster: Procs, tmp_path: Path) -> None:
    summary = asyncio.run(kill_and_restart(cluster, tmp_path, victims=["leader"],
                                           writes_between=60))
    print(summary)


def test_real_faults_kill_follower_under_load(cluster: Procs, tmp_path: Path) -> None:
    summary = asyncio.run(kill_and_restart(cluster, tmp_path, victims=["follower"],
                                           writes_between=60))
    print(summary)


@pytest.fixture
def small_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Members snapshot and compact every 50 entries (the cluster fixture and
    `restart` pass the environment on), so a member that was down for longer
    is caught up with a snapshot over the peer transport."""
    monkeypatch.setenv("CHAINFIRE_SNAPSHOT_COUNT", "50")


@pytest.mark.slow
def test_real_faults_kill_repeatedly_under_load(small_snapshots: None, cluster: Procs,
                                                tmp_path: Path) -> None:
    summary = asyncio.run(kill_and_restart(
        cluster, tmp_path, victims=["leader", "follower", "leader", "follower", "leader"],
        writes_between=100))
    print(summary)
