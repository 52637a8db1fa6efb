"""PNG and COCO RLE mask encodings round-trip exactly and carry COCO's bbox and area."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from sam2_triton.image.encodings import (
    cutout_png,
    decode_masks,
    encode_masks,
    mask_to_rle,
    response_outputs,
)
from sam2_triton.image.masks import DecodedMasks, postprocess_masks


def _masks(k: int = 3, height: int = 37, width: int = 53) -> np.ndarray:
    rng = np.random.default_rng(0)
    masks = np.zeros((k, height, width), np.uint8)
    for i in range(k):
        masks[i, 5 + i : 20 + i, 7 : 30 + 2 * i] = 1
        masks[i] |= (rng.random((height, width)) > 0.97).astype(np.uint8)
    return masks


@pytest.mark.parametrize("output_format", ["png", "rle"])
def test_encoded_masks_decode_to_exactly_the_raw_masks(output_format):
    masks = _masks()
    encoded = encode_masks(masks, output_format)
    assert encoded.dtype == object and encoded.shape == (3,)
    np.testing.assert_array_equal(decode_masks(encoded, output_format), masks)


def test_rle_is_coco_rle_with_bbox_and_area():
    mask = np.zeros((20, 30), np.uint8)
    mask[4:10, 6:16] = 1  # rows 4..9, cols 6..15
    rle = mask_to_rle(mask)
    assert rle["size"] == [20, 30]
    assert rle["area"] == 60
    assert rle["bbox"] == [6.0, 4.0, 10.0, 6.0]  # COCO [x, y, width, height]
    assert isinstance(rle["counts"], str)
    json.dumps(rle)  # JSON-serialisable as sent


def _decoded() -> DecodedMasks:
    """Three masks of a 37 x 53 image from logits: blobs of different sizes, noise elsewhere."""
    rng = np.random.default_rng(3)
    logits = rng.normal(-1.0, 0.5, (3, 256, 256)).astype(np.float32)
    for k in range(3):
        logits[k, 20 * k : 100 + 40 * k, 30 : 90 + 50 * k] = 2.0
    return postprocess_masks(
        np.concatenate([logits[:1], logits]), np.ones(4, np.float32), (37, 53), True
    )


def test_encoded_formats_do_not_send_the_raw_masks():
    result = _decoded()
    masks = result.masks
    assert masks.shape == (3, 37, 53) and masks.any()
    raw = response_outputs(result, "raw")
    assert raw["masks"].shape == masks.shape and raw["encoded_masks"].shape == (0,)
    rle = response_outputs(result, "rle")
    assert rle["masks"].shape == (0, 37, 53) and rle["encoded_masks"].shape == (3,)
    assert sum(len(item) for item in rle["encoded_masks"]) < masks.nbytes / 5
    # the RLE, computed without a full-size mask, is the raw mask exactly
    np.testing.assert_array_equal(decode_masks(rle["encoded_masks"], "rle"), raw["masks"])


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="bmp"):
        encode_masks(_masks(), "bmp")


@pytest.mark.parametrize("crop", [False, True])
def test_cutout_is_the_image_with_the_mask_as_alpha(crop):
    rgb = np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    mask = np.zeros((37, 53), np.uint8)
    mask[5:20, 7:30] = 1
    with Image.open(io.BytesIO(cutout_png(rgb, mask, crop))) as image:
        assert image.mode == "RGBA"
        rgba = np.asarray(image)
    if crop:
        assert rgba.shape == (15, 23, 4)
        np.testing.assert_array_equal(rgba[..., :3], rgb[5:20, 7:30])
        assert (rgba[..., 3] == 255).all()
    else:
        assert rgba.shape == (37, 53, 4)
        np.testing.assert_array_equal(rgba[..., :3], rgb)
        np.testing.assert_array_equal(rgba[..., 3], mask * 255)


def test_cutout_of_an_empty_mask_is_fully_transparent_not_empty():
    rgb = np.zeros((4, 6, 3), np.uint8)
    with Image.open(io.BytesIO(cutout_png(rgb, np.zeros((4, 6)), crop=True))) as image:
        assert image.size == (6, 4) and not np.asarray(image)[..., 3].any()


def test_cutout_formats_keep_the_raw_masks_and_need_the_image():
    result = _decoded()
    masks = result.masks
    rgb = np.zeros((37, 53, 3), np.uint8)
    out = response_outputs(result, "cutout_cropped", rgb)
    assert out["masks"].shape == masks.shape and out["encoded_masks"].shape == (3,)
    with pytest.raises(ValueError, match="decoded image"):
        response_outputs(result, "cutout")
