"""Gossip wired into real members: `chainfire serve` processes report a
member killed with SIGKILL as suspected then dead within SWIM's bound and
alive again after a restart, while the Raft member list keeps all three;
garbage datagrams on the gossip port are dropped and counted; embedded
members get node suspected / failed / recovered callbacks and the
operator hook's suggestion; config and the pure event mapping."""

from __future__ import annotations

import ast
import asyncio
import functools
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from real_client_harness import Recorder, cluster_builders
from test_real_runtime_server import ROOT, free_ports, retry

from chainfire_core.node_messages import Member
from chainfire_core.swim import (
    Ack,
    Alive,
    Dead,
    Incarnation,
    Join,
    Left,
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspected,
    Ping,
    SelfRefuted,
    Suspect,
    SwimConfig,
    SwimMessage,
    decode,
    encode,
    suspicion_bounds_ms,
)
from chainfire_core.types import NodeId
from real.config import ConfigError, load_config
from real.embed_events import ClusterEvent, ClusterEventKind, gossip_cluster_event
from real.gossip_cluster import ClusterGossip, GossipNotice, initial_members, swim_config
from real.metrics import GossipCollector
from real.server import ServeOptions, Serving, serve

K = ClusterEventKind
GOSSIP_PERIOD_MS = 200
MEMBERS = 3
STARTUP_TIMEOUT_S = 30.0


def swim_bound_s(config: SwimConfig, members: int) -> float:
    """SWIM's bound on "crashed" -> "dead at every other member", doubled for a
    loaded machine: each prober reaches the crashed member within 2n - 1
    periods of its round-robin, its probe fails by the period's end, the
    suspicion runs at most its Lifeguard maximum (no confirmation), and the
    news takes a period or two to reach the rest."""
    _, suspicion_max_ms = suspicion_bounds_ms(config, members)
    periods = (2 * members - 1) + 1 + 2
    return 2 * (periods * config.protocol_period_ms + suspicion_max_ms) / 1000


