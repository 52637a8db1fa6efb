"""sam2_segment through a real tritonserver over HTTP and gRPC, against SAM2ImagePredictor.predict
on the same (random) weights. Random weights give meaningless masks, so this checks parity, not
looks: binary masks agree on >= 99.9 % of pixels, IoU scores within 1e-3."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from tests.conftest import model_runs
from tests.helpers import CASES, image_bytes

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("image", ["astronaut.png", "coffee.jpg"])
@pytest.mark.parametrize("case_name", list(CASES))
def test_segment_matches_sam2_image_predictor(triton, reference, protocol, image, case_name):
    case = CASES[case_name]
    width, height = Image.open(io.BytesIO(image_bytes(image))).size
    coords, labels, box = case.arrays(width, height)
    ref_masks, ref_scores, ref_low_res = case.expected(reference, image_bytes(image), width, height)
    url = triton.http_url if protocol == "http" else triton.grpc_url
    with SegmentClient(url, protocol) as client:
        result = client.segment(image_bytes(image), coords, labels, box, case.multimask)

    expected_k = 3 if case.multimask else 1
    assert result.masks.shape == (expected_k, height, width)
    assert result.masks.dtype == np.uint8 and set(np.unique(result.masks)) <= {0, 1}
    assert result.iou_scores.shape == (expected_k,)
    assert result.low_res_logits.shape == (expected_k, 256, 256)
    for k in range(expected_k):
        agreement = np.mean(result.masks[k] == ref_masks[k].astype(np.uint8))
        assert agreement >= 0.999, f"mask {k}: only {agreement:.5f} of pixels agree"
    np.testing.assert_allclose(result.iou_scores, ref_scores, atol=1e-3)
    np.testing.assert_allclose(result.low_res_logits, ref_low_res, atol=1e-3)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_segment_in_one_model_or_as_the_ensemble_gives_the_same_results(
    triton, routed_triton, reference, protocol
):
    """Embedded default: sam2_segment runs every step itself and sam2_image_encoder stays idle.
    As the ensemble (the GPU target's structure) the image goes through sam2_image_encoder.
    Both answer as SAM2ImagePredictor does."""
    image = image_bytes("coffee.jpg")
    case = CASES["box_and_points"]
    width, height = Image.open(io.BytesIO(image)).size
    want_masks, want_scores, _ = case.expected(reference, image, width, height)
    for server, encoder_runs in ((triton, 0), (routed_triton, 1)):
        url = server.http_url if protocol == "http" else server.grpc_url
        before = model_runs(server, c.IMAGE_ENCODER)
        with SegmentClient(url, protocol) as client:
            got = client.segment(image, *case.arrays(width, height), case.multimask)
        assert model_runs(server, c.IMAGE_ENCODER) - before == encoder_runs
        assert got.masks.shape == want_masks.shape
        assert np.mean(got.masks == want_masks.astype(np.uint8)) >= 0.999
        np.testing.assert_allclose(got.iou_scores, want_scores, atol=1e-3)
