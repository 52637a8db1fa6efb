"""The mask half of SAM 2.1's processing, numpy only: which mask tokens answer a prompt set, and
the masks at the image's size (``SAM2ImagePredictor._predict`` + ``SAM2Transforms``).

The masks of sam2_segment and sam2_session are computed from the low-res logits by
``upsampling`` (only near their edge), on request and in the size asked for; segment-
everything's candidates keep ``bilinear_matrices`` for their stability scores. The image and
prompt half is ``image.transforms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from sam2_triton.contract import LOW_RES_MASK_SIZE, NUM_MASK_TOKENS
from sam2_triton.families import SAM2, Family
from sam2_triton.image.upsampling import AxisWeights, dense_logits, mask_array, mask_rle

LOW_RES_LOGIT_CLAMP = 32.0  # SAM2ImagePredictor clamps returned low-res logits to [-32, 32]
# From sam_mask_decoder_extra_args in sam2/configs/sam2.1/*.yaml (the same for all four sizes).
STABILITY_DELTA = 0.05
STABILITY_THRESHOLD = 0.98


def nearest_positions(out_size: int, in_size: int) -> np.ndarray:
    """The source pixel of each output pixel of a nearest-neighbour resize with half-pixel
    centres (PyTorch's ``nearest-exact``, OpenCV's ``INTER_NEAREST_EXACT``), float32 as ATen."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.floor((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale)
    return np.minimum(src.astype(np.int64), in_size - 1)


def stability_score(logits: np.ndarray, delta: float = STABILITY_DELTA) -> float:
    """IoU of the masks thresholded at +delta and -delta (MaskDecoder._get_stability_scores)."""
    area_i = int(np.count_nonzero(logits > delta))
    area_u = int(np.count_nonzero(logits > -delta))
    return area_i / area_u if area_u > 0 else 1.0


