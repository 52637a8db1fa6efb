"""image/transforms.py and image/masks.py against the sam2 reference transforms (torch) they
mirror."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.utils.transforms import SAM2Transforms

from sam2_triton import errors
from sam2_triton.image.masks import (
    STABILITY_DELTA,
    STABILITY_THRESHOLD,
    postprocess_masks,
    select_masks,
    upsample_logits,
)
from sam2_triton.image.request import parse_output_format
from sam2_triton.image.transforms import (
    decode_image,
    prepare_mask_input,
    prepare_prompts,
    preprocess_image,
    transform_coords,
)

RNG = np.random.default_rng(0)


def _encode(array: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def transforms() -> SAM2Transforms:
    return SAM2Transforms(resolution=1024, mask_threshold=0.0)


@pytest.mark.parametrize("shape", [(512, 512), (300, 451), (37, 1500), (1100, 700)])
def test_preprocess_image_matches_sam2_transforms(transforms, shape):
    rgb = RNG.integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = transforms(rgb).numpy()
    ours = preprocess_image(rgb)
    assert ours.shape == (1, 3, 1024, 1024) and ours.dtype == np.float32
    np.testing.assert_allclose(ours[0], expected, atol=1e-5)


@pytest.mark.parametrize("orig_hw", [(512, 512), (300, 451), (37, 1500), (1100, 700), (100, 120)])
def test_upsample_logits_matches_postprocess_masks(transforms, orig_hw):
    low = torch.randn(3, 256, 256, generator=torch.Generator().manual_seed(1)) * 4
    expected = transforms.postprocess_masks(low[None], orig_hw)[0].numpy()
    ours = upsample_logits(low.numpy(), orig_hw)
    assert ours.shape == (3, *orig_hw)
    np.testing.assert_allclose(ours, expected, atol=2e-4)
    assert np.mean((ours > 0) == (expected > 0)) > 0.9999


def test_transform_coords_matches_sam2(transforms):
    coords = np.array([[10.5, 20.0], [450.0, 299.0]], dtype=np.float32)
    expected = transforms.transform_coords(torch.tensor(coords), normalize=True, orig_hw=(300, 451))
    np.testing.assert_array_equal(transform_coords(coords, (300, 451)), expected.numpy())


def test_box_becomes_two_points_before_clicks():
    prompts = prepare_prompts(
        np.array([[5, 6]], np.float32),
        np.array([0], np.int32),
        np.array([1, 2, 30, 40]),
        (100, 200),
    )
    assert prompts.labels.tolist() == [[2, 3, 0]]
    np.testing.assert_allclose(
        prompts.coords[0],
        [
            [1 / 200 * 1024, 2 / 100 * 1024],
            [30 / 200 * 1024, 40 / 100 * 1024],
            [5 / 200 * 1024, 6 / 100 * 1024],
        ],
        rtol=1e-6,
    )
    assert prompts.coords.dtype == np.float32 and prompts.labels.dtype == np.int32


@pytest.mark.parametrize(
    ("coords", "labels", "box", "field", "words"),
    [
        (None, None, None, "point_coords", "no prompt"),
        (np.zeros((0, 2)), np.zeros(0), None, "point_coords", "no prompt"),
        (np.array([[np.nan, 1]]), np.array([1]), None, "point_coords", "NaN"),
        (np.array([[1, 1], [2, 2]]), np.array([1]), None, "point_labels", "must match"),
        (np.array([[1, 1]]), np.array([5]), None, "point_labels", "must be 1"),
        (np.array([[500, 1]]), np.array([1]), None, "point_coords", "outside"),
        (np.array([[1, 1, 1]]), np.array([1]), None, "point_coords", "[N, 2]"),
        (None, None, np.array([10, 10, 5, 20]), "box", "inverted"),
        (None, None, np.array([0, 0, 10]), "box", "4 values"),
        (np.array([[1, 1]]), None, None, "point_labels", "missing"),
        (np.ones((65, 2)), np.ones(65), None, "point_coords", "limit of 64"),
    ],
)
def test_bad_prompts_name_field_and_problem(coords, labels, box, field, words):
    with pytest.raises(errors.InvalidInputError) as info:
        prepare_prompts(coords, labels, box, (100, 200))
    assert info.value.field == field
    assert words in str(info.value)


def test_select_masks_matches_dynamic_multimask_via_stability():
    decoder = MaskDecoder(
        transformer_dim=32,
        transformer=torch.nn.Identity(),
        dynamic_multimask_via_stability=True,
        dynamic_multimask_stability_delta=STABILITY_DELTA,
        dynamic_multimask_stability_thresh=STABILITY_THRESHOLD,
    )
    gen = torch.Generator().manual_seed(3)
    for scale in (0.05, 0.5, 20.0):  # mostly unstable ... mostly stable token 0
        logits = torch.randn(1, 4, 256, 256, generator=gen) * scale
        logits[:, 0] += 3.0 if scale == 20.0 else 0.0
        iou = torch.rand(1, 4, generator=gen)
        ref_masks, ref_iou = decoder._dynamic_multimask_via_stability(logits, iou)
        masks, scores = select_masks(logits[0].numpy(), iou[0].numpy(), multimask_output=False)
        np.testing.assert_array_equal(masks, ref_masks[0].numpy())
        np.testing.assert_array_equal(scores, ref_iou[0].numpy())
    masks, scores = select_masks(logits[0].numpy(), iou[0].numpy(), multimask_output=True)
    np.testing.assert_array_equal(masks, logits[0, 1:].numpy())


def test_postprocess_masks_thresholds_and_clamps():
    low = np.zeros((4, 256, 256), np.float32)
    low[1, :128] = 50.0
    low[1, 128:] = -50.0
    result = postprocess_masks(low, np.array([0.1, 0.9, 0.2, 0.3], np.float32), (40, 60), True)
    assert result.masks.shape == (3, 40, 60) and result.masks.dtype == np.uint8
    assert result.masks[0, :19].all() and not result.masks[0, 21:].any()
    assert result.low_res_logits.max() == 32.0 and result.low_res_logits.min() == -32.0
    np.testing.assert_allclose(result.iou_scores, [0.9, 0.2, 0.3])


def test_decode_image_modes_become_rgb():
    rgb = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(_encode(rgb)), rgb)
    grey = decode_image(_encode(rgb[:, :, 0]))
    assert grey.shape == (20, 30, 3) and (grey[:, :, 0] == rgb[:, :, 0]).all()
    rgba = np.dstack([rgb, np.zeros((20, 30), np.uint8)])
    assert (decode_image(_encode(rgba)) == 255).all()  # transparent -> white background
    sixteen = Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    buffer = io.BytesIO()
    sixteen.save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue())
    assert decoded.dtype == np.uint8 and decoded.max() > 200  # scaled, not clipped at 255
    cmyk = Image.fromarray(rgb).convert("CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, format="JPEG")
    assert decode_image(buffer.getvalue()).shape == (20, 30, 3)


def test_decode_image_applies_exif_rotation():
    rgb = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    assert decode_image(buffer.getvalue()).shape == (30, 20, 3)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"this is not an image", "not a recognised image file"),
        (_encode(np.zeros((50, 50, 3), np.uint8), "JPEG")[:200], "cannot be decoded"),
    ],
)
def test_decode_image_rejects_bad_bytes(data, words):
    with pytest.raises(errors.InvalidInputError, match=words) as info:
        decode_image(data)
    assert info.value.field == "image"


def test_decode_image_refuses_pixel_bombs_before_decoding():
    data = _encode(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(errors.InvalidInputError, match="exceeds the limit of 9999 pixels"):
        decode_image(data, max_pixels=9999)


# --- request options: mask_input, multimask_output, output_format ------------------------------


def test_mask_input_becomes_the_decoder_mask_with_its_flag_set():
    mask, flag = prepare_mask_input(None)
    assert mask.shape == (1, 1, 256, 256) and not mask.any() and flag.tolist() == [[0.0]]
    given = np.random.default_rng(0).normal(size=(1, 256, 256)).astype(np.float32)
    mask, flag = prepare_mask_input(given)
    np.testing.assert_array_equal(mask[0], given)
    assert flag.tolist() == [[1.0]]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (np.zeros((1, 128, 128), np.float32), "expected shape [1, 256, 256]"),
        (np.zeros((3, 256, 256), np.float32), "got [3, 256, 256]"),
        (np.full((1, 256, 256), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_mask_input_names_the_problem(value, words):
    with pytest.raises(errors.InvalidInputError, match="mask_input") as info:
        prepare_mask_input(value)
    assert words in str(info.value)


def test_output_format_defaults_to_raw_and_refuses_unknown_names():
    assert parse_output_format(None) == "raw"
    assert parse_output_format(np.array([b"rle"], dtype=object)) == "rle"
    with pytest.raises(errors.InvalidInputError, match="output_format: unknown format 'jpeg'"):
        parse_output_format(np.array([b"jpeg"], dtype=object))
