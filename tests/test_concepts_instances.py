"""concepts.instances without a model: which queries are kept and in what order, their boxes in
pixels, their masks in both encodings, and thresholds refused by name. (Against Sam3Processor
itself: tests/test_sam3_detector.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sam2_triton.concepts.instances import instances
from sam2_triton.errors import InvalidInputError


def _outputs():
    logits = np.full((1, 200), -9.0, np.float32)
    logits[0, [7, 3, 150]] = [2.0, 4.0, 0.5]  # kept in query order: 3, 7, 150
    boxes = np.zeros((1, 200, 4), np.float32)
    boxes[0, 3] = [0.5, 0.5, 0.5, 0.25]  # centre-size in [0, 1]
    masks = np.full((1, 200, 288, 288), -1.0, np.float32)
    masks[0, 3, 100:200, 50:150] = 1.0
    return logits, boxes, np.array([[3.0]], np.float32), masks


def test_queries_above_the_threshold_are_kept_in_query_order_with_boxes_in_pixels():
    found = instances(*_outputs(), (300, 400), threshold=0.5)
    np.testing.assert_array_equal(found.queries, [3, 7, 150])
    presence = 1 / (1 + np.exp(-3.0))
    want = [1 / (1 + np.exp(-x)) * presence for x in (4.0, 2.0, 0.5)]
    np.testing.assert_allclose(found.scores, want, rtol=1e-6)
    np.testing.assert_allclose(found.boxes[0], [100, 112.5, 300, 187.5])
    assert len(instances(*_outputs(), (300, 400), threshold=0.99)) == 0


def test_masks_and_their_rle_are_the_same_pixels_at_the_images_size():
    found = instances(*_outputs(), (300, 400), threshold=0.5)
    masks = found.masks()
    assert masks.shape == (3, 300, 400) and masks.dtype == np.uint8
    # logits rows 100-199, columns 50-149 of 288: image rows 104-207, columns 69-207
    rows, cols = np.nonzero(masks[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (104, 207, 69, 207)
    assert masks[1:].sum() == 0
    decoded = np.stack([mask_utils.decode(rle) for rle in found.rles()])
    np.testing.assert_array_equal(decoded, masks)


def test_a_threshold_may_be_a_numpy_number():
    assert len(instances(*_outputs(), (300, 400), threshold=np.float32(0.5))) == 3


@pytest.mark.parametrize("threshold", [float("nan"), -0.1, 1.5, "0.5", None, True])
def test_a_threshold_that_is_not_a_probability_is_refused_by_name(threshold):
    with pytest.raises(InvalidInputError, match="confidence_threshold"):
        instances(*_outputs(), (300, 400), threshold=threshold)
