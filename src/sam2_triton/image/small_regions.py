"""``min_mask_region_area``: small islands and holes removed from segment-everything's masks.

What ``SAM2AutomaticMaskGenerator.postprocess_small_regions`` does, with OpenCV's connected
components as the reference uses them (``sam2/utils/amg.py: remove_small_regions``): each mask
loses its islands and holes under the area, masks that changed rank below those that did not,
and box NMS on the new boxes drops the duplicates the cleaning made. Masks are decoded one at a
time, so memory holds one full-size mask.

The reference's predictor also fills low-res holes and sprinkles with its CUDA extension when
it is built (``SAM2Transforms.postprocess_masks``); without it, as on a CPU, it warns and skips
that step, and so does this service.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from sam2_triton.errors import RequestCancelled
from sam2_triton.image.boxes import mask_to_box, nms

Rle = dict[str, Any]  # pycocotools' compressed RLE: {"size": [h, w], "counts": bytes}


def remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: str
) -> tuple[np.ndarray, bool]:
    """The mask without its holes ("holes") or islands ("islands") under ``area_thresh``
    pixels (8-connected), and whether anything changed; an image of islands all under the
    area keeps its largest."""
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', not {mode!r}")
    correct_holes = mode == "holes"
    working = (correct_holes ^ mask).astype(np.uint8)
    n_labels, regions, stats, _ = cv2.connectedComponentsWithStats(working, 8)
    sizes = stats[:, -1][1:]  # row 0 is the background label
    small = sizes < area_thresh
    if not small.any():
        return mask, False
    if correct_holes:  # the mask (label 0) and its small holes
        fill = np.concatenate([[True], small])
    else:  # the islands that are not small, or the largest if all are
        fill = np.concatenate([[False], ~small])
        if not fill.any():
            fill[int(np.argmax(sizes)) + 1] = True
    assert fill.shape[0] == n_labels
    return fill[regions], True


def postprocess_small_regions(
    rles: Sequence[Rle],
    min_area: int,
    nms_thresh: float,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> tuple[np.ndarray, list[Rle], np.ndarray]:
    """Clean every mask, then NMS with unchanged masks first (score 1, changed 0).

    Returns the kept indices (in NMS order), every mask's RLE (re-encoded where it changed)
    and every mask's XYXY box on the cleaned mask.
    """
    new_rles: list[Rle] = []
    boxes, scores = [], []
    for rle in rles:
        if is_cancelled():
            raise RequestCancelled("cancelled by the client")
        mask = mask_utils.decode(rle).astype(bool)
        mask, changed_holes = remove_small_regions(mask, min_area, "holes")
        mask, changed_islands = remove_small_regions(mask, min_area, "islands")
        changed = changed_holes or changed_islands
        new_rles.append(
            mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))) if changed else rle
        )
        boxes.append(mask_to_box(mask))
        scores.append(0.0 if changed else 1.0)
    box_array = np.stack(boxes) if boxes else np.zeros((0, 4), np.int64)
    keep = nms(box_array, np.array(scores, np.float32), nms_thresh)
    return keep, new_rles, box_array
