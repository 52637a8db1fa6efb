"""What the page may send the gateway, checked before anything is forwarded.

The JSON the browser posts is parsed into the arrays ``SegmentClient`` sends; anything else
(unknown keys, wrong types, NaN, too many points) is refused with a message naming the field.
Ranges the server knows better (a point outside the image, a threshold above 1) are left to
its own checks, whose messages the gateway passes on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from sam2_triton.contract import AUTOMATIC_PARAMETERS, DEFAULT_MAX_POINTS
from sam2_triton.image.transforms import LABEL_BACKGROUND, LABEL_FOREGROUND

IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")  # sam2_session's ids: the sha256 of the file
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
VIDEO_ID = re.compile(r"^[0-9a-f]{32}$")  # sam2_video's session ids
#: segment-everything parameters the page may set: sam2_automatic's (omitted ones keep Meta's
#: defaults), typed as the contract types them
EVERYTHING_PARAMETERS: dict[str, type] = {
    t.name: {"INT32": int, "FP32": float, "FP64": float, "BOOL": bool}[t.dtype]
    for t in AUTOMATIC_PARAMETERS
}


class BadRequest(ValueError):
    """The page sent something the gateway does not forward; ``str()`` names the field."""


@dataclass(frozen=True)
class Prompts:
    """One object's prompts in image pixels: what one ``sam2_session`` click carries."""

    points: np.ndarray  # [P, 2] float32 (x, y)
    labels: np.ndarray  # [P] int32, 1 foreground / 0 background
    box: np.ndarray | None  # [4] float32 x0, y0, x1, y1

    @property
    def multimask(self) -> bool:
        """Three candidates for a lone click, one mask otherwise: SAM 2's own rule (its video
        predictor's; the image predictor's docs advise the same), as ambiguity is a single
        point's."""
        return self.box is None and len(self.points) == 1


@dataclass(frozen=True)
class VideoPrompt:
    """One object's prompts on one frame of a video (they replace its earlier ones there)."""

    frame: int
    obj_id: int
    prompts: Prompts


def video_id(value: str) -> str:
    if not VIDEO_ID.match(value):
        raise BadRequest(f"video id: {value[:80]!r} is not a 32-character hex id")
    return value


def frame_index(value: Any, field: str = "frame") -> int:
    """A frame number (or an object id): a whole number from 0."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise BadRequest(f"{field}: {str(value)[:80]!r} is not a whole number from 0")
    return value


def parse_video_prompt(body: Any, max_points: int = DEFAULT_MAX_POINTS) -> VideoPrompt:
    """``{"frame": 3, "obj_id": 1, "points": ..., "labels": ..., "box": ...}``."""
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object with frame, obj_id, points, labels, box")
    rest = {k: v for k, v in body.items() if k not in ("frame", "obj_id")}
    return VideoPrompt(
        frame=frame_index(body.get("frame"), "frame"),
        obj_id=frame_index(body.get("obj_id"), "obj_id"),
        prompts=parse_prompts(rest, max_points),
    )


def image_id(value: str) -> str:
    if not IMAGE_ID.match(value):
        raise BadRequest(f"image id: {value[:80]!r} is not a 64-character hex id")
    return value


def job_id(value: str) -> str:
    if not JOB_ID.match(value):
        raise BadRequest(f"job id: {value[:80]!r} is not a 32-character hex id")
    return value


def parse_prompts(body: Any, max_points: int = DEFAULT_MAX_POINTS) -> Prompts:
    """``{"points": [[x, y], ...], "labels": [1, 0, ...], "box": [x0, y0, x1, y1] | null}``."""
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object with points, labels and box")
    unknown = set(body) - {"points", "labels", "box"}
    if unknown:
        raise BadRequest(f"body: unknown field(s) {sorted(unknown)}; known: points, labels, box")
    points = body.get("points") or []
    labels = body.get("labels") or []
    if not isinstance(points, list) or not isinstance(labels, list):
        raise BadRequest("points and labels: must be lists")
    if len(points) != len(labels):
        raise BadRequest(f"labels: {len(labels)} labels for {len(points)} points")
    if len(points) > max_points:
        raise BadRequest(f"points: {len(points)} points; at most {max_points} per object")
    coords = [_numbers(p, 2, f"points[{i}]") for i, p in enumerate(points)]
    for i, label in enumerate(labels):
        if label not in (LABEL_FOREGROUND, LABEL_BACKGROUND) or isinstance(label, bool):
            raise BadRequest(f"labels[{i}]: {label!r} is neither 1 (foreground) nor 0 (background)")
    box = body.get("box")
    box_array = None if box is None else np.array(_numbers(box, 4, "box"), np.float32)
    if not coords and box_array is None:
        raise BadRequest("points: an object needs a point or a box")
    return Prompts(
        points=np.array(coords, np.float32).reshape(-1, 2),
        labels=np.array(labels, np.int32),
        box=box_array,
    )


def parse_everything(body: Any) -> dict[str, int | float | bool]:
    """``{"points_per_side": 16, ...}``: the known parameters only, numbers only."""
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object of segment-everything parameters")
    params: dict[str, int | float | bool] = {}
    for name, value in body.items():
        kind = EVERYTHING_PARAMETERS.get(name)
        if kind is None:
            raise BadRequest(f"{name[:80]}: unknown; known: {sorted(EVERYTHING_PARAMETERS)}")
        if kind is bool:
            if not isinstance(value, bool):
                raise BadRequest(f"{name}: {str(value)[:80]!r} is not true or false")
            params[name] = value
            continue
        number = _numbers([value], 1, name)[0]
        if kind is int and not (float(number).is_integer() and abs(number) < 2**31):
            raise BadRequest(f"{name}: {value!r} is not a whole number of 32 bits")
        params[name] = kind(number)
    return params


def _numbers(value: Any, count: int, field: str) -> list[float]:
    if not isinstance(value, list) or len(value) != count:
        raise BadRequest(f"{field}: must be a list of {count} numbers, got {str(value)[:80]}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise BadRequest(f"{field}: {v!r} is not a finite number")
    return [float(v) for v in value]


MAX_PHRASE_CHARS = 200  # sam3_concepts refuses what is over 30 tokens; this is only a size cap


@dataclass(frozen=True)
class FindAll:
    """A "find all" question (SAM 3's sam3_concepts): a phrase and a confidence threshold."""

    text: str
    threshold: float | None


def parse_find_all(body: Any) -> FindAll:
    """``{"text": "a car", "threshold": 0.5}`` (threshold optional)."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    unknown = set(body) - {"text", "threshold"}
    if unknown:
        raise BadRequest(f"{sorted(unknown)[0]}: unknown field")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("text: give a phrase such as 'a car'")
    if len(text) > MAX_PHRASE_CHARS:
        raise BadRequest(f"text: {len(text)} characters, at most {MAX_PHRASE_CHARS}")
    threshold = body.get("threshold")
    if threshold is not None:
        real = isinstance(threshold, int | float) and not isinstance(threshold, bool)
        if not real or not math.isfinite(threshold):
            raise BadRequest("threshold: must be a number")
        threshold = float(threshold)
    return FindAll(text.strip(), threshold)
