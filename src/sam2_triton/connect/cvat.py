"""CVAT's serverless functions, as CVAT's lambda manager calls them through a Nuclio dashboard
(``cvat/apps/lambda_manager/views.py``); the gateway stands in for the dashboard, so CVAT runs
with ``CVAT_NUCLIO_HOST``/``CVAT_NUCLIO_PORT`` pointing here and no Nuclio at all.

    GET  /api/functions               {name: {metadata: {name, annotations}, spec, status}}
    GET  /api/functions/{name}        one of them
    POST /api/function_invocations    header x-nuclio-function-name; the function's body

Interactor (``tools-control.tsx``): ``{image (base64), pos_points, neg_points, obj_bbox}`` ->
``{mask, bounds}``: the mask cropped to its inclusive bounds [x1, y1, x2, y2], 0/1 rows.
Detector: ``{image, threshold?}`` -> ``[{label, confidence, type: "mask", mask}]``, each mask
the crop's flat row-major 0/1 values followed by its inclusive bounds (what CVAT's own
segmentation functions send; CVAT run-length encodes it itself).
Tracker (``serverless/pytorch/dschoerk/transt``'s contract): ``{image, shapes: [[x1, y1, x2,
y2]], states}`` -> ``{shapes, states}``, one frame a call; a shape without a state starts
tracking (its box comes back as given), the states CVAT keeps and sends back name the object
in a live sam2_video session (``connect.tracking``).

CVAT passes a failed call on as ``str(HTTPError)``: the status line, not the body; the problem
is in the reason phrase too.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sam2_triton.connect import runs
from sam2_triton.connect.answers import EncodedJson, digits_json
from sam2_triton.connect.config import CvatConfig
from sam2_triton.connect.service import (
    OpenImage,
    Prompt,
    SegmentService,
    ToolError,
    check_box,
    check_point,
    decode_base64,
)
from sam2_triton.connect.tracking import LiveTracker
from sam2_triton.connect.tracking import state as tracking_state
from sam2_triton.image.boxes import mask_to_box

_IMAGE = "the frame's file as base64"


def functions(config: CvatConfig) -> dict[str, Any]:
    """``GET /api/functions``: the interactor (clicks, optional box) and the detector."""
    interactor = {
        "type": "interactor",
        "name": "Segment Anything 2.1 (sam2-triton)",
        "version": "2",  # CVAT's UI refuses interactors below 2
        "spec": "[]",
        "min_pos_points": "0",  # a box alone is a prompt
        "min_neg_points": "0",
        "startswith_box_optional": "true",  # CVAT reads any non-empty string as true
        "help_message": "Click the object (left: foreground, right: background) or draw a box",
    }
    detector = {
        "type": "detector",
        "name": "Segment everything (sam2-triton)",
        "version": "1",
        "spec": json.dumps([{"name": label, "type": "mask"} for label in config.labels]),
    }
    tracker = {"type": "tracker", "name": "SAM 2.1 tracker (sam2-triton)", "version": "1",
               "spec": "[]"}  # fmt: skip
    return {
        config.interactor: _function(config.interactor, interactor, "SAM 2.1 clicks and boxes"),
        config.detector: _function(config.detector, detector, "SAM 2.1 segment-everything"),
        config.tracker: _function(config.tracker, tracker, "SAM 2.1 video tracking of boxes"),
    }


def _function(name: str, annotations: dict[str, str], description: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"description": description},
        "status": {"state": "ready"},
    }


def function(config: CvatConfig, name: str) -> dict[str, Any]:
    listed = functions(config)
    if name not in listed:
        raise ToolError(404, f"function {name!r}: unknown (this gateway has {sorted(listed)})")
    return listed[name]


def invoke(
    service: SegmentService,
    config: CvatConfig,
    name: str | None,
    body: Any,
    tracker: LiveTracker | None = None,
) -> Any:
    """``POST /api/function_invocations`` for the function named in x-nuclio-function-name."""
    if not name:
        raise ToolError(400, "x-nuclio-function-name: missing (which function to invoke)")
    function(config, name)
    if not isinstance(body, dict):
        raise ToolError(400, "the request body must be a JSON object")
    if name == config.tracker:  # a new frame with each call
        data = decode_base64(body.get("image"), service.config.gateway.max_body_mb << 20, _IMAGE)
        return track(tracker or LiveTracker(service.config), service, data, body)
    image = service.open_base64(body.get("image"), _IMAGE)
    if name == config.interactor:
        mask = service.click(image, _prompt(body, image)).mask
        cropped, bounds = crop(mask)
        bounds_json = json.dumps(bounds).encode()
        return EncodedJson(digits_json(cropped, b'{"mask":', b',"bounds":' + bounds_json + b"}"))
    return detect(service, config, image, body.get("threshold"))


def detect(
    service: SegmentService, config: CvatConfig, image: OpenImage, threshold: Any
) -> EncodedJson:
    """Every object sam2_automatic finds, with SAM's predicted IoU at least ``threshold``."""
    try:
        floor = 0.0 if threshold is None else float(threshold)
    except (TypeError, ValueError):
        raise ToolError(400, f"threshold: expected a number, got {threshold!r}") from None
    shapes = []
    for record in service.everything(image):
        if record["predicted_iou"] < floor:
            continue
        cropped, bounds = crop(runs.decode(record["segmentation"]).view(bool))
        shape = {
            "label": config.labels[0],
            "confidence": str(round(record["predicted_iou"], 4)),
            "type": "mask",
            "points": [],
        }
        # "mask": the crop's values, then its bounds
        values = bytes(digits_json(runs.row_major(cropped).reshape(-1))[:-1])
        values += b"," + json.dumps(bounds)[1:].encode()
        shapes.append(json.dumps(shape)[:-1].encode() + b',"mask":' + values + b"}")
    return EncodedJson(b"[" + b",".join(shapes) + b"]")


