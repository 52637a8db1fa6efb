"""The state one tracked video keeps, per object: what ``VideoSession`` reads and bounds.

Each object is tracked on its own (sam2 1.1's per-object state): its prompted ("conditioning")
frames, the frames it was tracked on and their memories (bfloat16 bits), and the prompts.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

#: Tracked frames whose outputs an object keeps: SAM 2.1 reads 6 memories and 15 pointers back.
DEFAULT_MEMORY_FRAMES = 16


class TrackerModels(Protocol):
    """The exported graphs, however they are run (in-process ONNX Runtime, Triton BLS)."""

    no_mem_embed: np.ndarray  # [256]
    no_obj_ptr: np.ndarray  # [1, 256]
    mask_downsample_weight: np.ndarray  # [1, 1, 4, 4]
    mask_downsample_bias: np.ndarray  # [1]

    def encode(self, image: np.ndarray) -> dict[str, np.ndarray]: ...
    def decode(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...
    def attend(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...
    def encode_memory(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...


@dataclass
class FrameOutput:
    pred_masks: np.ndarray  # [1, 1, 256, 256] logits
    obj_ptr: np.ndarray  # [1, 256]
    object_score_logits: np.ndarray  # [1, 1]
    maskmem: np.ndarray | None = None  # [1, 4096, 64] bfloat16 bits (uint16)

    @property
    def nbytes(self) -> int:
        arrays = (self.pred_masks, self.obj_ptr, self.object_score_logits, self.maskmem)
        return sum(a.nbytes for a in arrays if a is not None)


@dataclass
class TrackedObject:
    obj_id: int
    points: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: OrderedDict[int, FrameOutput] = field(default_factory=OrderedDict)  # by recency
    temp: dict[bool, dict[int, FrameOutput]] = field(default_factory=lambda: {True: {}, False: {}})
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse
    masked: set[int] = field(default_factory=set)  # frames whose prompt is a mask

    def output(self, frame: int) -> FrameOutput | None:
        return self.cond.get(frame) or self.non_cond.get(frame)

    def keep_tracked(self, frame: int, out: FrameOutput, memory_frames: int | None) -> None:
        """Store a tracked frame's output, dropping the least recently tracked beyond
        ``memory_frames`` (None: keep all, as the reference does)."""
        self.non_cond.pop(frame, None)
        self.non_cond[frame] = out
        while memory_frames is not None and len(self.non_cond) > memory_frames:
            self.non_cond.popitem(last=False)

    @property
    def nbytes(self) -> int:
        outputs = [*self.cond.values(), *self.non_cond.values()]
        outputs += [o for temp in self.temp.values() for o in temp.values()]
        return sum(o.nbytes for o in outputs)
