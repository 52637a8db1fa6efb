"""sam2_session through a real tritonserver: clicks on a cached embedding match
SAM2ImagePredictor, refinement with mask_input matches it too (on both models), output formats
carry the same masks, racing requests encode an image once, eviction answers 404/NOT_FOUND."""

from __future__ import annotations

import io
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image
from tritonclient.utils import InferenceServerException

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from tests.conftest import EMBEDDING_BYTES, TEST_CACHE_IMAGES, model_runs
from tests.helpers import CASES, image_bytes, unique_png

pytestmark = pytest.mark.e2e
PROTOCOLS = ["http", "grpc"]


def _client(triton, protocol: str) -> SegmentClient:
    return SegmentClient(triton.http_url if protocol == "http" else triton.grpc_url, protocol)


def _size(image: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(image)).size


def _assert_matches(got, want_masks, want_scores, want_low_res=None) -> None:
    assert got.masks.shape == want_masks.shape
    for k in range(len(want_masks)):
        agreement = np.mean(got.masks[k] == want_masks[k].astype(np.uint8))
        assert agreement >= 0.999, f"mask {k}: only {agreement:.5f} of pixels agree"
    np.testing.assert_allclose(got.iou_scores, want_scores, atol=1e-3)
    if want_low_res is not None:
        np.testing.assert_allclose(got.low_res_logits, want_low_res, atol=1e-3)


