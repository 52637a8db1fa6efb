"""Cut-outs through the real server: `sam2-triton segment --cutout` writes the best mask's
object as an RGBA PNG (optionally cropped), and sam2_session cuts out a clicked object from
the cached image without receiving the image again."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient

pytestmark = pytest.mark.e2e

IMAGE = Path(__file__).resolve().parents[1] / "src" / "sam2_triton" / "assets" / "coffee.jpg"
POINT = (np.array([[300.0, 200.0]], np.float32), np.array([1], np.int32))


def _rgba(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGBA"
        return np.asarray(image)


@pytest.mark.parametrize("crop", [False, True])
def test_segment_command_writes_the_cutout(triton, tmp_path, crop):
    cutout = tmp_path / "object.png"
    command = [sys.executable, "-m", "sam2_triton.cli", "segment", str(IMAGE), "--point",
               "300,200", "--url", triton.http_url, "--out", str(tmp_path / "out"),
               "--cutout", str(cutout)]  # fmt: skip
    subprocess.run([*command, *(["--crop"] if crop else [])], check=True, timeout=300)
    with SegmentClient(triton.http_url, "http") as client:
        expected = client.segment(IMAGE.read_bytes(), *POINT)
    mask = expected.masks[int(np.argmax(expected.iou_scores))]
    rgb = np.asarray(Image.open(IMAGE).convert("RGB"))
    rgba = _rgba(cutout.read_bytes())
    if crop:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        mask, rgb = mask[window], rgb[window]
    assert rgba.shape == (*mask.shape, 4)
    np.testing.assert_array_equal(rgba[..., 3], mask * 255)
    np.testing.assert_array_equal(rgba[..., :3], rgb)


def test_session_cutout_by_image_id_matches_the_one_shot_cutout(triton):
    image = IMAGE.read_bytes()
    with SegmentClient(triton.grpc_url, "grpc") as client:
        image_id = client.embed(image)
        by_id = client.click(image_id, *POINT, multimask_output=False, output_format="cutout")
        one_shot = client.infer(c.SEGMENT, image=image, point_coords=POINT[0],
                                point_labels=POINT[1], multimask_output=False,
                                output_format="cutout")  # fmt: skip
    assert len(by_id.encoded_masks) == len(one_shot.encoded_masks) == 1
    a, b = _rgba(by_id.encoded_masks[0]), _rgba(one_shot.encoded_masks[0])
    assert a.shape == b.shape == (400, 600, 4)
    assert np.mean(a[..., 3] == b[..., 3]) >= 0.999
    np.testing.assert_array_equal(a[..., 3], by_id.masks[0] * 255)  # raw masks still sent
