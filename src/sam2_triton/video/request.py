"""sam2_video's one typed request: its inputs parsed and checked once, at the edge, free of
Triton (``contract.VIDEO_*``).

Every client mistake is an ``InvalidInputError`` naming the input. What depends on the session
(a frame index inside the video, a click inside the frame) is checked against it by the
service with ``inside_video`` and ``PointPrompt.in_frame``, as the image models check
prompts: finite, inside the frame, labels 0/1, in the video's pixels or, with
``normalize_coords`` false, in [0, 1] as SAM2VideoPredictor takes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sam2_triton.contract import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_POINTS
from sam2_triton.errors import InvalidInputError
from sam2_triton.image.request import parse_choice
from sam2_triton.image.transforms import validate_box, validate_points

Inputs = Mapping[str, np.ndarray | None]

OPERATIONS = (
    "start",  # a session from a video file (`video`) or encoded frames (`frames`, may be none)
    "add_frames",  # more encoded frames at the end (a live stream)
    "add_points",  # SAM2VideoPredictor.add_new_points_or_box
    "add_mask",  # add_new_mask
    "propagate",  # propagate_in_video, one page of frames (sam2_video_stream: all, streamed)
    "remove_object",
    "clear_prompts",  # clear_all_prompts_in_frame
    "reset",  # reset_state
    "close",  # forget the session
)
#: logits: the low-res logits (a client upsamples them to the video's size exactly as the
#: server would, ``upsample_logits``); rle: one COCO RLE per frame and object; raw: 0/1
#: masks [F, N, H, W].
VIDEO_OUTPUT_FORMATS = ("logits", "rle", "raw")
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)


@dataclass(frozen=True)
class PointPrompt:
    """add_points' clicks and box, checked but for the frame's bounds (``in_frame``)."""

    point_coords: np.ndarray | None
    point_labels: np.ndarray | None
    box: np.ndarray | None
    clear_old_points: bool
    normalize_coords: bool
    max_points: int

    def in_frame(self, hw: tuple[int, int]) -> dict[str, np.ndarray | bool | None]:
        """VideoSession.add_new_points_or_box's keyword arguments, inside a frame of ``hw``."""
        bounds = hw if self.normalize_coords else (1, 1)
        points = validate_points(self.point_coords, self.point_labels, bounds, self.max_points)
        return {
            "points": None if points is None else points[0],
            "labels": None if points is None else points[1],
            "box": validate_box(self.box, bounds),
            "clear_old_points": self.clear_old_points,
            "normalize_coords": self.normalize_coords,
        }


@dataclass(frozen=True)
class Propagation:
    """What a propagate request asks for (SAM2VideoPredictor.propagate_in_video's arguments,
    and the page)."""

    start_frame_idx: int | None
    max_frame_num_to_track: int | None
    reverse: bool
    resume: bool  # a page of a propagation under way (the next page's first frame is tracked)
    max_frames: int | None  # frames this page answers at most (the server caps it)


@dataclass(frozen=True)
class VideoRequest:
    """One sam2_video request; the fields its ``operation`` does not read keep their defaults."""

    operation: str
    session_id: str = ""  # every operation but start
    output_format: str = "logits"
    video: bytes | None = None  # start: a video file
    frames: tuple[bytes, ...] = ()  # start, add_frames: encoded images
    num_frames: int = 0  # start: the length of a live video, declared up front
    frame_idx: int = 0  # add_points, add_mask, clear_prompts
    obj_id: int = 0  # add_points, add_mask, remove_object, clear_prompts
    prompt: PointPrompt | None = None  # add_points
    mask: np.ndarray | None = None  # add_mask: [H, W] bool
    propagation: Propagation | None = None  # propagate


def inside_video(index: int, num_frames: int, name: str = "frame_idx") -> int:
    """A frame index checked to lie inside a video of ``num_frames`` frames."""
    if not 0 <= index < num_frames:
        raise InvalidInputError(name, f"frame {index} is outside the video's 0..{num_frames - 1}")
    return index


