"""Which memories a tracked frame attends to, and how memories are stored, numpy only:
``SAM2Base._prepare_memory_conditioned_features``' choices (``plan_memories``) and the bfloat16
rounding the reference stores memories with (kept as bfloat16 bits: half the bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16's bits (ties to even) as uint16: half the bytes of a
    memory, and exactly the values the reference keeps."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