def scrape(port: int) -> dict[str, float]:
    """Sample name, with its labels, -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return out


def gossip_state(metrics: dict[str, float], state: str) -> float:
    return metrics.get(f'chainfire_gossip_members{{state="{state}"}}', -1.0)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll `condition` until it holds; the seconds it took (fails after `timeout_s`)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    client_port: int
    peer_port: int
    metrics_port: int
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:  # the child keeps its copy
            self.popen = subprocess.Popen(self.argv, cwd=ROOT, stdout=log,
                                          stderr=subprocess.STDOUT,
                                          env=dict(os.environ, PYTHONPATH=str(ROOT)))

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def metrics(self) -> dict[str, float]:
        try:
            return scrape(self.metrics_port)
        except OSError:
            return {}


def serve_argv(name: str, tmp_path: Path, peers: str, ports: tuple[int, int, int]
               ) -> list[str]:
    """argv of a `chainfire serve` member; ports: client, peer, metrics."""
    client, peer, metrics = ports
    argv = [sys.executable, "-m", "real.server", "serve", "--name", name,
            "--data-dir", str(tmp_path / name), "--initial-cluster", peers,
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--heartbeat-interval-ms", "50", "--election-timeout-ms", "500",
            "--gossip-period-ms", str(GOSSIP_PERIOD_MS),
            "--listen-metrics-urls", f"http://127.0.0.1:{metrics}"]
    return argv


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Proc]]:
    ports = free_ports(3 * MEMBERS)
    names = [f"n{i + 1}" for i in range(MEMBERS)]
    peers = ",".join(f"{name}=http://127.0.0.1:{ports[MEMBERS + i]}"
                     for i, name in enumerate(names))
    out = []
    for i, name in enumerate(names):
        client, peer, metrics = ports[i], ports[MEMBERS + i], ports[2 * MEMBERS + i]
        out.append(Proc(name, serve_argv(name, tmp_path, peers, (client, peer, metrics)),
                        tmp_path / f"{name}.log", client, peer, metrics))
    for proc in out:
        proc.start()
    try:
        yield out
    finally:
        for proc in out:
            proc.kill()


def member_names(proc: Proc) -> list[str]:
    from real.etcdpb import rpc_pb2, rpc_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{proc.client_port}") as channel:
        answer = retry(rpc_pb2_grpc.ClusterStub(channel).MemberList,
                       rpc_pb2.MemberListRequest(), deadline=time.monotonic() + 20)
        assert isinstance(answer, rpc_pb2.MemberListResponse)
        assert not any(member.isLearner for member in answer.members)
        return sorted(member.name for member in answer.members)


def put(proc: Proc, key: bytes) -> None:
    from real.etcdpb import rpc_pb2, rpc_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{proc.client_port}") as channel:
        retry(rpc_pb2_grpc.KVStub(channel).Put, rpc_pb2.PutRequest(key=key, value=b"v"),
              deadline=time.monotonic() + 20)


@pytest.mark.timeout(120)
def test_real_gossip_serve_reports_a_killed_member_and_its_return(procs: list[Proc]) -> None:
    survivors, victim = procs[:2], procs[2]
    config = swim_config(load_config(["--gossip-period-ms", str(GOSSIP_PERIOD_MS)], {}))
    bound_s = swim_bound_s(config, MEMBERS)

    def all_alive(proc: Proc) -> bool:
        return gossip_state(proc.metrics(), "alive") == MEMBERS - 1

    wait_for(lambda: all(all_alive(proc) for proc in procs), STARTUP_TIMEOUT_S, "gossip up")
    put(survivors[0], b"before")

    # Garbage on the gossip port (the UDP twin of the peer port) is counted and dropped.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        for garbage in (b"", b"\xff" * 40, b"\x01\x02garbage", os.urandom(1400)):
            raw.sendto(garbage, ("127.0.0.1", survivors[0].peer_port))
    wait_for(lambda: survivors[0].metrics().get(
        'chainfire_gossip_datagrams_dropped_total{reason="malformed"}', 0) >= 4, 10, "drops")
    put(survivors[0], b"after-garbage")
    wait_for(lambda: all_alive(survivors[0]), 10, "gossip going on")

    before = [proc.metrics() for proc in survivors]
    victim.kill()
    took_s = wait_for(lambda: all(gossip_state(proc.metrics(), "dead") == 1
                                  for proc in survivors), bound_s, "dead everywhere")
    for proc, old in zip(survivors, before, strict=True):
        new = proc.metrics()
        assert new["chainfire_gossip_suspicions_total"] > old["chainfire_gossip_suspicions_total"]
        assert new["chainfire_gossip_dead_total"] > old["chainfire_gossip_dead_total"]
        log = proc.log.read_text()
        suspected = [m.start() for m in re.finditer(r"member n3 \(\w+\) suspected", log)]
        dead = [m.start() for m in re.finditer(r"member n3 \(\w+\) declared dead", log)]
        assert suspected and dead and suspected[0] < dead[-1], log
    print(f"dead at both survivors {took_s:.2f} s after SIGKILL (bound {bound_s:.1f} s)")
    # Gossip only informs: the voter set is what it was.
    assert member_names(survivors[0]) == ["n1", "n2", "n3"]
    put(survivors[1], b"while-n3-dead")

    victim.start()
    wait_for(lambda: all(all_alive(proc) for proc in procs), STARTUP_TIMEOUT_S, "alive again")
    for proc, old in zip(survivors, before, strict=True):
        assert proc.metrics()["chainfire_gossip_recoveries_total"] > \
            old["chainfire_gossip_recoveries_total"]
        assert re.search(r"member n3 \(\w+\) alive again \(was dead", proc.log.read_text())
    assert victim.metrics()["chainfire_gossip_self_refutations_total"] >= 1
    assert member_names(victim) == ["n1", "n2", "n3"]


@pytest.mark.timeout(120)
def test_real_gossip_embedded_members_get_suspected_and_recovered(tmp_path: Path) -> None:
    """Two embedded members and a `chainfire serve` process; SIGKILL the process."""
    recorders = [Recorder[ClusterEvent]() for _ in range(2)]
    notices: list[GossipNotice] = []
    first, second, last = cluster_builders(tmp_path)
    first.on_gossip_event(notices.append)
    config = last.build().config  # the third member's settings, for its process
    cluster = ",".join(f"{name}={url.url}" for name, url in config.initial_cluster)
    peer_port = config.listen_peer_urls[0].port
    client, metrics = free_ports(2)
    third = Proc("n3", serve_argv("n3", tmp_path, cluster, (client, peer_port, metrics)),
                 tmp_path / "n3.log", client, peer_port, metrics)
    victim = config.node_id

    async def body() -> None:
        nodes = [b.gossip(period_ms=GOSSIP_PERIOD_MS).on_cluster_event(r).build()
                 for b, r in zip((first, second), recorders, strict=True)]
        for node in nodes:
            await node.start()
        third.start()

        def third_is(state: str) -> bool:
            return all(node.gossip is not None and node.gossip.states().get(victim) == state
                       for node in nodes)

        try:
            await wait_async(lambda: third_is("alive"), STARTUP_TIMEOUT_S)
            marks = [len(recorder.events) for recorder in recorders]
            third.kill()
            for recorder, mark in zip(recorders, marks, strict=True):
                await recorder.wait(functools.partial(
                    reported, start=mark, member=victim, kind=K.NODE_FAILED), 30)
                kinds = about(recorder.events[mark:], victim)
                assert kinds.index(K.NODE_SUSPECTED) < kinds.index(K.NODE_FAILED), kinds
                failed = next(e for e in recorder.events[mark:] if e.kind == K.NODE_FAILED)
                assert failed.accuser in {node.member_id for node in nodes}
            dead = [n for n in notices if isinstance(n.event, MemberDead)]
            assert dead and dead[-1].suggestion is not None
            assert (dead[-1].suggestion.action, dead[-1].suggestion.member_id) == ("remove",
                                                                                  victim)
            for node in nodes:  # gossip only informs: still three voters
                assert node.runtime is not None
                assert len(node.runtime.node.members.all()) == MEMBERS
            marks = [len(recorder.events) for recorder in recorders]
            third.start()
            for recorder, mark in zip(recorders, marks, strict=True):
                await recorder.wait(functools.partial(
                    reported, start=mark, member=victim, kind=K.NODE_RECOVERED),
                    STARTUP_TIMEOUT_S)
            await wait_async(lambda: third_is("alive"), 10)
        finally:
            third.kill()
            for node in nodes:
                await node.stop()

    asyncio.run(body())


def reported(events: list[ClusterEvent], *, start: int, member: NodeId,
             kind: ClusterEventKind) -> bool:
    return kind in about(events[start:], member)


def about(events: list[ClusterEvent], member: NodeId) -> list[ClusterEventKind]:
    return [e.kind for e in events if e.member is not None and e.member.id == member]


async def wait_async(condition: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


def test_real_gossip_config_flags() -> None:
    config = load_config([], {})
    assert config.gossip and config.gossip_period_ms == 1000
    assert not load_config(["--gossip", "off"], {}).gossip
    assert not load_config([], {"CHAINFIRE_GOSSIP": "off"}).gossip
    assert load_config(["--gossip", "on"], {"CHAINFIRE_GOSSIP": "off"}).gossip
    with pytest.raises(ConfigError, match=r"gossip.*true or false"):
        load_config(["--gossip", "maybe"], {})
    with pytest.raises(ConfigError, match=r"gossip-period-ms.*>= 10"):
        load_config(["--gossip-period-ms", "5"], {})
    swim = swim_config(load_config(["--gossip-period-ms", "10"], {}))
    assert swim.nack_timeout_ms < swim.probe_timeout_ms < swim.protocol_period_ms == 10
    assert swim.lifeguard


def test_real_gossip_cluster_event_mapping() -> None:
    me, other, accuser = NodeId(1), NodeId(2), NodeId(3)
    member = Member(id=other, name="b")
    four, five = Incarnation(4), Incarnation(5)
    cases: list[tuple[MemberEvent, ClusterEventKind, NodeId]] = [
        (MemberSuspected(member=other, incarnation=four, accuser=accuser, at_ms=0),
         K.NODE_SUSPECTED, accuser),
        (MemberDead(member=other, incarnation=four, accuser=accuser, at_ms=0), K.NODE_FAILED,
         accuser),
        (MemberAlive(member=other, incarnation=five, at_ms=0), K.NODE_RECOVERED, NodeId(0)),
        (MemberLeft(member=other, incarnation=five, at_ms=0), K.NODE_DEPARTED, NodeId(0))]
    for event, kind, who in cases:
        mapped = gossip_cluster_event(me, accuser, GossipNotice(event=event, member=member))
        assert mapped is not None
        assert (mapped.kind, mapped.member, mapped.accuser, mapped.node_id, mapped.leader) == (
            kind, member, who, me, accuser)
        assert mapped.incarnation == event.incarnation
    joined = MemberJoined(member=other, incarnation=Incarnation(0), address="h:1", at_ms=0)
    assert gossip_cluster_event(me, me, GossipNotice(event=joined, member=member)) is None
    refuted = SelfRefuted(incarnation=Incarnation(1), at_ms=0)
    assert gossip_cluster_event(me, me, GossipNotice(event=refuted, member=None)) is None


def test_real_gossip_cluster_follows_the_member_table_and_reports(tmp_path: Path) -> None:
    """One ClusterGossip on UDP; raw sockets on the other members' peer ports
    play those members, sending it real datagrams."""
    ports = free_ports(4)
    peers = ",".join(f"n{i + 1}=http://127.0.0.1:{port}" for i, port in enumerate(ports[:2]))
    config = load_config(["--name", "n1", "--initial-cluster", peers,
                          "--listen-peer-urls", f"http://127.0.0.1:{ports[0]}",
                          "--gossip-period-ms", "100"], {})
    ids = config.member_ids()
    me, n2 = ids["n1"], ids["n2"]
    stranger = NodeId(999)

    async def body() -> None:
        notices: list[GossipNotice] = []

        def broken(notice: GossipNotice) -> None:
            raise RuntimeError("a listener bug")

        gossip = ClusterGossip(config, listeners=[broken, notices.append])
        await gossip.start()
        loop = asyncio.get_running_loop()
        fake = Fake(loop, n2, ports[1], ports[0])
        await fake.open()
        try:
            assert gossip.states() == {n2: "unknown"}  # only presumed alive so far
            fake.send(Ping(sender=n2, to=me, seq=1, updates=(
                Alive(member=stranger, incarnation=Incarnation(0), address="127.0.0.1:9"),)))
            await wait_async(lambda: gossip.states() == {n2: "alive"}, 5)
            for update in (Suspect(member=n2, incarnation=Incarnation(0), accuser=stranger),
                           Dead(member=n2, incarnation=Incarnation(0), accuser=stranger),
                           Alive(member=n2, incarnation=Incarnation(1), address=fake.address),
                           Suspect(member=me, incarnation=Incarnation(0), accuser=n2)):
                fake.send(Ping(sender=n2, to=me, seq=2, updates=(update,)))
            fake.send(b"\x00not a message")
            await wait_async(lambda: len(notices) == 4, 5)
            assert [type(n.event) for n in notices] == [MemberSuspected, MemberDead,
                                                        MemberAlive, SelfRefuted]
            assert all(n.member is not None and n.member.id == n2
                       for n in notices[:3])  # never the stranger
            assert notices[2].previous == MemberState.DEAD and notices[3].member is None
            assert notices[1].suggestion is not None and notices[1].suggestion.member_id == n2
            counters = gossip.counters
            assert (counters.suspicions, counters.deaths, counters.recoveries,
                    counters.self_refutations, counters.refuted_suspicions) == (1, 1, 1, 1, 0)
            await wait_async(lambda: gossip.agent is not None
                             and gossip.agent.stats.malformed == 1, 5)
            text = collect_text(gossip)
            for line in ('chainfire_gossip_members{state="alive"} 1.0',
                         'chainfire_gossip_members{state="dead"} 0.0',
                         'chainfire_gossip_datagrams_dropped_total{reason="malformed"} 1.0',
                         "chainfire_gossip_suspicions_total 1.0",
                         "chainfire_gossip_incarnation 1.0"):
                assert line in text, text
            await follow_the_table(gossip, fake, Fake(loop, NodeId(77), ports[2], ports[0]))
        finally:
            fake.close()
            await gossip.close()

    asyncio.run(body())


async def follow_the_table(gossip: ClusterGossip, fake: Fake, newcomer: Fake) -> None:
    """MemberAdd: the new member gets a join; MemberRemove of oneself: a leave."""
    await newcomer.open()
    me = gossip.node_id
    table = (*initial_members(gossip.config),
             Member(id=newcomer.id, name="n3", peer_urls=(newcomer.url,)))
    try:
        gossip.members_changed(table)
        await wait_async(lambda: any(isinstance(m, Join) for m in newcomer.received), 5)
        assert gossip.states()[newcomer.id] == "unknown"
        gossip.members_changed(tuple(m for m in table if m.id != me))
        await wait_async(lambda: any(isinstance(m, Ping) and any(
            isinstance(u, Left) and u.member == me for u in m.updates)
            for m in fake.received + newcomer.received), 5)
        await wait_async(lambda: gossip.agent is not None and not gossip.agent.running, 5)
    finally:
        newcomer.close()


def collect_text(gossip: ClusterGossip) -> str:
    registry = CollectorRegistry()
    registry.register(GossipCollector(gossip))
    return generate_latest(registry).decode()


class Fake(asyncio.DatagramProtocol):
    """A raw UDP socket standing in for member `member_id`: sends encoded
    messages, keeps what it receives (decoded) and acks pings (so it is
    never suspected by itself)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, member_id: NodeId, port: int,
                 to_port: int) -> None:
        self.loop, self.id, self.port, self.to = loop, member_id, port, ("127.0.0.1", to_port)
        self.received: list[SwimMessage] = []
        self.transport: asyncio.DatagramTransport | None = None

    async def open(self) -> None:
        self.transport, _ = await self.loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", self.port))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def send(self, message: SwimMessage | bytes) -> None:
        assert self.transport is not None
        data = message if isinstance(message, bytes) else encode(message)
        self.transport.sendto(data, self.to)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        message = decode(data)
        self.received.append(message)
        if isinstance(message, Ping) and message.to == self.id:
            self.send(Ack(sender=self.id, to=message.sender, seq=message.seq))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def test_real_gossip_off_and_a_taken_port(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """--gossip off binds no UDP socket; a taken UDP port stops the start (exit 1)."""
    client, peer = free_ports(2)
    argv = ["--name", "solo", "--data-dir", str(tmp_path / "solo"),
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}"]

    async def body() -> None:
        stop = asyncio.Event()
        seen: list[Serving] = []

        def started(serving: Serving) -> None:
            seen.append(serving)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", peer))  # free: nothing gossips
            stop.set()

        off = load_config([*argv, "--gossip", "off"], {})
        assert await serve(off, ServeOptions(on_started=started), stop=stop) == 0
        assert len(seen) == 1 and seen[0].gossip is None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", peer))
            assert await serve(load_config(argv, {}), stop=asyncio.Event()) == 1
        assert "--gossip off" in caplog.text

    asyncio.run(body())


def test_real_gossip_cannot_propose() -> None:
    """Gossip only informs: the real driver imports nothing that can reach
    Raft (the node, the runtime, the API, the client); it gets the member
    table as data."""
    forbidden = ("chainfire_core.raft", "chainfire_core.membership", "real.runtime", "real.api",
                 "real.client", "real.server", "real.embed")
    for name in ("gossip.py", "gossip_cluster.py"):
        tree = ast.parse((ROOT / "real" / name).read_text())
        for node in ast.walk(tree):
            modules = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                       [alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [])
            for module in modules:
                assert module != "chainfire_core.node", (name, module)
                assert not module.startswith(forbidden), (name, module)
