"""Segment everything: SAM2AutomaticMaskGenerator's algorithm in numpy, streamed.

A grid of single-point prompts (per crop of the image) goes through the decoder in batches;
masks are filtered by predicted IoU and stability score, deduplicated by box NMS (per crop,
then across crops), and returned as SA-1B annotations (COCO RLE, bbox, area, predicted_iou,
stability_score, point_coords, crop_box). Mirrors ``sam2/automatic_mask_generator.py`` and
``sam2/utils/amg.py`` step by step so results match the reference; unlike it, masks are
upsampled and encoded one at a time, so memory holds one full-resolution mask, never all of
them (the reference keeps points_per_batch x 3 float masks at full size).

The encoder and decoder are passed in as functions: BLS calls inside Triton, ONNX Runtime
sessions in tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from itertools import product
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from sam2_triton.contract import ENCODER_OUTPUTS
from sam2_triton.errors import InvalidInputError, RequestCancelled
from sam2_triton.families import SAM2, Family
from sam2_triton.image.boxes import mask_to_box, nms
from sam2_triton.image.decoder_feeds import decoder_feeds
from sam2_triton.image.masks import bilinear_matrices, select_masks
from sam2_triton.image.small_regions import postprocess_small_regions
from sam2_triton.image.transforms import preprocess_image, transform_coords

Arrays = Mapping[str, np.ndarray]
Encoder = Callable[[np.ndarray], Arrays]
Decoder = Callable[[Arrays], Arrays]
EDGE_TOLERANCE = 20.0  # pixels: is_box_near_crop_edge's atol


@dataclass(frozen=True)
class AutomaticParams:
    """SAM2AutomaticMaskGenerator's parameters and defaults (those this service supports)."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0  # > 0: small islands and holes removed (small_regions)
    multimask_output: bool = True

    def validate(self) -> AutomaticParams:
        checks = {
            "points_per_side": 1 <= self.points_per_side <= 128,
            "points_per_batch": 1 <= self.points_per_batch <= 1024,
            "pred_iou_thresh": 0.0 <= self.pred_iou_thresh <= 1.0,
            "stability_score_thresh": 0.0 <= self.stability_score_thresh <= 1.0,
            "stability_score_offset": 0.0 <= self.stability_score_offset <= 32.0,
            "mask_threshold": -32.0 <= self.mask_threshold <= 32.0,
            "box_nms_thresh": 0.0 <= self.box_nms_thresh <= 1.0,
            "crop_n_layers": 0 <= self.crop_n_layers <= 3,
            "crop_nms_thresh": 0.0 <= self.crop_nms_thresh <= 1.0,
            "crop_overlap_ratio": 0.0 <= self.crop_overlap_ratio < 1.0,
            "crop_n_points_downscale_factor": 1 <= self.crop_n_points_downscale_factor <= 8,
            "min_mask_region_area": 0 <= self.min_mask_region_area <= 1 << 26,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise InvalidInputError(name, f"{value!r} is out of the supported range")
        return self

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, np.ndarray | None]) -> AutomaticParams:
        """Request tensors ([1] each, None where omitted) -> validated parameters."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            given = inputs.get(field.name)
            if given is None:
                continue
            flat = np.asarray(given).reshape(-1)
            if flat.shape[0] != 1:
                raise InvalidInputError(field.name, f"expected one value, got {flat.shape[0]}")
            kind = type(field.default)
            values[field.name] = kind(flat[0].item())
        return cls(**values).validate()


# --- grids and crops (sam2/utils/amg.py) --------------------------------------------------------


def build_point_grid(n_per_side: int) -> np.ndarray:
    """n x n points evenly spaced in [0,1]^2, as (x, y) rows."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale: int) -> list[np.ndarray]:
    return [build_point_grid(int(n_per_side / (scale**i))) for i in range(n_layers + 1)]


def grid_points(params: AutomaticParams) -> int:
    """Decoder prompts a request costs: every crop layer's grid, (2^i)^2 crops in layer i."""
    grids = build_all_layer_point_grids(
        params.points_per_side, params.crop_n_layers, params.crop_n_points_downscale_factor
    )
    return sum(4**layer * len(grid) for layer, grid in enumerate(grids))


