"""sam2_video's answers, free of Triton: the outputs of the frames an operation answers, and a
propagation in pages (what sam2_video answers an HTTP client, what sam2_video_stream and the
HTTP client loop over).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from sam2_triton.contract import LOW_RES_MASK_SIZE, MAX_RAW_MASK_BYTES
from sam2_triton.errors import InvalidInputError, RequestCancelled
from sam2_triton.image.encodings import mask_to_rle
from sam2_triton.image.masks import upsample_logits
from sam2_triton.video.request import Inputs, integer


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
