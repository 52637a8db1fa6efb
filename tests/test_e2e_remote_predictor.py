"""SAM2RemotePredictor against Meta's SAM2ImagePredictor on the same weights: the same calls give
the same shapes and dtypes, masks agreeing on >= 99.9 % of pixels, IoU and logits within 1e-3."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sam2_triton import contract as c
from sam2_triton.clients import image_predictor
from sam2_triton.clients.image_predictor import SAM2RemotePredictor
from tests.conftest import TEST_CACHE_IMAGES, model_runs
from tests.helpers import image_bytes, unique_png

pytestmark = pytest.mark.e2e


def _rgb(name: str) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(image_bytes(name))).convert("RGB"))


def _assert_same(got, want, logits: bool = False) -> None:
    """got/want: (masks, iou_predictions, low_res_masks) of the two predictors."""
    for name, g, w in zip(("masks", "iou", "low_res"), got, want, strict=True):
        assert (g.shape, g.dtype) == (w.shape, w.dtype), name
    masks, want_masks = got[0], want[0]
    if logits:
        np.testing.assert_allclose(masks, want_masks, atol=1e-3)
    else:
        assert set(np.unique(masks)) <= {0.0, 1.0}
        agreement = np.mean(masks == want_masks)
        assert agreement >= 0.999, f"only {agreement:.5f} of mask pixels agree"
    np.testing.assert_allclose(got[1], want[1], atol=1e-3)
    np.testing.assert_allclose(got[2], want[2], atol=1e-3)


def _remote(triton, protocol: str, **kwargs) -> SAM2RemotePredictor:
    url = triton.http_url if protocol == "http" else triton.grpc_url
    return SAM2RemotePredictor(url, protocol=protocol, **kwargs)


def _calls(width: int, height: int) -> dict[str, dict]:
    point = np.array([[0.5 * width, 0.4 * height]], np.float32)
    points = np.array([[0.3 * width, 0.3 * height], [0.6 * width, 0.5 * height]], np.float32)
    box = np.array([0.2 * width, 0.2 * height, 0.7 * width, 0.8 * height], np.float32)
    return {
        "point": dict(point_coords=point, point_labels=np.array([1])),
        "points_single": dict(
            point_coords=points, point_labels=np.array([1, 0]), multimask_output=False
        ),
        "box": dict(box=box, multimask_output=False),
        "box_and_point": dict(box=box, point_coords=point, point_labels=np.array([1])),
        "logits": dict(point_coords=points, point_labels=np.array([1, 1]), return_logits=True),
        "normalized": dict(
            point_coords=np.array([[0.5, 0.4]]),
            point_labels=np.array([1]),
            box=np.array([0.2, 0.2, 0.7, 0.8]),
            normalize_coords=False,
        ),
        "batched_boxes": dict(box=np.stack([box, box / 2]), multimask_output=False),
        "batched_points": dict(
            point_coords=np.stack([points, points[::-1]]),
            point_labels=np.array([[1, 0], [1, 1]]),
        ),
    }


@pytest.mark.parametrize(
    "protocol, image, output_format",
    [
        ("grpc", "coffee.jpg", "png"),
        ("http", "astronaut.png", "rle"),
        ("grpc", "coffee.jpg", "raw"),
    ],
)
def test_same_calls_give_what_sam2_image_predictor_gives(
    triton, reference, protocol, image, output_format
):
    rgb = _rgb(image)
    height, width = rgb.shape[:2]
    with _remote(triton, protocol, output_format=output_format) as remote:
        remote.set_image(rgb)
        for name, kwargs in _calls(width, height).items():
            got = remote.predict(**kwargs)
            want = reference.predict(image_bytes(image), **kwargs)
            try:
                _assert_same(got, want, logits=kwargs.get("return_logits", False))
            except AssertionError as error:
                raise AssertionError(f"{name}: {error}") from None


def test_batched_output_has_a_leading_batch_axis(triton):
    rgb = _rgb("coffee.jpg")
    boxes = np.array([[100, 80, 400, 300], [50, 50, 200, 200]], np.float32)
    with _remote(triton, "grpc") as remote:
        remote.set_image(rgb)
        masks, scores, low_res = remote.predict(box=boxes, multimask_output=False)
        single = remote.predict(box=boxes[1], multimask_output=False)
    assert (masks.shape, scores.shape, low_res.shape) == (
        (2, 1, 400, 600),
        (2, 1),
        (2, 1, 256, 256),
    )
    np.testing.assert_array_equal(masks[1], single[0])  # row b is the prompt set b alone


def test_batched_prompts_are_one_request_per_max_sets(triton):
    rgb = _rgb("coffee.jpg")
    boxes = np.array([[100, 80, 400, 300], [50, 50, 200, 200], [300, 100, 580, 390]], np.float32)
    with _remote(triton, "grpc") as remote, _remote(triton, "http") as small:
        small.max_sets_per_request = 2
        remote.set_image(rgb)
        small.set_image(rgb)
        before = model_runs(triton, c.SESSION)
        whole = remote.predict(box=boxes)
        assert model_runs(triton, c.SESSION) == before + 1  # three boxes, one request
        parts = small.predict(box=boxes)
        assert model_runs(triton, c.SESSION) == before + 3  # 2 + 1 sets
    for w, p in zip(whole, parts, strict=True):
        assert w.shape == p.shape == (3, *w.shape[1:])
        np.testing.assert_allclose(w, p, atol=1e-4)


def test_raw_masks_are_split_into_requests_the_server_accepts(triton, monkeypatch):

    rgb = _rgb("coffee.jpg")
    boxes = np.array([[100, 80, 400, 300], [50, 50, 200, 200], [300, 100, 580, 390]], np.float32)
    # a cap of two sets' masks per response, as 64 sets of a 12 MP photo would pass the real one
    monkeypatch.setattr(image_predictor, "MAX_RAW_MASK_BYTES", 2 * 3 * 400 * 600)
    with _remote(triton, "grpc", output_format="raw") as remote:
        remote.set_image(rgb)
        before = model_runs(triton, c.SESSION)
        masks, _, _ = remote.predict(box=boxes)
        assert model_runs(triton, c.SESSION) == before + 2
        with pytest.raises(ValueError, match="batch size of 0"):
            remote.predict(box=np.zeros((0, 4), np.float32))
    assert masks.shape == (3, 3, 400, 600)


def test_set_image_batch_and_predict_batch_match_sam2_image_predictor(triton, reference_predictor):
    images = [_rgb("coffee.jpg"), _rgb("astronaut.png")]
    calls = [
        dict(
            point_coords_batch=[np.array([[300, 200]]), np.array([[250, 200], [300, 350]])],
            point_labels_batch=[np.array([1]), np.array([1, 0])],
        ),
        dict(box_batch=[np.array([100, 80, 400, 300]), np.array([[50, 50, 300, 300]] * 2)]),
        dict(
            point_coords_batch=[np.array([[0.5, 0.5]]), np.array([[0.4, 0.3]])],
            point_labels_batch=[np.array([1]), np.array([1])],
            normalize_coords=False,
            multimask_output=False,
            return_logits=True,
        ),
    ]
    reference_predictor.set_image_batch(images)
    try:
        with _remote(triton, "grpc") as remote:
            remote.set_image_batch(images)
            assert remote._is_batch and remote._orig_hw == reference_predictor._orig_hw
            for call in calls:
                got = remote.predict_batch(**call)
                want = reference_predictor.predict_batch(**call)
                for g, w in zip(zip(*got, strict=True), zip(*want, strict=True), strict=True):
                    _assert_same(g, w, logits=call.get("return_logits", False))
    finally:
        reference_predictor.reset_predictor()


def test_mask_threshold_applies_as_in_sam2_image_predictor(triton, reference):
    image = image_bytes("coffee.jpg")
    point = dict(point_coords=np.array([[300, 200]]), point_labels=np.array([1]))
    with _remote(triton, "http") as remote:
        remote.set_image(_rgb("coffee.jpg"))
        at_zero = remote.predict(**point)[0]
        remote.mask_threshold = reference.predictor.mask_threshold = 0.1
        try:
            got = remote.predict(**point)
            want = reference.predict(image, **point)
        finally:
            reference.predictor.mask_threshold = 0.0
    _assert_same(got, want)
    assert got[0].sum() < at_zero.sum()  # fewer pixels above 0.1 than above 0


def test_mask_input_refinement_matches(triton, reference):
    image = image_bytes("astronaut.png")
    first = dict(point_coords=np.array([[250, 200]]), point_labels=np.array([1]))
    two = dict(point_coords=np.array([[250, 200], [300, 350]]), point_labels=np.array([1, 0]))
    with _remote(triton, "grpc") as remote:
        remote.set_image(Image.open(io.BytesIO(image)))  # a PIL image, as Meta's accepts
        masks, scores, low_res = remote.predict(**first)
        mask_input = low_res[np.argmax(scores)][None]
        got = remote.predict(**two, mask_input=mask_input, multimask_output=False)
        without = remote.predict(**two, multimask_output=False)
    want_first = reference.predict(image, **first)
    _assert_same((masks, scores, low_res), want_first)
    want = reference.predict(image, **two, mask_input=mask_input, multimask_output=False)
    _assert_same(got, want)
    assert not np.allclose(got[2], without[2], atol=1e-3)  # the mask input was used


def _encoder_runs(triton) -> int:
    return model_runs(triton, c.IMAGE_ENCODER)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_an_evicted_image_is_sent_again_transparently(triton, protocol):
    seed = {"http": 500, "grpc": 700}[protocol]  # images no other test sends
    rgb = np.array(Image.open(io.BytesIO(unique_png(seed=seed))))
    point = dict(point_coords=np.array([[20, 20]]), point_labels=np.array([1]))
    with _remote(triton, protocol) as remote:
        remote.set_image(rgb)
        image_id = remote.image_id
        before = remote.predict(**point)
        with _remote(triton, "http") as other:  # fill the cache: our image is evicted
            for k in range(1, TEST_CACHE_IMAGES + 1):
                other.set_image(np.array(Image.open(io.BytesIO(unique_png(seed=seed + k)))))
        runs = _encoder_runs(triton)
        after = remote.predict(**point)
        assert _encoder_runs(triton) == runs + 1  # re-embedded once, then clicked
        assert remote.image_id == image_id
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(b, a)


def test_guards_say_what_to_do(triton):
    with _remote(triton, "http") as remote:
        with pytest.raises(RuntimeError, match=r"must be set with \.set_image"):
            remote.predict(point_coords=np.array([[1, 1]]), point_labels=np.array([1]))
        remote.set_image(np.zeros((32, 48, 3), np.uint8))
        with pytest.raises(NotImplementedError, match="keeps the image embedding on the server"):
            remote.get_image_embedding()
        with pytest.raises(ValueError, match="at least one point or a box"):
            remote.predict()
        with pytest.raises(ValueError, match="disagree on the batch size"):
            remote.predict(
                point_coords=np.ones((2, 1, 2)),
                point_labels=np.ones((2, 1)),
                box=np.array([[0, 0, 5, 5]] * 3),
            )
        remote.reset_predictor()
        with pytest.raises(RuntimeError, match="before mask prediction"):
            remote.predict(point_coords=np.array([[1, 1]]), point_labels=np.array([1]))
        with pytest.raises(ValueError, match="RGB uint8 image"):
            remote.set_image(np.zeros((32, 48), np.float32))


def test_package_import_stays_light():
    code = (
        "import sys, sam2_triton; assert 'tritonclient' not in sys.modules; "
        "from sam2_triton import SAM2RemotePredictor; print(SAM2RemotePredictor.__module__)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "sam2_triton.clients.image_predictor"
