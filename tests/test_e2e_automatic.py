"""sam2_automatic through a real tritonserver against SAM2AutomaticMaskGenerator on the same
weights: same number of masks, each matched with IoU >= 0.99, with and without crop layers;
bad parameters are answered with their name."""

from __future__ import annotations

import io
import json
from functools import cache

import numpy as np
import pytest
import skimage.data
import tritonclient.grpc
import tritonclient.http
from PIL import Image
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from sam2_triton import contract as c
from tests.helpers import PARAMS, match_annotations

pytestmark = pytest.mark.e2e


@cache
def coffee_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(skimage.data.coffee()[::2, ::2])).save(buffer, "PNG")
    return buffer.getvalue()


def automatic(triton, protocol: str, image: bytes, **params) -> dict:
    module = tritonclient.http if protocol == "http" else tritonclient.grpc
    url = triton.http_url if protocol == "http" else triton.grpc_url
    tensors = {"image": np.frombuffer(image, np.uint8)}
    for tensor in c.AUTOMATIC_PARAMETERS:
        if tensor.name in params:
            dtype = {"INT32": np.int32, "FP32": np.float32, "FP64": np.float64, "BOOL": bool}
            dtype = dtype[tensor.dtype]
            tensors[tensor.name] = np.array([params[tensor.name]], dtype=dtype)
    inputs = []
    for name, value in tensors.items():
        item = module.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
        item.set_data_from_numpy(value)
        inputs.append(item)
    # Segment-everything takes tens of seconds on 2 cores: above tritonclient's 60 s default.
    options = {"network_timeout": 900.0, "connection_timeout": 900.0} if protocol == "http" else {}
    client = module.InferenceServerClient(url, **options)
    try:
        result = client.infer(c.AUTOMATIC, inputs)
    finally:
        client.close()
    return json.loads(result.as_numpy("annotations")[0])


def assert_matches_reference(document: dict, want: list[dict], height: int, width: int) -> None:
    """A sam2_automatic answer against the reference's coco_rle records: every mask matched
    with IoU >= 0.99, the same crops, the reference's keys and the image's size."""
    got = document["annotations"]
    assert document["image"] == {"height": height, "width": width}
    assert len(want) > 3
    assert min(match_annotations(got, want)) >= 0.99
    assert {tuple(a["crop_box"]) for a in got} == {tuple(a["crop_box"]) for a in want}
    for annotation in got:
        assert set(annotation) == {"segmentation", "area", "bbox", "predicted_iou",
                                   "point_coords", "stability_score", "crop_box"}  # fmt: skip
        assert annotation["segmentation"]["size"] == [height, width]


def test_automatic_masks_match_sam2_automatic_mask_generator(triton, automatic_reference):
    """No crop layers, over gRPC (with a crop layer, over HTTP: test_e2e_remote_automatic's
    crop test, which shares its reference run with the drop-in client's)."""
    document = automatic(triton, "grpc", coffee_png(), **PARAMS)
    rgb = np.asarray(Image.open(io.BytesIO(coffee_png())).convert("RGB"))
    want = automatic_reference.generator(output_mode="coco_rle", **PARAMS).generate(rgb)
    assert_matches_reference(document, want, 200, 300)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_parameter_is_named(triton, protocol):
    with pytest.raises(InferenceServerException) as info:
        automatic(triton, protocol, coffee_png(), points_per_side=0)
    assert "points_per_side" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        automatic(triton, protocol, b"not an image")
    assert "image:" in info.value.message()
    # a grid over the server's budget (8,192 points on CPU) is refused before any work
    with pytest.raises(InferenceServerException) as info:
        automatic(triton, protocol, coffee_png(), points_per_side=64, crop_n_layers=1)
    assert "64 per side with crop_n_layers 1 is 20480 grid points" in info.value.message()
    assert "limit of 8192" in info.value.message()
