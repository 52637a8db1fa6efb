"""bf16 on CPU (OpenVINO): the runner against ONNX Runtime fp32 on the same ONNX files, a bf16
server against SAM2ImagePredictor (fp32) over both protocols, and the refusals that name what is
missing. bf16 changes logits by ~1 % of their range, so masks are compared by agreement."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from sam2_triton.image.masks import MaskResult
from sam2_triton.runtime.runners import PrecisionUnavailableError, create_session, require_precision
from tests.conftest import running_server
from tests.helpers import CASES, image_bytes

MIN_AGREEMENT = 0.98  # fraction of mask pixels equal to the fp32 reference's
IOU_TOLERANCE = 5e-3


def _bf16_or_skip() -> None:
    try:
        require_precision("bf16")
    except PrecisionUnavailableError as error:
        pytest.skip(str(error))


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="fp32"):
        require_precision("fp16")


def test_bf16_without_openvino_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    with pytest.raises(PrecisionUnavailableError, match=r"sam2-triton\[openvino\]"):
        require_precision("bf16")
    assert require_precision("fp32") is None  # fp32 needs nothing more


def test_bf16_decoder_tracks_onnxruntime_fp32(tiny_export):
    _bf16_or_skip()
    rng = np.random.default_rng(0)
    feeds = {
        "image_embed": rng.standard_normal((1, 4096, 256), np.float32),
        "high_res_feats_0": rng.standard_normal((1, 16384, 128), np.float32),
        "high_res_feats_1": rng.standard_normal((1, 4096, 256), np.float32),
        "point_coords": np.array([[[500.0, 400.0], [0.0, 0.0]]], np.float32),
        "point_labels": np.array([[1, -1]], np.int32),
        "mask_input": np.zeros((1, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros((1, 1), np.float32),
    }
    names = [t.name for t in c.DECODER_OUTPUTS]
    path = tiny_export.export_dir / c.DECODER_FILE
    want = create_session(path).run(names, feeds)
    got = create_session(path, precision="bf16").run(names, feeds)
    for name, a, b in zip(names, want, got, strict=True):
        assert a.shape == b.shape and b.dtype == np.float32, name
        spread = float(np.abs(a).max())
        assert float(np.abs(a - b).max()) <= 0.05 * spread, name  # bf16: ~3 significant digits
        assert float(np.abs(a - b).max()) > 0, name  # really ran in bf16, not fp32


@pytest.fixture(scope="module")
def bf16_triton(tiny_export, tmp_path_factory):
    _bf16_or_skip()
    from sam2_triton.repository.options import ServingOptions

    options = ServingOptions(cpu_precision="bf16", session_instances=1)
    yield from running_server(tiny_export.export_dir, tmp_path_factory, options)


def _agree(got: MaskResult, want_masks, want_scores) -> None:
    assert got.masks.shape == want_masks.shape
    for k in range(len(want_masks)):
        agreement = float(np.mean(got.masks[k] == want_masks[k].astype(np.uint8)))
        assert agreement >= MIN_AGREEMENT, f"mask {k}: {agreement:.4f} of pixels agree"
    np.testing.assert_allclose(got.iou_scores, want_scores, atol=IOU_TOLERANCE)


@pytest.mark.e2e
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bf16_server_segments_and_clicks_like_the_fp32_reference(bf16_triton, reference, protocol):
    image = image_bytes("coffee.jpg")
    url = bf16_triton.http_url if protocol == "http" else bf16_triton.grpc_url
    with SegmentClient(url, protocol) as client:
        image_id = client.embed(image)
        for name in ("one_point_multimask", "pos_neg_points", "box"):
            case = CASES[name]
            coords, labels, box = case.arrays(600, 400)
            want = case.expected(reference, image, 600, 400)[:2]
            _agree(client.segment(image, coords, labels, box, case.multimask), *want)
            _agree(client.click(image_id, coords, labels, box, case.multimask), *want)
