"""Masks as COCO polygons: traced exactly at tolerance 0 (rasterised back by pycocotools they are
the mask), within IoU 0.98 at the default tolerance with fewer points, holes apart from outer
contours, and the request options checked."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from sam2_triton.errors import InvalidInputError
from sam2_triton.image.polygons import (
    DEFAULT_TOLERANCE,
    as_polygon_annotations,
    mask_to_polygons,
    polygon_record,
    polygons_to_mask,
    rle_to_polygons,
)
from sam2_triton.image.request import parse_segmentation_format, parse_tolerance

H, W = 120, 160


def _shapes() -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:H, 0:W]
    radius = np.hypot(xx - 80, yy - 60)
    coarse = np.random.default_rng(0).standard_normal((8, 11)).astype(np.float32)
    blobs = np.asarray(Image.fromarray(coarse).resize((W, H), Image.Resampling.BILINEAR)) > 0.3
    island_in_hole = (radius < 50) & ~(radius < 30) | (radius < 10)
    pixel = np.zeros((H, W), bool)
    pixel[5, 7] = True
    line = np.zeros((H, W), bool)
    line[20, 10:60] = True
    return {
        "disk": radius < 40,
        "ring": (radius < 50) & ~(radius < 20),
        "island in a hole": island_in_hole,
        "blobs": blobs,
        "pixel": pixel,
        "line": line,
        "diagonal": np.eye(H, W, dtype=bool),
        "full": np.ones((H, W), bool),
        "empty": np.zeros((H, W), bool),
    }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.parametrize("name", list(_shapes()))
def test_at_tolerance_zero_the_polygons_are_the_mask(name):
    mask = _shapes()[name]
    outer, holes = mask_to_polygons(mask, 0.0)
    np.testing.assert_array_equal(polygons_to_mask(outer, holes, H, W), mask)


@pytest.mark.parametrize("name", ["disk", "ring", "island in a hole", "blobs"])
def test_the_default_tolerance_keeps_iou_above_098_with_fewer_points(name):
    mask = _shapes()[name]
    outer, holes = mask_to_polygons(mask)
    assert _iou(polygons_to_mask(outer, holes, H, W).astype(bool), mask) >= 0.98
    exact_outer, exact_holes = mask_to_polygons(mask, 0.0)
    exact = sum(len(p) for p in exact_outer + sum(exact_holes, []))
    assert sum(len(p) for p in outer + sum(holes, [])) < exact / 2


def test_holes_are_apart_and_an_island_in_a_hole_is_outer_again():
    outer, holes = mask_to_polygons(_shapes()["island in a hole"])
    assert len(outer) == len(holes) == 2  # the ring and the island, each with its holes
    assert sorted(len(h) for h in holes) == [0, 1]  # the ring has one, the island none
    assert all(len(p) >= 6 and len(p) % 2 == 0 for p in outer + sum(holes, []))


@pytest.mark.parametrize("tolerance", [0.0, DEFAULT_TOLERANCE, 3.0])
def test_rasterising_in_each_polygons_box_gives_the_whole_image_rasterisation(tolerance):
    """polygons_to_mask works in each outer polygon's box; the pixels must be those of the
    definition (each outer polygon minus its holes, rasterised over the whole image), also
    for a ragged mask of many islands and holes, and simplified polygons that stray."""
    noise = np.random.default_rng(1).random((H, W)) > 0.55
    mask = noise | _shapes()["island in a hole"].astype(bool)
    outer, holes = mask_to_polygons(mask, tolerance)
    assert len(outer) > 50 and sum(map(len, holes)) > 10

    def whole(polygons):
        if not polygons:
            return np.zeros((H, W), np.uint8)
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, H, W)))

    want = np.zeros((H, W), np.uint8)
    for polygon, own in zip(outer, holes, strict=True):
        want |= whole([polygon]) & (1 - whole(own))
    np.testing.assert_array_equal(polygons_to_mask(outer, holes, H, W), want)


def test_points_lie_in_cocos_continuous_frame():
    mask = np.zeros((H, W), bool)
    mask[10:20, 30:50] = True  # pixels x 30..49, y 10..19: the area [30, 50) x [10, 20)
    (polygon,), _ = mask_to_polygons(mask)
    xs, ys = polygon[0::2], polygon[1::2]
    assert (min(xs), max(xs), min(ys), max(ys)) == (30.25, 49.75, 10.25, 19.75)


def test_records_and_annotations_keep_the_masks_area_and_box():
    mask = _shapes()["ring"]
    record = polygon_record(mask)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert record["size"] == [H, W] and record["area"] == int(mask.sum())
    assert record["bbox"] == [float(v) for v in mask_utils.toBbox(rle)]
    annotation = {"segmentation": {"size": [H, W], "counts": rle["counts"].decode()}, "area": 1}
    (converted,) = as_polygon_annotations([annotation])
    assert (converted["segmentation"], converted["holes"]) == rle_to_polygons(rle)
    assert converted["area"] == 1


def test_options_are_checked_naming_them():
    assert parse_tolerance(None) == DEFAULT_TOLERANCE
    assert parse_tolerance(np.array([0.0], np.float32), ("polygons",)) == 0.0
    for bad, words in [
        (np.array([np.nan], np.float32), "must be between 0 and 100"),
        (np.array([-1.0], np.float32), "must be between 0 and 100"),
        (np.array([1.0, 2.0], np.float32), "expected one value"),
    ]:
        with pytest.raises(InvalidInputError, match=f"polygon_tolerance: .*{words}"):
            parse_tolerance(bad, ("polygons",))
    with pytest.raises(InvalidInputError, match="only applies with output_format 'polygons'"):
        parse_tolerance(np.array([1.0], np.float32), ("rle",))
    assert parse_segmentation_format(None) == "rle"
    assert parse_segmentation_format(np.array([b"polygons"], object)) == "polygons"
    with pytest.raises(InvalidInputError, match="segmentation_format: unknown format 'svg'"):
        parse_segmentation_format(np.array([b"svg"], object))
