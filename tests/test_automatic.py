"""The numpy port of SAM2AutomaticMaskGenerator: each helper against sam2.utils.amg /
torchvision, and the whole generator in-process against the reference on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sam2.utils import amg as ref
from torchvision.ops import nms as torch_nms

from sam2_triton.image import automatic as A
from sam2_triton.image import boxes as B
from tests.helpers import PARAMS, match_annotations


@pytest.mark.parametrize("n", [1, 4, 32])
def test_point_grid(n):
    np.testing.assert_array_equal(A.build_point_grid(n), ref.build_point_grid(n))


@pytest.mark.parametrize(("size", "layers"), [((400, 600), 0), ((400, 600), 2), ((333, 1000), 1)])
def test_crop_boxes(size, layers):
    assert A.generate_crop_boxes(size, layers, 512 / 1500) == ref.generate_crop_boxes(
        size, layers, 512 / 1500
    )


def test_mask_to_box_and_stability_match_the_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 40, 50)).astype(np.float32) * 3
    logits[2] = -5  # empty mask
    logits[3, :, :] = -5
    logits[3, 10:12, 7] = 5  # a sliver
    masks = logits > 0
    want_boxes = ref.batched_mask_to_box(torch.as_tensor(masks)).numpy()
    want_stability = ref.calculate_stability_score(torch.as_tensor(logits), 0.0, 1.0).numpy()
    for k in range(len(masks)):
        np.testing.assert_array_equal(B.mask_to_box(masks[k]), want_boxes[k])
        got = A.stability_score(logits[k], 0.0, 1.0)
        np.testing.assert_equal(np.float32(got), want_stability[k])


def test_nms_matches_torchvision():
    rng = np.random.default_rng(1)
    xy = rng.integers(0, 80, (200, 2))
    wh = rng.integers(0, 30, (200, 2))  # includes zero-area boxes
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.choice(np.linspace(0, 1, 50), 200).astype(np.float32)  # with ties
    for threshold in (0.3, 0.7):
        want = torch_nms(torch.as_tensor(boxes), torch.as_tensor(scores), threshold).numpy()
        np.testing.assert_array_equal(B.nms(boxes, scores, threshold), want)


def test_box_near_crop_edge_matches_the_reference():
    crop, orig = [100, 0, 400, 300], [0, 0, 600, 300]
    boxes = np.array([[5, 5, 50, 50], [0, 10, 40, 40], [250, 250, 299, 299], [280, 0, 299, 20]])
    want = ref.is_box_near_crop_edge(torch.as_tensor(boxes), crop, orig).numpy()
    assert [A.is_box_near_crop_edge(b, crop, orig) for b in boxes] == want.tolist()


def test_every_parameter_is_an_optional_input_of_its_type():
    from sam2_triton import contract as c

    types = {int: "INT32", float: "FP32", bool: "BOOL"}
    declared = {t.name: (t.dtype, t.dims, t.optional) for t in c.AUTOMATIC_PARAMETERS}
    defaults = A.AutomaticParams()
    assert list(declared) == A.AutomaticParams.names()
    for name, (dtype, dims, optional) in declared.items():
        want = types[type(getattr(defaults, name))]
        if name == "crop_overlap_ratio":  # the crops truncate ratio * side: float32 cuts short
            want = "FP64"
        assert (dtype, dims, optional) == (want, (1,), True)


def test_parameters_from_request_tensors():
    params = A.AutomaticParams.from_inputs(
        {"points_per_side": np.array([16], np.int32), "multimask_output": np.array([False])}
    )
    assert params.points_per_side == 16 and params.multimask_output is False
    assert params.pred_iou_thresh == 0.8  # default kept
    with pytest.raises(A.InvalidInputError, match="crop_n_layers: 9"):
        A.AutomaticParams.from_inputs({"crop_n_layers": np.array([9], np.int32)})


def test_out_of_range_parameters_name_themselves():
    with pytest.raises(A.InvalidInputError, match="points_per_side"):
        A.AutomaticParams(points_per_side=0).validate()
    with pytest.raises(A.InvalidInputError, match="box_nms_thresh"):
        A.AutomaticParams(box_nms_thresh=float("nan")).validate()
    with pytest.raises(A.InvalidInputError, match="min_mask_region_area"):
        A.AutomaticParams(min_mask_region_area=-1).validate()


# --- whole generator, in-process ------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_networks(tiny_export):
    from sam2_triton import contract as c
    from sam2_triton.runtime.runners import create_session

    encoder = create_session(tiny_export.export_dir / c.ENCODER_FILE)
    decoder = create_session(tiny_export.export_dir / c.DECODER_FILE)
    names = [t.name for t in c.ENCODER_OUTPUTS]

    def encode(image):
        return dict(zip(names, encoder.run(None, {"image": image}), strict=True))

    def decode(inputs):
        low, iou = decoder.run(None, dict(inputs))
        return {"low_res_masks": low, "iou_predictions": iou}

    return encode, decode


def test_generator_matches_sam2_automatic_mask_generator(automatic_reference, onnx_networks):
    import skimage.data

    rgb = np.ascontiguousarray(skimage.data.coffee()[::2, ::2])  # 200 x 300
    reference = automatic_reference.generator(output_mode="coco_rle", **PARAMS)
    want = reference.generate(rgb)
    got = A.generate(rgb, *onnx_networks, A.AutomaticParams(**PARAMS))
    assert len(want) > 3  # the thresholds leave something to compare
    assert min(match_annotations(got, want)) >= 0.99
    for ours, theirs in zip(got, want, strict=True):
        assert set(ours) == set(theirs)
        assert ours["point_coords"][0] == pytest.approx(theirs["point_coords"][0])
        assert ours["bbox"] == pytest.approx(theirs["bbox"], abs=1)
        assert ours["area"] == pytest.approx(theirs["area"], rel=0.01)
        assert ours["predicted_iou"] == pytest.approx(theirs["predicted_iou"], abs=1e-3)
        assert ours["stability_score"] == pytest.approx(theirs["stability_score"], abs=1e-3)
        assert ours["crop_box"] == theirs["crop_box"]


def test_a_cancelled_request_stops_within_one_batch_of_points():
    from sam2_triton.errors import RequestCancelled

    decoded: list[int] = []
    checks = iter([False, True])

    def encode(image):
        return {
            "image_embed": np.zeros((1, 4096, 256), np.float32),
            "high_res_feats_0": np.zeros((1, 16384, 128), np.float32),
            "high_res_feats_1": np.zeros((1, 4096, 256), np.float32),
        }

    def decode(inputs):
        n = len(inputs["point_coords"])
        decoded.append(n)
        return {
            "low_res_masks": np.full((n, 4, 256, 256), -1.0, np.float32),
            "iou_predictions": np.zeros((n, 4), np.float32),
        }

    params = A.AutomaticParams(points_per_side=4, points_per_batch=8)
    with pytest.raises(RequestCancelled):
        A.generate(np.zeros((20, 30, 3), np.uint8), encode, decode, params, 8, lambda: next(checks))
    assert decoded == [8]  # the first batch of 8 of 16 points, then the stop


def test_a_requests_grid_points_count_every_crop_layer():
    assert A.grid_points(A.AutomaticParams()) == 32 * 32  # Meta's default
    layered = A.AutomaticParams(
        points_per_side=32, crop_n_layers=2, crop_n_points_downscale_factor=2
    )
    assert A.grid_points(layered) == 32 * 32 + 4 * 16 * 16 + 16 * 8 * 8
    A.check_grid_points(A.AutomaticParams(points_per_side=64), 4096)
    with pytest.raises(A.InvalidInputError, match="over this server's limit of 4096"):
        A.check_grid_points(A.AutomaticParams(points_per_side=65), 4096)
