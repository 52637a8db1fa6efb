"""The data-dependent half of SAM 2's video tracker, numpy only, written from
``sam2/modeling/sam2_base.py``: what the exported graphs (export/tracker_graph.py) leave out.

Here: the decoder heads of one frame (``SAM2Base._forward_sam_heads`` after the mask
decoder): which candidate answers (multimask for a lone click or none, SAM 2's stability rule
otherwise), which mask token's object pointer goes with it, and the no-object gating of masks
and pointers by the object score.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

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


# --- which memories a frame attends to ------------------------------------------------------


@dataclass(frozen=True)
class MemoryConfig:
    """SAM2Base's memory settings (sam2.1 configs and SAM2Base's defaults)."""

    num_maskmem: int = 7  # the prompted frames' memories + up to 6 previous frames'
    max_cond_frames_in_attn: int = -1  # -1: every prompted frame
    memory_temporal_stride: int = 1
    max_obj_ptrs_in_encoder: int = 16
    only_obj_ptrs_in_the_past: bool = True
    signed_tpos_enc_to_obj_ptrs: bool = True
    # SAM2VideoPredictor's post-processing (build_sam2_video_predictor: 8): background holes of
    # at most this many low-res pixels become foreground; 0: off. The reference does it only
    # with its CUDA extension and skips it on a CPU, silently but for a warning.
    fill_hole_area: int = 8


@dataclass(frozen=True)
class MemoryPlan:
    """What memory attention reads on one frame: ``memories`` (frame, row of maskmem_tpos_enc)
    in order, ``pointers`` (frame, temporal position fed to the pointers' sine encoding)."""

    memories: list[tuple[int, int]]
    pointers: list[tuple[int, np.float32]]


def select_closest_cond_frames(
    frame_idx: int, cond_frames: list[int], max_num: int
) -> tuple[list[int], list[int]]:
    """sam2_utils.select_closest_cond_frames on frame numbers (order kept: it is the order the
    memories are concatenated in)."""
    if max_num == -1 or len(cond_frames) <= max_num:
        return list(cond_frames), []
    selected: list[int] = []
    before = max((t for t in cond_frames if t < frame_idx), default=None)
    if before is not None:
        selected.append(before)
    after = min((t for t in cond_frames if t >= frame_idx), default=None)
    if after is not None:
        selected.append(after)
    rest = sorted((t for t in cond_frames if t not in selected), key=lambda t: abs(t - frame_idx))
    selected += rest[: max_num - len(selected)]
    return selected, [t for t in cond_frames if t not in selected]


def plan_memories(
    frame_idx: int,
    cond_frames: list[int],
    non_cond_frames: set[int],
    num_frames: int,
    reverse: bool = False,
    config: MemoryConfig = MemoryConfig(),
) -> MemoryPlan:
    """The choices of ``SAM2Base._prepare_memory_conditioned_features`` for a frame that is not
    an initial conditioning frame: the prompted ("conditioning") frames first, at temporal
    position 0, then the previous frames' memories (every ``memory_temporal_stride``-th, the
    last one always), then object pointers of prompted frames in the past and of up to 15
    previous frames, each with its signed distance."""
    selected, unselected = select_closest_cond_frames(
        frame_idx, cond_frames, config.max_cond_frames_in_attn
    )
    available = non_cond_frames | set(unselected)
    n = config.num_maskmem
    memories = [(t, n - 1) for t in selected]
    stride, sign = config.memory_temporal_stride, -1 if reverse else 1
    for t_pos in range(1, n):
        t_rel = n - t_pos  # frames before this one
        if t_rel == 1:
            prev = frame_idx - sign
        elif not reverse:
            prev = ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
        else:
            prev = -(-(frame_idx + 2) // stride) * stride + (t_rel - 2) * stride
        if prev in available:
            memories.append((prev, n - t_pos - 1))

    max_ptrs = min(num_frames, config.max_obj_ptrs_in_encoder)
    in_past = [t for t in selected if (t >= frame_idx if reverse else t <= frame_idx)]
    ptr_frames = in_past if config.only_obj_ptrs_in_the_past else selected
    distances = [
        ((frame_idx - t) * sign if config.signed_tpos_enc_to_obj_ptrs else abs(frame_idx - t), t)
        for t in ptr_frames
    ]
    for t_diff in range(1, max_ptrs):
        t = frame_idx - t_diff * sign
        if t < 0 or t >= num_frames:
            break
        if t in available:
            distances.append((t_diff, t))
    scale = np.float32(max_ptrs - 1)
    pointers = [(t, np.float32(d) / scale) for d, t in distances]
    return MemoryPlan(memories, pointers)


# --- frames and stored memories -------------------------------------------------------------


def resize_frame(rgb: np.ndarray, image_size: int = MEMORY_IMAGE_SIZE) -> np.ndarray:
    """A video frame (HWC uint8 RGB) -> [1024, 1024, 3] uint8, as SAM2VideoPredictor loads
    frames (sam2/utils/misc.py): Pillow's default (bicubic) resize to the square. Not the image
    predictor's transform: its resize differs, and the masks with it."""
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).convert("RGB").resize((image_size, image_size)))


