"""X-AnyLabeling's remote-server protocol (its client: ``RemoteServer`` in
``anylabeling/services/auto_labeling/remote_server.py``, x-anylabeling-cvhub 4.2.1).

    GET  /v1/models    {"data": {model id: {display_name, widgets, batch_processing_mode, …}}}
    POST /v1/predict   {"model", "image": "data:<mime>;base64,…", "params": {"marks": […], …}}
                       -> {"data": {"shapes": [{label, shape_type, points, score}], …}}

Marks are ``{"type": "point", "data": [x, y], "label": 1|0}`` and ``{"type": "rectangle",
"data": [x1, y1, x2, y2]}`` in the image's pixels. The client refuses ``shape_type: "mask"``,
so a mask leaves as polygons: one shape per outer ring (X-AnyLabeling's polygons hold no holes).
Two models are offered: clicks and boxes (sam2_session) and segment-everything (sam2_automatic).

The client shows a failed request as ``Remote server error: <requests' HTTPError>``, which
carries the status line and not the body: the problem is in the reason phrase too.
"""

from __future__ import annotations

import re
from typing import Any

from sam2_triton.connect.config import AnyLabelingConfig
from sam2_triton.connect.service import (
    OpenImage,
    Prompt,
    SegmentService,
    ToolError,
    check_box,
    check_point,
    decode_base64,
)

LABEL = "AUTOLABEL_OBJECT"  # what X-AnyLabeling's own SAM models name a new object
INTERACTIVE_WIDGETS = (
    "button_add_point",
    "button_remove_point",
    "button_add_rect",
    "button_clear",
    "button_finish_object",
)
DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.ASCII)


def everything_model(config: AnyLabelingConfig) -> str:
    return f"{config.model}_everything"


def models(config: AnyLabelingConfig) -> dict[str, Any]:
    """``GET /v1/models``: the interactive model first (the client selects the first)."""
    return {
        "data": {
            config.model: {
                "display_name": config.display_name,
                "widgets": [{"name": name} for name in INTERACTIVE_WIDGETS],
                "batch_processing_mode": "default",
                "available_tasks": [],
                "classes": [],
            },
            everything_model(config): {
                "display_name": f"{config.display_name}: everything",
                "widgets": [{"name": "button_run"}],
                "batch_processing_mode": "default",
                "available_tasks": [],
                "classes": [],
            },
            f"{config.model}_video": {  # connect.anylabeling_video
                "display_name": f"{config.display_name}: video",
                "widgets": [{"name": name} for name in INTERACTIVE_WIDGETS if "rect" not in name]
                + [{"name": "button_run"}],
                "batch_processing_mode": "video",
                "available_tasks": [],
                "classes": [],
            },
        }
    }


IMAGE_TEXT = "a data URI or base64 string"


def base64_of(value: Any) -> Any:
    """The base64 of a request's image: a ``data:`` URI (what the client sends) or bare."""
    match = DATA_URI.match(value) if isinstance(value, str) else None
    return value[match.end() :] if match else value


def decode_data_uri(value: Any, max_bytes: int) -> bytes:
    """The image of a request (``base64_of``) decoded."""
    return decode_base64(base64_of(value), max_bytes, IMAGE_TEXT)


def predict(service: SegmentService, config: AnyLabelingConfig, body: Any) -> dict[str, Any]:
    """``POST /v1/predict``."""
    if not isinstance(body, dict):
        raise ToolError(400, "the request body must be a JSON object")
    model = body.get("model")
    if model not in (config.model, everything_model(config)):
        known = [config.model, everything_model(config)]
        raise ToolError(404, f"model: unknown model {model!r} (this server has {known})")
    image = service.open_base64(base64_of(body.get("image")), IMAGE_TEXT)
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise ToolError(400, "params: expected a JSON object")
    if model == everything_model(config):
        shapes = [
            shape
            for record in service.everything(image, polygons=True)
            for shape in _shapes(record["segmentation"], record.get("predicted_iou"))
        ]
    else:
        mask = service.click(image, _prompt(params.get("marks"), image), polygons=True)
        shapes = _shapes(mask.polygons or [], mask.score)
    return {"data": {"shapes": shapes, "description": "", "replace": False}}


def _prompt(marks: Any, image: OpenImage) -> Prompt:
    if not isinstance(marks, list) or not marks:
        raise ToolError(400, "params.marks: expected a list of point and rectangle marks")
    points: list[tuple[float, float]] = []
    labels: list[int] = []
    box = None
    for k, mark in enumerate(marks):
        name = f"params.marks[{k}]"
        if not isinstance(mark, dict):
            raise ToolError(400, f"{name}: expected an object with type and data")
        kind, data = mark.get("type"), mark.get("data")
        if kind == "point":
            if not isinstance(data, list) or len(data) != 2:
                raise ToolError(400, f"{name}.data: expected [x, y], got {data!r}")
            points.append(check_point(data[0], data[1], image, name))
            label = mark.get("label", 1)
            if label not in (0, 1):
                raise ToolError(400, f"{name}.label: expected 1 or 0, got {label!r}")
            labels.append(int(label))
        elif kind == "rectangle":
            if box is not None:
                raise ToolError(400, f"{name}: one rectangle per object (SAM takes one box)")
            box = check_box(data, image, name)
        else:
            raise ToolError(400, f"{name}.type: expected point or rectangle, got {kind!r}")
    return Prompt(tuple(points), tuple(labels), box)  # type: ignore[arg-type]


def _shapes(rings: list[list[float]], score: float | None) -> list[dict[str, Any]]:
    return [
        {
            "label": LABEL,
            "shape_type": "polygon",
            "points": [[ring[i], ring[i + 1]] for i in range(0, len(ring), 2)],
            "score": None if score is None else round(float(score), 4),
        }
        for ring in rings
        if len(ring) >= 6
    ]
