"""X-AnyLabeling's video protocol (``RemoteServer._handle_video_point_prompt`` and
``_handle_video_propagation`` in x-anylabeling-cvhub 4.2.1), onto sam2_video.

    POST /v1/video/init              {model, frames: [data URIs], start_frame_index}
                                     -> {data: {session_id, total_frames}}
    POST /v1/video/prompt            {session_id, model, frame_index, points (0-1), point_labels,
                                     obj_id} -> {data: {masks: [shapes on that frame]}}
    POST /v1/video/propagate/stream  {session_id, model, start_frame?, end_frame?}: server-sent
                                     events ``data: {json}``: started {total_frames,
                                     start_frame_index}, progress {current_frame} a frame,
                                     completed {results: {frame: {masks: [shapes]}}}, or error
    POST /v1/video/cleanup/{id}      the session closed

The client sends every frame of its folder at init, prompts with all of the object's points so
far (normalised to the frame's size: they replace the object's earlier ones) and again before
each run, and reads the propagated shapes only from the ``completed`` event. Shapes are
polygons (one per outer ring of each object's mask), ``group_id`` the object's id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from sam2_triton.clients.video import VideoAnswer
from sam2_triton.connect import runs
from sam2_triton.connect.anylabeling import LABEL, decode_data_uri
from sam2_triton.connect.config import ConnectConfig
from sam2_triton.connect.service import ToolError
from sam2_triton.connect.tracking import LiveTracker
from sam2_triton.image.polygons import mask_to_polygons


def video_model(config: ConnectConfig) -> str:
    return f"{config.anylabeling.model}_video"


def init(tracker: LiveTracker, config: ConnectConfig, body: Any) -> dict[str, Any]:
    _check(config, body)
    frames = body.get("frames")
    if not isinstance(frames, list) or not frames:
        raise ToolError(400, "frames: expected a list of data URIs, one per frame")
    limit = config.gateway.max_video_mb
    if sum(len(frame) for frame in frames if isinstance(frame, str)) * 3 // 4 > limit << 20:
        raise ToolError(413, f"frames: over the gateway's limit of {limit} MB")
    data = [decode_data_uri(frame, config.gateway.max_body_mb << 20) for frame in frames]
    answer = tracker.call(lambda client: client.start(frames=data))
    return {"success": True, "data": {"session_id": answer.session_id,
                                      "total_frames": answer.num_frames}}  # fmt: skip


def prompt(tracker: LiveTracker, config: ConnectConfig, body: Any) -> dict[str, Any]:
    _check(config, body)
    session, frame = _session(body), body.get("frame_index")
    points, labels = body.get("points"), body.get("point_labels")
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        raise ToolError(400, f"frame_index: expected a frame number, got {frame!r}")
    coords = np.asarray(points if isinstance(points, list) else [], dtype=object)
    if coords.ndim != 2 or coords.shape[1:] != (2,) or not len(coords):
        raise ToolError(400, f"points: expected [[x, y], ...] in 0-1, got {points!r}")
    try:
        values = coords.astype(np.float64)
    except (TypeError, ValueError):
        raise ToolError(400, "points: not numbers") from None
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise ToolError(400, "points: expected coordinates within 0-1 (fractions of the frame)")
    if not isinstance(labels, list) or len(labels) != len(values) or set(labels) - {0, 1}:
        raise ToolError(400, "point_labels: expected one 1 or 0 per point")
    obj_id = body.get("obj_id", 1)
    if isinstance(obj_id, bool) or not isinstance(obj_id, int):
        raise ToolError(400, f"obj_id: expected an integer, got {obj_id!r}")
    answer = tracker.call(
        lambda client: client.call(
            "add_points", session_id=session, frame_idx=frame, obj_id=obj_id,
            point_coords=values.astype(np.float32), point_labels=np.asarray(labels, np.int32),
            clear_old_points=True, normalize_coords=False, output_format="rle",
        ),
        session,
    )  # fmt: skip
    return {"success": True, "data": {"masks": shapes(answer)}}


def propagate(tracker: LiveTracker, config: ConnectConfig, body: Any) -> Iterator[dict]:
    """The stream's events (``started``, ``progress`` a frame, ``completed``), forward from
    ``start_frame`` (default 0) to ``end_frame`` (inclusive, default the last)."""
    _check(config, body)
    session = _session(body)
    start, end = body.get("start_frame") or 0, body.get("end_frame")
    for name, value in (("start_frame", start), ("end_frame", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ToolError(400, f"{name}: expected a frame number, got {value!r}")
    if end is not None and end < start:
        raise ToolError(400, f"end_frame {end} is before start_frame {start}")
    count = None if end is None else end - start
    answers = tracker.call(
        lambda client: client.propagate(session, start, count, output_format="rle"), session
    )
    started = False
    results: dict[str, Any] = {}
    for answer in _checked(tracker, answers, session):
        if not started:
            yield {"type": "started", "total_frames": answer.num_frames,
                   "start_frame_index": start}  # fmt: skip
            started = True
        frame = answer.frame_indices[0]
        results[str(frame)] = {"masks": shapes(answer)}
        yield {"type": "progress", "current_frame": frame}
    yield {"type": "completed", "results": results}


def cleanup(tracker: LiveTracker, session: str) -> dict[str, Any]:
    tracker.call(lambda client: client.close_session(session), session)
    return {"success": True, "data": {"session_id": session}}


def shapes(answer: VideoAnswer) -> list[dict[str, Any]]:
    """Each object's mask on the answer's (first) frame as polygons."""
    out = []
    for obj_id, encoded in zip(answer.obj_ids, answer.encoded_masks, strict=False):
        outer, _ = mask_to_polygons(runs.decode(json.loads(encoded)))
        for ring in outer:
            points = [[ring[i], ring[i + 1]] for i in range(0, len(ring), 2)]
            out.append({"label": LABEL, "shape_type": "polygon", "group_id": obj_id,
                        "points": points})  # fmt: skip
    return out


def _checked(tracker: LiveTracker, answers: Iterator[VideoAnswer], session: str):
    """The propagation's answers, its errors (raised while streaming) as ToolErrors."""
    iterator = iter(answers)
    while True:
        try:
            answer = tracker.call(lambda client: next(iterator), session)
        except StopIteration:
            return
        yield answer


def _check(config: ConnectConfig, body: Any) -> None:
    if not isinstance(body, dict):
        raise ToolError(400, "the request body must be a JSON object")
    if body.get("model") not in (None, video_model(config)):
        raise ToolError(404, f"model: {body.get('model')!r} does not track video "
                             f"(use {video_model(config)!r})")  # fmt: skip


def _session(body: dict[str, Any]) -> str:
    session = body.get("session_id")
    if not isinstance(session, str) or not session:
        raise ToolError(400, "session_id: missing (call /v1/video/init first)")
    return session
