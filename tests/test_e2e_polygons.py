"""output_format "polygons" through a real tritonserver: each mask's polygons, rasterised back
with pycocotools, are the mask (IoU >= 0.98 at the default tolerance, equal at tolerance 0), on
sam2_segment, sam2_session and sam2_automatic, over HTTP and gRPC."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from sam2_triton.image.encodings import rle_to_mask
from sam2_triton.image.polygons import polygons_to_mask
from tests.helpers import PARAMS, image_bytes

pytestmark = pytest.mark.e2e
PROTOCOLS = ["http", "grpc"]


def _client(server, protocol: str) -> SegmentClient:
    return SegmentClient(server.http_url if protocol == "http" else server.grpc_url, protocol)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", [c.SEGMENT, c.SESSION])
def test_polygons_rasterise_back_to_the_masks(triton, protocol, model):
    image = image_bytes("coffee.jpg")
    click = dict(point_coords=np.array([[300.0, 200.0]], np.float32), point_labels=np.array([1]))
    with _client(triton, protocol) as client:
        raw = client.infer(model, image=image, **click)
        polygons = client.infer(model, image=image, output_format="polygons", **click)
        exact = client.infer(
            model, image=image, output_format="polygons", polygon_tolerance=0.0, **click
        )
    assert len(polygons.encoded_masks) == len(raw.masks) == 3
    for k, mask in enumerate(raw.masks):
        assert _iou(polygons.masks[k], mask) >= 0.98, k  # decoded by SegmentClient
        np.testing.assert_array_equal(exact.masks[k], mask)
    fewer = sum(len(p.encoded_masks[0]) for p in (polygons,))
    assert fewer < len(exact.encoded_masks[0])  # the default tolerance drops points


@pytest.fixture(scope="module")
def automatic_rle(triton) -> tuple[bytes, list[dict]]:
    """A PNG and sam2_automatic's annotations of it as RLE (asked once, over HTTP): what the
    polygons asked over either protocol rasterise back to."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(skimage.data.coffee()[::2, ::2])).save(buffer, "PNG")
    with _client(triton, "http") as client:
        client.network_timeout_s = 900
        return buffer.getvalue(), client.automatic(buffer.getvalue(), PARAMS, timeout_s=900)[
            "annotations"
        ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_automatic_annotations_as_polygons(triton, protocol, automatic_rle):
    png, rle = automatic_rle
    with _client(triton, protocol) as client:
        client.network_timeout_s = 900
        document = client.automatic(png, PARAMS, timeout_s=900, segmentation_format="polygons")
    polygons = document["annotations"]
    assert len(polygons) == len(rle) > 3
    for got, want in zip(polygons, rle, strict=True):
        mask = rle_to_mask(want["segmentation"])
        assert isinstance(got["segmentation"], list) and len(got["holes"]) == len(
            got["segmentation"]
        )
        drawn = polygons_to_mask(got["segmentation"], got["holes"], *mask.shape)
        assert _iou(drawn, mask) >= 0.98
        assert (got["area"], got["bbox"]) == (want["area"], want["bbox"])
