"""sam2_segment's request logic without Triton: prompts reach the decoder in the model's frame,
masks come back at the image's size, bad input and cancellation stop before the models run."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_triton import contract as c
from sam2_triton.errors import InvalidInputError, RequestCancelled
from sam2_triton.image.request import Limits
from sam2_triton.image.segment import finish_request, prepare_request, segment
from tests.helpers import FakeNetworks as FakeModels
from tests.helpers import png_bytes

HEIGHT, WIDTH = 30, 40


def _inputs(**extra: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "image": png_bytes(HEIGHT, WIDTH, value=90),
        "point_coords": np.array([[10.0, 15.0]], np.float32),
        "point_labels": np.array([1], np.int32),
        **extra,
    }


def test_prompts_reach_the_decoder_in_the_model_frame_and_masks_come_back_at_image_size():
    models = FakeModels()
    outputs = segment(_inputs(), models.encode, models.decode)
    assert models.encoded[0].shape == (1, 3, 1024, 1024)
    (fed,) = models.decoded
    np.testing.assert_allclose(fed["point_coords"][0, 0], [10 / WIDTH * 1024, 15 / HEIGHT * 1024])
    assert set(fed) == {t.name for t in c.DECODER_INPUTS}
    assert outputs["masks"].shape == (3, HEIGHT, WIDTH)  # multimask by default: tokens 1-3
    assert outputs["masks"][0, : HEIGHT // 2].all() and not outputs["masks"][0, -1].any()
    assert not outputs["masks"][1:].any()
    assert outputs["iou_scores"].tolist() == pytest.approx([0.9, 0.5, 0.4])


def test_the_two_halves_are_what_segment_chains():
    """What the ensemble's preprocess and postprocess run gives the single model's answer."""
    models = FakeModels()
    inputs = _inputs(output_format=np.array([b"png"], dtype=object))
    whole = segment(inputs, models.encode, models.decode)
    prepared = prepare_request(inputs)
    decoded = models.decode(prepared.sets.decoder_inputs(models.encode(prepared.image_1024)))
    halves = finish_request(decoded, prepared.orig_hw, prepared.options, prepared.cutout_rgb)
    assert set(whole) == set(halves) == {t.name for t in c.SEGMENT_OUTPUTS}
    for name, value in whole.items():
        np.testing.assert_array_equal(value, halves[name], err_msg=name)


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"point_coords": np.array([[np.nan, 1.0]], np.float32)}, "point_coords"),
        ({"image": np.frombuffer(b"not an image", np.uint8)}, "image"),
        ({"point_labels": np.array([1, 1], np.int32)}, "point_labels"),
    ],
)
def test_bad_input_is_refused_before_the_encoder_runs(bad, words):
    models = FakeModels()
    with pytest.raises(InvalidInputError, match=words):
        segment(_inputs(**bad), models.encode, models.decode)
    assert models.encoded == [] and models.decoded == []


def test_the_limits_apply():
    models = FakeModels()
    with pytest.raises(InvalidInputError, match="limit of 1"):
        coords = np.ones((2, 2), np.float32)
        inputs = _inputs(point_coords=coords, point_labels=np.ones(2, np.int32))
        segment(inputs, models.encode, models.decode, Limits(max_points=1))
    with pytest.raises(InvalidInputError, match="image"):
        segment(_inputs(), models.encode, models.decode, Limits(max_image_pixels=100))


def test_a_cancelled_request_stops_before_the_encoder():
    models = FakeModels()
    with pytest.raises(RequestCancelled):
        segment(_inputs(), models.encode, models.decode, is_cancelled=lambda: True)
    assert models.encoded == []


def test_a_request_cancelled_during_the_encoder_skips_the_decoder():
    models = FakeModels()
    with pytest.raises(RequestCancelled):
        segment(_inputs(), models.encode, models.decode, is_cancelled=lambda: bool(models.encoded))
    assert len(models.encoded) == 1 and models.decoded == []


def test_mask_size_resizes_the_full_size_masks_nearest_neighbour():
    torch = pytest.importorskip("torch")
    models = FakeModels()
    full = segment(_inputs(), models.encode, models.decode)["masks"]
    small = segment(_inputs(mask_size=np.array([7, 11], np.int32)), models.encode, models.decode)
    want = torch.nn.functional.interpolate(
        torch.from_numpy(full)[None].float(), size=(7, 11), mode="nearest-exact"
    )[0].numpy()
    np.testing.assert_array_equal(small["masks"], want)


@pytest.mark.parametrize(
    ("size", "fmt", "words"),
    [
        ([0, 5], "raw", "at least 1 x 1"),
        ([5], "raw", "expected (height, width)"),
        ([5, 5], "cutout", "cannot be combined"),
        ([5, 5], "logits", "cannot be combined"),
        ([5000, 5000], "raw", "exceeds 16777216 pixels"),  # far beyond a 30 x 40 image
    ],
)
def test_bad_mask_size_is_refused_naming_it(size, fmt, words):
    models = FakeModels()
    inputs = _inputs(
        mask_size=np.array(size, np.int32), output_format=np.array([fmt.encode()], dtype=object)
    )
    with pytest.raises(InvalidInputError, match="mask_size") as error:
        segment(inputs, models.encode, models.decode)
    assert words in str(error.value)


def test_logits_format_sends_the_unclamped_logits_the_masks_come_from():
    from sam2_triton.image.masks import masks_from_logits

    class Large(FakeModels):
        def decode(self, inputs):
            out = super().decode(inputs)
            out["low_res_masks"] = out["low_res_masks"] * 100.0  # beyond the +-32 clamp
            return out

    models = Large()
    raw = segment(_inputs(), models.encode, models.decode)
    fmt = np.array([b"logits"], dtype=object)
    logits = segment(_inputs(output_format=fmt), models.encode, models.decode)
    assert logits["masks"].shape == (0, HEIGHT, WIDTH) and logits["encoded_masks"].shape == (0,)
    assert np.abs(logits["low_res_logits"]).max() == 100.0  # not clamped
    assert np.abs(raw["low_res_logits"]).max() == 32.0  # the predictor's clamp, as before
    masks = masks_from_logits(logits["low_res_logits"], (HEIGHT, WIDTH))
    np.testing.assert_array_equal(masks, raw["masks"])