def normalize_frame(resized: np.ndarray) -> np.ndarray:
    """A resized frame -> the encoder's input [1, 3, 1024, 1024]: /255, then ImageNet mean and
    std in float32, as the reference does."""
    from sam2_triton.image.transforms import PIXEL_MEAN, PIXEL_STD

    scaled = (resized / 255.0).astype(np.float32).transpose(2, 0, 1)
    return ((scaled - PIXEL_MEAN[:, None, None]) / PIXEL_STD[:, None, None])[None]


def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16's bits (ties to even) as uint16: half the bytes of a
    memory, and exactly the values the reference keeps."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


# --- mask prompts ----------------------------------------------------------------------------

MASK_OUT_SCALE, MASK_OUT_BIAS = 20.0, -10.0  # a mask prompt's logits: +10 inside, -10 outside


def antialiased_matrix(out_size: int, in_size: int) -> np.ndarray:
    """Weights [out, in] of ``F.interpolate(bilinear, align_corners=False, antialias=True)``
    along one axis: a triangle filter as wide as the scale when shrinking (plain bilinear when
    enlarging), as ATen computes them."""
    scale = in_size / out_size
    support, inverse = (scale, 1.0 / scale) if scale >= 1.0 else (1.0, 1.0)
    matrix = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        weights = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) - center + 0.5) * inverse))
        matrix[i, lo:hi] = weights / weights.sum()
    return matrix.astype(np.float32)


def resize_antialiased(x: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """[H, W] float32 resized as ``F.interpolate(..., antialias=True)`` (to ~1e-6)."""
    rows = antialiased_matrix(out_hw[0], x.shape[0])
    cols = antialiased_matrix(out_hw[1], x.shape[1])
    return (rows @ np.asarray(x, np.float32) @ cols.T).astype(np.float32)


def mask_prompt_1024(mask: np.ndarray) -> np.ndarray:
    """A user's mask [H, W] (bool) -> the model's [1024, 1024] 0/1 float32, as
    ``SAM2VideoPredictor.add_new_mask`` resizes it (antialiased, then >= 0.5)."""
    mask = np.asarray(mask, np.float32)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected [H, W], got shape {mask.shape}")
    if mask.shape == (MEMORY_IMAGE_SIZE, MEMORY_IMAGE_SIZE):
        return mask
    size = (MEMORY_IMAGE_SIZE, MEMORY_IMAGE_SIZE)
    return (resize_antialiased(mask, size) >= 0.5).astype(np.float32)


def mask_downsample(mask_1024: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """SAM2Base.mask_downsample (a 4 x 4, stride-4 convolution) on [1024, 1024] -> [256, 256]:
    the mask as the decoder's dense prompt when a mask is the prompt."""
    side = MEMORY_IMAGE_SIZE // 4
    blocks = mask_1024.reshape(side, 4, side, 4)
    return (np.einsum("iajb,ab->ij", blocks, weight.reshape(4, 4)) + bias.reshape(())).astype(
        np.float32
    )


# --- post-processing ----------------------------------------------------------------------

HOLE_SCORE = np.float32(0.1)  # what a filled hole's logits become: just foreground


def fill_holes(logits: np.ndarray, max_area: int) -> np.ndarray:
    """sam2.utils.misc.fill_holes_in_mask_scores: the 8-connected background components
    (logits <= 0) of at most ``max_area`` pixels are set to 0.1, on each [H, W] of ``logits``
    [..., H, W] (a copy; unchanged when ``max_area`` is 0)."""
    if max_area <= 0:
        return logits
    filled = np.array(logits, np.float32, copy=True)
    for plane in filled.reshape(-1, *filled.shape[-2:]):
        background = (plane <= 0).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=8)
        small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] <= max_area) + 1
        if small.size:
            plane[np.isin(labels, small)] = HOLE_SCORE
    return filled
