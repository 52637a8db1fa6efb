"""`sam2-triton cluster --replicas 2`, run as a user runs it: nginx in front of two real embedded
servers, hashing on the image-id header (HTTP and gRPC), Prometheus scraping both. Each image is
encoded once across replicas, a replica killed mid-run costs the client nothing, Locust through
the balancer sees no failure, every dashboard query has data, SIGTERM stops everything."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
import tritonclient.grpc as grpcclient

from sam2_triton import contract as c
from sam2_triton import metrics as m
from sam2_triton.clients.image import SegmentClient
from sam2_triton.cluster.replicas import replica_ports
from sam2_triton.server.embedded import Ports
from tests.conftest import ROOT, free_port
from tests.helpers import Scrape, require_tool, unique_png, wait_for_log, workdir_with_export
from tests.locust_run import EXPECTED, run_locust
from tests.prometheus import dashboard_queries, query, wait_for_result

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "sam2_triton.cli"]
POINT = {"point_coords": np.array([[20.0, 20.0]], np.float32), "point_labels": np.array([1])}
REPLICAS = 2


@dataclass
class RunningCluster:
    process: subprocess.Popen
    log: Path
    workdir: Path
    http: str
    grpc: str
    prometheus: str
    replicas: list[Ports]

    def scrape(self, index: int) -> Scrape:
        return Scrape.at("127.0.0.1", self.replicas[index].metrics)

    def total(self, name: str, **labels: str) -> float:
        return sum(self.scrape(i).value(name, **labels) for i in range(REPLICAS))


@pytest.fixture(scope="module")
def cluster(tiny_export, tmp_path_factory) -> Iterator[RunningCluster]:
    require_tool("nginx")
    require_tool("prometheus")
    workdir = workdir_with_export(tmp_path_factory.mktemp("cluster"), tiny_export.export_dir)
    (workdir / "deploy").mkdir()
    (workdir / "deploy" / "observability").symlink_to(ROOT / "deploy" / "observability")
    (workdir / "build").mkdir()
    (workdir / "build" / "tritonserver").symlink_to(ROOT / "build" / "tritonserver")
    http, grpc, prom = free_port(), free_port(), free_port()
    base = 20000 + (os.getpid() % 1000) * 10  # replica i: base+10i..+2, below ephemeral ports
    log = workdir / "cluster.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                *CLI,
                "cluster",
                *("--replicas", str(REPLICAS), "--model", "tiny"),
                *("--http-port", str(http), "--grpc-port", str(grpc)),
                *("--prometheus-port", str(prom), "--replica-base-port", str(base)),
                *("--instances", "sam2_session=1", "--instances", "sam2_automatic=1"),
                *("--instances", "sam2_mask_decoder=1"),
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    running = RunningCluster(
        proc,
        log,
        workdir,
        f"127.0.0.1:{http}",
        f"127.0.0.1:{grpc}",
        f"http://127.0.0.1:{prom}",
        [replica_ports(base, i) for i in range(REPLICAS)],
    )
    try:
        # the replicas start one after the other (up to 300 s each), then Prometheus
        wait_for_log(log, "cluster of 2 replicas of SAM 2.1 tiny ready", proc, timeout=900)
        yield running
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the cluster stops its children), SIGKILL of what is left only as a last resort."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            children = psutil.Process(proc.pid).children(recursive=True)
            for process in (proc, *children):
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            proc.wait()


def _url(cluster: RunningCluster, protocol: str) -> str:
    return cluster.http if protocol == "http" else cluster.grpc


def _upstreams_by_image(cluster: RunningCluster) -> dict[str, set[int]]:
    """Which replicas nginx sent each image id to (from its access log)."""
    seen: dict[str, set[int]] = {}
    ports = {p: i for i, r in enumerate(cluster.replicas) for p in (r.http, r.grpc)}
    access = (cluster.workdir / "build" / "cluster" / "nginx" / "access.log").read_text()
    for upstream, image in re.findall(r"upstream=\S+:(\d+) image=([0-9a-f]{64})", access):
        seen.setdefault(image, set()).add(ports[int(upstream)])
    return seen


def test_each_image_is_encoded_once_across_replicas_and_clicks_never_re_encode(cluster):
    images = [unique_png(1200 + k) for k in range(6)]
    encodes = cluster.total(m.ENCODE_SECONDS + "_count", model=c.SESSION)
    misses = cluster.total(m.CACHE_MISSES, model=c.SESSION)
    for k, image in enumerate(images):
        first, second = ("http", "grpc") if k % 2 else ("grpc", "http")
        with SegmentClient(_url(cluster, first), first) as client:
            image_id = client.embed(image)
            for _ in range(2):
                client.click(image_id, **POINT)
        with SegmentClient(_url(cluster, second), second) as client:
            client.click(image_id, **POINT)  # the same replica over the other protocol
    assert cluster.total(m.ENCODE_SECONDS + "_count", model=c.SESSION) - encodes == len(images)
    assert cluster.total(m.CACHE_MISSES, model=c.SESSION) - misses == len(images)
    routes = _upstreams_by_image(cluster)
    assert all(len(routes[image_id]) == 1 for image_id in routes), routes


def test_only_the_inference_api_passes_the_balancer(cluster):
    base = f"http://{cluster.http}"
    assert requests.get(f"{base}/v2/health/ready", timeout=5).status_code == 200
    assert requests.get(f"{base}/v2/models/{c.SESSION}/ready", timeout=5).status_code == 200
    config = requests.get(f"{base}/v2/models/{c.SEGMENT}/config", timeout=5)  # read only
    assert config.status_code == 200 and config.json()["name"] == c.SEGMENT
    refused = (
        "/v2/repository/index",
        "/metrics",
        "/v2/models/stats",
        f"/v2/models/{c.SESSION}/stats",
        f"/v2/models/{c.IMAGE_ENCODER}/infer",
        "/v2/logging",
        "/v2/trace/setting",
        "/v2/systemsharedmemory/status",
    )
    for path in refused:
        assert requests.post(base + path, timeout=5).status_code == 404, path
        assert requests.get(base + path, timeout=5).status_code == 404, path
    client = grpcclient.InferenceServerClient(cluster.grpc)
    assert client.is_server_ready()
    assert client.get_model_config(c.SESSION).config.name == c.SESSION
    with pytest.raises(Exception, match="(?i)unimplemented|404"):
        client.get_model_repository_index()
    client.close()


def _replica_server_pid(cluster: RunningCluster, index: int) -> int:
    port = f"--http-port={cluster.replicas[index].http}"
    (server,) = [p for p in psutil.Process(cluster.process.pid).children() if port in p.cmdline()]
    return server.pid


def test_a_killed_replica_costs_the_client_nothing_and_is_restarted(cluster):
    images = [unique_png(1300 + k) for k in range(4)]
    failures: list[BaseException] = []
    done = {"http": 0, "grpc": 0}
    clicking = {protocol: threading.Event() for protocol in done}
    stop = threading.Event()

    def clicker(protocol: str) -> None:
        try:
            with SegmentClient(_url(cluster, protocol), protocol, network_timeout_s=120) as client:
                ids = {k: client.embed(image) for k, image in enumerate(images)}
                while not stop.is_set():
                    for k, image in enumerate(images):
                        try:
                            ids[k], _ = client.click_resending(image, ids[k], **POINT)
                            done[protocol] += 1
                            clicking[protocol].set()
                        except Exception as exc:  # noqa: BLE001 - every failure is reported
                            failures.append(exc)
        except Exception as exc:  # noqa: BLE001 - an embed that failed is reported too
            failures.append(exc)
            clicking[protocol].set()

    threads = [threading.Thread(target=clicker, args=(p,)) for p in done]
    for thread in threads:
        thread.start()
    try:  # the clickers stop however this ends, or a failed wait would leave them clicking
        # the replica dies while both clients click (their images embedded, however slow the CPU)
        for protocol, event in clicking.items():
            assert event.wait(timeout=300), f"no {protocol} click in 300 s"
        assert failures == [], failures[:3]
        victim = _replica_server_pid(cluster, 0)
        os.kill(victim, signal.SIGKILL)
        before_kill = dict(done)
        wait_for_log(cluster.log, "replica 0 restarted", cluster.process, timeout=420)
        time.sleep(12)  # nginx tries the restarted replica again after fail_timeout (10 s)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=180)
    assert failures == [], failures[:3]
    assert all(done[p] > before_kill[p] for p in done), (before_kill, done)
    assert _replica_server_pid(cluster, 0) != victim
    ready = requests.get(f"http://127.0.0.1:{cluster.replicas[0].http}/v2/health/ready", timeout=5)
    assert ready.status_code == 200


def test_locust_through_the_balancer_has_no_failures(cluster, tmp_path):
    run = run_locust(cluster.http, cluster.grpc, tmp_path)
    assert run.returncode == 0, run.stderr[-5000:]
    assert all(run.counts.get(key, 0) > 0 for key in EXPECTED), run.counts
    assert run.failures == 0 and run.failure_rows == [], run.failure_rows[:3]


def test_prometheus_scrapes_every_replica_and_every_dashboard_query_has_data(cluster):
    up = wait_for_result(cluster.prometheus, 'up{job="sam2-triton"} == 1')
    expected = {f"127.0.0.1:{r.metrics}" for r in cluster.replicas}
    deadline = time.monotonic() + 60
    while {s["metric"]["instance"] for s in up} != expected and time.monotonic() < deadline:
        time.sleep(1)
        up = query(cluster.prometheus, 'up{job="sam2-triton"} == 1')["result"]
    assert {s["metric"]["instance"] for s in up} == expected
    empty = []
    for title, expr in dashboard_queries():
        if "nv_gpu_" in expr:
            continue  # GPU target only: a CPU server exports no GPU series
        try:
            wait_for_result(cluster.prometheus, expr, timeout=30)
        except TimeoutError:
            empty.append(title)
    assert empty == [], f"dashboard queries without data: {empty}"


def test_sigterm_stops_the_balancer_the_replicas_and_prometheus(cluster):
    children = [_replica_server_pid(cluster, i) for i in range(REPLICAS)]
    cluster.process.send_signal(signal.SIGTERM)
    assert cluster.process.wait(timeout=120) == 0, cluster.log.read_text()[-3000:]
    assert "cluster stopped" in cluster.log.read_text()
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    for port in (cluster.http, cluster.grpc, cluster.prometheus.removeprefix("http://")):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{port}/", timeout=2)
