"""Example boxes for SAM 3's detector (concepts/find.py ``example_boxes``): pixels to the
centre-size slots ``Sam3Processor.add_geometric_prompt`` takes, the rest padding; boxes and
labels a detector cannot use refused, naming the input."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_triton.concepts.find import example_boxes
from sam2_triton.concepts.graphs import MAX_BOXES
from sam2_triton.errors import InvalidInputError


def test_boxes_in_pixels_fill_the_first_slots_as_centre_and_size():
    two = np.array([[100, 80, 260, 200], [0, 0, 400, 300]])
    slots, labels, padding = example_boxes(two, [1, 0], (300, 400))
    np.testing.assert_allclose(slots[0, :2], [[0.45, 140 / 300, 0.4, 0.4], [0.5, 0.5, 1, 1]])
    assert labels[0, :3].tolist() == [1, 0, 0] and padding.tolist() == [[False] * 2 + [True] * 14]
    slots, _, _ = example_boxes(np.array([100, 80, 260, 200]), None, (300, 400))  # one, flat
    np.testing.assert_allclose(slots[0, 0], [0.45, 140 / 300, 0.4, 0.4])
    slots, labels, padding = example_boxes(None, None, (300, 400))  # a phrase alone
    assert slots.shape == (1, MAX_BOXES, 4) and padding.all()


@pytest.mark.parametrize(
    ("boxes", "labels", "field"),
    [
        ([[0, 0, 401, 10]], None, "boxes"),  # past the right edge
        ([[-1, 0, 10, 10]], None, "boxes"),
        ([[50, 50, 40, 60]], None, "boxes"),  # inverted
        ([[0, 0, float("nan"), 10]], None, "boxes"),
        ([[0, 0, 10, 10]] * (MAX_BOXES + 1), None, "boxes"),
        ([[0, 0, 10, 10]], [2], "box_labels"),
        ([[0, 0, 10, 10]], [1, 0], "box_labels"),
        ([[0, 0, 10], [1, 1, 5]], None, "boxes"),  # three numbers a box
        ([0, 0, 10, 10, 20, 20, 30, 30], None, "boxes"),  # two boxes flattened
        ([["a", 0, 10, 10]], None, "boxes"),
    ],
)
def test_boxes_a_detector_cannot_use_are_refused_by_name(boxes, labels, field):
    with pytest.raises(InvalidInputError) as refused:
        example_boxes(np.array(boxes, dtype=object), labels, (300, 400))
    assert refused.value.field == field, refused.value
