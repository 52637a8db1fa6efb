"""Masks as polygons: each mask's outer and hole contours, the format annotation tools and COCO
polygon datasets use.

OpenCV traces the contours (``findContours`` with the two-level hierarchy: outer boundaries and
the holes inside them) and simplifies them (``approxPolyDP``, Douglas-Peucker with a tolerance
in pixels). Points are in COCO's continuous frame, where pixel (x, y) spans [x, x + 1). COCO
polygons cannot hold holes, so a record carries them beside the outer ones, ``holes[i]`` those of
``segmentation[i]``: the mask is the union of each outer polygon minus its holes
(``polygons_to_mask``, through pycocotools).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from sam2_triton.contract import DEFAULT_POLYGON_TOLERANCE

DEFAULT_TOLERANCE = DEFAULT_POLYGON_TOLERANCE  # pixels a simplified contour may stray

Polygon = list[float]  # [x0, y0, x1, y1, ...]


def mask_to_polygons(
    mask: np.ndarray, tolerance: float = DEFAULT_TOLERANCE
) -> tuple[list[Polygon], list[list[Polygon]]]:
    """A [H, W] mask -> (outer polygons, the holes of each): flat [x0, y0, x1, y1, ...] lists;
    ``holes[i]`` are the holes of ``outer[i]`` (an island inside a hole is an outer one again).

    The contours are traced on the mask doubled (each pixel 2 x 2), so that they run a quarter
    pixel inside the pixels' outline: rasterised (pycocotools takes a pixel whose centre is
    inside), an outer polygon gives back its boundary pixels and a hole polygon exactly the
    hole's, where contours through pixel centres would lose half of every boundary pixel.
    """
    doubled = np.ascontiguousarray(np.kron(np.asarray(mask, np.uint8), np.ones((2, 2), np.uint8)))
    contours, hierarchy = cv2.findContours(doubled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    outer: list[Polygon] = []
    holes: list[list[Polygon]] = []
    position: dict[int, int] = {}  # contour index of an outer contour -> its place in outer
    parents = [] if hierarchy is None else [int(h[3]) for h in hierarchy[0]]
    for index, contour in enumerate(contours):
        if parents[index] == -1:
            position[index] = len(outer)
            outer.append(_polygon(contour, tolerance))
            holes.append([])
    for index, contour in enumerate(contours):
        if parents[index] != -1:
            holes[position[parents[index]]].append(_polygon(contour, tolerance))
    return outer, holes


def _polygon(contour: np.ndarray, tolerance: float) -> Polygon:
    """A contour traced on the doubled mask -> a simplified polygon in image pixels."""
    points = contour if tolerance <= 0 else cv2.approxPolyDP(contour, 2 * tolerance, True)
    if len(points) < 3:  # simplified down to a line: keep the traced contour
        points = contour
    return [float(v) for v in ((points.reshape(-1, 2).astype(np.float64) + 0.5) / 2).reshape(-1)]


def polygons_to_mask(
    outer: list[Polygon], holes: list[list[Polygon]], height: int, width: int
) -> np.ndarray:
    """Rasterise a record's polygons (pycocotools): uint8 [H, W], the union over the outer
    polygons of each one minus its holes.

    Outer polygons without holes are rasterised together (their union, in RLE); each with holes
    in its own bounding box: a mask of a thousand small islands (what random weights give) costs
    the islands' areas, not a thousand images. pycocotools' rule is the same under a whole-pixel
    shift of non-negative coordinates, so the pixels are those of the whole-image one."""
    pairs = list(zip(outer, holes, strict=True))
    plain = [polygon for polygon, own in pairs if not own]
    mask = _area(plain, 0, 0, height, width) if plain else np.zeros((height, width), np.uint8)
    for polygon, own_holes in [(polygon, own) for polygon, own in pairs if own]:
        box = _box([polygon, *own_holes], height, width)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        inside = _area([polygon], x0, y0, y1 - y0, x1 - x0)
        inside &= 1 - _area(own_holes, x0, y0, y1 - y0, x1 - x0)
        mask[y0:y1, x0:x1] |= inside
    return mask


def _box(polygons: list[Polygon], height: int, width: int) -> tuple[int, int, int, int] | None:
    """The pixels (x0, y0, x1, y1), ends excluded, that ``polygons`` can cover, in the image."""
    points = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in polygons])
    if points.size == 0:
        return None
    x0, y0 = (max(0, int(np.floor(v)) - 1) for v in points.min(axis=0))
    x1 = min(width, int(np.ceil(points[:, 0].max())) + 1)
    y1 = min(height, int(np.ceil(points[:, 1].max())) + 1)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def _area(polygons: list[Polygon], x0: int, y0: int, height: int, width: int) -> np.ndarray:
    """The union of ``polygons`` rasterised in the [height, width] window at (x0, y0)."""
    if x0 or y0:
        polygons = [
            (np.asarray(p, np.float64).reshape(-1, 2) - (x0, y0)).reshape(-1).tolist()
            for p in polygons
        ]
    rles = mask_utils.frPyObjects(polygons, height, width)
    while len(rles) > 1:  # merged as a tree: one by one costs the union's runs each time
        rles = [mask_utils.merge(rles[k : k + 8]) for k in range(0, len(rles), 8)]
    return mask_utils.decode(rles[0])


def polygon_record(mask: np.ndarray, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """A mask -> ``{"size": [H, W], "segmentation": [...], "holes": [...], "bbox", "area"}``;
    bbox (COCO XYWH) and area are the mask's own, as in the RLE records."""
    outer, holes = mask_to_polygons(mask, tolerance)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        "size": [int(mask.shape[0]), int(mask.shape[1])],
        "segmentation": outer,
        "holes": holes,
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "area": int(mask_utils.area(rle)),
    }


def rle_to_polygons(
    rle: dict[str, Any], tolerance: float = DEFAULT_TOLERANCE
) -> tuple[list[Polygon], list[list[Polygon]]]:
    """A compressed COCO RLE (counts as str or bytes) -> (outer polygons, hole polygons)."""
    counts = rle["counts"]
    encoded = {
        "size": rle["size"],
        "counts": counts.encode() if isinstance(counts, str) else counts,
    }
    return mask_to_polygons(mask_utils.decode(encoded), tolerance)


def as_polygon_annotations(
    annotations: list[dict[str, Any]], tolerance: float = DEFAULT_TOLERANCE
) -> list[dict[str, Any]]:
    """SA-1B annotations with RLE ``segmentation`` -> the same with COCO polygon lists there and
    the holes' polygons in ``holes`` (area and bbox stay the mask's)."""
    converted = []
    for annotation in annotations:
        outer, holes = rle_to_polygons(annotation["segmentation"], tolerance)
        converted.append({**annotation, "segmentation": outer, "holes": holes})
    return converted