def track(tracker: LiveTracker, service: SegmentService, data: bytes, body: dict) -> Any:
    """The tracker: shapes without a state start a session on this frame, the others step
    their sessions (one new frame each); shapes and states come back in CVAT's order."""
    image = service.open(data)  # checked as any image (format, pixel cap)
    shapes, states = body.get("shapes"), body.get("states") or []
    if not isinstance(shapes, list) or not isinstance(states, list):
        raise ToolError(400, "shapes and states: expected lists")
    boxes = [check_box(shape, image, f"shapes[{k}]") for k, shape in enumerate(shapes)]
    given: list[dict | None] = []
    for k in range(len(shapes)):
        found = states[k] if k < len(states) else None
        if found is not None and not (
            isinstance(found, dict)
            and isinstance(found.get("session"), str)
            and isinstance(found.get("object"), int)
        ):
            raise ToolError(400, f"states[{k}]: not a state this tracker returned")
        given.append(found)
    out_boxes: list[Any] = list(boxes)
    out_states: list[Any] = list(given)
    fresh = [k for k, found in enumerate(given) if found is None]
    if fresh:
        session, ids = tracker.start(data, [boxes[k] for k in fresh])
        for k, obj_id in zip(fresh, ids, strict=True):
            out_states[k] = tracking_state(session, obj_id)
    for session in dict.fromkeys(s["session"] for s in given if s is not None):
        stepped = tracker.step(session, data)
        for k, found in enumerate(given):
            if found is not None and found["session"] == session:
                tracked = stepped.get(found["object"])
                out_boxes[k] = tracked if tracked is not None else boxes[k]  # lost: kept
    return {"shapes": [[round(v, 2) for v in box] for box in out_boxes], "states": out_states}


def crop(mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The mask's bounding crop and its inclusive bounds [x1, y1, x2, y2] (an empty mask: its
    top-left pixel, empty: mask_to_box's [0, 0, 0, 0])."""
    x1, y1, x2, y2 = (int(v) for v in mask_to_box(mask))
    return mask[y1 : y2 + 1, x1 : x2 + 1], [x1, y1, x2, y2]


def _prompt(body: dict[str, Any], image: OpenImage) -> Prompt:
    points: list[tuple[float, float]] = []
    labels: list[int] = []
    for field, label in (("pos_points", 1), ("neg_points", 0)):
        given = body.get(field) or []
        if not isinstance(given, list):
            raise ToolError(400, f"{field}: expected a list of [x, y]")
        for k, point in enumerate(given):
            if not isinstance(point, list) or len(point) != 2:
                raise ToolError(400, f"{field}[{k}]: expected [x, y], got {point!r}")
            points.append(check_point(point[0], point[1], image, f"{field}[{k}]"))
            labels.append(label)
    box = None
    bbox = body.get("obj_bbox")
    if bbox:  # [[x1, y1], [x2, y2]]; [] or null when no box was drawn
        pairs = isinstance(bbox, list) and len(bbox) == 2
        if not (pairs and all(isinstance(p, list) for p in bbox)):
            raise ToolError(400, f"obj_bbox: expected [[x1, y1], [x2, y2]], got {bbox!r}")
        box = check_box([*bbox[0], *bbox[1]], image, "obj_bbox")
    return Prompt(tuple(points), tuple(labels), box)  # type: ignore[arg-type]
