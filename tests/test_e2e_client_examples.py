"""The standalone client examples against a real tritonserver: what each one prints and writes is
compared with what SegmentClient gets for the same image and prompt (not only exit codes).

curl and node are external tools: in CI (env CI set) a missing one fails the test; elsewhere the
test is skipped and says which tool is missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_triton.clients.image import SegmentClient, SegmentResponse
from sam2_triton.image.encodings import png_to_mask, rle_to_mask
from tests.helpers import require_tool

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "client_examples"
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"  # 600x400
POINT = (300.0, 200.0)


def run(command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"{command[:2]} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def expected(triton) -> SegmentResponse:
    """What the package's client gets for IMAGE and POINT (3 raw masks)."""
    with SegmentClient(triton.http_url, "http") as client:
        return client.segment(
            IMAGE.read_bytes(), np.array([POINT], np.float32), np.array([1], np.int32)
        )


def printed_scores(stdout: str, prefix: str = "iou_scores") -> list[float]:
    match = re.search(rf"{prefix} \[([^\]]*)\]", stdout)
    assert match, f"no '{prefix} [...]' in:\n{stdout}"
    return [float(v) for v in match.group(1).split(",")]


@pytest.mark.parametrize("example", ["segment_http.py", "segment_grpc.py"])
def test_python_example_writes_the_best_mask(triton, expected, tmp_path, example):
    url = triton.http_url if "http" in example else triton.grpc_url
    out = tmp_path / "mask.png"
    result = run(
        [sys.executable, str(EXAMPLES / example), str(IMAGE), *map(str, POINT)]
        + ["--url", url, "--out", str(out)]
    )
    assert "masks [3, 400, 600]" in result.stdout
    np.testing.assert_allclose(printed_scores(result.stdout), expected.iou_scores, atol=1e-4)
    best = int(np.argmax(expected.iou_scores))
    np.testing.assert_array_equal(np.array(Image.open(out)), expected.masks[best] * 255)


def test_curl_example_prints_scores_and_writes_rle(triton, expected, tmp_path):
    require_tool("curl")
    out = tmp_path / "response.json"
    result = run(
        ["bash", str(EXAMPLES / "segment_curl.sh"), str(IMAGE), "300", "200"]
        + [f"http://{triton.http_url}", str(out)]
    )
    np.testing.assert_allclose(printed_scores(result.stdout), expected.iou_scores, atol=1e-6)
    outputs = {o["name"]: o for o in json.loads(out.read_text())["outputs"]}
    assert set(outputs) == {"iou_scores", "encoded_masks"}  # no raw masks travelled
    rles = [json.loads(item) for item in outputs["encoded_masks"]["data"]]
    assert [rle["size"] for rle in rles] == [[400, 600]] * 3
    masks = np.stack([rle_to_mask(rle) for rle in rles])
    np.testing.assert_array_equal(masks, expected.masks)
    assert [rle["area"] for rle in rles] == [int(m.sum()) for m in expected.masks]
    assert out.stat().st_size < expected.masks.nbytes / 2


def test_node_example_parses_the_binary_response(triton, expected, tmp_path):
    node = require_tool("node", "nodejs")
    out = tmp_path / "best.png"
    result = run(
        [node, str(EXAMPLES / "segment_node.mjs"), str(IMAGE), "300", "200"]
        + ["--url", f"http://{triton.http_url}", "--out", str(out)]
    )
    # Float32 values read from the binary output, printed in full: exactly the server's.
    np.testing.assert_array_equal(
        np.array(printed_scores(result.stdout), np.float32), expected.iou_scores
    )
    best = int(np.argmax(expected.iou_scores))
    assert f"best {best} of 3 masks" in result.stdout
    np.testing.assert_array_equal(png_to_mask(out.read_bytes()), expected.masks[best])


@pytest.mark.parametrize("tool", ["curl", "node"])
def test_curl_and_node_examples_report_the_servers_error(triton, tmp_path, tool):
    require_tool(tool, {"curl": "curl", "node": "nodejs"}[tool])
    args = [str(IMAGE), "900", "200"]  # outside the 600x400 image
    if tool == "curl":
        command = ["bash", str(EXAMPLES / "segment_curl.sh"), *args, f"http://{triton.http_url}"]
        command.append(str(tmp_path / "response.json"))
    else:
        command = [tool, str(EXAMPLES / "segment_node.mjs"), *args]
        command += ["--url", f"http://{triton.http_url}", "--out", str(tmp_path / "m.png")]
    result = run(command, check=False)
    assert result.returncode == 1
    assert "point_coords: (900, 200) lies outside the 600x400 image" in result.stderr


def test_asyncio_session_example_cancels_superseded_clicks(triton, tmp_path):
    clicks = ["150,100", "200,150", "250,200", "300,200", "350,250"]
    out = tmp_path / "last.png"
    result = run(
        [sys.executable, str(EXAMPLES / "session_asyncio.py"), str(IMAGE)]
        + ["--url", triton.grpc_url, "--interval-ms", "5", "--out", str(out)]
        + [arg for click in clicks for arg in ("--click", click)]
    )
    lines = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"click (\d+) \S+ \S+: (.*)", result.stdout)
    }
    assert sorted(lines) == list(range(len(clicks))), result.stdout
    # 5 ms between clicks is far less than one decoder run: every click but the last is
    # superseded while in flight; the last one is always answered.
    assert all("cancelled after" in lines[k] for k in range(len(clicks) - 1)), result.stdout
    assert f"1 answered, {len(clicks) - 1} cancelled" in result.stdout

    with SegmentClient(triton.grpc_url, "grpc") as client:
        image_id = client.embed(IMAGE.read_bytes())
        want = client.click(image_id, np.array([[350, 250]], np.float32), np.array([1], np.int32))
    assert f"image {image_id[:12]}" in result.stdout
    np.testing.assert_array_equal(
        np.array(printed_scores(lines[len(clicks) - 1]), np.float32), want.iou_scores
    )
    best = int(np.argmax(want.iou_scores))
    np.testing.assert_array_equal(png_to_mask(out.read_bytes()), want.masks[best])
