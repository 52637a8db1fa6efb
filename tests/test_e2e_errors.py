"""Malformed requests get an error naming the field and the problem, over HTTP and gRPC, and the
server keeps serving."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image
from tritonclient.utils import InferenceServerException

from sam2_triton.client import SegmentClient

pytestmark = pytest.mark.e2e


def _png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 127, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


ONE_POINT = (np.array([[10, 10]], np.float32), np.array([1], np.int32))

BAD_REQUESTS = {
    "corrupt image": (dict(image=b"\x89PNG\r\n\x1a\nnot really", coords_labels=ONE_POINT), "image"),
    "empty image": (dict(image=b"", coords_labels=ONE_POINT), "image"),
    "no prompt": (dict(image=_png(), coords_labels=None), "point_coords"),
    "nan point": (
        dict(image=_png(), coords_labels=(np.array([[np.nan, 1]], np.float32), ONE_POINT[1])),
        "NaN",
    ),
    "point outside": (
        dict(image=_png(), coords_labels=(np.array([[100, 10]], np.float32), ONE_POINT[1])),
        "outside",
    ),
    "bad label": (
        dict(image=_png(), coords_labels=(ONE_POINT[0], np.array([7], np.int32))),
        "point_labels",
    ),
    "inverted box": (dict(image=_png(), coords_labels=None, box=[30, 30, 10, 10]), "box"),
}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_answered_with_its_field_and_server_keeps_serving(triton, protocol, case):
    request, words = BAD_REQUESTS[case]
    url = triton.http_url if protocol == "http" else triton.grpc_url
    coords, labels = request["coords_labels"] or (None, None)
    with SegmentClient(url, protocol) as client:
        with pytest.raises(InferenceServerException) as info:
            client.segment(request["image"], coords, labels, request.get("box"))
        assert words in info.value.message()
        assert "400" in str(info.value.status()) or "INVALID_ARGUMENT" in str(info.value.status())
        # ... and a good request right after still works.
        good = client.segment(_png(), *ONE_POINT, multimask_output=False)
        assert good.masks.shape == (1, 48, 64)
    assert requests.get(f"http://{triton.http_url}/v2/health/ready", timeout=5).status_code == 200
