"""Every malformed request gets an error naming the field and the problem, over HTTP and gRPC,
on sam2_segment and sam2_session, and the server keeps serving. Awkward but valid images
(1x1, extreme aspect, CMYK, greyscale, 16-bit, alpha, EXIF-rotated) work."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import requests
from PIL import Image

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from tests.bad_requests import (
    BAD,
    SESSION_ONLY,
    H,
    W,
    assert_refused,
    encode,
    good_png,
    points,
)

pytestmark = pytest.mark.e2e
PROTOCOLS = ["http", "grpc"]


@pytest.fixture(scope="module")
def healthy(triton) -> Callable[[str], None]:
    """Check the server still answers, cheaply: health, then a click on a cached image."""
    with SegmentClient(triton.grpc_url, "grpc") as client:
        image_id = client.embed(good_png())

    def check(protocol: str) -> None:
        ready = requests.get(
            f"http://{triton.http_url}/v2/health/ready",
            timeout=10,
            headers={"Connection": "close"},
        )
        assert ready.status_code == 200
        url = triton.http_url if protocol == "http" else triton.grpc_url
        with SegmentClient(url, protocol) as client:
            result = client.click(image_id, **points((10, 10)), multimask_output=False)
        assert result.masks.shape == (1, H, W)

    return check


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_direct_decoder_call_whose_prompt_tensors_disagree_is_refused(triton, healthy, protocol):
    """sam2_mask_decoder takes one image's features and N prompt sets: N must agree."""
    rng = np.random.default_rng(0)
    tensors = {t.name: rng.standard_normal(t.dims).astype(np.float32) for t in c.DECODER_FEATURES}
    tensors.update(
        point_coords=np.zeros((3, 1, 2), np.float32),
        point_labels=np.ones((3, 1), np.int32),
        mask_input=np.zeros((2, 1, 256, 256), np.float32),
        has_mask_input=np.zeros((3, 1), np.float32),
    )
    assert_refused(triton, protocol, c.MASK_DECODER, tensors, "mask_input: has 2 rows")
    healthy(protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", [c.SEGMENT, c.SESSION])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_names_its_field_and_the_server_keeps_serving(
    triton, healthy, protocol, model, case
):
    tensors, words = BAD[case]
    assert_refused(triton, protocol, model, tensors, words)
    healthy(protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", list(SESSION_ONLY))
def test_bad_session_request_names_its_field(triton, healthy, protocol, case):
    tensors, words = SESSION_ONLY[case]
    assert_refused(triton, protocol, c.SESSION, tensors, words)
    healthy(protocol)


# --- awkward images that must work ------------------------------------------------------------


def _exif_rotated_jpeg() -> bytes:
    """Stored 80 wide x 40 high with EXIF orientation 6: viewers show it 40 wide x 80 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(np.full((40, 80, 3), 90, np.uint8), "JPEG", exif=exif.tobytes())


WORKS: dict[str, tuple[Callable[[], bytes], tuple[int, int]]] = {  # bytes, shown (W, H)
    "1x1": (lambda: encode(np.full((1, 1, 3), 200, np.uint8)), (1, 1)),
    "2000x2": (lambda: encode(np.full((2, 2000, 3), 50, np.uint8)), (2000, 2)),
    "cmyk jpeg": (lambda: encode(np.full((30, 40, 3), 70, np.uint8), "JPEG", "CMYK"), (40, 30)),
    "greyscale": (lambda: encode(np.full((30, 40), 80, np.uint8)), (40, 30)),
    "16-bit": (lambda: encode(np.full((30, 40), 40000, np.uint16)), (40, 30)),
    "rgba": (lambda: encode(np.full((30, 40, 4), 100, np.uint8)), (40, 30)),
    "exif rotated": (_exif_rotated_jpeg, (40, 80)),
}


@pytest.mark.parametrize("case", list(WORKS))
def test_awkward_but_valid_images_are_segmented(triton, case):
    make, (width, height) = WORKS[case]
    data = make()
    centre = points((width / 2, height / 2))
    for protocol in PROTOCOLS:  # the second protocol finds the embedding cached
        url = triton.http_url if protocol == "http" else triton.grpc_url
        with SegmentClient(url, protocol) as client:
            image_id = client.embed(data)
            result = client.click(image_id, **centre)
        assert result.masks.shape == (3, height, width), protocol
        assert np.all(np.isfinite(result.iou_scores))


def test_one_full_segment_after_all_bad_requests(triton):
    with SegmentClient(triton.http_url, "http") as client:
        result = client.segment(good_png(), **points((10, 10)), multimask_output=False)
    assert result.masks.shape == (1, H, W)
