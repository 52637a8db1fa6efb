"""Label Studio's video tracking (``examples/segment_anything_2_video`` of
label-studio-ml-backend): a ``VideoRectangle`` region's keyframes in, the region's
``videorectangle`` sequence tracked through the video out, onto sam2_video.

The context's regions each carry ``value.sequence`` (keyframes: ``frame`` 1-based, ``x``,
``y``, ``width``, ``height`` in percent of the video, ``enabled``), and ``framesCount`` and
``duration``. Each region is one object: its keyframes are SAM 2 box prompts on their frames,
and the object is tracked forward from its first keyframe to the end of the video (or
``[label_studio] video_frames`` frames). The answer is one prediction holding every region
with its keyframes and the tracked frames (boxes of the masks, in percent; ``time`` from the
frame rate the context gives). The video is fetched from Label Studio as images are; its
session is closed when the answer is made.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from sam2_triton.connect.service import ToolError
from sam2_triton.connect.tracking import LiveTracker


@dataclass(frozen=True)
class VideoControls:
    from_name: str  # the VideoRectangle control
    to_name: str  # the Video object
    data_key: str  # the task data field holding the video's URL


def video_controls(label_config: str) -> VideoControls | None:
    """The first VideoRectangle and the Video it labels, if the config has them."""
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError:
        return None
    videos = {e.get("name"): e.get("value", "") for e in root.iter("Video")}
    for rectangle in root.iter("VideoRectangle"):
        target = rectangle.get("toName")
        if rectangle.get("name") and target in videos and videos[target].startswith("$"):
            return VideoControls(rectangle.get("name"), target, videos[target][1:])  # type: ignore[arg-type]
    return None


def is_video(result: Any) -> bool:
    return isinstance(result, list) and any(
        isinstance(r, dict) and r.get("type") == "videorectangle" for r in result
    )


def track(
    tracker: LiveTracker, wanted: VideoControls, video: bytes, result: list, max_frames: int
) -> dict[str, Any]:
    """The regions of ``result`` tracked through ``video``: a ``result`` list of
    ``videorectangle`` regions, keyframes kept, tracked frames added."""
    regions = [_region(r, k) for k, r in enumerate(result)]
    fps = _fps(regions[0])
    started = tracker.call(lambda client: client.start(video=video))
    session, (height, width) = started.session_id, started.video_size
    try:
        out = []
        for obj_id, region in enumerate(regions, start=1):
            keyframes = [item for item in region["value"]["sequence"] if item.get("enabled", True)]
            for item in keyframes:
                box = _pixels(item, width, height)
                frame = int(item["frame"]) - 1
                tracker.call(
                    lambda client, f=frame, b=box, i=obj_id: client.add_points(
                        session, f, i, box=list(b)
                    ),
                    session,
                )
            first = min(int(item["frame"]) - 1 for item in keyframes)
            span = (first, None if max_frames <= 0 else max_frames)
            answers = tracker.call(
                lambda client, p=span: list(
                    client.propagate(session, p[0], p[1], output_format="rle")
                ),
                session,
            )
            known = {int(item["frame"]) for item in keyframes}
            tracked = []
            for answer in answers:
                frame = answer.frame_indices[0] + 1
                position = answer.obj_ids.index(obj_id)
                record = json.loads(answer.encoded_masks[position])
                if frame in known or not record["area"]:
                    continue
                x, y, w, h = (float(v) for v in record["bbox"])
                tracked.append(
                    {"frame": frame, "enabled": True, "rotation": 0,
                     "x": round(100 * x / width, 4), "y": round(100 * y / height, 4),
                     "width": round(100 * w / width, 4), "height": round(100 * h / height, 4),
                     "time": round((frame - 1) / fps, 4) if fps else 0.0}
                )  # fmt: skip
            # one object per region, alone: prompts and tracking cleared (frames kept) after it
            tracker.call(lambda client: client.reset(session), session)
            sequence = sorted(keyframes + tracked, key=lambda item: int(item["frame"]))
            value = {**region["value"], "sequence": sequence}
            out.append({**{k: v for k, v in region.items() if k != "value"}, "value": value,
                        "from_name": wanted.from_name, "to_name": wanted.to_name,
                        "type": "videorectangle", "origin": "prediction"})  # fmt: skip
        return {"result": out}
    finally:
        tracker.call(lambda client: client.close_session(session), session)


def _region(region: Any, k: int) -> dict[str, Any]:
    name = f"params.context.result[{k}]"
    if not isinstance(region, dict) or region.get("type") != "videorectangle":
        raise ToolError(400, f"{name}: expected a videorectangle region")
    value = region.get("value")
    sequence = value.get("sequence") if isinstance(value, dict) else None
    if not isinstance(sequence, list) or not sequence:
        raise ToolError(400, f"{name}.value.sequence: expected keyframes")
    for j, item in enumerate(sequence):
        keys = ("frame", "x", "y", "width", "height")
        if not isinstance(item, dict) or not all(
            isinstance(item.get(key), (int, float)) and not isinstance(item.get(key), bool)
            for key in keys
        ):
            raise ToolError(400, f"{name}.value.sequence[{j}]: expected {', '.join(keys)}")
        if item["frame"] < 1:
            raise ToolError(400, f"{name}.value.sequence[{j}].frame: frames count from 1")
    if not any(item.get("enabled", True) for item in sequence):
        raise ToolError(400, f"{name}.value.sequence: no enabled keyframe")
    return region


def _fps(region: dict[str, Any]) -> float:
    value = region["value"]
    frames, duration = value.get("framesCount"), value.get("duration")
    if isinstance(frames, (int, float)) and isinstance(duration, (int, float)) and duration > 0:
        return float(frames) / float(duration)
    return 0.0


def _pixels(item: dict[str, Any], width: int, height: int) -> tuple[float, ...]:
    x, y = item["x"] * width / 100, item["y"] * height / 100
    w, h = item["width"] * width / 100, item["height"] * height / 100
    x1, y1 = max(0.0, min(x, width)), max(0.0, min(y, height))
    x2, y2 = max(0.0, min(x + w, width)), max(0.0, min(y + h, height))
    if x2 <= x1 or y2 <= y1:
        raise ToolError(400, f"keyframe {item['frame']}: its box has no area in the video")
    return (x1, y1, x2, y2)
