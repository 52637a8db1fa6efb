"""One frame through the tracker's graphs: memory attention, the decoder and the memory
encoder for an object (or several objects together), as SAM2Base._track_step runs them.

``FrameSteps`` is ``VideoSession``'s lower half: it needs the session's ``models``, ``frames``,
``config`` and ``expected_frames``, and keeps the last frame's encoder outputs.
"""

from __future__ import annotations

import numpy as np

from sam2_triton.masks import upsample_logits
from sam2_triton.tracking import (
    MASK_OUT_BIAS,
    MASK_OUT_SCALE,
    MEMORY_IMAGE_SIZE,
    MemoryConfig,
    MemoryPlan,
    decoder_heads,
    from_bfloat16_bits,
    mask_downsample,
    plan_memories,
    resize_antialiased,
    to_bfloat16_bits,
    use_multimask,
)
from sam2_triton.video_frames import VideoFrames
from sam2_triton.video_state import FrameOutput, TrackedObject, TrackerModels


class FrameSteps:
    models: TrackerModels
    frames: VideoFrames
    config: MemoryConfig
    expected_frames: int
    _features: tuple[int, dict[str, np.ndarray]] | None

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def _track_frame(
        self, objs: list[TrackedObject], frame_idx: int, reverse: bool
    ) -> list[FrameOutput]:
        """Objects with no prompt on a frame, tracked there. Where the models batch objects
        (``batch_objects``: up to that many per call, the GPU's), those reading the same memory
        frames go through memory attention and the memory encoder together; the decoder takes
        them one by one (its image embedding is each object's own)."""
        per_call = getattr(self.models, "batch_objects", 1)
        if per_call < 2 or len(objs) < 2:
            return [self._run_frame(o, frame_idx, False, None, reverse, True, None) for o in objs]
        features = self._frame_features(frame_idx)
        groups: dict[tuple, list[TrackedObject]] = {}
        for obj in objs:
            plan = self._memory_plan(obj, frame_idx, reverse)
            groups.setdefault((tuple(plan.memories), tuple(plan.pointers)), []).append(obj)
        outputs: dict[int, FrameOutput] = {}
        calls = [g[i : i + per_call] for g in groups.values() for i in range(0, len(g), per_call)]
        for group in calls:
            embeds = self._attend(group, frame_idx, features, reverse)
            outs = [self._decode(features, embed[None], None, None) for embed in embeds]
            memories = self._encode_memory(frame_idx, outs, from_points=False)
            for obj, out, memory in zip(group, outs, memories, strict=True):
                out.maskmem = memory[None].copy()  # not a view keeping the others' alive
                outputs[obj.obj_id] = out
        return [outputs[o.obj_id] for o in objs]

    def _run_frame(
        self,
        obj: TrackedObject,
        frame_idx: int,
        is_init: bool,
        point_inputs: tuple[np.ndarray, np.ndarray] | None,
        reverse: bool,
        run_mem_encoder: bool,
        prev_logits: np.ndarray | None,
    ) -> FrameOutput:
        features = self._frame_features(frame_idx)
        if is_init:  # SAM 2.1 adds the no-memory embedding instead of attending
            image_embed = features["image_embed"]
        else:
            image_embed = self._attend([obj], frame_idx, features, reverse)
        out = self._decode(features, image_embed, point_inputs, prev_logits)
        if run_mem_encoder:
            from_points = point_inputs is not None
            out.maskmem = self._encode_memory(frame_idx, [out], from_points)[0][None]
        return out

    def _decode(
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

    def _mask_as_output(self, frame_idx: int, mask_1024: np.ndarray) -> FrameOutput:
        """SAM2Base._use_mask_as_output: logits +-10 from the mask, downsampled antialiased;
        the pointer from a decoder run on the frame's own features with the mask as the dense
        prompt, gated by whether the mask has any pixel."""
        features = self._frame_features(frame_idx)
        high = mask_1024 * np.float32(MASK_OUT_SCALE) + np.float32(MASK_OUT_BIAS)
        side = MEMORY_IMAGE_SIZE // 4
        low = resize_antialiased(high, (side, side))[None, None]
        models = self.models
        dense = mask_downsample(
            mask_1024, models.mask_downsample_weight, models.mask_downsample_bias
        )
        feeds = {
            "image_embed": self._vision_feat(features),  # no memory, no no-memory embedding
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
        return FrameOutput(low.astype(np.float32), obj_ptr.astype(np.float32), score)

    def _memory_plan(self, obj: TrackedObject, frame_idx: int, reverse: bool) -> MemoryPlan:
        num_frames = max(self.num_frames, self.expected_frames)
        return plan_memories(
            frame_idx, list(obj.cond), set(obj.non_cond), num_frames, reverse, self.config
        )

    def _attend(
        self, objs: list[TrackedObject], frame_idx: int, features: dict, reverse: bool
    ) -> np.ndarray:
        """Memory attention for objects that read the same memory frames: [N, 4096, 256]."""
        plan = self._memory_plan(objs[0], frame_idx, reverse)
        memory = [np.stack([o.output(t).maskmem[0] for t, _ in plan.memories]) for o in objs]
        pointers = [[o.output(t).obj_ptr[0] for t, _ in plan.pointers] for o in objs]
        vision_feat = self._vision_feat(features)
        feeds = {
            "vision_feat": np.repeat(vision_feat, len(objs), axis=0),
            "memory": from_bfloat16_bits(np.stack(memory)),
            "memory_tpos": np.array([row for _, row in plan.memories], np.int64),
            "obj_ptrs": np.array(pointers, np.float32).reshape(len(objs), -1, 256),
            "obj_ptr_tpos": np.array([p for _, p in plan.pointers], np.float32),
        }
        return self.models.attend(feeds)

    def _encode_memory(
        self, frame_idx: int, outs: list[FrameOutput], from_points: bool
    ) -> np.ndarray:
        """The memories of answers on one frame, [N, 4096, 64] as bfloat16 bits."""
        size = (MEMORY_IMAGE_SIZE, MEMORY_IMAGE_SIZE)
        vision_feat = self._vision_feat(self._frame_features(frame_idx))
        feeds = {
            "vision_feat": np.repeat(vision_feat, len(outs), axis=0),
            "mask_logits": np.stack([upsample_logits(o.pred_masks[0], size) for o in outs]),
            "object_score_logits": np.concatenate([o.object_score_logits for o in outs]),
            "binarize": np.array([from_points]),
        }
        return to_bfloat16_bits(self.models.encode_memory(feeds))

    def _frame_features(self, frame_idx: int) -> dict[str, np.ndarray]:
        """The encoder's outputs for a frame (the last frame's are kept, as sam2 keeps them)."""
        if not 0 <= frame_idx < self.num_frames:
            raise IndexError(f"frame_idx: {frame_idx} is outside 0..{self.num_frames - 1}")
        if self._features is None or self._features[0] != frame_idx:
            self._features = None  # the old frame's 16.8 MB go before the new frame's come
            self._features = (frame_idx, self.models.encode(self.frames.model_input(frame_idx)))
        return self._features[1]

    def _vision_feat(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """The encoder's lowest level without the no-memory embedding the image path adds."""
        return (features["image_embed"] - self.models.no_mem_embed).astype(np.float32)
