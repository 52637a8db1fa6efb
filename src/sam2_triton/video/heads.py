"""The decoder heads of one tracked frame and the hole filling of its answer, numpy only,
written from ``sam2/modeling/sam2_base.py``: what the exported graphs (export/tracker_graph.py)
leave out.

``decoder_heads`` is ``SAM2Base._forward_sam_heads`` after the mask decoder: which candidate
answers (multimask for a lone click or none, SAM 2's stability rule otherwise), which mask
token's object pointer goes with it, and the no-object gating of masks and pointers by the
object score. ``fill_holes`` is SAM2VideoPredictor's post-processing of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sam2_triton.image.masks import fill_holes as fill_mask_holes
from sam2_triton.image.masks import select_masks, upsample_logits

NO_OBJ_SCORE = np.float32(-1024.0)  # sam2_base.NO_OBJ_SCORE: the logits of an absent object
MEMORY_IMAGE_SIZE = 1024  # masks enter the memory encoder at the model's input size
# sam2.1 configs (the same for all four sizes)
MULTIMASK_MIN_POINTS, MULTIMASK_MAX_POINTS = 0, 1


def use_multimask(num_points: int) -> bool:
    """``SAM2Base._use_multimask`` with SAM 2.1's settings (multimask on every frame, tracking
    included, for 0 or 1 points; a box counts as its two corner points)."""
    return MULTIMASK_MIN_POINTS <= num_points <= MULTIMASK_MAX_POINTS


@dataclass(frozen=True)
class HeadsOutput:
    """One frame's answer for N objects, as ``_forward_sam_heads`` returns it."""

    low_res_multimasks: np.ndarray  # [N, K, 256, 256] the candidates (absent: NO_OBJ_SCORE)
    ious: np.ndarray  # [N, K]
    low_res_masks: np.ndarray  # [N, 1, 256, 256] the chosen candidate
    obj_ptr: np.ndarray  # [N, 256]
    object_score_logits: np.ndarray  # [N, 1]

    def high_res_masks(self) -> np.ndarray:
        """[N, 1, 1024, 1024]: what the memory encoder reads."""
        size = (MEMORY_IMAGE_SIZE, MEMORY_IMAGE_SIZE)
        return np.stack([upsample_logits(m, size) for m in self.low_res_masks])


def decoder_heads(
    low_res_masks: np.ndarray,
    iou_predictions: np.ndarray,
    obj_ptrs: np.ndarray,
    object_score_logits: np.ndarray,
    multimask: bool,
    no_obj_ptr: np.ndarray,
) -> HeadsOutput:
    """The tracking decoder's outputs for N objects (all four tokens each) -> the frame's
    answer. ``no_obj_ptr`` [1, 256] replaces the pointer of an object scored absent."""
    chosen_multi, chosen_ious, chosen, pointers = [], [], [], []
    for n in range(low_res_masks.shape[0]):
        candidates, ious = select_masks(low_res_masks[n], iou_predictions[n], multimask)
        # the pointer comes from a multimask token only when the candidates are multimask
        tokens = obj_ptrs[n, 1:] if multimask else obj_ptrs[n, :1]
        appearing = bool(object_score_logits[n, 0] > 0)
        if not appearing:
            candidates = np.full_like(candidates, NO_OBJ_SCORE)
        best = int(np.argmax(ious)) if multimask else 0
        pointer = tokens[best] if appearing else no_obj_ptr[0]
        chosen_multi.append(candidates)
        chosen_ious.append(ious)
        chosen.append(candidates[best : best + 1])
        pointers.append(pointer)
    return HeadsOutput(
        low_res_multimasks=np.stack(chosen_multi).astype(np.float32),
        ious=np.stack(chosen_ious).astype(np.float32),
        low_res_masks=np.stack(chosen).astype(np.float32),
        obj_ptr=np.stack(pointers).astype(np.float32),
        object_score_logits=np.asarray(object_score_logits, np.float32),
    )


HOLE_SCORE = np.float32(0.1)  # what a filled hole's logits become: just foreground


def fill_holes(logits: np.ndarray, max_area: int) -> np.ndarray:
    """sam2.utils.misc.fill_holes_in_mask_scores: the 8-connected background components
    (logits <= 0) of at most ``max_area`` pixels are set to 0.1 (``image.masks.fill_holes``)."""
    return fill_mask_holes(logits, max_area, HOLE_SCORE)
