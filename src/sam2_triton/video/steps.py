"""One frame through the tracker's graphs: memory attention, the decoder and the memory
encoder for an object, or for several objects together, of one video or of several
(``track_together``), as SAM2Base._track_step runs them.

``FrameSteps`` runs them for one video: it holds that video's ``frames``, the ``models``, the
memory ``config`` and the video's ``expected_frames``, and keeps the last frame's encoder
outputs. ``VideoSession`` owns one and keeps the objects' state; ``track_together`` runs the
steps of several videos' ``Track`` s in shared calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sam2_triton.image.masks import upsample_logits
from sam2_triton.video.frames import VideoFrames
from sam2_triton.video.heads import MEMORY_IMAGE_SIZE, decoder_heads, fill_holes, use_multimask
from sam2_triton.video.mask_prompts import (
    MASK_OUT_BIAS,
    MASK_OUT_SCALE,
    mask_downsample,
    resize_antialiased,
)
from sam2_triton.video.memory import (
    MemoryConfig,
    MemoryPlan,
    from_bfloat16_bits,
    plan_memories,
    to_bfloat16_bits,
)
from sam2_triton.video.state import FrameOutput, TrackedObject, TrackerModels


@dataclass(frozen=True)
class Track:
    """One object with no prompt on a frame of one video, to be tracked there."""

    steps: FrameSteps
    obj: TrackedObject
    frame_idx: int
    reverse: bool

    def plan(self) -> MemoryPlan:
        return self.steps.memory_plan(self.obj, self.frame_idx, self.reverse)

    def features(self) -> dict[str, np.ndarray]:
        return self.steps.frame_features(self.frame_idx)


def track_together(tracks: Sequence[Track], models: TrackerModels) -> list[FrameOutput]:
    """Objects tracked on a frame each (one frame per video), in order. Where the models batch
    objects (``batch_objects``: up to that many per call, the GPU's), those reading as many
    memories and pointers go through memory attention and the memory encoder together,
    whichever video or prompted frame they come from (their temporal positions travel with
    them), and the videos' frames are encoded in one call (``encode_many``); the decoder takes
    objects one by one (its image embedding is each object's own). On a CPU nothing is gained
    by batching: each object runs alone."""
    per_call = getattr(models, "batch_objects", 1)
    if per_call < 2 or len(tracks) < 2:
        return [t.steps.run_frame(t.obj, t.frame_idx, False, None, t.reverse, True, None)
                for t in tracks]  # fmt: skip
    _encode_frames(tracks, models)
    plans = [t.plan() for t in tracks]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault((len(plan.memories), len(plan.pointers)), []).append(i)
    outputs: dict[int, FrameOutput] = {}
    for members in groups.values():
        for start in range(0, len(members), per_call):
            chunk = members[start : start + per_call]
            embeds = attend(models, [tracks[i] for i in chunk], [plans[i] for i in chunk])
            outs = [
                tracks[i].steps.decode(tracks[i].features(), embed[None], None, None)
                for i, embed in zip(chunk, embeds, strict=True)
            ]
            frames = [(tracks[i].steps, tracks[i].frame_idx) for i in chunk]
            memories = encode_memories(models, frames, outs, from_points=False)
            for i, out, memory in zip(chunk, outs, memories, strict=True):
                out.maskmem = memory[None].copy()  # not a view keeping the others' alive
                outputs[i] = tracks[i].steps.with_holes_filled(out)
    return [outputs[i] for i in range(len(tracks))]


def _encode_frames(tracks: Sequence[Track], models: TrackerModels) -> None:
    """Encode the frames the tracks need and their sessions lack in one call, where the models
    take several images at once (``encode_many``, the GPU's)."""
    encode_many = getattr(models, "encode_many", None)
    needed = {id(t.steps): t for t in tracks if not t.steps.has_features(t.frame_idx)}
    if encode_many is None or len(needed) < 2:
        return
    todo = list(needed.values())
    encoded = encode_many([t.steps.frames.model_input(t.frame_idx) for t in todo])
    for track, features in zip(todo, encoded, strict=True):
        track.steps.keep_features(track.frame_idx, features)


def attend(
    models: TrackerModels, tracks: Sequence[Track], plans: Sequence[MemoryPlan]
) -> np.ndarray:
    """Memory attention for objects reading as many memories and pointers: [N, 4096, 256]."""
    n = len(tracks)
    distances = [[d for _, d in p.pointers] for p in plans]
    memory = [
        np.stack([t.obj.output(f).maskmem[0] for f, _ in plan.memories])
        for t, plan in zip(tracks, plans, strict=True)
    ]
    pointers = [
        [t.obj.output(f).obj_ptr[0] for f, _ in plan.pointers]
        for t, plan in zip(tracks, plans, strict=True)
    ]
    feeds = {
        "vision_feat": np.concatenate([t.steps.vision_feat(t.features()) for t in tracks]),
        "memory": from_bfloat16_bits(np.stack(memory)),
        "memory_tpos": np.array([[row for _, row in p.memories] for p in plans], np.int64),
        "obj_ptrs": np.array(pointers, np.float32).reshape(n, -1, 256),
        "obj_ptr_tpos": np.array(distances, np.float32).reshape(n, -1),
    }
    return models.attend(feeds)


def encode_memories(
    models: TrackerModels,
    frames: Sequence[tuple[FrameSteps, int]],
    outs: Sequence[FrameOutput],
    from_points: bool,
) -> np.ndarray:
    """The memories of answers, each on its video's frame, [N, 4096, 64] as bfloat16 bits."""
    size = (MEMORY_IMAGE_SIZE, MEMORY_IMAGE_SIZE)
    feeds = {
        "vision_feat": np.concatenate(
            [steps.vision_feat(steps.frame_features(f)) for steps, f in frames]
        ),
        "mask_logits": np.stack([upsample_logits(o.pred_masks[0], size) for o in outs]),
        "object_score_logits": np.concatenate([o.object_score_logits for o in outs]),
        "binarize": np.array([from_points]),
    }
    return to_bfloat16_bits(models.encode_memory(feeds))


class FrameSteps:
    """The tracker's steps on one video's frames, keeping the last frame's encoder outputs."""

    def __init__(
        self,
        frames: VideoFrames,
        models: TrackerModels,
        config: MemoryConfig,
        expected_frames: int = 0,
    ) -> None:
        self.frames, self.models, self.config = frames, models, config
        # the video's length when frames still arrive: the pointers' temporal scale needs it
        self.expected_frames = expected_frames
        self._features: tuple[int, dict[str, np.ndarray]] | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def features_nbytes(self) -> int:
        """Bytes of the kept frame's encoder outputs (16.8 MB for a frame; 0 when none)."""
        return sum(a.nbytes for a in self._features[1].values()) if self._features else 0

    def keep_features(self, frame_idx: int, features: dict[str, np.ndarray]) -> None:
        """A frame's encoder outputs computed elsewhere (several videos' frames in one call)."""
        self._features = (frame_idx, features)

    def forget_features(self) -> None:
        self._features = None

    def run_frame(
        self,
        obj: TrackedObject,
        frame_idx: int,
        is_init: bool,
        point_inputs: tuple[np.ndarray, np.ndarray] | None,
        reverse: bool,
        run_mem_encoder: bool,
        prev_logits: np.ndarray | None,
    ) -> FrameOutput:
        features = self.frame_features(frame_idx)
        if is_init:  # SAM 2.1 adds the no-memory embedding instead of attending
            image_embed = features["image_embed"]
        else:
            track = Track(self, obj, frame_idx, reverse)
            image_embed = attend(self.models, [track], [track.plan()])
        out = self.decode(features, image_embed, point_inputs, prev_logits)
        if run_mem_encoder:
            from_points = point_inputs is not None
            out.maskmem = self.encode_memory(frame_idx, [out], from_points)[0][None]
        return self.with_holes_filled(out)

    def with_holes_filled(self, out: FrameOutput) -> FrameOutput:
        """The answer's small background holes filled, as SAM2VideoPredictor stores answers
        (after the memory of a tracked frame is encoded: its memory reads the unfilled mask)."""
        out.pred_masks = fill_holes(out.pred_masks, self.config.fill_hole_area)
        return out

    def decode(
        self,
        features: dict[str, np.ndarray],
        image_embed: np.ndarray,
        point_inputs: tuple[np.ndarray, np.ndarray] | None,
        prev_logits: np.ndarray | None,
    ) -> FrameOutput:
        """The tracking decoder on one object's image embedding [1, 4096, 256]."""
        if point_inputs is None:  # sam2's stand-in for "no prompt": one padding point
            coords, codes = np.zeros((1, 1, 2), np.float32), -np.ones((1, 1), np.int32)
        else:
            coords, codes = point_inputs
        has_mask = np.float32(prev_logits is not None)
        feeds = {
            "image_embed": image_embed,
            "high_res_feats_0": features["high_res_feats_0"],
            "high_res_feats_1": features["high_res_feats_1"],
            "point_coords": coords,
            "point_labels": codes,
            "mask_input": np.zeros((1, 1, 256, 256), np.float32)
            if prev_logits is None
            else prev_logits.astype(np.float32),
            "has_mask_input": np.full((1, 1), has_mask, np.float32),
        }
        multimask = use_multimask(0 if point_inputs is None else codes.shape[1])
        heads = decoder_heads(*self.models.decode(feeds), multimask, self.models.no_obj_ptr)
        return FrameOutput(heads.low_res_masks, heads.obj_ptr, heads.object_score_logits)

    def mask_as_output(self, frame_idx: int, mask_1024: np.ndarray) -> FrameOutput:
        """SAM2Base._use_mask_as_output: logits +-10 from the mask, downsampled antialiased;
        the pointer from a decoder run on the frame's own features with the mask as the dense
        prompt, gated by whether the mask has any pixel."""
        features = self.frame_features(frame_idx)
        high = mask_1024 * np.float32(MASK_OUT_SCALE) + np.float32(MASK_OUT_BIAS)
        side = MEMORY_IMAGE_SIZE // 4
        low = resize_antialiased(high, (side, side))[None, None]
        models = self.models
        dense = mask_downsample(
            mask_1024, models.mask_downsample_weight, models.mask_downsample_bias
        )
        feeds = {
            "image_embed": self.vision_feat(features),  # no memory, no no-memory embedding
            "high_res_feats_0": features["high_res_feats_0"],
            "high_res_feats_1": features["high_res_feats_1"],
            "point_coords": np.zeros((1, 1, 2), np.float32),
            "point_labels": -np.ones((1, 1), np.int32),
            "mask_input": dense[None, None],
            "has_mask_input": np.ones((1, 1), np.float32),
        }
        heads = decoder_heads(*models.decode(feeds), False, models.no_obj_ptr)
        appearing = np.float32(mask_1024.any())
        obj_ptr = appearing * heads.obj_ptr + (1 - appearing) * models.no_obj_ptr
        score = np.full((1, 1), MASK_OUT_SCALE * appearing + MASK_OUT_BIAS, np.float32)
        return self.with_holes_filled(
            FrameOutput(low.astype(np.float32), obj_ptr.astype(np.float32), score)
        )

    def memory_plan(self, obj: TrackedObject, frame_idx: int, reverse: bool) -> MemoryPlan:
        num_frames = max(self.num_frames, self.expected_frames)
        return plan_memories(
            frame_idx, list(obj.cond), set(obj.non_cond), num_frames, reverse, self.config
        )

    def encode_memory(
        self, frame_idx: int, outs: list[FrameOutput], from_points: bool
    ) -> np.ndarray:
        """The memories of answers on one frame, [N, 4096, 64] as bfloat16 bits."""
        return encode_memories(self.models, [(self, frame_idx)] * len(outs), outs, from_points)

    def has_features(self, frame_idx: int) -> bool:
        return self._features is not None and self._features[0] == frame_idx

    def frame_features(self, frame_idx: int) -> dict[str, np.ndarray]:
        """The encoder's outputs for a frame (the last frame's are kept, as sam2 keeps them)."""
        if not 0 <= frame_idx < self.num_frames:
            raise IndexError(f"frame_idx: {frame_idx} is outside 0..{self.num_frames - 1}")
        if not self.has_features(frame_idx):
            self._features = None  # the old frame's 16.8 MB go before the new frame's come
            self._features = (frame_idx, self.models.encode(self.frames.model_input(frame_idx)))
        return self._features[1]

    def vision_feat(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """The encoder's lowest level without the no-memory embedding the image path adds."""
        return (features["image_embed"] - self.models.no_mem_embed).astype(np.float32)
