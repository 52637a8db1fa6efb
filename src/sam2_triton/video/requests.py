"""sam2_video's inputs checked and its outputs built, free of Triton (``contract.VIDEO_*``).

Every client mistake is an ``InvalidInputError`` naming the input; prompts are checked as the
image models check them (finite, inside the frame, labels 0/1), in the video's pixels or, with
``normalize_coords`` false, in [0, 1] as SAM2VideoPredictor takes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from sam2_triton.contract import DEFAULT_MAX_POINTS, LOW_RES_MASK_SIZE, MAX_RAW_MASK_BYTES
from sam2_triton.errors import InvalidInputError, RequestCancelled
from sam2_triton.image.encodings import mask_to_rle
from sam2_triton.image.masks import upsample_logits
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


def operation(inputs: Inputs) -> str:
    value = inputs.get("operation")
    if value is None:
        raise InvalidInputError("operation", f"required: one of {', '.join(OPERATIONS)}")
    flat = np.asarray(value, dtype=object).reshape(-1)
    raw = flat[0] if flat.shape[0] == 1 else None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if raw is None or text not in OPERATIONS:
        raise InvalidInputError(
            "operation", f"unknown operation {text[:80]!r}; use one of {', '.join(OPERATIONS)}"
        )
    return text


def text(inputs: Inputs, name: str) -> str:
    value = inputs.get(name)
    if value is None:
        raise InvalidInputError(name, "required for this operation")
    flat = np.asarray(value, dtype=object).reshape(-1)
    if flat.shape[0] != 1:
        raise InvalidInputError(name, f"expected one value, got {flat.shape[0]}")
    raw = flat[0]
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


INT32_MAX = 2**31 - 1


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


def frame_index(inputs: Inputs, name: str, num_frames: int, default: int | None = None) -> int:
    index = integer(inputs, name, default)
    if not 0 <= index < num_frames:
        raise InvalidInputError(name, f"frame {index} is outside the video's 0..{num_frames - 1}")
    return index


def encoded_frames(inputs: Inputs) -> list[bytes]:
    value = inputs.get("frames")
    if value is None:
        return []
    items = np.asarray(value, dtype=object).reshape(-1)
    if not all(isinstance(v, bytes) for v in items):
        raise InvalidInputError("frames", "expected BYTES: one encoded image file per element")
    return list(items)


def prompts(
    inputs: Inputs, hw: tuple[int, int], max_points: int = DEFAULT_MAX_POINTS
) -> dict[str, np.ndarray | bool | None]:
    """add_points' keyword arguments for VideoSession.add_new_points_or_box, checked."""
    normalize = flag(inputs, "normalize_coords", True)
    bounds = hw if normalize else (1, 1)
    coords, labels, box = (inputs.get(k) for k in ("point_coords", "point_labels", "box"))
    points = validate_points(coords, labels, bounds, max_points)
    checked_box = validate_box(box, bounds)
    if points is None and checked_box is None:
        raise InvalidInputError("point_coords", "no prompt given: send points or a box")
    clear = flag(inputs, "clear_old_points", True)
    if checked_box is not None and not clear:
        raise InvalidInputError("box", "cannot be added without clear_old_points (sam2's rule)")
    return {
        "points": None if points is None else points[0],
        "labels": None if points is None else points[1],
        "box": checked_box,
        "clear_old_points": clear,
        "normalize_coords": normalize,
    }


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


def output_format(inputs: Inputs) -> str:
    return parse_choice(
        inputs.get("output_format"), "output_format", VIDEO_OUTPUT_FORMATS, "logits"
    )


