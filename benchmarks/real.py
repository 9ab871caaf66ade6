"""Real nodes side by side: Chainfire, etcd 3.4 and a no-op gRPC KV server.

One run, one Python client (grpc.aio with the generated etcd stubs of
real/etcdpb), the same load against every system, all on loopback:

* `noop-aio`, `noop-sync`: benchmarks/_noop_kv_server.py, etcd's KV service
  over a dict (grpc.aio, and sync grpc with a thread pool): the ceiling of
  a Python gRPC server on this machine;
* `chainfire-1`, `chainfire-3`: `python -m real.server serve`, fsync on
  (the default), one node and three nodes;
* `etcd-1`, `etcd-3`: the `etcd` binary on PATH (Debian's etcd-server 3.4;
  scripts/install-etcd installs it), fsync on (always, in etcd).

For each system: puts/s and p50/p99 latency at each client count, then
linearizable and serializable single-key gets/s at the largest count. Every
client is a coroutine issuing one request after another (closed loop) on
one shared channel; all requests go to the leader (found with
Maintenance.Status), so no system pays for forwarding. Each phase runs
`--seconds` after `--warmup-seconds`; only requests that start and end in
the timed window count. The server processes' CPU time (from /proc) gives
CPU per request; the client's own CPU share says whether the client was the
limit. Full mode repeats everything `--rounds` times (systems interleaved,
fresh data directories) and reports the median of each figure.

    .venv/bin/python benchmarks/real.py            # full: 6 systems, 1/16/64 clients, 3 rounds
    .venv/bin/python benchmarks/real.py --quick    # under a minute: 3 systems, 1 and 64 clients
    .venv/bin/python benchmarks/real.py --profile /tmp/cf.prof   # + cProfile of chainfire-1

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    REPO_ROOT,
    emit_json,
    format_number,
    format_table,
    git_revision,
    machine_info,
    say,
    source_digest,
)
from real.etcdpb import rpc_pb2, rpc_pb2_grpc

STARTUP_TIMEOUT_S = 30.0
KEYSPACE = 1000
VALUE = b"v" * 100
ALL_SYSTEMS = ("noop-aio", "noop-sync", "chainfire-1", "chainfire-3", "etcd-1", "etcd-3")
QUICK_SYSTEMS = ("noop-aio", "chainfire-1", "etcd-1")
# The targets (docs/benchmarks.md, "Real nodes").
TARGET_SINGLE_VS_NOOP = 0.9
TARGET_P99_VS_ETCD = 2.0
TARGET_THREE_VS_ETCD = 0.5


# -- processes ---------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    import socket
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(slots=True)
class System:
    """Running server processes and the client address of their leader."""

    name: str
    procs: list[subprocess.Popen[bytes]]
    client_ports: list[int]
    workdir: Path
    leader_port: int = 0
    # The no-op server has no Status: its one port is the "leader".
    fixed_leader: bool = False

    def cpu_seconds(self) -> float:
        return sum(_proc_cpu_s(proc.pid) for proc in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def _spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(list(argv), cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=env)


def start_noop(style: str, workdir: Path) -> System:
    (port,) = free_ports(1)
    argv = [sys.executable, str(REPO_ROOT / "benchmarks" / "_noop_kv_server.py"),
            "--style", style, "--port", str(port)]
    proc = _spawn(argv, workdir / f"noop-{style}.log")
    return System(f"noop-{style}", [proc], [port], workdir, leader_port=port,
                  fixed_leader=True)


def start_chainfire(size: int, workdir: Path, profile: Path | None = None) -> System:
    ports = free_ports(2 * size)
    names = [f"n{i + 1}" for i in range(size)]
    cluster = ",".join(f"{name}=http://127.0.0.1:{ports[size + i]}"
                       for i, name in enumerate(names))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    procs = []
    for i, name in enumerate(names):
        prefix = [sys.executable]
        if profile is not None:
            prefix += ["-m", "cProfile", "-o", str(profile)]
        argv = [*prefix, "-m", "real.server", "serve", "--name", name,
                "--data-dir", str(workdir / f"cf-{name}"), "--initial-cluster", cluster,
                "--listen-client-urls", f"http://127.0.0.1:{ports[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{ports[size + i]}"]
        procs.append(_spawn(argv, workdir / f"cf-{name}.log", env))
    return System(f"chainfire-{size}", procs, ports[:size], workdir)


def start_etcd(size: int, workdir: Path) -> System:
    binary = shutil.which("etcd")
    if binary is None:
        raise FileNotFoundError("etcd is not on PATH (run scripts/install-etcd)")
    ports = free_ports(2 * size)
    names = [f"e{i + 1}" for i in range(size)]
    cluster = ",".join(f"{name}=http://127.0.0.1:{ports[size + i]}"
                       for i, name in enumerate(names))
    procs = []
    for i, name in enumerate(names):
        client, peer = f"http://127.0.0.1:{ports[i]}", f"http://127.0.0.1:{ports[size + i]}"
        argv = [binary, "--name", name, "--data-dir", str(workdir / f"etcd-{name}"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"bench-{ports[0]}", "--log-level", "warn"]
        procs.append(_spawn(argv, workdir / f"etcd-{name}.log"))
    return System(f"etcd-{size}", procs, ports[:size], workdir)


async def wait_ready(system: System) -> None:
    """Until a put succeeds on the leader (found with Maintenance.Status)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        for proc in system.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{system.name}: a server exited ({proc.returncode}); "
                                   f"its logs end:\n{_log_tails(system.workdir)}")
        try:
            if not system.leader_port:
                system.leader_port = await _find_leader(system.client_ports)
            if system.leader_port:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{system.leader_port}") as ch:
                    await rpc_pb2_grpc.KVStub(ch).Put(
                        rpc_pb2.PutRequest(key=b"ready", value=b"1"), timeout=2)
                return
        except grpc.aio.AioRpcError:
            if not system.fixed_leader:
                system.leader_port = 0
        if time.monotonic() > deadline:
            raise TimeoutError(f"{system.name} did not elect a leader in time")
        await asyncio.sleep(0.2)


