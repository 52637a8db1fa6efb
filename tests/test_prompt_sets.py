"""B prompt sets in one request (the ``*_batch`` inputs), without Triton: one decoder call with
B rows in the model frame, each set's masks in turn in the response, and every mistake named."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_triton.errors import InvalidInputError
from sam2_triton.image import request as request_module
from sam2_triton.image.embedding_cache import EmbeddingCache
from sam2_triton.image.request import Limits
from sam2_triton.image.segment import segment
from sam2_triton.image.session import SessionService
from tests.helpers import FakeNetworks, png_bytes

HEIGHT, WIDTH = 30, 40


class RowNetworks(FakeNetworks):
    """A decoder whose row b says which set it decoded: IoU scores of 0.1 * (b + 1) and, for
    token 1, a mask covering columns left of the set's first point."""

    def decode(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = super().decode(inputs)
        rows = len(inputs["point_coords"])
        outputs["iou_predictions"] = np.repeat(
            0.1 * np.arange(1, rows + 1, dtype=np.float32)[:, None], 4, axis=1
        )
        logits = np.full((rows, 4, 256, 256), -1.0, np.float32)
        for b in range(rows):
            logits[b, 1, :, : int(inputs["point_coords"][b, 0, 0] / 4)] = 1.0
        outputs["low_res_masks"] = logits
        return outputs


def _boxes() -> np.ndarray:
    return np.array([[0, 0, 10, 10], [20, 5, 40, 30], [5, 5, 30, 20]], np.float32)


def _inputs(**prompts: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": png_bytes(HEIGHT, WIDTH, value=90), **prompts}


def test_boxes_are_decoded_in_one_call_and_answered_set_after_set():
    nets = RowNetworks()
    outputs = segment(_inputs(box_batch=_boxes()), nets.encode, nets.decode)
    (fed,) = nets.decoded  # one decoder call for the three boxes
    assert fed["point_coords"].shape == (3, 2, 2)  # two corners each (the graph pads)
    scale = np.array([1024 / WIDTH, 1024 / HEIGHT], np.float32)
    np.testing.assert_allclose(fed["point_coords"][:, :2], _boxes().reshape(3, 2, 2) * scale)
    assert fed["point_labels"][:, :2].tolist() == [[2, 3]] * 3
    assert fed["image_embed"].shape == (1, 4096, 256)  # the features once, for every set
    assert outputs["masks"].shape == (9, HEIGHT, WIDTH)  # 3 sets x 3 multimask candidates
    assert outputs["iou_scores"] == pytest.approx(np.repeat([0.1, 0.2, 0.3], 3))
    # set b's first candidate is token 1 of row b: columns left of its box's x0
    left_columns = [int(mask.any(axis=0).sum()) for mask in outputs["masks"][::3]]
    assert left_columns == [0, 20, 5]


def test_point_sets_may_pad_with_label_minus_one_and_carry_mask_inputs():
    nets = RowNetworks()
    coords = np.array([[[10, 10], [0, 0]], [[30, 20], [35, 25]]], np.float32)
    labels = np.array([[1, -1], [1, 0]], np.int32)
    masks = np.stack([np.zeros((1, 256, 256)), np.ones((1, 256, 256))]).astype(np.float32)
    outputs = segment(
        _inputs(
            point_coords_batch=coords,
            point_labels_batch=labels,
            mask_input_batch=masks,
            multimask_output=np.array([False]),
            output_format=np.array([b"rle"], dtype=object),
        ),
        nets.encode,
        nets.decode,
    )
    (fed,) = nets.decoded
    assert fed["point_labels"][:, :2].tolist() == labels.tolist()
    np.testing.assert_array_equal(fed["mask_input"], masks)
    assert fed["has_mask_input"].tolist() == [[1.0], [1.0]]
    assert len(outputs["encoded_masks"]) == 2 and outputs["masks"].shape[0] == 0


def test_a_session_clicks_b_sets_on_a_cached_image_with_one_decoder_run(tmp_path):
    nets = RowNetworks()
    service = SessionService(EmbeddingCache(tmp_path, 1 << 30), nets.encode, nets.decode)
    image_id = service.handle({"image": png_bytes(HEIGHT, WIDTH)})["image_id"]
    outputs = service.handle({"image_id": image_id, "box_batch": _boxes()[:2]})
    assert len(nets.encoded) == 1 and len(nets.decoded) == 1
    assert outputs["masks"].shape == (6, HEIGHT, WIDTH)


@pytest.mark.parametrize(
    ("prompts", "field", "words"),
    [
        (
            {"box_batch": _boxes(), "point_coords": np.ones((1, 2), np.float32)},
            "point_coords",
            "cannot be combined with box_batch",
        ),
        (
            {
                "box_batch": _boxes(),
                "point_coords_batch": np.ones((2, 1, 2), np.float32),
                "point_labels_batch": np.ones((2, 1), np.int32),
            },
            "box_batch",
            "has 3 prompt sets but point_coords_batch has 2",
        ),
        ({"box_batch": np.zeros((0, 4), np.float32)}, "box_batch", "send 1 to 4"),
        ({"box_batch": np.tile(_boxes(), (2, 1))}, "box_batch", "send 1 to 4"),
        (
            {"box_batch": np.array([[0, 0, 5, 5], [0, 0, 50, 5]], np.float32)},
            "box_batch",
            "prompt set 1: (50, 5) lies outside the 40x30 image",
        ),
        (
            {
                "point_coords_batch": np.ones((1, 2, 2), np.float32),
                "point_labels_batch": np.array([[1, 2]], np.int32),
            },
            "point_labels_batch",
            "prompt set 0: must be 1 (foreground) or 0 (background), or -1 (padding)",
        ),
        (
            {
                "box_batch": _boxes()[:1],
                "mask_input_batch": np.full((1, 1, 256, 256), np.nan, np.float32),
            },
            "mask_input_batch",
            "NaN",
        ),
        ({"box_batch": np.zeros((4,), np.float32)}, "box_batch", "expected 2 axes"),
        (
            {
                "point_coords_batch": np.ones((2, 1, 2), np.float32),
                "point_labels_batch": np.array([[1], [-1]], np.int32),
            },
            "point_coords_batch",
            "prompt set 1: no prompt given",
        ),
    ],
)
def test_batch_mistakes_are_named(prompts, field, words):
    nets = RowNetworks()
    with pytest.raises(InvalidInputError) as error:
        segment(_inputs(**prompts), nets.encode, nets.decode, Limits(max_prompt_sets=4))
    assert error.value.field == field
    assert words in error.value.problem
    assert not nets.encoded and not nets.decoded


def test_the_single_set_inputs_keep_refusing_the_padding_label():
    with pytest.raises(InvalidInputError, match="point_labels: must be 1"):
        segment(
            _inputs(point_coords=np.ones((1, 2), np.float32), point_labels=np.array([-1])),
            *(lambda n: (n.encode, n.decode))(RowNetworks()),
        )


def test_a_response_of_raw_masks_too_big_asks_for_an_encoded_format(monkeypatch):
    monkeypatch.setattr(request_module, "MAX_RAW_MASK_BYTES", 3 * 3 * HEIGHT * WIDTH - 1)
    nets = RowNetworks()
    with pytest.raises(InvalidInputError, match="output_format: 'raw' would return") as error:
        segment(_inputs(box_batch=_boxes()), nets.encode, nets.decode)
    assert "'rle'" in str(error.value) and not nets.encoded
    rle = _inputs(box_batch=_boxes(), output_format=np.array([b"rle"], dtype=object))
    assert len(segment(rle, nets.encode, nets.decode)["encoded_masks"]) == 9
    single = _inputs(box_batch=_boxes(), multimask_output=np.array([False]))
    assert segment(single, nets.encode, nets.decode)["masks"].shape == (3, HEIGHT, WIDTH)


def test_a_set_of_padding_only_keeps_its_box_and_the_sets_their_shape():
    nets = RowNetworks()
    prompts = {
        "box_batch": _boxes()[:2],
        "point_coords_batch": np.array([[[5, 5]], [[0, 0]]], np.float32),
        "point_labels_batch": np.array([[1], [-1]], np.int32),
    }
    segment(_inputs(**prompts), nets.encode, nets.decode)
    (fed,) = nets.decoded
    assert fed["point_labels"].tolist() == [[2, 3, 1], [2, 3, -1]]
