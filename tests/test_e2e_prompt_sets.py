"""B prompt sets in one request through a real tritonserver: sam2_segment and sam2_session
answer the ``*_batch`` inputs as SAM2ImagePredictor answers batched prompts, with one decoder
call for all the sets, and a bad set is refused naming it while the server keeps serving."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tritonclient.utils import InferenceServerException

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from tests.conftest import model_runs
from tests.helpers import assert_same_as_batched_predict, image_bytes

pytestmark = pytest.mark.e2e
PROTOCOLS = ["http", "grpc"]


def _client(server, protocol: str) -> SegmentClient:
    return SegmentClient(server.http_url if protocol == "http" else server.grpc_url, protocol)


def _boxes(width: int, height: int) -> np.ndarray:
    fractions = np.array([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.9, 0.9], [0.2, 0.5, 0.6, 0.95]])
    return (fractions * [width, height, width, height]).astype(np.float32)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", [c.SEGMENT, c.SESSION])
def test_several_boxes_in_one_request_match_sam2_image_predictor(
    triton, reference, protocol, model
):
    image = image_bytes("coffee.jpg")
    width, height = Image.open(io.BytesIO(image)).size
    boxes = _boxes(width, height)
    want = reference.predict(image, box=boxes, multimask_output=False)
    before = model_runs(triton, model)
    with _client(triton, protocol) as client:
        got = client.infer(model, image=image, box=boxes, multimask_output=False, batched=True)
    assert model_runs(triton, model) == before + 1  # one request for the three boxes
    assert_same_as_batched_predict(got, want)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_padded_point_sets_with_mask_inputs_match(triton, reference, protocol):
    image = image_bytes("astronaut.png")
    coords = np.array([[[250, 200], [0, 0]], [[300, 350], [100, 120]]], np.float32)
    labels = np.array([[1, -1], [1, 0]], np.int32)  # set 0 has one point, padded
    with _client(triton, protocol) as client:
        image_id = client.embed(image)
        first = client.click(image_id, coords, labels, multimask_output=False, batched=True)
        mask_input = first.low_res_logits[:, None].copy()  # [2, 1, 256, 256]: each set's own
        got = client.click(
            image_id,
            coords,
            labels,
            mask_input=mask_input,
            multimask_output=True,
            output_format="rle",
            batched=True,
        )
    assert_same_as_batched_predict(
        first,
        reference.predict(image, point_coords=coords, point_labels=labels, multimask_output=False),
    )
    want = reference.predict(image, point_coords=coords, point_labels=labels, mask_input=mask_input)
    assert_same_as_batched_predict(got, want)


def test_through_bls_the_sets_are_one_decoder_call(routed_triton, reference):
    image = image_bytes("coffee.jpg")
    width, height = Image.open(io.BytesIO(image)).size
    boxes = _boxes(width, height)
    with SegmentClient(routed_triton.http_url) as client:
        image_id = client.embed(image)
        before = model_runs(routed_triton, c.MASK_DECODER)
        got = client.click(image_id, box=boxes, batched=True)
        assert model_runs(routed_triton, c.MASK_DECODER) == before + 1
    assert_same_as_batched_predict(got, reference.predict(image, box=boxes))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_bad_set_is_refused_naming_it_and_the_server_keeps_serving(triton, protocol):
    image = image_bytes("coffee.jpg")
    width, height = Image.open(io.BytesIO(image)).size
    boxes = _boxes(width, height)
    boxes[2, 2] = width + 10
    with _client(triton, protocol) as client:
        with pytest.raises(InferenceServerException) as error:
            client.segment(image, box=boxes, batched=True)
        assert "box_batch: prompt set 2" in str(error.value)
        assert str(error.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
        mixed = {  # one set and B sets in one request
            "image": np.frombuffer(image, np.uint8),
            "box_batch": boxes[:2],
            "point_coords": np.ones((1, 2), np.float32),
            "point_labels": np.ones(1, np.int32),
        }
        inputs = [client._input(name, value) for name, value in mixed.items()]
        with pytest.raises(InferenceServerException, match="cannot be combined with box_batch"):
            client.client.infer(c.SEGMENT, inputs)
        assert len(client.segment(image, box=boxes[:2], batched=True).masks) == 6
