"""The concept detector's 200 queries to the instances ``Sam3Processor`` keeps (issue 34): what
``Sam3Processor._forward_grounding`` (sam3/model/sam3_image_processor.py) does after the model,
in numpy.

- A query's score is ``sigmoid(its logit) * sigmoid(the presence logit)``; the queries scoring
  above the threshold are kept, in query order (sam3 does not sort them).
- Its box, centre-size in [0, 1], becomes corners in the image's pixels.
- Its mask is its 288 x 288 logits upsampled bilinearly to the image (``align_corners=False``)
  and thresholded at 0 (sam3: sigmoid above 0.5), by ``image.upsampling``'s formula: SAM 2's
  masks' own, in every output format the service has.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from sam2_triton.errors import InvalidInputError
from sam2_triton.image.upsampling import AxisWeights, mask_array, mask_rle

DEFAULT_THRESHOLD = 0.5  # Sam3Processor's confidence_threshold


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


def check_threshold(threshold: float) -> float:
    """A confidence threshold is a probability: refused by name otherwise."""
    real = isinstance(threshold, numbers.Real) and not isinstance(threshold, bool)
    if not real or not math.isfinite(threshold):
        raise InvalidInputError("confidence_threshold", f"must be a number, got {threshold!r}")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInputError("confidence_threshold", f"must be in [0, 1], got {threshold}")
    return float(threshold)


@dataclass(frozen=True)
class Instances:
    """The kept queries of one prompt on one image of ``orig_hw`` (height, width): scores [K],
    boxes [K, 4] (x0, y0, x1, y1 in pixels), mask logits [K, 288, 288], and their query
    indices [K]."""

    scores: np.ndarray
    boxes: np.ndarray
    mask_logits: np.ndarray
    queries: np.ndarray
    orig_hw: tuple[int, int]

    def __len__(self) -> int:
        return len(self.scores)

    def _axes(self) -> tuple[AxisWeights, AxisWeights]:
        side = self.mask_logits.shape[-1]
        return AxisWeights.of(self.orig_hw[0], side), AxisWeights.of(self.orig_hw[1], side)

    def masks(self) -> np.ndarray:
        """[K, H, W] uint8: each instance's mask at the image's size."""
        rows, cols = self._axes()
        out = np.zeros((len(self), *self.orig_hw), np.uint8)
        for k, logits in enumerate(self.mask_logits):
            out[k] = mask_array(logits, rows, cols)
        return out

    def mask(self, k: int) -> np.ndarray:
        """[H, W] uint8: instance ``k``'s mask alone (encoding one at a time)."""
        return mask_array(self.mask_logits[k], *self._axes())

    def rles(self) -> list[dict]:
        """Each instance's mask as compressed COCO RLE, computed from its edge."""
        rows, cols = self._axes()
        return [mask_rle(logits, rows, cols) for logits in self.mask_logits]


def instances(
    pred_logits: np.ndarray,
    pred_boxes: np.ndarray,
    presence_logit: np.ndarray,
    pred_masks: np.ndarray,
    orig_hw: tuple[int, int],
    threshold: float = DEFAULT_THRESHOLD,
) -> Instances:
    """One prompt's detector outputs (the graph's, batch of one: [1, 200], [1, 200, 4],
    [1, 1], [1, 200, 288, 288]) to the instances above ``threshold`` on an image of
    ``orig_hw``."""
    threshold = check_threshold(threshold)
    scores = _sigmoid(pred_logits[0]) * _sigmoid(presence_logit[0])
    queries = np.flatnonzero(scores > np.float32(threshold))
    cx, cy, w, h = np.moveaxis(np.asarray(pred_boxes[0][queries], np.float32), -1, 0)
    half = np.float32(0.5)
    corners = np.stack([cx - half * w, cy - half * h, cx + half * w, cy + half * h], axis=-1)
    height, width = orig_hw
    scale = np.array([width, height, width, height], np.float32)
    return Instances(
        scores=scores[queries],
        boxes=(corners * scale).astype(np.float32),
        mask_logits=np.asarray(pred_masks[0][queries], np.float32),
        queries=queries,
        orig_hw=(int(height), int(width)),
    )