def _metric(triton, name: str) -> float:
    text = requests.get(
        f"http://{triton.host}:{triton.ports.metrics}/metrics",
        timeout=10,
        headers={"Connection": "close"},
    ).text
    match = re.search(rf'^{name}\{{[^}}]*model="sam2_session"[^}}]*\}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} not in the metrics"
    return float(match.group(1))


def _encoder_runs(triton) -> int:
    return model_runs(triton, c.IMAGE_ENCODER)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_clicks_on_a_cached_image_match_sam2_image_predictor(triton, reference, protocol):
    image = image_bytes("coffee.jpg")
    width, height = _size(image)
    with _client(triton, protocol) as client:
        image_id = client.embed(image)
        runs_before = _encoder_runs(triton)
        for name, case in CASES.items():
            coords, labels, box = case.arrays(width, height)
            got = client.click(image_id, coords, labels, box, case.multimask)
            assert got.image_id == image_id, name
            _assert_matches(got, *case.expected(reference, image, width, height))
    assert _encoder_runs(triton) == runs_before  # clicks never ran the encoder


def test_clicks_run_the_decoder_in_process_or_through_bls_with_the_same_results(
    triton, routed_triton, reference
):
    """Embedded default: the session runs the decoder ONNX itself (sam2_mask_decoder idle);
    with BLS (the GPU target's route) the click goes through sam2_mask_decoder. Same masks."""
    image = image_bytes("coffee.jpg")
    coords, labels = np.array([[200.0, 150.0]], np.float32), np.array([1], np.int32)
    want = reference.predict(image, point_coords=coords, point_labels=labels)
    for server, decoder_runs_per_click in ((triton, 0), (routed_triton, 1)):
        with SegmentClient(server.http_url) as client:
            image_id = client.embed(image)
            before = model_runs(server, c.MASK_DECODER)
            got = client.click(image_id, coords, labels)
            assert model_runs(server, c.MASK_DECODER) - before == decoder_runs_per_click
        _assert_matches(got, *want)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", [c.SEGMENT, c.SESSION])
def test_mask_input_refinement_matches_sam2_image_predictor(triton, reference, protocol, model):
    image = image_bytes("astronaut.png")
    first_point = (np.array([[250, 200]], np.float32), np.array([1], np.int32))
    two_points = (np.array([[250, 200], [300, 350]], np.float32), np.array([1, 0], np.int32))
    with _client(triton, protocol) as client:
        first = client.infer(
            model,
            image=image,
            point_coords=first_point[0],
            point_labels=first_point[1],
            multimask_output=True,
        )
        best = int(np.argmax(first.iou_scores))
        mask_input = first.low_res_logits[best][None].copy()
        refined = client.infer(
            model,
            image=image,
            point_coords=two_points[0],
            point_labels=two_points[1],
            multimask_output=False,
            mask_input=mask_input,
        )
    want = reference.predict(
        image,
        point_coords=two_points[0],
        point_labels=two_points[1],
        mask_input=mask_input,
        multimask_output=False,
    )
    _assert_matches(refined, *want)
    without = reference.predict(
        image, point_coords=two_points[0], point_labels=two_points[1], multimask_output=False
    )
    assert not np.allclose(want[2], without[2], atol=1e-3)  # the mask input did change the result


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", [c.SEGMENT, c.SESSION])
def test_png_and_rle_outputs_carry_the_raw_masks(triton, protocol, model):
    image = image_bytes("coffee.jpg")
    point = (np.array([[300, 200]], np.float32), np.array([1], np.int32))
    with _client(triton, protocol) as client:
        results = {
            fmt: client.infer(
                model, image=image, point_coords=point[0], point_labels=point[1], output_format=fmt
            )
            for fmt in ("raw", "png", "rle")
        }
    raw = results["raw"]
    assert raw.masks.shape == (3, 400, 600) and raw.encoded_masks == []
    for fmt in ("png", "rle"):
        np.testing.assert_array_equal(results[fmt].masks, raw.masks, err_msg=fmt)
        assert len(results[fmt].encoded_masks) == 3
        assert sum(map(len, results[fmt].encoded_masks)) < raw.masks.nbytes / 4
    assert results["png"].encoded_masks[0].startswith(b"\x89PNG")
    assert b'"counts"' in results["rle"].encoded_masks[0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", [c.SEGMENT, c.SESSION])
def test_masks_at_a_chosen_size_and_from_logits_equal_the_full_size_masks(triton, protocol, model):
    """mask_size: the full-size masks resized nearest-neighbour (PyTorch's nearest-exact), in
    every mask format; "logits": upsampled by the client, the server's masks exactly."""
    torch = pytest.importorskip("torch")
    image = image_bytes("coffee.jpg")  # 600 x 400
    point = {"point_coords": np.array([[300, 200]], np.float32), "point_labels": np.array([1])}
    with _client(triton, protocol) as client:
        full = client.infer(model, image=image, **point).masks
        display = (123, 170)
        want = torch.nn.functional.interpolate(
            torch.from_numpy(np.array(full))[None].float(), size=display, mode="nearest-exact"
        )[0].numpy()
        for fmt in ("raw", "png", "rle"):
            small = client.infer(model, image=image, output_format=fmt, mask_size=display, **point)
            assert small.masks.shape == (3, *display), fmt
            np.testing.assert_array_equal(small.masks, want, err_msg=fmt)
        logits = client.infer(model, image=image, output_format="logits", **point)
        assert logits.encoded_masks == [] and logits.low_res_logits.shape == (3, 256, 256)
        np.testing.assert_array_equal(logits.masks, full)
        at_display = client.infer(
            model, image=image, output_format="logits", mask_size=display, **point
        )
        np.testing.assert_array_equal(at_display.masks, want)
        with pytest.raises(InferenceServerException, match="mask_size"):
            client.infer(model, image=image, output_format="cutout", mask_size=display, **point)


def test_racing_requests_for_a_new_image_encode_it_once(triton):
    image = unique_png(seed=1)
    point = (np.array([[40, 30]], np.float32), np.array([1], np.int32))
    runs_before = _encoder_runs(triton)
    misses_before = _metric(triton, "sam2_session_cache_misses")

    def click(index: int):
        protocol = PROTOCOLS[index % 2]
        with _client(triton, protocol) as client:
            return client.infer(
                c.SESSION,
                image=image,
                point_coords=point[0],
                point_labels=point[1],
                multimask_output=False,
            )

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(click, range(8)))
    assert _encoder_runs(triton) == runs_before + 1
    assert _metric(triton, "sam2_session_cache_misses") == misses_before + 1
    assert len({r.image_id for r in results}) == 1
    for result in results[1:]:
        np.testing.assert_array_equal(result.masks, results[0].masks)


def test_evicted_image_gets_not_found_and_works_again_once_resent(triton):
    images = [unique_png(seed=100 + i) for i in range(TEST_CACHE_IMAGES + 1)]
    point = (np.array([[10, 10]], np.float32), np.array([1], np.int32))
    evictions_before = _metric(triton, "sam2_session_cache_evictions")
    with (
        SegmentClient(triton.http_url, "http") as http,
        SegmentClient(triton.grpc_url, "grpc") as grpc,
    ):
        ids = [http.embed(image) for image in images]  # the first is now least recently used
        for client, code in ((http, "404"), (grpc, "NOT_FOUND")):
            with pytest.raises(InferenceServerException) as info:
                client.click(ids[0], *point)
            assert code in str(info.value.status())
            assert "send the image again" in info.value.message()
        assert grpc.click(ids[-1], *point).masks.shape == (3, 64, 96)  # the newest is cached
        assert http.embed(images[0]) == ids[0]
        assert grpc.click(ids[0], *point).masks.shape == (3, 64, 96)
    assert _metric(triton, "sam2_session_cache_evictions") >= evictions_before + 1
    assert _metric(triton, "sam2_session_cache_bytes") <= TEST_CACHE_IMAGES * EMBEDDING_BYTES
