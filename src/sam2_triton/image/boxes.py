"""Boxes of masks and box NMS, as ``sam2/utils/amg.py`` and torchvision compute them (numpy)."""

from __future__ import annotations

import numpy as np


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """XYXY box with inclusive max edges (batched_mask_to_box); [0,0,0,0] for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return np.zeros(4, np.int64)
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], np.int64)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one XYXY box with many, torchvision's way (area = (x1-x0)*(y1-y0))."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = width * height
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area + areas - inter)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by non-maximum suppression, best score first (torchvision.ops.nms)."""
    boxes = boxes.astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for position, index in enumerate(order):
        if suppressed[index]:
            continue
        keep.append(index)
        rest = order[position + 1 :]
        ious = box_iou(boxes[index], boxes[rest])
        suppressed[rest[ious > iou_threshold]] = True  # NaN (zero-area pairs) never suppresses
    return np.array(keep, dtype=np.int64)
