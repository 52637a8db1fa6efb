"""One image, N prompt sets: the decoder's feeds carry the features once, and a direct decoder
request whose tensors disagree, or exceed the server's caps, is refused naming the input."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_triton import contract as c
from sam2_triton.errors import InvalidInputError
from sam2_triton.image.decoder_feeds import check_decoder_inputs, decoder_feeds, sam_layout
from sam2_triton.repository.options import ServingOptions


def _features() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {t.name: rng.standard_normal(t.dims, dtype=np.float32) for t in c.DECODER_FEATURES}


def test_feeds_carry_one_images_features_once_for_n_prompt_sets():
    coords = np.zeros((5, 2, 2), np.float32)
    feeds = decoder_feeds(_features(), coords, np.ones((5, 2), np.int32))
    assert set(feeds) == {t.name for t in c.DECODER_INPUTS}
    for t in c.DECODER_FEATURES:
        assert feeds[t.name].shape == t.dims  # [1, ...]: not repeated per prompt set
    assert feeds["mask_input"].shape == (5, 1, 256, 256) and not feeds["has_mask_input"].any()
    with_mask = decoder_feeds(
        _features(), coords, np.ones((5, 2), np.int32), np.ones((5, 1, 256, 256), np.float32)
    )
    assert with_mask["has_mask_input"].all()  # a mask given without the flag is used


def _request(rows: int = 3, points: int = 2, **changes: np.ndarray) -> dict[str, np.ndarray]:
    feeds = decoder_feeds(
        _features(), np.zeros((rows, points, 2), np.float32), np.ones((rows, points), np.int32)
    )
    return {**feeds, **changes}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"point_labels": np.ones((3, 4), np.int32)}, "point_labels", "needs [3, 2]"),
        ({"has_mask_input": np.zeros((2, 1), np.float32)}, "has_mask_input", "must match"),
        ({"mask_input": np.zeros((1, 1, 256, 256), np.float32)}, "mask_input", "must match"),
        ({"point_coords": np.full((3, 2, 2), np.nan, np.float32)}, "point_coords", "NaN"),
    ],
)
def test_disagreeing_prompt_tensors_are_refused_naming_them(changes, field, words):
    with pytest.raises(InvalidInputError, match=field) as error:
        check_decoder_inputs(_request(**changes), max_prompts=64, max_points=66)
    assert words in str(error.value)


def test_the_caps_on_prompt_sets_and_points_hold():
    assert check_decoder_inputs(_request(rows=64), max_prompts=64, max_points=66) == 64
    with pytest.raises(InvalidInputError, match="65 prompt sets exceed"):
        check_decoder_inputs(_request(rows=65), max_prompts=64, max_points=66)
    with pytest.raises(InvalidInputError, match="67 points per prompt set exceed"):
        check_decoder_inputs(_request(points=67), max_prompts=64, max_points=66)
    with pytest.raises(InvalidInputError, match="at least one prompt set"):
        check_decoder_inputs(_request(rows=0), max_prompts=64, max_points=66)


@pytest.mark.parametrize("name", ["decoder_max_prompts", "automatic_decoder_chunk"])
def test_serving_options_refuse_a_zero_decoder_call_size(name):
    with pytest.raises(ValueError, match=name):
        ServingOptions(**{name: 0})


def test_sam_layout_inverts_the_encoders_decoder_layout():
    torch = pytest.importorskip("torch")
    from sam2_triton.export.decoder_graph import decoder_layout

    rng = torch.Generator().manual_seed(0)
    maps = {
        "image_embed": torch.randn(2, 256, 64, 64, generator=rng),
        "high_res_feats_0": torch.randn(2, 32, 256, 256, generator=rng),
        "high_res_feats_1": torch.randn(2, 64, 128, 128, generator=rng),
    }
    rows = decoder_layout(maps["image_embed"], maps["high_res_feats_0"], maps["high_res_feats_1"])
    names = [t.name for t in c.ENCODER_OUTPUTS]
    for name, tensor, t in zip(names, rows, c.ENCODER_OUTPUTS, strict=True):
        assert tuple(tensor.shape[1:]) == t.dims, name
    back = sam_layout({n: r.numpy() for n, r in zip(names, rows, strict=True)})
    for name, value in maps.items():
        np.testing.assert_array_equal(back[name], value.numpy(), err_msg=name)
