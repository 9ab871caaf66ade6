"""Prometheus metrics: a running `chainfire serve` scraped over HTTP on its
--listen-metrics-urls port (values move with puts and leases), the endpoint's
handling of bad requests, and per-node registries side by side in one process."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from real_runtime_harness import cluster, single_node, start_all, stop_all, wait_leader
from test_real_runtime_server import free_ports

from chainfire_core import PutRequest
from chainfire_core.errors import ChainfireError, LeaseNotFound
from chainfire_core.lease.messages import LeaseGrantRequest
from chainfire_core.mvcc.messages import RangeRequest
from chainfire_core.types import LeaseId
from real.config import load_config
from real.metrics import NodeMetrics
from real.server import serve


def parse(text: str) -> dict[str, float]:
    """Sample name (with labels for buckets) -> value."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            le = sample.labels.get("le")
            out[sample.name + (f"{{le={le}}}" if le else "")] = sample.value
    return out


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def raw_http(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def test_real_metrics_scrape_a_running_server(tmp_path: Path) -> None:
    from real.etcdpb import rpc_pb2, rpc_pb2_grpc

    client, peer, metrics_port = free_ports(3)
    config = load_config(["--name", "m1", "--data-dir", str(tmp_path / "m1"),
                          "--listen-client-urls", f"http://127.0.0.1:{client}",
                          "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                          "--listen-metrics-urls", f"http://127.0.0.1:{metrics_port}"], {})
    url = f"http://127.0.0.1:{metrics_port}"

    async def scrape() -> dict[str, float]:
        status, text = await asyncio.to_thread(http_get, url + "/metrics")
        assert status == 200
        return parse(text)

    async def scenario() -> None:
        stop = asyncio.Event()
        server = asyncio.create_task(serve(config, stop=stop))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{client}") as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            await kv.Put(rpc_pb2.PutRequest(key=b"k0", value=b"v"), wait_for_ready=True,
                         timeout=10)
            before = await scrape()
            assert before["etcd_server_has_leader"] == 1
            assert before["etcd_server_is_leader"] == 1
            assert before["etcd_server_leader_changes_seen_total"] == 1
            assert before["etcd_debugging_mvcc_keys_total"] == 1
            await asyncio.gather(*(kv.Put(rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v"),
                                          timeout=10) for i in range(1, 31)))
            lease = rpc_pb2_grpc.LeaseStub(channel)
            await lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=10)
            after = await scrape()
            status, health = await asyncio.to_thread(http_get, url + "/health")
            assert (status, health) == (200, '{"health": "true", "reason": ""}')
            assert (await asyncio.to_thread(http_get, url + "/nope"))[0] == 404
            assert (await raw_http(metrics_port, b"POST /metrics HTTP/1.1\r\n\r\n")
                    ).startswith(b"HTTP/1.1 405")
            assert (await raw_http(metrics_port, b"garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
            assert (await raw_http(metrics_port, b"GET /" + b"x" * 10_000)
                    ).startswith(b"HTTP/1.1 400")
            assert (await scrape())["etcd_server_has_leader"] == 1  # still serving
        stop.set()
        assert await server == 0

        # 30 puts and a grant: committed and applied moved by at least 31.
        for name in ("etcd_server_proposals_committed_total",
                     "etcd_server_proposals_applied_total"):
            assert after[name] >= before[name] + 31, name
        assert after["etcd_debugging_mvcc_keys_total"] == 31
        assert after["etcd_debugging_mvcc_current_revision"] == 32  # from 1, as etcd's
        assert after["etcd_server_proposals_pending"] == 0
        assert after["etcd_server_proposals_failed_total"] == 0
        assert after["etcd_debugging_lease_granted_total"] == 1
        assert after["chainfire_lease_active"] == 1
        fsyncs = "etcd_disk_wal_fsync_duration_seconds_count"
        assert before[fsyncs] >= 1
        assert after[fsyncs] > before[fsyncs]
        assert after["etcd_disk_wal_fsync_duration_seconds_bucket{le=+Inf}"] == after[fsyncs]
        assert after["etcd_disk_backend_commit_duration_seconds_count"] == after[fsyncs]

    asyncio.run(scenario())


def test_real_metrics_registries_are_per_node() -> None:
    """Three nodes in one process, each with its own registry: every one
    counts the leader change, only the leader's fsyncs include the puts'."""

    async def scenario() -> None:
        net = cluster(3)
        metrics = {node_id: NodeMetrics(runtime) for node_id, runtime in net.runtimes.items()}
        for node_id, runtime in net.runtimes.items():
            runtime.observer = metrics[node_id]
        start_all(net)
        leader = await wait_leader(net)
        await asyncio.gather(*(net.runtimes[leader].request(PutRequest(key=b"k%d" % i,
                                                                       value=b"v"))
                               for i in range(10)))
        follower = min(node_id for node_id in net.runtimes if node_id != leader)
        with contextlib.suppress(ChainfireError):  # NotLeader, or forwarded: either is fine
            await net.runtimes[follower].request(PutRequest(key=b"x", value=b"v"))
        await net.runtimes[leader].request(RangeRequest(key=b"k0"))
        await stop_all(net)
        texts = {node_id: parse(m.registry_text()) for node_id, m in metrics.items()}
        for node_id, values in texts.items():
            assert values["etcd_server_has_leader"] == 1
            assert values["etcd_server_is_leader"] == (1 if node_id == leader else 0)
            assert values["etcd_server_leader_changes_seen_total"] >= 1
            assert values["etcd_server_proposals_pending"] == 0
        assert texts[leader]["etcd_debugging_mvcc_keys_total"] >= 10

    asyncio.run(scenario())


def test_real_metrics_counts_failed_proposals() -> None:
    async def scenario() -> None:
        runtime, _ = single_node()
        metrics = NodeMetrics(runtime)
        runtime.observer = metrics
        runtime.start()
        await runtime.request(LeaseGrantRequest(ttl_s=30))
        with pytest.raises(LeaseNotFound):  # a failed proposal
            await runtime.request(PutRequest(key=b"k", value=b"v", lease=LeaseId(12345)))
        await runtime.stop()
        values = parse(metrics.registry_text())
        assert values["etcd_server_proposals_failed_total"] == 1
        assert values["etcd_debugging_lease_granted_total"] == 1
        assert values["etcd_server_proposals_pending"] == 0

    asyncio.run(scenario())