def check_grid_points(params: AutomaticParams, max_points: int) -> None:
    """A request's grid must fit the server's budget (a CPU decodes ~30 points a second):
    otherwise a 400 naming the parameters to lower, before any work."""
    points = grid_points(params)
    if points > max_points:
        raise InvalidInputError(
            "points_per_side",
            f"{params.points_per_side} per side with crop_n_layers {params.crop_n_layers} is "
            f"{points} grid points, over this server's limit of {max_points} per request; lower "
            "points_per_side or crop_n_layers (or raise crop_n_points_downscale_factor)",
        )


def generate_crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """The whole image, then (2^i)^2 overlapping crops per layer i, as XYXY boxes."""
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes, layers = [[0, 0, im_w, im_h]], [0]

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for i_layer in range(n_layers):
        n_per_side = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_per_side))
        crop_w = crop_len(im_w, n_per_side, overlap)
        crop_h = crop_len(im_h, n_per_side, overlap)
        xs = [int((crop_w - overlap) * i) for i in range(n_per_side)]
        ys = [int((crop_h - overlap) * i) for i in range(n_per_side)]
        for x0, y0 in product(xs, ys):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(i_layer + 1)
    return boxes, layers


# --- per-mask measures ------------------------------------------------------------------------


def stability_score(logits: np.ndarray, mask_threshold: float, offset: float) -> np.float32:
    """IoU of the mask thresholded at +offset and -offset (calculate_stability_score)."""
    intersection = np.count_nonzero(logits > (mask_threshold + offset))
    union = np.count_nonzero(logits > (mask_threshold - offset))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float32(intersection) / np.float32(union)


def is_box_near_crop_edge(
    box: np.ndarray, crop_box: list[int], orig_box: list[int], atol: float = EDGE_TOLERANCE
) -> bool:
    """A mask cut by a crop's edge (but not the image's) is incomplete: drop it."""
    x0, y0, _, _ = crop_box
    uncropped = box.astype(np.float32) + np.array([x0, y0, x0, y0], np.float32)
    near_crop = np.isclose(uncropped, np.array(crop_box, np.float32), atol=atol, rtol=0)
    near_image = np.isclose(uncropped, np.array(orig_box, np.float32), atol=atol, rtol=0)
    return bool(np.any(near_crop & ~near_image))


# --- the generator ----------------------------------------------------------------------------


@dataclass
class _Candidate:
    rle: dict[str, Any]
    box: np.ndarray  # XYXY in the original image
    iou: np.float32
    stability: np.float32
    point: np.ndarray  # (x, y) in the original image
    crop_box: list[int]


def generate(
    rgb: np.ndarray,
    encode: Encoder,
    decode: Decoder,
    params: AutomaticParams | None = None,
    decoder_batch: int = 16,
    is_cancelled: Callable[[], bool] = lambda: False,
    family: Family = SAM2,
) -> list[dict[str, Any]]:
    """SA-1B annotations for every object found in ``rgb`` (HWC uint8), best first, by
    ``family``'s model at its sizes. No family's holes are filled here: Meta's generator makes
    its own predictor with ``max_hole_area = min_mask_region_area`` (and on a CPU skips it,
    as ``small_regions`` says).

    ``is_cancelled`` is asked before each decoder call: a cancelled request stops within one
    call instead of running the whole grid.
    """
    params = (params or AutomaticParams()).validate()
    orig_h, orig_w = rgb.shape[:2]
    crop_boxes, layers = generate_crop_boxes(
        (orig_h, orig_w), params.crop_n_layers, params.crop_overlap_ratio
    )
    grids = build_all_layer_point_grids(
        params.points_per_side, params.crop_n_layers, params.crop_n_points_downscale_factor
    )
    found: list[_Candidate] = []
    for crop_box, layer in zip(crop_boxes, layers, strict=True):
        found += _process_crop(
            rgb, crop_box, grids[layer], encode, decode, params, decoder_batch, is_cancelled,
            family,
        )  # fmt: skip
    if len(crop_boxes) > 1 and found:
        # Prefer masks from smaller crops.
        areas = np.array(
            [(c.crop_box[2] - c.crop_box[0]) * (c.crop_box[3] - c.crop_box[1]) for c in found]
        )
        scores = (1 / areas).astype(np.float32)
        keep = nms(np.stack([c.box for c in found]), scores, params.crop_nms_thresh)
        found = [found[i] for i in keep]
    if params.min_mask_region_area > 0 and found:
        nms_thresh = max(params.box_nms_thresh, params.crop_nms_thresh)
        keep, rles, boxes = postprocess_small_regions(
            [c.rle for c in found], params.min_mask_region_area, nms_thresh, is_cancelled
        )
        found = [replace(found[i], rle=rles[i], box=boxes[i]) for i in keep]
    return [_annotation(c) for c in found]


