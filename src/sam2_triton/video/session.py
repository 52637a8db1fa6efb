"""One video being tracked: SAM2VideoPredictor's inference state and calls, on the exported
graphs (``TrackerModels``) and the numpy choices of ``heads``, ``memory`` and ``mask_prompts``.

The calls mirror Meta's: ``add_new_points_or_box`` answers the prompted frame's masks for
every object, ``propagate_in_video`` yields (frame, object ids, mask logits at the video's
size). Each object is tracked on its own (sam2 1.1's per-object state), with its prompted
("conditioning") frames, the frames it was tracked on and their memories, stored rounded to
bfloat16 as the reference stores them (as bfloat16 bits: half the bytes).

Memory is bounded by ``memory_frames``: an object keeps its prompted frames and the outputs of
the last ``memory_frames`` frames it was tracked on: all that a propagation under way reads (6
memories and 15 pointers back, SAM 2.1's settings). The reference keeps every frame's, so a
correction or a restart behind the window differs from it (docs/video.md).
Small holes in the answers are filled as the reference fills them on a GPU (``fill_holes``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from sam2_triton.image.masks import upsample_logits
from sam2_triton.video.frames import VideoFrames
from sam2_triton.video.heads import MEMORY_IMAGE_SIZE, NO_OBJ_SCORE
from sam2_triton.video.mask_prompts import mask_prompt_1024
from sam2_triton.video.memory import MemoryConfig
from sam2_triton.video.state import DEFAULT_MEMORY_FRAMES, FrameOutput, TrackedObject, TrackerModels
from sam2_triton.video.steps import FrameSteps, Track, track_together

LOGIT_CLAMP = 32.0  # previous mask logits fed back with new clicks are clamped (sam2)


class VideoSession:
    """SAM2VideoPredictor's state for one video: ``frames`` (VideoFrames, or RGB arrays HWC
    uint8), which may grow while it is tracked (frames sent one at a time).

    ``expected_frames``: the video's length when frames still arrive; the pointers' temporal
    scale depends on it for videos under 16 frames (default: the frames there are now).
    ``low_res_output``: masks are returned as the 256 x 256 logits they are upsampled from."""

    def __init__(
        self,
        frames: VideoFrames | Sequence[np.ndarray],
        models: TrackerModels,
        config: MemoryConfig | None = None,
        memory_frames: int | None = DEFAULT_MEMORY_FRAMES,
        expected_frames: int = 0,
        low_res_output: bool = False,
    ) -> None:
        if not isinstance(frames, VideoFrames):
            frames = VideoFrames.of_arrays(frames)
        self.steps = FrameSteps(frames, models, config or MemoryConfig(), expected_frames)
        self.memory_frames = memory_frames
        self.low_res_output = low_res_output  # masks as [N, 1, 256, 256] logits (the server's)
        self.objects: dict[int, TrackedObject] = {}

    @property
    def frames(self) -> VideoFrames:
        """The video's frames (its steps run on them; more may be appended)."""
        return self.steps.frames

    @property
    def num_frames(self) -> int:
        return self.steps.num_frames

    @property
    def height(self) -> int:
        return self.frames.height

    @property
    def width(self) -> int:
        return self.frames.width

    @property
    def nbytes(self) -> int:
        """Bytes held: frames, every object's outputs and the last frame's features."""
        objects = sum(o.nbytes for o in self.objects.values())
        return self.frames.nbytes + self.steps.features_nbytes + objects

    @property
    def obj_ids(self) -> list[int]:
        return list(self.objects)

    # --- Meta's calls ---------------------------------------------------------------------

    def add_new_points_or_box(
        self,
        frame_idx: int,
        obj_id: int,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: np.ndarray | None = None,
    ) -> tuple[int, list[int], np.ndarray]:
        """Clicks and/or a box on one frame for one object; every object's masks there."""
        if (points is None) != (labels is None):
            raise ValueError("points and labels must be provided together")
        if points is None and box is None:
            raise ValueError("at least one of points or box must be provided as input")
        coords = np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32)
        codes = np.zeros(0, np.int32) if labels is None else np.asarray(labels, np.int32)
        coords, codes = coords.reshape(1, -1, 2), codes.reshape(1, -1)
        if box is not None:
            if not clear_old_points:
                raise ValueError("cannot add a box without clearing old points")
            coords = np.concatenate([np.asarray(box, np.float32).reshape(1, 2, 2), coords], 1)
            codes = np.concatenate([np.array([[2, 3]], np.int32), codes], 1)
        if normalize_coords:
            coords = coords / np.array([self.width, self.height], np.float32)
        coords = (coords * np.float32(MEMORY_IMAGE_SIZE)).astype(np.float32)
        obj = self.objects.setdefault(obj_id, TrackedObject(obj_id))
        old = None if clear_old_points else obj.points.get(frame_idx)
        if old is not None:
            coords, codes = np.concatenate([old[0], coords], 1), np.concatenate([old[1], codes], 1)
        obj.points[frame_idx] = (coords, codes)
        obj.masked.discard(frame_idx)
        is_init = frame_idx not in obj.tracked
        reverse = False if is_init else obj.tracked[frame_idx]
        is_cond = is_init  # add_all_frames_to_correct_as_cond=False
        previous = obj.temp[is_cond].get(frame_idx) or obj.output(frame_idx)
        prev_logits = None
        if previous is not None:
            prev_logits = np.clip(previous.pred_masks, -LOGIT_CLAMP, LOGIT_CLAMP)
        out = self.steps.run_frame(
            obj, frame_idx, is_init, (coords, codes), reverse, False, prev_logits
        )
        obj.temp[is_cond][frame_idx] = out
        return frame_idx, self.obj_ids, self._frame_masks(frame_idx, is_cond)

    def add_new_mask(
        self, frame_idx: int, obj_id: int, mask: np.ndarray
    ) -> tuple[int, list[int], np.ndarray]:
        """A mask [H, W] as one object's prompt on a frame: taken as the answer itself
        (``use_mask_input_as_output_without_sam``), its object pointer from the decoder."""
        mask_1024 = mask_prompt_1024(mask)
        obj = self.objects.setdefault(obj_id, TrackedObject(obj_id))
        obj.points.pop(frame_idx, None)
        is_cond = frame_idx not in obj.tracked
        out = self.steps.mask_as_output(frame_idx, mask_1024)
        obj.temp[is_cond][frame_idx] = out
        obj.masked.add(frame_idx)
        return frame_idx, self.obj_ids, self._frame_masks(frame_idx, is_cond)

    def propagate_in_video(
        self,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[int, list[int], np.ndarray]]:
        """Track every object frame by frame: (frame, object ids, logits [N, 1, H, W])."""
        order = self.propagation_order(start_frame_idx, max_frame_num_to_track, reverse)
        yield from self.track(order, reverse)

    def propagation_order(
        self,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
        resume: bool = False,
    ) -> range:
        """The frames ``propagate_in_video`` visits, in order; the prompts given since the
        last propagation are consolidated first (their memories encoded). ``resume``: the rest
        of a propagation already under way (sam2 tracks nothing backward from frame 0 when
        asked to start there, but a backward pass that reached it must still track it)."""
        self._preflight()
        if start_frame_idx is None:
            start_frame_idx = min(t for obj in self.objects.values() for t in obj.cond)
        if max_frame_num_to_track is None:
            max_frame_num_to_track = self.num_frames
        if reverse:
            end = max(start_frame_idx - max_frame_num_to_track, 0)
            order = (
                range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 or resume else range(0)
            )
        else:
            end = min(start_frame_idx + max_frame_num_to_track, self.num_frames - 1)
            order = range(start_frame_idx, end + 1)
        return order

    def track(
        self, order: Iterable[int], reverse: bool
    ) -> Iterator[tuple[int, list[int], np.ndarray]]:
        """Each frame of ``order`` (part of a ``propagation_order``) tracked in turn."""
        for frame_idx in order:
            tracks = self.frame_tracks(frame_idx, reverse)
            yield self.finish_frame(
                tracks, track_together(tracks, self.steps.models), frame_idx, reverse
            )

    def frame_tracks(self, frame_idx: int, reverse: bool) -> list[Track]:
        """The objects a propagation tracks on a frame (those not prompted there): what
        ``track_together`` runs, for this video alone or with other videos' frames."""
        return [
            Track(self.steps, obj, frame_idx, reverse)
            for obj in self.objects.values()
            if frame_idx not in obj.cond
        ]

    def finish_frame(
        self, tracks: list[Track], outs: list[FrameOutput], frame_idx: int, reverse: bool
    ) -> tuple[int, list[int], np.ndarray]:
        """Keep a tracked frame's outputs; (frame, object ids, every object's masks there)."""
        outputs = {t.obj.obj_id: out for t, out in zip(tracks, outs, strict=True)}
        masks = []
        for obj in self.objects.values():
            if frame_idx in obj.cond:
                out = obj.cond[frame_idx]
            else:
                out = outputs[obj.obj_id]
                obj.keep_tracked(frame_idx, out, self.memory_frames)
            obj.tracked[frame_idx] = reverse
            masks.append(self._video_res(out))
        return frame_idx, self.obj_ids, np.stack(masks)

    def clear_all_prompts_in_frame(
        self, frame_idx: int, obj_id: int
    ) -> tuple[int, list[int], np.ndarray]:
        """Drop one object's prompts on a frame: its answer there stays as a tracked (no longer
        prompted) frame's, which the next propagation redoes."""
        obj = self._known(obj_id)
        obj.points.pop(frame_idx, None)
        obj.masked.discard(frame_idx)
        for temp in obj.temp.values():
            temp.pop(frame_idx, None)
        out = obj.cond.pop(frame_idx, None)
        if out is not None:
            obj.keep_tracked(frame_idx, out, self.memory_frames)
            obj.tracked.pop(frame_idx, None)
        is_cond = any(frame_idx in o.temp[True] for o in self.objects.values())
        return frame_idx, self.obj_ids, self._frame_masks(frame_idx, is_cond)

    def remove_object(
        self, obj_id: int, strict: bool = False
    ) -> tuple[list[int], list[tuple[int, np.ndarray]]]:
        """Forget an object; (the remaining ids, [(frame, masks)] on the frames it had
        prompts on). Objects are tracked independently, so no other object's masks change."""
        if obj_id not in self.objects:
            if strict:
                raise KeyError(f"obj_id: {obj_id} is not tracked here; known: {self.obj_ids}")
            return self.obj_ids, []
        if len(self.objects) == 1:
            self.reset_state()
            return [], []
        removed = self.objects.pop(obj_id)
        frames = sorted(set(removed.points) | removed.masked)
        updated = []
        for frame_idx in frames:
            is_cond = any(frame_idx in o.temp[True] for o in self.objects.values())
            updated.append((frame_idx, self._frame_masks(frame_idx, is_cond)))
        return self.obj_ids, updated

    def reset_state(self) -> None:
        self.objects.clear()
        self.steps.forget_features()

    def _known(self, obj_id: int) -> TrackedObject:
        if obj_id not in self.objects:
            raise KeyError(f"obj_id: {obj_id} was never prompted; known: {self.obj_ids}")
        return self.objects[obj_id]

    # --- one frame ------------------------------------------------------------------------

    def _preflight(self) -> None:
        """Encode the memories of the frames just prompted (is_mask_from_pts: binarised)."""
        if not self.objects:
            raise ValueError("no object has a prompt yet: add points or a box first")
        for obj in self.objects.values():
            for is_cond in (False, True):
                for frame_idx, out in obj.temp[is_cond].items():
                    if out.maskmem is None:
                        out.maskmem = self.steps.encode_memory(frame_idx, [out], True)[0][None]
                    if is_cond:
                        obj.cond[frame_idx] = out
                    else:
                        obj.keep_tracked(frame_idx, out, self.memory_frames)
                obj.temp[is_cond].clear()
            if not obj.cond:
                raise ValueError(f"object {obj.obj_id} has no prompt: add points or a box")
            for frame_idx in obj.cond:
                obj.non_cond.pop(frame_idx, None)

    def _frame_masks(self, frame_idx: int, is_cond: bool) -> np.ndarray:
        """Every object's latest answer on a frame at the video's size, [N, 1, H, W]
        (_consolidate_temp_output_across_obj): a prompt not yet propagated first."""
        return np.stack(
            [
                self._video_res(o.temp[is_cond].get(frame_idx) or o.output(frame_idx))
                for o in self.objects.values()
            ]
        )

    def _video_res(self, out: FrameOutput | None) -> np.ndarray:
        """An answer's mask logits [1, H, W] (or [1, 256, 256] for ``low_res_output``); an
        object without one there is absent (NO_OBJ_SCORE everywhere)."""
        if self.low_res_output:
            side = MEMORY_IMAGE_SIZE // 4
            if out is None:
                return np.full((1, side, side), NO_OBJ_SCORE, np.float32)
            return out.pred_masks[0]
        if out is None:
            return np.full((1, self.height, self.width), NO_OBJ_SCORE, np.float32)
        return upsample_logits(out.pred_masks[0], (self.height, self.width))
