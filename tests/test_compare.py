"""The drift measure used to compare the GPU target with the embedded one (docs/gpu.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sam2_triton.bench.compare import Prompt, compare_servers, default_prompts, drift, summarize
from sam2_triton.image.masks import MaskResult

IMAGE = Path(__file__).resolve().parents[1] / "src" / "sam2_triton" / "assets" / "coffee.jpg"


def result(masks: np.ndarray, scores: list[float], logit: float = 0.0) -> MaskResult:
    logits = np.full((len(scores), 256, 256), logit, np.float32)
    return MaskResult(masks.astype(np.uint8), np.array(scores, np.float32), logits)


def test_identical_results_have_no_drift():
    masks = np.zeros((3, 4, 5), np.uint8)
    masks[0, :2] = 1
    d = drift(result(masks, [0.9, 0.5, 0.1]), result(masks, [0.9, 0.5, 0.1]))
    assert (d.mask_agreement, d.min_mask_iou, d.max_score_diff, d.max_logit_diff) == (1, 1, 0, 0)
    assert d.same_best_mask


def test_drift_counts_flipped_pixels_scores_and_logits():
    a = np.zeros((2, 10, 10), np.uint8)
    a[0, :5] = 1  # 50 pixels
    b = a.copy()
    b[0, 5] = 1  # 10 more pixels in mask 0
    d = drift(result(a, [0.8, 0.7]), result(b, [0.7, 0.75], logit=0.25))
    assert d.mask_agreement == pytest.approx(1 - 10 / 200)
    assert d.min_mask_iou == pytest.approx(50 / 60)
    assert d.max_score_diff == pytest.approx(0.1)
    assert d.max_logit_diff == pytest.approx(0.25)
    assert not d.same_best_mask
    summary = summarize([d, drift(result(a, [0.8, 0.7]), result(a, [0.8, 0.7]))])
    assert summary["requests"] == 2 and summary["same_best_mask"] == 0.5
    assert summary["min_mask_iou"] == pytest.approx(50 / 60)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        drift(result(np.zeros((3, 4, 4)), [0, 0, 0]), result(np.zeros((1, 4, 4)), [0]))


def test_default_prompts_lie_inside_the_image():
    for prompt in default_prompts(400, 600):
        if prompt.point_coords is not None:
            assert ((prompt.point_coords >= 0) & (prompt.point_coords < [600, 400])).all()
        if prompt.box is not None:
            assert 0 <= prompt.box[0] < prompt.box[2] <= 600


@pytest.mark.e2e
def test_a_server_compared_with_itself_does_not_drift(triton):
    click = Prompt("point", np.array([[300.0, 200.0]], np.float32), np.array([1], np.int32))
    images = [("coffee", IMAGE.read_bytes(), 400, 600)]
    [(image, prompt, d)] = compare_servers(
        triton.http_url, triton.http_url, images, prompts=[click]
    )
    assert (image, prompt) == ("coffee", "point")
    assert d.mask_agreement == 1.0 and d.max_logit_diff == 0.0
