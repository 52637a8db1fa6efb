"""Triton's own tools and clients against `sam2-triton serve` (one start for the module, with
TRITON_ADMIN_KEY set): the read APIs, model config included, are open; the admin APIs need the
key; PyTriton's ModelClient clicks over gRPC and HTTP; perf_analyzer measures sam2_segment from
the JSON `sam2-triton perf-input` writes; SIGTERM stops it all cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

from sam2_triton import contract as c
from sam2_triton.cli import paths
from sam2_triton.clients.image import SegmentClient
from sam2_triton.server.watchdog import ADMIN_HEADER
from tests.conftest import ROOT, free_port, load_configs, model_runs
from tests.helpers import workdir_with_export

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "sam2_triton.cli"]
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
KEY = "operator-key"
PERF_ANALYZER = ROOT / "build" / "perf_analyzer" / "perf_analyzer"  # make perf-analyzer


@dataclass
class Served:
    process: subprocess.Popen
    log: Path
    workdir: Path
    http: str
    grpc: str
    metrics: str


def _get(url: str, **headers: str) -> tuple[int, str]:
    """GET without keep-alive: an open idle connection would delay the server's shutdown."""
    with requests.get(url, timeout=5, headers={"Connection": "close", **headers}) as reply:
        return reply.status_code, reply.text


def _post(url: str, **headers: str) -> int:
    with requests.post(url, timeout=5, headers={"Connection": "close", **headers}) as reply:
        return reply.status_code


@pytest.fixture(scope="module")
def served(tiny_export, tmp_path_factory) -> Iterator[Served]:
    workdir = workdir_with_export(tmp_path_factory.mktemp("serve"), tiny_export.export_dir)
    http, grpc, metrics = free_port(), free_port(), free_port()
    log = workdir / "serve.log"  # a file, not a pipe: a full pipe would block tritonserver's log
    command = [
        *CLI, "serve", "--model", "tiny",
        "--instances", "sam2_mask_decoder=1", "--instances", "sam2_automatic=1",
        "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
    ]  # fmt: skip
    with open(log, "w") as out:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TRITON_ADMIN_KEY": KEY},
        )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if "serving SAM 2.1 tiny" in log.read_text():
                break
            time.sleep(0.5)
        assert "serving SAM 2.1 tiny" in log.read_text(), log.read_text()[-3000:]
        local = "127.0.0.1:{}".format
        yield Served(process, log, workdir, local(http), local(grpc), local(metrics))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_read_apis_are_open_and_admin_apis_need_the_key(served):
    base = f"http://{served.http}/v2"
    status, config = _get(f"{base}/models/{c.SEGMENT}/config")
    assert status == 200 and f'"name":"{c.SEGMENT}"' in config.replace(" ", "")
    assert _get(f"{base}/models/{c.SEGMENT}/stats")[0] == 200
    from tritonclient.grpc import InferenceServerClient

    with InferenceServerClient(served.grpc) as client:
        assert client.get_model_config(c.SEGMENT).config.name == c.SEGMENT
    for path in ("repository/index",):
        assert _post(f"{base}/{path}") == 403
        assert _post(f"{base}/{path}", **{ADMIN_HEADER: "wrong"}) == 403
        assert _post(f"{base}/{path}", **{ADMIN_HEADER: KEY}) == 200
    for path in ("logging", "systemsharedmemory/status", "trace/setting"):
        assert _get(f"{base}/{path}")[0] == 403, path
        assert _get(f"{base}/{path}", **{ADMIN_HEADER: KEY})[0] == 200, path
    assert "open with the key in TRITON_ADMIN_KEY" in served.log.read_text()


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_pytriton_model_client_clicks(served, scheme):
    from pytriton.client import ModelClient

    image = IMAGE.read_bytes()
    click = {"point_coords": np.array([[300.0, 200.0]], np.float32),
             "point_labels": np.array([1], np.int32)}  # fmt: skip
    url = f"{scheme}://{served.grpc if scheme == 'grpc' else served.http}"
    with ModelClient(url, c.SEGMENT, init_timeout_s=60, inference_timeout_s=120) as client:
        got = client.infer_sample(image=np.frombuffer(image, np.uint8), **click)
    with SegmentClient(served.grpc, "grpc") as ours:
        want = ours.segment(image, **click)
    np.testing.assert_array_equal(got["masks"], want.masks)
    np.testing.assert_allclose(got["iou_scores"], want.iou_scores, atol=1e-6)


def test_perf_analyzer_measures_sam2_segment(served, tmp_path):
    if not PERF_ANALYZER.exists():
        message = f"{PERF_ANALYZER} is missing: run `make perf-analyzer`"
        pytest.fail(f"{message} (CI must provide it)") if os.environ.get("CI") else pytest.skip(
            message
        )
    data = tmp_path / "input.json"
    made = subprocess.run(
        [*CLI, "perf-input", str(IMAGE), "--point", "300,200", "-o", str(data)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    before = model_runs(_Server(served.http), c.SEGMENT)
    run = subprocess.run(
        [
            str(PERF_ANALYZER), "-m", c.SEGMENT, "-u", served.grpc, "-i", "grpc",
            "--input-data", str(data), "--concurrency-range", "1",
            "--measurement-mode", "count_windows", "--measurement-request-count", "2",
            "--stability-percentage", "100", "--max-trials", "3",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    throughput = re.search(r"Throughput: ([0-9.]+) infer/sec", run.stdout)
    assert throughput and float(throughput.group(1)) > 0, run.stdout[-3000:]
    assert model_runs(_Server(served.http), c.SEGMENT) - before >= 4  # its requests, served


def test_serve_answers_then_stops_cleanly_on_sigterm(served):
    repository = served.workdir / paths.EMBEDDED_REPOSITORY_DIR
    assert load_configs(repository)[c.MASK_DECODER].instance_group[0].count == 1
    assert _get(f"http://{served.http}/v2/health/ready")[0] == 200
    assert "nv_inference_request_success" in _get(f"http://{served.metrics}/metrics")[1]
    served.process.send_signal(signal.SIGTERM)
    served.process.wait(timeout=120)
    rest = served.log.read_text()
    assert served.process.returncode == 0, rest[-3000:]
    assert "tritonserver stopped (exit code 0)" in rest


@dataclass(frozen=True)
class _Server:
    http_url: str  # what conftest.model_runs reads