def _process_crop(
    rgb: np.ndarray,
    crop_box: list[int],
    grid: np.ndarray,
    encode: Encoder,
    decode: Decoder,
    params: AutomaticParams,
    decoder_batch: int,
    is_cancelled: Callable[[], bool],
    family: Family,
) -> list[_Candidate]:
    x0, y0, x1, y1 = crop_box
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    crop_hw = (crop.shape[0], crop.shape[1])
    features = encode(preprocess_image(crop, family))
    features = {t.name: np.asarray(features[t.name]) for t in ENCODER_OUTPUTS}
    rows, cols = bilinear_matrices(crop_hw, family.low_res)
    points = (grid * np.array(crop_hw)[None, ::-1]).astype(np.float32)
    coords = transform_coords(points, crop_hw, family.image_size)[:, None, :]
    labels = np.ones((len(points), 1), np.int32)
    candidates: list[_Candidate] = []
    # The decoder takes up to decoder_batch points (at most points_per_batch) per call, each
    # call carrying the crop's features once; each call's masks are filtered before the next,
    # so memory holds one call's logits.
    step = min(decoder_batch, params.points_per_batch)
    for start in range(0, len(points), step):
        if is_cancelled():
            raise RequestCancelled("cancelled by the client")
        chunk = slice(start, start + step)
        outputs = decode(decoder_feeds(features, coords[chunk], labels[chunk]))
        low_res = np.asarray(outputs["low_res_masks"])
        ious = np.asarray(outputs["iou_predictions"])
        for row, point in enumerate(points[chunk]):
            logits, scores = select_masks(low_res[row], ious[row], params.multimask_output)
            for mask_logits, score in zip(logits, scores, strict=True):
                candidate = _candidate(
                    mask_logits, np.float32(score), point, crop_box, rgb.shape[:2], rows, cols,
                    params,
                )  # fmt: skip
                if candidate is not None:
                    candidates.append(candidate)
    if not candidates:
        return []
    keep = nms(
        np.stack([c.box for c in candidates]),
        np.array([c.iou for c in candidates], np.float32),
        params.box_nms_thresh,
    )
    return [candidates[i] for i in keep]


def _candidate(
    low_res_logits: np.ndarray,
    score: np.float32,
    point: np.ndarray,
    crop_box: list[int],
    orig_hw: tuple[int, int],
    rows: np.ndarray,
    cols: np.ndarray,
    params: AutomaticParams,
) -> _Candidate | None:
    """One mask through the filters of ``_process_batch``, or None if it is dropped."""
    if params.pred_iou_thresh > 0.0 and not score > params.pred_iou_thresh:
        return None
    logits = rows @ low_res_logits.astype(np.float32) @ cols.T  # at the crop's size
    stability = stability_score(logits, params.mask_threshold, params.stability_score_offset)
    if params.stability_score_thresh > 0.0 and not stability >= params.stability_score_thresh:
        return None
    mask = logits > params.mask_threshold
    box = mask_to_box(mask)
    orig_h, orig_w = orig_hw
    if is_box_near_crop_edge(box, crop_box, [0, 0, orig_w, orig_h]):
        return None
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) != (0, 0, orig_w, orig_h):
        full = np.zeros((orig_h, orig_w), bool)
        full[y0:y1, x0:x1] = mask
        mask = full
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    offset = np.array([x0, y0, x0, y0])
    return _Candidate(
        rle=rle,
        box=box + offset,
        iou=score,
        stability=stability,
        point=point + np.array([x0, y0], np.float32),
        crop_box=list(crop_box),
    )


def _annotation(candidate: _Candidate) -> dict[str, Any]:
    """SA-1B record, with the reference's value types (xywh boxes, floats)."""
    x0, y0, x1, y1 = (float(v) for v in candidate.box)
    cx0, cy0, cx1, cy1 = (float(v) for v in candidate.crop_box)
    return {
        "segmentation": {
            "size": [int(v) for v in candidate.rle["size"]],
            "counts": candidate.rle["counts"].decode("ascii"),
        },
        "area": int(mask_utils.area(candidate.rle)),
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "predicted_iou": float(candidate.iou),
        "point_coords": [[float(v) for v in candidate.point]],
        "stability_score": float(candidate.stability),
        "crop_box": [cx0, cy0, cx1 - cx0, cy1 - cy0],
    }