def select_masks(
    low_res_masks: np.ndarray, iou_predictions: np.ndarray, multimask_output: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the output tokens from all four: [4,256,256], [4] -> [K,256,256], [K] (SAM 3:
    288 x 288).

    Multimask: tokens 1..3. Single mask: token 0 if it is stable, else the multimask token
    with the highest predicted IoU (SAM 2's ``dynamic_multimask_via_stability``, SAM 3's too).
    """
    shape = low_res_masks.shape
    if len(shape) != 3 or shape[0] != NUM_MASK_TOKENS or shape[1] != shape[2]:
        raise ValueError(f"expected [4,256,256] mask logits, got {shape}")
    if multimask_output:
        return low_res_masks[1:], iou_predictions[1:]
    if stability_score(low_res_masks[0]) >= STABILITY_THRESHOLD:
        best = 0
    else:
        best = 1 + int(np.argmax(iou_predictions[1:]))
    return low_res_masks[best : best + 1], iou_predictions[best : best + 1]


def _bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """Interpolation weights [out, in] of ``F.interpolate(bilinear, align_corners=False)``."""
    axis = AxisWeights.of(out_size, in_size)
    matrix = np.zeros((out_size, in_size), dtype=np.float32)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, axis.i0), axis.w0)
    np.add.at(matrix, (rows, axis.i1), axis.w1)
    return matrix


def bilinear_matrices(
    orig_hw: tuple[int, int], low_res: int = LOW_RES_MASK_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """(rows [H, 256], cols [W, 256]): upsampled = rows @ logits @ cols.T, for reuse per size
    (segment-everything's stability scores; masks themselves come from ``upsampling``)."""
    return _bilinear_matrix(orig_hw[0], low_res), _bilinear_matrix(orig_hw[1], low_res)


def upsample_logits(low_res: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
    """[K, 256, 256] logits -> [K, H, W] at the original size (SAM2Transforms.postprocess_masks),
    by the same formula the served masks are thresholded from (``upsampling``)."""
    rows, cols = mask_axes(orig_hw, None, low_res.shape[-1])
    return dense_logits(np.asarray(low_res, np.float32), rows, cols)


@dataclass(frozen=True)
class MaskResult:
    """sam2_segment outputs: masks [K,H,W] uint8, iou_scores [K], low_res_logits [K,256,256]."""

    masks: np.ndarray
    iou_scores: np.ndarray
    low_res_logits: np.ndarray


@dataclass(frozen=True)
class DecodedMasks:
    """One prompt set's answer on the server, as a MaskResult whose masks are computed from the
    unclamped ``logits`` only when asked for: ``masks`` uint8 [K, H, W], or ``rles()``, which
    never builds a full-size mask (``upsampling``). ``low_res_logits`` are clamped as the
    predictor returns them."""

    logits: np.ndarray  # the chosen tokens' logits [K, 256, 256], unclamped
    iou_scores: np.ndarray
    low_res_logits: np.ndarray
    orig_hw: tuple[int, int]
    mask_hw: tuple[int, int] | None = None  # masks resized to this (nearest_positions)

    @property
    def size(self) -> tuple[int, int]:
        """The (height, width) the masks come at."""
        return self.mask_hw or self.orig_hw

    @cached_property
    def masks(self) -> np.ndarray:
        return masks_from_logits(self.logits, self.orig_hw, self.mask_hw)

    def rles(self) -> list[dict]:
        """Each mask's compressed COCO RLE (pycocotools' format)."""
        rows, cols = mask_axes(self.orig_hw, self.mask_hw, self.logits.shape[-1])
        return [mask_rle(logits, rows, cols) for logits in self.logits]


def mask_axes(
    orig_hw: tuple[int, int], mask_hw: tuple[int, int] | None = None, low_res: int = 256
) -> tuple[AxisWeights, AxisWeights]:
    """The bilinear weights of the masks' rows and columns: the image's, or those of the
    pixels a nearest-neighbour resize to ``mask_hw`` keeps (so the result equals resizing the
    full-size masks, without computing them)."""
    rows, cols = AxisWeights.of(orig_hw[0], low_res), AxisWeights.of(orig_hw[1], low_res)
    if mask_hw is None or tuple(mask_hw) == tuple(orig_hw):
        return rows, cols
    return (
        rows.take(nearest_positions(mask_hw[0], orig_hw[0])),
        cols.take(nearest_positions(mask_hw[1], orig_hw[1])),
    )


def masks_from_logits(
    logits: np.ndarray, orig_hw: tuple[int, int], mask_hw: tuple[int, int] | None = None
) -> np.ndarray:
    """Client side: output_format "logits"'s low_res_logits [K, 256, 256] -> uint8 masks
    [K, h, w], exactly what the server sends for raw/png/rle (the same code)."""
    rows, cols = mask_axes(orig_hw, mask_hw, np.asarray(logits).shape[-1])
    return np.stack([mask_array(m, rows, cols) for m in np.asarray(logits, np.float32)])


def postprocess_masks(
    low_res_masks: np.ndarray,
    iou_predictions: np.ndarray,
    orig_hw: tuple[int, int],
    multimask_output: bool,
    mask_hw: tuple[int, int] | None = None,
    family: Family = SAM2,
) -> DecodedMasks:
    """Decoder output for one prompt set ([4,256,256], [4]) -> masks at the original size
    (or resized to ``mask_hw``), with the holes ``family``'s predictor fills in the low-res
    logits before upsampling (``low_res_logits`` are returned unfilled, as it returns them)."""
    logits, scores = select_masks(low_res_masks, iou_predictions, multimask_output)
    logits = np.asarray(logits, np.float32)
    clamped = np.clip(logits, -LOW_RES_LOGIT_CLAMP, LOW_RES_LOGIT_CLAMP).astype(np.float32)
    return DecodedMasks(
        logits=fill_holes(logits, family.hole_area, family.hole_score),
        iou_scores=scores.astype(np.float32),
        low_res_logits=clamped,
        orig_hw=(int(orig_hw[0]), int(orig_hw[1])),
        mask_hw=None if mask_hw is None else (int(mask_hw[0]), int(mask_hw[1])),
    )


def fill_holes(logits: np.ndarray, max_area: int, score: float) -> np.ndarray:
    """The 8-connected background components (logits <= 0) of at most ``max_area`` pixels set
    to ``score``, on each [H, W] of ``logits`` [..., H, W] (a copy; unchanged when ``max_area``
    is 0): ``sam2.utils.misc.fill_holes_in_mask_scores`` (score 0.1, the video predictor) and
    ``SAM2Transforms.postprocess_masks`` (mask_threshold + 10, SAM 3's image predictor)."""
    if max_area <= 0:
        return logits
    filled = np.array(logits, np.float32, copy=True)
    for plane in filled.reshape(-1, *filled.shape[-2:]):
        background = (plane <= 0).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=8)
        small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] <= max_area) + 1
        if small.size:
            plane[np.isin(labels, small)] = np.float32(score)
    return filled
