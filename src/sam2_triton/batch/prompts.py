"""The prompts file of ``sam2-triton batch``: which objects to segment in which image.

Format (keys are paths relative to INPUT_DIR, with ``/``)::

    {"kitchen/001.jpg": {"cup": [[120, 80]], "table": [[300, 400], [350, 420]]}}

Each label is one object: its points are foreground clicks in original pixels, sent together
(one mask per label). A label may instead hold an object, for background clicks and boxes::

    {"cup": {"points": [[120, 80], [90, 60]], "labels": [1, 0], "box": [100, 50, 160, 120]}}

Images that the file does not mention get automatic masks (every object).
Only the structure is checked here; ranges (points inside the image, ...) are the server's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class PromptsError(ValueError):
    """The prompts file is not in the documented format; the message says where."""


@dataclass(frozen=True)
class ObjectPrompt:
    """One labelled object of one image: points (original pixels) and/or a box."""

    label: str
    point_coords: np.ndarray | None  # float32 [N, 2]
    point_labels: np.ndarray | None  # int32 [N], 1 foreground, 0 background
    box: np.ndarray | None  # float32 [4], x0 y0 x1 y1

    def to_json(self) -> dict[str, Any]:
        """The prompt as recorded beside its annotation."""
        record: dict[str, Any] = {}
        if self.point_coords is not None and self.point_labels is not None:
            record["points"] = self.point_coords.tolist()
            record["labels"] = self.point_labels.tolist()
        if self.box is not None:
            record["box"] = self.box.tolist()
        return record


def _points(where: str, value: Any) -> np.ndarray:
    if not isinstance(value, list) or not value:
        raise PromptsError(f"{where}: expected a non-empty list of [x, y] points, got {value!r}")
    for point in value:
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not all(_is_finite_number(v) for v in point)
        ):
            raise PromptsError(
                f"{where}: each point must be [x, y] with finite numbers, got {point!r}"
            )
    return np.array(value, dtype=np.float32)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _object(where: str, label: str, value: Any) -> ObjectPrompt:
    if isinstance(value, list):
        coords = _points(where, value)
        return ObjectPrompt(label, coords, np.ones(len(coords), np.int32), None)
    if not isinstance(value, dict):
        raise PromptsError(f"{where}: expected a list of [x, y] points or an object, got {value!r}")
    unknown = set(value) - {"points", "labels", "box"}
    if unknown:
        raise PromptsError(f"{where}: unknown keys {sorted(unknown)}; allowed: points, labels, box")
    coords = labels = box = None
    if "points" in value:
        coords = _points(f"{where}.points", value["points"])
        raw_labels = value.get("labels", [1] * len(coords))
        if (
            not isinstance(raw_labels, list)
            or len(raw_labels) != len(coords)
            or any(v not in (0, 1) or isinstance(v, bool) for v in raw_labels)
        ):
            raise PromptsError(
                f"{where}.labels: expected {len(coords)} labels, each 0 or 1, got {raw_labels!r}"
            )
        labels = np.array(raw_labels, dtype=np.int32)
    elif "labels" in value:
        raise PromptsError(f"{where}: 'labels' given without 'points'")
    if "box" in value:
        raw_box = value["box"]
        if not isinstance(raw_box, list) or len(raw_box) != 4:
            raise PromptsError(f"{where}.box: expected [x0, y0, x1, y1], got {raw_box!r}")
        if not all(_is_finite_number(v) for v in raw_box):
            raise PromptsError(f"{where}.box: coordinates must be finite numbers, got {raw_box!r}")
        box = np.array(raw_box, dtype=np.float32)
    if coords is None and box is None:
        raise PromptsError(f"{where}: give 'points' or 'box' (or both)")
    return ObjectPrompt(label, coords, labels, box)


def parse_prompts(document: Any) -> dict[str, list[ObjectPrompt]]:
    """A parsed prompts document -> {image path: its objects}; raises PromptsError."""
    if not isinstance(document, dict):
        raise PromptsError("expected an object mapping image file names to their prompts")
    prompts: dict[str, list[ObjectPrompt]] = {}
    for name, objects in document.items():
        if not isinstance(objects, dict) or not objects:
            raise PromptsError(
                f"{name!r}: expected a non-empty object mapping labels to points, got {objects!r}"
            )
        prompts[name] = [
            _object(f"{name!r}.{label!r}", label, value) for label, value in objects.items()
        ]
    return prompts


def load_prompts(path: Path) -> dict[str, list[ObjectPrompt]]:
    """Read and check a prompts file; errors name the file and the entry at fault."""
    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise PromptsError(f"{path}: not valid JSON ({exc})") from None
    try:
        return parse_prompts(document)
    except PromptsError as exc:
        raise PromptsError(f"{path}: {exc}") from None