def parse_request(
    inputs: Inputs,
    max_points: int = DEFAULT_MAX_POINTS,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> VideoRequest:
    """The request ``inputs`` (name -> array, absent inputs None or missing) make, checked."""
    op = operation(inputs)
    common = {
        "operation": op,
        "session_id": "" if op == "start" else text(inputs, "session_id"),
        "output_format": parse_choice(
            inputs.get("output_format"), "output_format", VIDEO_OUTPUT_FORMATS, "logits"
        ),
    }
    if op == "start":
        video, frames = inputs.get("video"), encoded_frames(inputs)
        if video is not None and frames:
            raise InvalidInputError("video", "send a video file or frames, not both")
        data = None if video is None else np.asarray(video, np.uint8).tobytes()
        return VideoRequest(**common, video=data, frames=frames,
                            num_frames=integer(inputs, "num_frames", 0))  # fmt: skip
    if op == "add_frames":
        frames = encoded_frames(inputs)
        if not frames:
            raise InvalidInputError("frames", "required: one or more encoded frames")
        return VideoRequest(**common, frames=frames)
    if op in ("add_points", "add_mask", "clear_prompts"):
        common["frame_idx"] = integer(inputs, "frame_idx")
    if op in ("add_points", "add_mask", "remove_object", "clear_prompts"):
        common["obj_id"] = integer(inputs, "obj_id", low=INT32_MIN)
    if op == "add_points":
        return VideoRequest(**common, prompt=point_prompt(inputs, max_points))
    if op == "add_mask":
        return VideoRequest(**common, mask=mask_prompt(inputs, max_image_pixels))
    if op == "propagate":
        return VideoRequest(**common, propagation=propagation(inputs))
    return VideoRequest(**common)


def operation(inputs: Inputs) -> str:
    value = inputs.get("operation")
    if value is None:
        raise InvalidInputError("operation", f"required: one of {', '.join(OPERATIONS)}")
    flat = np.asarray(value, dtype=object).reshape(-1)
    raw = flat[0] if flat.shape[0] == 1 else None
    name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if raw is None or name not in OPERATIONS:
        raise InvalidInputError(
            "operation", f"unknown operation {name[:80]!r}; use one of {', '.join(OPERATIONS)}"
        )
    return name


def text(inputs: Inputs, name: str) -> str:
    value = inputs.get(name)
    if value is None:
        raise InvalidInputError(name, "required for this operation")
    flat = np.asarray(value, dtype=object).reshape(-1)
    if flat.shape[0] != 1:
        raise InvalidInputError(name, f"expected one value, got {flat.shape[0]}")
    raw = flat[0]
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def integer(inputs: Inputs, name: str, default: int | None = None, low: int = 0) -> int:
    """An INT32 [1] input in [low, 2**31 - 1]; required when ``default`` is None."""
    value = inputs.get(name)
    if value is None:
        if default is None:
            raise InvalidInputError(name, "required for this operation")
        return default
    flat = np.asarray(value).reshape(-1)
    if flat.dtype.kind not in "iu":
        raise InvalidInputError(name, f"expected an integer (INT32), got {flat.dtype}")
    if flat.shape[0] != 1:
        raise InvalidInputError(name, f"expected one integer, got {flat.shape[0]} values")
    number = int(flat[0])
    if not low <= number <= INT32_MAX:
        raise InvalidInputError(name, f"must be in [{low}, {INT32_MAX}], got {number}")
    return number


def flag(inputs: Inputs, name: str, default: bool) -> bool:
    value = inputs.get(name)
    if value is None:
        return default
    flat = np.asarray(value).reshape(-1)
    if flat.shape[0] != 1:
        raise InvalidInputError(name, f"expected one value, got {flat.shape[0]}")
    return bool(flat[0])


def encoded_frames(inputs: Inputs) -> tuple[bytes, ...]:
    value = inputs.get("frames")
    if value is None:
        return ()
    items = np.asarray(value, dtype=object).reshape(-1)
    if not all(isinstance(v, bytes) for v in items):
        raise InvalidInputError("frames", "expected BYTES: one encoded image file per element")
    return tuple(items)


def point_prompt(inputs: Inputs, max_points: int = DEFAULT_MAX_POINTS) -> PointPrompt:
    """add_points' prompts, checked as far as they can be without the frame's size."""
    coords, labels, box = (inputs.get(k) for k in ("point_coords", "point_labels", "box"))
    unbounded = (np.inf, np.inf)
    points = validate_points(coords, labels, unbounded, max_points)
    checked_box = validate_box(box, unbounded)
    if points is None and checked_box is None:
        raise InvalidInputError("point_coords", "no prompt given: send points or a box")
    clear = flag(inputs, "clear_old_points", True)
    if checked_box is not None and not clear:
        raise InvalidInputError("box", "cannot be added without clear_old_points (sam2's rule)")
    return PointPrompt(
        None if points is None else points[0],
        None if points is None else points[1],
        checked_box,
        clear,
        flag(inputs, "normalize_coords", True),
        max_points,
    )


def mask_prompt(inputs: Inputs, max_pixels: int) -> np.ndarray:
    value = inputs.get("mask")
    if value is None:
        raise InvalidInputError("mask", "required for add_mask: [H, W], nonzero inside")
    mask = np.asarray(value)
    if mask.ndim != 2 or 0 in mask.shape or mask.size > max_pixels:
        raise InvalidInputError(
            "mask", f"expected [H, W] with 1..{max_pixels} pixels, got {list(mask.shape)}"
        )
    return mask != 0


def propagation(inputs: Inputs) -> Propagation:
    start = inputs.get("start_frame_idx")
    count = inputs.get("max_frame_num_to_track")
    page = inputs.get("max_frames")
    return Propagation(
        start_frame_idx=None if start is None else integer(inputs, "start_frame_idx"),
        max_frame_num_to_track=None if count is None else integer(inputs, "max_frame_num_to_track"),
        reverse=flag(inputs, "reverse", False),
        resume=flag(inputs, "resume", False),
        max_frames=None if page is None else integer(inputs, "max_frames", low=1),
    )
