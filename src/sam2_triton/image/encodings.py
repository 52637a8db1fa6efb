"""Mask encodings a response can carry: raw uint8 arrays, one PNG per mask, COCO RLE, or the
object cut out of the image as an RGBA PNG.

K masks of an H x W image are K*H*W bytes raw (3 x 12 MP = 36 MB); a PNG or an RLE of a SAM
mask is typically a few kB. The encodings are the field's usual ones: PNG through Pillow, RLE
through pycocotools (the SA-1B / COCO annotation format), so any COCO tool reads them.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from sam2_triton.contract import NO_RAW_MASK_FORMATS
from sam2_triton.image.masks import DecodedMasks
from sam2_triton.image.polygons import DEFAULT_TOLERANCE, polygon_record, polygons_to_mask


def mask_to_png(mask: np.ndarray) -> bytes:
    """A 0/1 mask [H, W] -> a 1-bit PNG (black 0, white 1), lossless."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(bool)).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def png_to_mask(data: bytes) -> np.ndarray:
    """Inverse of mask_to_png: uint8 0/1 [H, W]."""
    with Image.open(io.BytesIO(data)) as image:
        return (np.asarray(image.convert("L")) > 0).astype(np.uint8)


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """A 0/1 mask [H, W] -> COCO RLE ``{"size": [H, W], "counts": str, "bbox", "area"}``.

    ``bbox`` is COCO's [x, y, width, height] in pixels (pycocotools.mask.toBbox), ``area`` the
    number of mask pixels.
    """
    return rle_record(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))


def rle_record(rle: dict[str, Any]) -> dict[str, Any]:
    """pycocotools' compressed RLE -> our JSON record with its bbox and area."""
    return {
        "size": [int(v) for v in rle["size"]],
        "counts": rle["counts"].decode("ascii"),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "area": int(mask_utils.area(rle)),
    }


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Inverse of mask_to_rle: uint8 0/1 [H, W]."""
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})


def cutout_png(rgb: np.ndarray, mask: np.ndarray, crop: bool = False) -> bytes:
    """The object under ``mask`` as an RGBA PNG: the image's pixels, alpha 255 inside, 0 outside.

    ``crop`` trims it to the mask's bounding box (an empty mask keeps the full, transparent
    frame, so the result is never a zero-sized image).
    """
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"image {rgb.shape[:2]} and mask {mask.shape} sizes differ")
    rgba = np.dstack([rgb, (mask > 0).astype(np.uint8) * np.uint8(255)])
    if crop and mask.any():
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        rgba = rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def encode_masks(
    masks: np.ndarray,
    output_format: str,
    rgb: np.ndarray | None = None,
    polygon_tolerance: float = DEFAULT_TOLERANCE,
) -> np.ndarray:
    """[K, H, W] masks -> BYTES [K]: PNG files ("png"), JSON RLE objects ("rle"), JSON polygon
    records ("polygons"), RGBA cut-outs of ``rgb`` ("cutout", "cutout_cropped"); [0] for raw."""
    if output_format == "raw":
        return np.array([], dtype=np.object_)
    if output_format == "png":
        items = [mask_to_png(mask) for mask in masks]
    elif output_format == "rle":
        items = [json.dumps(mask_to_rle(mask)).encode() for mask in masks]
    elif output_format == "polygons":
        items = [json.dumps(polygon_record(mask, polygon_tolerance)).encode() for mask in masks]
    elif output_format in ("cutout", "cutout_cropped"):
        if rgb is None or rgb.size == 0:
            raise ValueError("a cut-out needs the decoded image")
        crop = output_format == "cutout_cropped"
        items = [cutout_png(rgb, mask, crop) for mask in masks]
    else:
        raise ValueError(f"unknown output format {output_format!r}")
    encoded = np.empty(len(items), dtype=np.object_)
    encoded[:] = items
    return encoded


def response_outputs(
    result: DecodedMasks,
    output_format: str,
    rgb: np.ndarray | None = None,
    polygon_tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, np.ndarray]:
    """The mask outputs of sam2_segment / sam2_session for one result in the requested format.

    png/rle/logits leave ``masks`` empty ([0, h, w]) so the K x h x w bytes never travel; rle is
    computed from the logits without any full-size mask; logits sends the unclamped logits
    the masks come from. Cut-outs need the decoded image ``rgb``.
    """
    height, width = result.size
    encoded = np.empty(0, dtype=np.object_)
    if output_format == "rle":
        encoded = np.empty(len(result.logits), dtype=np.object_)
        encoded[:] = [json.dumps(rle_record(rle)).encode() for rle in result.rles()]
    elif output_format != "logits":
        encoded = encode_masks(result.masks, output_format, rgb, polygon_tolerance)
    if output_format in NO_RAW_MASK_FORMATS:
        masks = np.zeros((0, height, width), np.uint8)
    else:
        masks = result.masks
    return {
        "masks": masks,
        "iou_scores": result.iou_scores,
        # "logits": unclamped, what the masks are thresholded from (masks_from_logits)
        "low_res_logits": result.logits if output_format == "logits" else result.low_res_logits,
        "encoded_masks": encoded,
    }


def decode_masks(encoded: np.ndarray, output_format: str) -> np.ndarray:
    """Client side: BYTES [K] of PNGs, JSON RLEs or JSON polygon records -> uint8 masks
    [K, H, W] (polygons rasterised: the masks within the tolerance asked for)."""
    items = [item if isinstance(item, bytes) else str(item).encode() for item in encoded]
    if output_format == "png":
        masks = [png_to_mask(item) for item in items]
    elif output_format == "rle":
        masks = [rle_to_mask(json.loads(item)) for item in items]
    elif output_format == "polygons":
        records = [json.loads(item) for item in items]
        masks = [polygons_to_mask(r["segmentation"], r["holes"], *r["size"]) for r in records]
    else:
        raise ValueError(f"cannot decode output format {output_format!r}")
    return np.stack(masks) if masks else np.zeros((0, 0, 0), np.uint8)
