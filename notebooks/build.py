"""Build the notebooks in this directory from the cell texts below.

Theory of operation: each notebook is a list of cells written here as plain
strings (`md` for markdown, `code` for Python), so a change to a notebook is
a readable diff of this file, and the `.ipynb` files are generated from it,
without outputs or execution counts, with stable cell ids. Run

    .venv/bin/python notebooks/build.py          # rewrite notebooks/*.ipynb
    .venv/bin/python notebooks/build.py --check  # exit 1 if any is out of date

after editing a cell; tests/notebooks/ checks that the committed files match
this script and that every notebook runs top to bottom. The notebooks use
the public API only: sim.run, sim.tracedata, sim.sweep, sim.hunt,
sim.shrink, sim.schedule, sim.clock and sim.views.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
Cell = tuple[str, str]  # (kind, source)


def md(text: str) -> Cell:
    return ("markdown", textwrap.dedent(text).strip("\n"))


def code(text: str) -> Cell:
    return ("code", textwrap.dedent(text).strip("\n"))


QUICKSTART: list[Cell] = [
    md("""
    # 01 · Quickstart: one seed, one run, one look

    A Chainfire run is a **seed**: a simulated cluster of real `ChainfireNode`s
    inside a deterministic SimPy world, clients issuing etcd requests, a
    nemesis injecting faults, and a set of checks over what happened. The same
    seed and code give the same run, byte for byte.

    This notebook runs one seed, prints its report, loads its trace into numpy
    arrays, and draws two pictures: the whole run as a timeline, and the first
    leader election as a message-sequence diagram.
    """),
    code("""
    %matplotlib inline
    import numpy as np

    from sim import views
    from sim.options import RunOptions, parse_faults
    from sim.tracedata import load_trace, run_traced
    """),
    md("""
    ## Run a seed

    Three nodes, four clients, ten simulated seconds of partitions and crashes.
    `run_traced` is `sim.run.simulate` with the full trace (every Raft message)
    kept in memory; it takes well under a second of wall time.
    """),
    code("""
    options = RunOptions(seed=1, nodes=3, duration_ms=10_000, clients=4,
                         faults=parse_faults("partition,crash"), think_ms=100.0)
    run = run_traced(options)
    report = run.report
    print(report.summary_line())
    """),
    md("""
    ## The report

    The same facts `chainfire-sim run` prints. **ok** ops were answered,
    **failed** ones got a definite error (they certainly did not take effect),
    **indeterminate** ones timed out (they may or may not have happened; the
    linearizability checker allows both). Each check then says pass or fail;
    the replay command reproduces this exact run from the shell.
    """),
    code("""
    print(f"simulated {report.simulated_ms / 1000:.1f} s, {report.messages_sent} messages")
    print(f"ops: {report.ops_ok} ok, {report.ops_failed} failed, "
          f"{report.ops_indeterminate} indeterminate")
    print(f"leader changes: {report.leader_changes}; faults: {report.faults}")
    print(f"latency p50 {report.latency_p50_ms:.1f} ms, p99 {report.latency_p99_ms:.1f} ms")
    for check in report.checks:
        print(f"  {check.name:<16} {check.status}")
    print("replay:", report.replay_command())
    """),
    md("""
    ## The trace as arrays

    `load_trace` reads the trace once into numpy structured arrays, one row per
    Raft message, client operation, role change, commit and apply; fields are
    accessed by name. It also accepts a trace file written by
    `chainfire-sim run --trace FILE`.
    """),
    code("""
    data = load_trace(run)
    print(len(data.messages), "messages,", len(data.ops), "client ops,",
          len(data.roles), "role changes,", len(data.faults), "fault records")
    outcomes, counts = np.unique(data.ops["outcome"], return_counts=True)
    print(dict(zip(outcomes.tolist(), counts.tolist(), strict=True)))
    fates, counts = np.unique(data.messages["fate"], return_counts=True)
    print(dict(zip(fates.tolist(), counts.tolist(), strict=True)))
    """),
    md("""
    Message fates: **delivered**, dropped because of a **partition** or
    because the receiver was **down**, a **duplicate** delivery, or still in
    flight when the run ended. The role changes are the elections:
    """),
    code("""
    data.roles[data.roles["role"] == "leader"]
    """),
    md("""
    ## The timeline

    One lane per client: each operation is a bar from call to answer (green
    ok, red failed, orange indeterminate). Below them one lane per node (down
    while crashed), then the leader of each term. Partitions are shaded across
    the figure and labelled with their shape; the dashed lines are the phase
    changes (the safety phase with faults, the heal, the liveness phase).

    Look for the gaps: while a partition cuts the leader off, its clients'
    operations stretch into long bars or time out until a new leader is
    elected on the majority side.
    """),
    code("""
    views.timeline_figure(data, title=f"seed {data.seed}: 3 nodes, partitions and crashes")
    """),
    md("""
    ## The first election, message by message

    Every node starts as a follower. The first whose randomized election
    timeout fires becomes a **pre-candidate** and asks the others whether they
    would vote (pre-vote, so a node that cannot win does not raise the term),
    then a **candidate** asking for real votes, then **leader**, which at once
    appends an empty entry of its term and heartbeats. We cut the trace to
    that moment.
    """),
    code("""
    first = data.roles[data.roles["role"] == "leader"][0]
    campaign = data.roles[np.isin(data.roles["role"], ["pre_candidate", "candidate"])
                          & (data.roles["t"] <= first["t"])]
    start_ms = float(campaign["t"].min()) - 5.0
    end_ms = float(first["t"]) + 15.0
    print(f"node {first['node']} won term {first['term']} at {first['t']:.1f} ms; "
          f"window {start_ms:.1f}-{end_ms:.1f} ms")
    """),
    md("""
    Time runs down the page; each node is a vertical lane. An arrow is one
    message from its send to its delivery (a line ending in an x was dropped,
    labelled with why; dashed arrows are duplicates). Role changes are marked
    on the lanes. Read it top to bottom: the pre-vote requests and their
    grants, the vote requests and their grants, then the new leader's first
    appends and the followers' acknowledgements. A node that is down (a grey
    band on its lane) answers nothing; the candidate still wins with the
    other's vote and its own, since two of three is a majority.
    """),
    code("""
    views.sequence_figure(data, start_ms, end_ms)
    """),
    md("""
    ## Progress: commit and applied index

    Each node's commit index (from the hard state it persisted) and applied
    index over time. The lines climb together while a quorum is connected; a
    flat line is a node that learnt nothing new (crashed or cut off) and it
    catches up in a jump when it rejoins.
    """),
    code("""
    views.progress_figure(data)
    """),
    md("""
    Next: [02](02_planted_bug.ipynb) plants a bug and lets the simulator find
    it, shrink it and explain it.
    """),
]


PLANTED_BUG: list[Cell] = [
    md("""
    # 02 · A partition schedule catches a planted bug

    Chainfire can reintroduce known Raft and etcd bugs into its own core, in
    the simulator only (`docs/bugs.md`). Here we take one,
    `lease_reads_no_check_quorum`, and go through what a correctness
    researcher does with it: **hunt** (run seeds until a check fails),
    **shrink** (cut the failing run down to a small replay script),
    **replay** the script, and **read the explanation** of the
    non-linearizable history.
    """),
    code("""
    %matplotlib inline
    from dataclasses import replace

    from chainfire_core.bugs import BUGS
    from sim import views
    from sim.hunt import hunt, profile
    from sim.run import simulate
    from sim.schedule import parse_schedule
    from sim.shrink import shrink_seed
    from sim.tracedata import load_trace

    BUG = "lease_reads_no_check_quorum"
    print(BUGS[BUG])
    """),
    md("""
    ## The bug

    With lease-based reads a leader answers a linearizable read from its own
    state, without a heartbeat round, trusting that no other leader can exist
    yet. That trust comes from **check-quorum**: a leader that has not heard
    from a quorum for an election timeout steps down. The planted bug turns
    check-quorum off while keeping lease reads, so a leader cut off by a
    partition goes on serving reads after the majority side elected a new
    leader and committed new writes.

    The bug's profile (`sim.hunt.profile`) is the run options that give it a
    chance: partitions only, three nodes, lease reads. We shorten each run to
    eight simulated seconds to keep the notebook quick.
    """),
    code("""
    options = replace(profile(BUG), duration_ms=8_000)
    print(options)
    """),
    md("""
    ## Hunt

    `hunt` runs seeds 0, 1, 2, ... (two at a time, one per core) and stops at
    the first whose run fails a check.
    """),
    code("""
    found = hunt(BUG, range(0, 20), jobs=2, options=options)
    print(f"found: {found.found} at seed {found.first_seed} after {found.seeds_run} seed(s), "
          f"{found.wall_s:.1f} s; caught by {', '.join(found.checks)}")
    print(found.messages[0])
    print("replay:", found.replay)
    """),
    md("""
    The linearizability checker's message says that some operation observed
    the store at a revision that, in real time, it could not have seen: a read
    returned an older state than a write that had already completed. That is
    a **stale read**.

    ## Shrink

    The failing run had a dozen clients and several partitions. `shrink_seed`
    re-expresses the run as a schedule (its options and each fault the
    nemesis applied, concrete) and then removes faults, clients and simulated
    time while the same check keeps failing. A small run budget keeps this
    under half a minute; each line below is a smaller run that still fails.
    """),
    code("""
    schedule, stats = shrink_seed(replace(options, seed=found.first_seed),
                                  check="linearizability", budget_runs=15, log=print)
    print(f"{stats.runs} runs: {stats.before} -> {stats.after}")
    """),
    md("""
    ## The schedule

    The result is a replay script: the header is the run's options and the
    check it is expected to fail; each `at` line is one fault at its
    simulated time. Saved to a file, `chainfire-sim replay FILE` runs it, and
    dropped into `tests/sim/regressions/` it becomes a regression test.
    """),
    code("""
    text = schedule.to_text()
    print(text)
    """),
    md("""
    ## Replay it

    We parse the text back (as `chainfire-sim replay` would) and run exactly
    those faults. The run fails the same check; the same schedule with the
    bug switched off passes, which is what makes the finding a finding.
    """),
    code("""
    script = parse_schedule(text)
    replayed = simulate(script.options, script=script.events)
    fixed = simulate(replace(script.options, bugs=()), script=script.events)
    print("with the bug:   ", replayed.summary_line())
    print("without the bug:", fixed.summary_line())
    """),
    md("""
    ## What happened

    The replay's summary records (client calls and answers, faults, role
    changes) are enough for the pictures. On the timeline, the shaded band is
    the partition that isolates one node, and the leader lane shows the
    majority side electing a new leader in a higher term soon after. The lane
    draws the newest leader only; it does not show that the isolated old
    leader never stepped down.
    """),
    code("""
    data = load_trace(replayed.summary_records)
    views.timeline_figure(data, title="the shrunk schedule, replayed")
    """),
    md("""
    The role records do show it: every role change from the first fault on.
    The old leader has no entry until the partition heals and it hears the
    higher term; until then it believed it led, and answered reads.
    """),
    code("""
    first_fault_ms = min(event.at_ms for event in script.events)
    data.roles[data.roles["t"] >= first_fault_ms]
    """),
    md("""
    ## The explanation

    `illegal_figure` re-checks the history and draws the client operations,
    with the operations the checker cannot order in red and the
    non-linearizable window shaded; the lower axes zoom into that window. The
    text under the title is the checker's reason: the write on the new
    leader's side completed before the read began, yet the read, served by
    the isolated old leader from its lease, did not see it.
    """),
    code("""
    views.illegal_figure(data)
    """),
    md("""
    With check-quorum on, the leader's lease is counted from the heartbeats a
    quorum acknowledged and ends before any follower will vote again, and the
    run passes; but the lease still relies on every node's clock measuring
    those ticks within the configured drift bound. Notebook
    [04](04_leases_clock_drift.ipynb) slows the old leader's clock instead.
    """),
]


FAULTS_SWEEP: list[Cell] = [
    md("""
    # 03 · Latency and availability under each fault class

    A sweep runs many seeds in parallel and writes one JSON line per seed.
    Here: six seeds for each fault class (partitions; crashes; pauses; clock
    rate faults; lossy, duplicating and reordering links), three nodes, four
    busy clients, five simulated seconds each, written to a JSON Lines file in a temporary
    directory, loaded back, and compared in one figure. Then we look inside
    one run's latency over time.
    """),
    code("""
    %matplotlib inline
    import json
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from sim import views
    from sim.options import RunOptions, parse_faults
    from sim.sweep import sweep
    from sim.tracedata import load_trace, run_traced
    """),
    md("""
    ## The sweep

    Each fault class is its own profile (`--faults`), so the availability of
    a class is that of runs which had only that kind of trouble. The same
    seed draws the same cluster parameters (tick, election timeout, link
    latencies) in every class, so a seed's runs differ only in their faults.
    """),
    code("""
    CLASSES = ["partition", "crash", "pause", "clock", "loss,dup,reorder"]
    SEEDS = range(6)
    def options(name, seed):
        return RunOptions(seed=seed, nodes=3, duration_ms=5_000, clients=4,
                          faults=parse_faults(name), think_ms=50.0, full_trace=False)


    runs = [options(name, seed) for name in CLASSES for seed in SEEDS]
    results = sweep(runs, jobs=2)
    print(len(results), "runs;", sum(r.ok for r in results), "passed every check")
    """),
    md("""
    `chainfire-sim sweep --out FILE` writes the same rows: `SeedResult.to_json`,
    one object per seed (fields in `docs/sim.md`). We write them ourselves,
    ordered by class and seed, and read them back with `views.load_sweep`.
    """),
    code("""
    workdir = tempfile.TemporaryDirectory(prefix="chainfire-sweep-")
    path = Path(workdir.name) / "sweep.jsonl"
    order = {name: index for index, name in enumerate(CLASSES)}
    rows_out = sorted((r.to_json() for r in results),
                      key=lambda row: (order[",".join(row["faults"])], row["seed"]))
    path.write_text("".join(json.dumps(row) + "\\n" for row in rows_out))
    rows = views.load_sweep(path)
    rows[0]
    """),
    md("""
    ## Availability per fault class

    Availability is the fraction of a run's client operations that succeeded
    (ok over ok + failed + timed out). Each bar is a class's mean, each dot
    one run (red if a check failed); the lower axes put each run's p50 and
    p99 latency (simulated ms, log scale) in the same column.

    How to read it: availability stays high under every class, because a
    client whose node is cut off, down or frozen backs off and retries on
    another node within the operation's deadline; what is lost is the
    operations that timed out meanwhile (indeterminate) or got a definite
    error. The faults show up more in the latency tail. Compare a seed's dots
    across the columns: the same seed has the same election timeout in every
    class, and in runs this short the wait for the *first* leader can
    dominate p99 in all of them. A run whose nemesis drew no fault in five
    seconds still counts under its configured class (`group="configured"`;
    the default `group="applied"` files runs by the faults that actually
    happened).
    """),
    code("""
    views.availability_figure(rows, group="configured",
                              title="availability and latency per fault class, 6 seeds each")
    """),
    code("""
    for name in CLASSES:
        mine = [row for row in rows if ",".join(row["faults"]) == name]
        mean = sum(views.availability(row) for row in mine) / len(mine)
        timeouts = sum(row["ops_indeterminate"] for row in mine)
        worst = max(mine, key=lambda row: row["latency_p99_ms"])
        print(f"{name:<18} availability {mean:.3f}, {timeouts:3} timed out, "
              f"worst p99 {worst['latency_p99_ms']:7.1f} ms (seed {worst['seed']})")
    """),
    md("""
    ## Latency over time in one run

    Averages hide when things went wrong. We re-run the partition seed with
    the lowest availability, this time with its full trace, and cut its time
    into half-second buckets: the top axes draw p50, p90 and p99 of the
    operations that completed in each bucket, the bottom axes count the
    operations by outcome, with the partitions shaded behind both.
    """),
    code("""
    partitioned = [row for row in rows if row["faults"] == ["partition"]]
    worst = min(partitioned, key=views.availability)
    run = run_traced(replace(options("partition", worst["seed"]), full_trace=True))
    data = load_trace(run)
    print(run.report.summary_line())
    views.latency_figure(data, bucket_ms=500.0)
    """),
    md("""
    Read it with the partitions: when a partition cuts off the leader the
    completed-ops count drops and timeouts appear (orange), and the first
    operations to complete after the new election carry the whole wait in
    their latency, so p99 jumps inside the band. A high first bucket is the
    wait for the first leader. Outside the bands the median is a few tens of
    simulated milliseconds at most: a round trip to the leader, a quorum of
    appends and fsyncs.
    """),
    code("""
    views.timeline_figure(data, title=f"partition seed {data.seed}")
    """),
]


LEASES: list[Cell] = [
    md("""
    # 04 · Leases and clock drift: a leader lease within a drift bound

    A linearizable read must not return anything older than a write that
    completed before the read began. Chainfire offers two ways for the leader
    to serve one (`--read-mode`):

    * **safe** (ReadIndex): before answering, the leader confirms with a
      heartbeat round that a quorum still follows it. One round trip per read
      (batched), correct under any timing.
    * **lease**: the leader skips the round and answers from its own state
      while it holds a *lease*: a quorum (itself included) acknowledged a
      heartbeat it sent within the last `lease_ticks` of its own ticks. A
      follower that got that heartbeat refuses to vote for anyone else for an
      election timeout, so no other leader can be elected meanwhile. Both are
      **durations measured on each node's own clock**, so the lease is
      shortened for the drift the config allows (`max_clock_drift`, `R`):
      `lease_ticks = floor(election_ticks / R²) - 1`. Without a lease the read
      falls back to the ReadIndex round.

    The lease is safe only if the old leader stops answering, in real time,
    before a new leader can be elected and commit a write. This notebook
    isolates the leader of a lease-read cluster, shows that the overlap of
    two leaders serves no stale read while clocks stay within the bound, then
    slows that leader's clock past the bound and watches a stale read
    appear.
    """),
    code("""
    %matplotlib inline
    from dataclasses import replace

    from chainfire_core.raft.config import RaftConfig
    from sim import views
    from sim.clock import lease_clock_bound_ms
    from sim.options import RunOptions, parse_faults
    from sim.partitions import PartitionSpec
    from sim.run import simulate
    from sim.schedule import FaultEvent
    from sim.tracedata import load_trace
    """),
    md("""
    ## The cluster

    Three nodes, six busy clients, lease reads. The fault classes are given
    (`partition,clock`) so every run below draws the same parameters, but we
    script the faults ourselves: `simulate(options, script=events)` applies
    exactly the events given and draws none. With `script=()` the run is
    calm.
    """),
    code("""
    options = RunOptions(seed=0, nodes=3, duration_ms=8_000, clients=6, read_mode="lease",
                         faults=parse_faults("partition,clock"), think_ms=20.0, full_trace=False)
    calm = simulate(options, script=())
    params = calm.params
    timeout_ms = params.election_ticks * params.tick_ms
    print(calm.summary_line())
    print(f"tick {params.tick_ms} ms x {params.election_ticks} ticks = "
          f"election timeout {timeout_ms} ms; per-node drift up to {params.drift:.6f}; "
          f"clock faults up to x{params.max_clock_rate}")
    """),
    md("""
    The leader at three seconds is the node we will cut off.
    """),
    code("""
    roles = load_trace(calm.summary_records).roles
    elected = roles[(roles["role"] == "leader") & (roles["t"] < 3_000)]
    old = int(elected["node"][-1])
    others = tuple(n for n in range(1, options.nodes + 1) if n != old)
    print(f"leader: node {old} (term {elected['term'][-1]}); the majority side: {others}")
    """),
    md("""
    ## Three runs

    1. isolate the leader for three seconds, check-quorum on (the default);
    2. the same with the planted bug `lease_reads_no_check_quorum` (notebook
       02): no check-quorum, so the old leader never steps down, and it
       serves lease reads by its role alone (etcd's rule);
    3. check-quorum on, but the isolated leader's clock runs at 0.9 of real
       time: ten percent slow, which is within this seed's own bound for clock
       faults (1 / 1.11).

    For each we note when the majority side elected its new leader and when
    the old leader stepped down (in simulated, i.e. real, time). Between the
    two, two nodes believe they lead.
    """),
    code("""
    CUT_MS, HOLD_MS = 3_000.0, 3_000.0
    cut = FaultEvent(at_ms=CUT_MS, kind="partition", hold_ms=HOLD_MS,
                     partition=PartitionSpec(shape="isolate_one", groups=((old,), others)))


    def slow(rate):
        return FaultEvent(at_ms=CUT_MS, kind="clock", hold_ms=HOLD_MS, node=old, rate=rate)


    def overlap(report):
        roles = load_trace(report.summary_records).roles
        after = roles[roles["t"] >= CUT_MS]
        new = after[(after["role"] == "leader") & (after["node"] != old)]["t"]
        down = after[(after["node"] == old) & (after["role"] != "leader")]["t"]
        new_ms = float(new[0]) if len(new) else float("nan")
        down_ms = float(down[0]) if len(down) else CUT_MS + HOLD_MS  # the heal at the latest
        return new_ms, down_ms
    """),
    code("""
    runs = {
        "check-quorum": simulate(options, script=(cut,)),
        "planted bug": simulate(replace(options, bugs=("lease_reads_no_check_quorum",)),
                                script=(cut,)),
        "slow clock 0.9": simulate(options, script=(cut, slow(0.9))),
    }
    for name, report in runs.items():
        new_ms, down_ms = overlap(report)
        print(f"{name:<15} new leader {new_ms:7.1f} ms, old steps down {down_ms:7.1f} ms, "
              f"two leaders for {down_ms - new_ms:6.1f} ms: {report.summary_line()}")
    """),
    md("""
    Even with check-quorum and equal clocks the two *tenures* still overlap
    by about half a second: the old leader checks its quorum once per
    election timeout, so it steps down between one and two timeouts after the
    cut, while the followers may elect after one. But the old leader no
    longer serves lease reads for its whole tenure: its lease ends
    `lease_ticks` after the last heartbeat a quorum acknowledged, before any
    follower will vote, and from then on its reads wait for a heartbeat round
    that cannot complete. So the overlap serves no stale read, at equal
    clocks and with the clock 10% slow (still within the seed's bound).

    With the planted bug the old leader answers by role until the partition
    heals, and a stale read lands in the overlap:
    """),
    code("""
    views.illegal_figure(load_trace(runs["planted bug"].summary_records),
                         title="planted bug: the isolated leader serves lease reads by role")
    """),
    md("""
    The red operations are the ones the checker cannot order: a write that
    completed through the new leader, and a later read served by the old
    leader from its lease that does not see it. The shaded window spans them.

    ## How slow is too slow?

    The same partition, with the old leader's clock at a range of rates, far
    past the bound the config was given. The tenure overlap grows as 1/rate
    (until the heal at six seconds caps it); the lease, counted on the slow
    clock, stretches too. For this seed and workload the first stale read
    shows up between 0.3 and 0.25: the margin beyond the bound is the
    followers' randomized timeout (at least one election timeout) plus the
    time the new leader needs to commit a write, not something to count on.
    """),
    code("""
    for rate in (1.0, 0.9, 0.7, 0.5, 0.3, 0.25, 0.2):
        events = (cut,) if rate == 1.0 else (cut, slow(rate))
        report = simulate(options, script=events)
        new_ms, down_ms = overlap(report)
        verdict = "ok" if report.ok else "STALE READ (" + ", ".join(report.failed_checks) + ")"
        print(f"rate {rate:4}: two leaders for {down_ms - new_ms:6.1f} ms  {verdict}")
    """),
    md("""
    ## What "bounded drift" has to mean

    A duration of `d` ms counted on a clock running at rate `r` lasts `d / r`
    real ms. If every clock runs within `[1/R, R]` of real time, a lease of
    `L` ms on the leader's clock ends at most `L·R` real ms after its last
    quorum contact, and a follower refuses to vote for at least `E / R` real
    ms after its last contact with the leader. Lease reads are safe only when
    the first is shorter than the second, i.e. `L ≤ E / R²`; counting from
    when the acknowledged heartbeat was *sent* covers message delay, and one
    tick less covers tick granularity. That is the lease chainfire now keeps
    (`RaftConfig.lease_ticks`); the simulator sets `max_clock_drift` to the
    run's drawn bound. A leader that measured its lease in whole check-quorum
    rounds (etcd's role-only rule) would hold it up to `2E` on its own
    clock, which breaks this even at `R = 1`.

    The simulator applies the same arithmetic to *key* leases (TTLs, not
    leader leases): `sim.clock.lease_clock_bound_ms` is how much earlier than
    its TTL a key's lease may expire given the fastest clock the run allows,
    and the `lease` check grants exactly that slack.
    """),
    code("""
    fastest = params.max_clock_rate * (1.0 + params.drift)
    lease_ticks = RaftConfig(id=1, election_ticks=params.election_ticks,
                             max_clock_drift=fastest).lease_ticks
    print(f"fastest clock allowed: x{fastest:.4f}; lease {lease_ticks} of "
          f"{params.election_ticks} election ticks ({lease_ticks * params.tick_ms} ms)")
    print(f"a {timeout_ms} ms election timeout on the slowest clock lasts "
          f"{timeout_ms * fastest:.0f} real ms; on the fastest {timeout_ms / fastest:.0f} ms")
    print(f"key-lease slack for the longest TTL ({params.lease_ttl_s[1]} s): "
          f"{lease_clock_bound_ms(params):.0f} ms")
    """),
    md("""
    Within the configured bound, lease reads are safe; past it they are not,
    as the sweep showed. Unless you can bound clock drift, prefer
    `--read-mode safe`: ReadIndex costs a heartbeat round per batch of reads
    and needs no assumption about clocks.
    """),
    code("""
    views.timeline_figure(load_trace(runs["slow clock 0.9"].summary_records),
                          title="isolated leader with a slow clock: the node lane shows its rate")
    """),
]


NOTEBOOKS: dict[str, list[Cell]] = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_planted_bug.ipynb": PLANTED_BUG,
    "03_faults_sweep.ipynb": FAULTS_SWEEP,
    "04_leases_clock_drift.ipynb": LEASES,
}


def notebook(name: str, cells: list[Cell]) -> nbformat.NotebookNode:
    """A notebook with the cells, no outputs, and ids stable across builds."""
    stem = name.split("_", 1)[0]
    made = []
    for index, (kind, source) in enumerate(cells):
        cell = (nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                else nbformat.v4.new_code_cell(source))
        cell["id"] = f"nb{stem}-{index:02d}"
        made.append(cell)
    book = nbformat.v4.new_notebook(cells=made)
    book["metadata"] = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                       "language": "python"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(book)
    return book


def render(name: str) -> str:
    return nbformat.writes(notebook(name, NOTEBOOKS[name])) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        text = render(name)
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date (run notebooks/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
