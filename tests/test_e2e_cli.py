"""The command line against a real tritonserver (the client examples: test_e2e_client_examples)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from sam2_triton.clients.image import SegmentClient
from tests.conftest import free_port
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