def _log_tails(workdir: Path, lines: int = 15) -> str:
    """The last lines of every server log (the work directory is removed after the run)."""
    tails = []
    for log in sorted(workdir.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        tails.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(tails)


async def _find_leader(ports: Sequence[int]) -> int:
    for port in ports:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            status = await rpc_pb2_grpc.MaintenanceStub(channel).Status(
                rpc_pb2.StatusRequest(), timeout=2)
        if status.leader and status.leader == status.header.member_id:
            return port
    return 0


# -- load --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Phase:
    """One timed phase: completed requests, their latencies, CPU shares."""

    ops: int
    seconds: float
    latencies_s: list[float]
    errors: int
    client_cpu_s: float
    server_cpu_s: float

    def as_json(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        return {
            "rate_per_s": round(self.ops / self.seconds, 1),
            "p50_ms": round(_quantile(lat, 0.50) * 1e3, 3),
            "p99_ms": round(_quantile(lat, 0.99) * 1e3, 3),
            "ops": self.ops,
            "errors": self.errors,
            "client_cpu_share": round(self.client_cpu_s / self.seconds, 2),
            "server_cpu_us_per_op": round(self.server_cpu_s / max(1, self.ops) * 1e6, 1),
        }


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def run_phase(system: System, kind: str, clients: int, seconds: float,
                    warmup_s: float) -> Phase:
    """`clients` closed-loop coroutines on one channel doing `kind` requests."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{system.leader_port}") as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        call, requests = _requests(kv, kind)
        loop = asyncio.get_running_loop()
        start = loop.time()
        window = (start + warmup_s, start + warmup_s + seconds)
        latencies: list[float] = []
        errors = [0]
        marks: dict[str, float] = {}

        async def client(offset: int) -> None:
            index = offset
            clock = time.perf_counter
            while True:
                now = loop.time()
                if now >= window[1]:
                    return
                if now >= window[0] and "cpu" not in marks:
                    marks["cpu"] = time.process_time()
                    marks["server"] = system.cpu_seconds()
                request = requests[index % len(requests)]
                index += clients
                began = clock()
                try:
                    await call(request, timeout=10)
                except grpc.aio.AioRpcError:
                    errors[0] += 1
                    continue
                ended = clock()
                if now >= window[0] and loop.time() <= window[1]:
                    latencies.append(ended - began)

        await asyncio.gather(*(client(i) for i in range(clients)))
        client_cpu = time.process_time() - marks.get("cpu", time.process_time())
        server_cpu = system.cpu_seconds() - marks.get("server", system.cpu_seconds())
    return Phase(ops=len(latencies), seconds=seconds, latencies_s=latencies, errors=errors[0],
                 client_cpu_s=client_cpu, server_cpu_s=server_cpu)


def _requests(kv: rpc_pb2_grpc.KVStub, kind: str) -> tuple[Callable[..., Any], list[Any]]:
    keys = [b"key/%08d" % i for i in range(KEYSPACE)]
    if kind == "put":
        return kv.Put, [rpc_pb2.PutRequest(key=key, value=VALUE) for key in keys]
    serializable = kind == "get_serializable"
    assert kind in ("get_linearizable", "get_serializable"), kind
    return kv.Range, [rpc_pb2.RangeRequest(key=key, serializable=serializable) for key in keys]


# -- the run -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    systems: tuple[str, ...]
    client_counts: tuple[int, ...]
    seconds: float
    warmup_s: float
    rounds: int
    profile: Path | None = None
    results: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)


def start_system(name: str, workdir: Path, profile: Path | None) -> System:
    kind, _, arg = name.partition("-")
    if kind == "noop":
        return start_noop(arg, workdir)
    if kind == "chainfire":
        return start_chainfire(int(arg), workdir, profile if arg == "1" else None)
    assert kind == "etcd", name
    return start_etcd(int(arg), workdir)


async def run_system(plan: Plan, name: str, workdir: Path) -> None:
    system = start_system(name, workdir, plan.profile)
    try:
        await wait_ready(system)
        phases = [("put", clients) for clients in plan.client_counts]
        top = max(plan.client_counts)
        phases += [("get_linearizable", top), ("get_serializable", top)]
        for kind, clients in phases:
            phase = await run_phase(system, kind, clients, plan.seconds, plan.warmup_s)
            figures = phase.as_json()
            plan.results.setdefault(name, {}).setdefault(f"{kind}@{clients}", []).append(figures)
            say(f"  {name:12} {kind:17} {clients:3} clients: "
                f"{format_number(figures['rate_per_s']):>7}/s  p50 {figures['p50_ms']:.2f} ms  "
                f"p99 {figures['p99_ms']:.2f} ms  server {figures['server_cpu_us_per_op']} us/op"
                f"  client cpu {figures['client_cpu_share']}"
                + (f"  errors {figures['errors']}" if figures["errors"] else ""))
    finally:
        system.stop()


def median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    out["run_rates_per_s"] = [run["rate_per_s"] for run in runs]
    return out


def summarize(plan: Plan) -> dict[str, dict[str, dict[str, Any]]]:
    return {system: {phase: median_figures(runs) for phase, runs in phases.items()}
            for system, phases in plan.results.items()}


def ratios(summary: dict[str, dict[str, dict[str, Any]]], top: int) -> dict[str, Any]:
    """The issue's three targets, where the systems they compare were run."""
    put = f"put@{top}"

    def figure(system: str, key: str) -> float | None:
        return summary.get(system, {}).get(put, {}).get(key)

    out: dict[str, Any] = {}
    cf1, noop_aio, noop_sync = (figure(s, "rate_per_s")
                                for s in ("chainfire-1", "noop-aio", "noop-sync"))
    if cf1 and noop_aio:
        out["single_vs_noop_aio"] = _ratio(cf1 / noop_aio, TARGET_SINGLE_VS_NOOP, at_least=True)
    if cf1 and (noop_aio or noop_sync):
        best = max(value for value in (noop_aio, noop_sync) if value)
        out["single_vs_best_noop"] = _ratio(cf1 / best, TARGET_SINGLE_VS_NOOP, at_least=True)
    for size in (1, 3):
        cf_p99, etcd_p99 = figure(f"chainfire-{size}", "p99_ms"), figure(f"etcd-{size}", "p99_ms")
        if cf_p99 and etcd_p99:
            out[f"p99_vs_etcd_{size}"] = _ratio(cf_p99 / etcd_p99, TARGET_P99_VS_ETCD,
                                                at_least=False)
    cf3, etcd3 = figure("chainfire-3", "rate_per_s"), figure("etcd-3", "rate_per_s")
    if cf3 and etcd3:
        out["three_vs_etcd"] = _ratio(cf3 / etcd3, TARGET_THREE_VS_ETCD, at_least=True)
    cf1_etcd = figure("etcd-1", "rate_per_s")
    if cf1 and cf1_etcd:
        out["single_vs_etcd"] = {"ratio": round(cf1 / cf1_etcd, 3)}
    return out


def _ratio(value: float, target: float, *, at_least: bool) -> dict[str, Any]:
    met = value >= target if at_least else value <= target
    return {"ratio": round(value, 3), "target": f"{'>=' if at_least else '<='} {target}",
            "met": met}


def print_report(summary: dict[str, dict[str, dict[str, Any]]], plan: Plan) -> None:
    phases = [f"put@{c}" for c in plan.client_counts]
    top = max(plan.client_counts)
    phases += [f"get_linearizable@{top}", f"get_serializable@{top}"]
    headers = ["system", *(f"{p} /s (p50/p99 ms)" for p in phases)]
    rows = []
    for system in plan.systems:
        if system not in summary:
            continue
        cells = [system]
        for phase in phases:
            fig = summary[system].get(phase)
            cells.append("-" if fig is None else
                         f"{format_number(fig['rate_per_s'])} ({fig['p50_ms']:.1f}/"
                         f"{fig['p99_ms']:.1f})")
        rows.append(cells)
    say()
    say(format_table(headers, rows))


async def run_plan(plan: Plan) -> None:
    base = Path(tempfile.mkdtemp(prefix="chainfire-bench-"))
    try:
        for round_index in range(plan.rounds):
            say(f"round {round_index + 1}/{plan.rounds}")
            for name in plan.systems:
                workdir = base / f"r{round_index}-{name}"
                workdir.mkdir()
                await run_system(plan, name, workdir)
                if plan.profile is not None:
                    plan.profile = None  # profile the first chainfire-1 run only
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Chainfire vs etcd vs a no-op gRPC server.")
    parser.add_argument("--quick", action="store_true", help="under a minute: fewer systems")
    parser.add_argument("--systems", help=f"comma-separated subset of {','.join(ALL_SYSTEMS)}")
    parser.add_argument("--clients", help="comma-separated client counts (default 1,16,64)")
    parser.add_argument("--seconds", type=float, help="timed seconds per phase")
    parser.add_argument("--rounds", type=int, help="repetitions (median reported)")
    parser.add_argument("--profile", type=Path, help="cProfile chainfire-1's server into PATH")
    args = parser.parse_args(argv)
    quick = args.quick
    systems = tuple(args.systems.split(",")) if args.systems else (
        QUICK_SYSTEMS if quick else ALL_SYSTEMS)
    unknown = set(systems) - set(ALL_SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {sorted(unknown)}")
    if shutil.which("etcd") is None:
        say("etcd not on PATH (scripts/install-etcd installs it): skipping etcd")
        systems = tuple(s for s in systems if not s.startswith("etcd"))
    clients = tuple(int(c) for c in args.clients.split(",")) if args.clients else (
        (1, 64) if quick else (1, 16, 64))
    plan = Plan(systems=systems, client_counts=clients,
                seconds=args.seconds or (1.5 if quick else 4.0),
                warmup_s=0.5 if quick else 1.0, rounds=args.rounds or (1 if quick else 3),
                profile=args.profile)
    info = machine_info()
    say(f"real nodes benchmark: systems {','.join(systems)}, clients {clients}, "
        f"{plan.seconds} s per phase, {plan.rounds} round(s); {info['processor']}, "
        f"{info['cpu_usable']} cores")
    asyncio.run(run_plan(plan))
    summary = summarize(plan)
    print_report(summary, plan)
    result_ratios = ratios(summary, max(clients))
    for name, value in result_ratios.items():
        say(f"  {name}: {value}")
    emit_json({
        "benchmark": "real", "quick": quick, "machine": info, "git": git_revision(),
        "source_digest": source_digest("chainfire_core", "real"),
        "plan": {"systems": list(systems), "clients": list(clients), "seconds": plan.seconds,
                 "warmup_s": plan.warmup_s, "rounds": plan.rounds, "keyspace": KEYSPACE,
                 "value_bytes": len(VALUE)},
        "results": summary, "ratios": result_ratios,
    })


if __name__ == "__main__":
    main()
