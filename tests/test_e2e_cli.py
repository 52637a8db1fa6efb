"""The command line against a real tritonserver (the client examples: test_e2e_client_examples)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from sam2_triton import contract as c
from sam2_triton.cli import paths
from sam2_triton.clients.image import SegmentClient
from tests.conftest import free_port, load_configs
from tests.helpers import workdir_with_export

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
CLI = [sys.executable, "-m", "sam2_triton.cli"]


def _reference(triton, point=(300.0, 200.0)):
    with SegmentClient(triton.http_url, "http") as client:
        return client.segment(
            IMAGE.read_bytes(), np.array([point], np.float32), np.array([1], np.int32)
        )


def test_segment_command_writes_masks_and_scores(triton, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        [
            *CLI,
            "segment",
            str(IMAGE),
            "--point",
            "300,200",
            "--protocol",
            "grpc",
            "--url",
            triton.grpc_url,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "3 mask(s) of 400x600" in run.stdout
    expected = _reference(triton)
    scores = json.loads((out / "scores.json").read_text())
    np.testing.assert_allclose(scores["iou_scores"], expected.iou_scores, atol=1e-6)
    for k in range(3):
        mask = np.array(Image.open(out / f"mask_{k}.png"))
        np.testing.assert_array_equal(mask, expected.masks[k] * 255)
    tinted = np.array(Image.open(out / "overlay.png"))
    original = np.array(Image.open(IMAGE).convert("RGB"))
    outside = ~expected.masks.any(axis=0).astype(bool)
    assert tinted.shape == original.shape
    np.testing.assert_array_equal(tinted[outside], original[outside])
    assert (tinted[~outside] != original[~outside]).any()


def _get(url: str) -> tuple[int, str]:
    """GET without keep-alive: an open idle connection would delay the server's shutdown."""
    with requests.get(url, timeout=5, headers={"Connection": "close"}) as reply:
        return reply.status_code, reply.text


def test_serve_starts_answers_and_stops_cleanly_on_sigterm(tiny_export, tmp_path):
    workdir = workdir_with_export(tmp_path, tiny_export.export_dir)
    http, grpc, metrics = free_port(), free_port(), free_port()
    log = tmp_path / "serve.log"  # a file, not a pipe: a full pipe would block tritonserver's log
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                *CLI,
                "serve",
                "--model",
                "tiny",
                "--instances",
                "sam2_mask_decoder=1",
                "--instances",
                "sam2_automatic=1",
                "--http-port",
                str(http),
                "--grpc-port",
                str(grpc),
                "--metrics-port",
                str(metrics),
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if "serving SAM 2.1 tiny" in log.read_text():
                break
            time.sleep(0.5)
        assert "serving SAM 2.1 tiny" in log.read_text(), log.read_text()[-3000:]
        repository = workdir / paths.EMBEDDED_REPOSITORY_DIR
        assert load_configs(repository)[c.MASK_DECODER].instance_group[0].count == 1
        assert _get(f"http://127.0.0.1:{http}/v2/health/ready")[0] == 200
        assert "nv_inference_request_success" in _get(f"http://127.0.0.1:{metrics}/metrics")[1]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = log.read_text()
    assert proc.returncode == 0, rest[-3000:]
    assert "tritonserver stopped (exit code 0)" in rest


def test_serve_refuses_a_port_in_use(triton, tiny_export, tmp_path):
    workdir = workdir_with_export(tmp_path, tiny_export.export_dir)
    port = triton.ports.http
    run = subprocess.run(
        [*CLI, "serve", "--http-port", str(port)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert f"HTTP port 127.0.0.1:{port} is already in use" in run.stderr


def test_serve_without_export_says_how_to_make_one(tmp_path):
    run = subprocess.run(
        [*CLI, "serve", "--model", "small"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "sam2-triton export --model" in run.stderr and "--random-weights" in run.stderr


def test_download_offline_names_the_alternatives(tmp_path):
    env = {**os.environ, "SAM2_TRITON_CHECKPOINT_URL_BASE": f"http://127.0.0.1:{free_port()}"}
    run = subprocess.run(
        [*CLI, "download", "--model", "tiny", "--dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "--checkpoint PATH" in run.stderr and "--random-weights" in run.stderr


def test_missing_stub_is_a_clear_error(tmp_path):
    from sam2_triton.server.embedded import ServerError, _stub_path

    (tmp_path / "python_backend_stubs" / "3.8").mkdir(parents=True)
    with pytest.raises(ServerError, match="no Python backend stub for Python 3.11.*available: 3.8"):
        _stub_path(tmp_path, "3.11")


def test_demo_offline_ends_with_masks_on_disk(tiny_export, tmp_path):
    workdir = workdir_with_export(tmp_path, tiny_export.export_dir)
    env = {**os.environ, "SAM2_TRITON_CHECKPOINT_URL_BASE": f"http://127.0.0.1:{free_port()}"}
    ports = [str(free_port()) for _ in range(3)]
    run = subprocess.run(
        [
            *CLI,
            "demo",
            "--instances",
            "sam2_mask_decoder=1",
            "--instances",
            "sam2_automatic=1",
            "--http-port",
            ports[0],
            "--grpc-port",
            ports[1],
            "--metrics-port",
            ports[2],
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RANDOM WEIGHTS" in run.stderr and "MEANINGLESS" in run.stderr
    out = workdir / "outputs" / "demo"
    assert f"masks and scores are in {out}" in run.stdout
    assert [np.array(Image.open(out / f"mask_{k}.png")).shape for k in range(3)] == [(400, 600)] * 3
    assert len(json.loads((out / "grpc_single" / "scores.json").read_text())["iou_scores"]) == 1