def frames_outputs(
    frames: list[tuple[int, np.ndarray]], obj_ids: list[int], hw: tuple[int, int], fmt: str
) -> dict[str, np.ndarray]:
    """Masks of some frames, each [N, 1, 256, 256] low-res logits, in ``fmt``."""
    n, side = len(obj_ids), LOW_RES_MASK_SIZE
    logits = np.zeros((0, n, side, side), np.float32)
    masks = np.zeros((0, n, *hw), np.uint8)
    encoded: list[bytes] = []
    if fmt == "logits" and frames:
        logits = np.stack([low[:, 0] for _, low in frames]).astype(np.float32)
    elif fmt == "raw" and frames:
        if len(frames) * n * hw[0] * hw[1] > MAX_RAW_MASK_BYTES:
            raise InvalidInputError("output_format", "raw masks this large: ask for rle or logits")
        masks = np.stack([_video_masks(low, hw) for _, low in frames])
    elif fmt == "rle":
        for _, low in frames:
            for mask in _video_masks(low, hw):
                encoded.append(json.dumps(mask_to_rle(mask)).encode())
    return {
        "frame_indices": np.array([f for f, _ in frames], np.int32),
        "obj_ids": np.array(obj_ids, np.int32),
        "low_res_logits": logits,
        "masks": masks,
        "encoded_masks": np.array(encoded, dtype=np.object_),
    }


def _video_masks(low: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """[N, 1, 256, 256] logits -> [N, H, W] 0/1 at the video's size (SAM2VideoPredictor's
    video_res_masks > 0)."""
    return np.stack([(upsample_logits(m, hw)[0] > 0) for m in low]).astype(np.uint8)


#: What a propagate request reads (the rest is ignored).
PROPAGATE_INPUTS = (
    "session_id",
    "start_frame_idx",
    "max_frame_num_to_track",
    "reverse",
    "resume",
    "output_format",
)


def propagation_pages(
    inputs: Inputs,
    call: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]],
    page_frames: int,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[Mapping[str, np.ndarray]]:
    """A "propagate" request to sam2_video, page after page of ``page_frames`` frames until no
    frame is left: what sam2_video_stream does (one frame a page) and an HTTP client does.
    Only propagate's inputs are sent, every one of them from the second page on: requests with
    the same inputs are what Triton batches (sam2_video_sessions tracks them together)."""
    feeds = {k: np.asarray(v) for k, v in inputs.items() if v is not None and k in PROPAGATE_INPUTS}
    feeds["operation"] = np.array([b"propagate"], dtype=np.object_)
    feeds["max_frames"] = np.array([page_frames], np.int32)
    feeds.setdefault("reverse", np.array([False]))
    feeds.setdefault("output_format", np.array([b"logits"], dtype=np.object_))
    while True:
        outputs = call(feeds)
        yield outputs
        left = int(np.asarray(outputs["frames_left"]).reshape(-1)[0])
        if left == 0:
            return
        if is_cancelled():
            raise RequestCancelled("cancelled by the client")
        feeds["start_frame_idx"] = np.asarray(outputs["next_frame_idx"], np.int32).reshape(1)
        feeds["max_frame_num_to_track"] = np.array([left - 1], np.int32)
        feeds["resume"] = np.array([True])


def propagate_page(
    inputs: Inputs,
    call: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]],
    page_frames: int,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> dict[str, np.ndarray]:
    """One page of a propagation (``max_frames``, at most ``page_frames``), tracked a frame a
    ``call`` and answered as one: what sam2_video does with an HTTP client's propagate. A page
    ends early where its raw masks would pass ``MAX_RAW_MASK_BYTES``, and where the objects
    change under it (another client's prompt on the session: the frame that saw the change is
    tracked again by the next page). A call that fails fails the page; the frames it had
    tracked are tracked again by the client's next try."""
    wanted = min(integer(inputs, "max_frames", page_frames, low=1), page_frames)
    steps: list[Mapping[str, np.ndarray]] = []
    for outputs in propagation_pages(inputs, call, 1, is_cancelled):
        if steps and not np.array_equal(outputs["obj_ids"], steps[0]["obj_ids"]):
            break
        steps.append(outputs)
        raw = np.asarray(outputs["masks"]).nbytes  # a frame's 0/1 masks (output_format "raw")
        if len(steps) == wanted or (len(steps) + 1) * raw > MAX_RAW_MASK_BYTES:
            break
    page = {name: np.asarray(value) for name, value in steps[-1].items()}
    for name in ("frame_indices", "low_res_logits", "masks", "encoded_masks"):
        page[name] = np.concatenate([np.asarray(s[name]) for s in steps])
    return page
