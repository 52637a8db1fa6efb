"""Our Python-backend models run in-process with a fake ``triton_python_backend_utils``: every
request of a batch gets its own response, bad input becomes INVALID_ARG naming the field."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from google.protobuf import json_format
from PIL import Image

from tests import fake_pb_utils as pb

sys.modules.setdefault("triton_python_backend_utils", pb)

from sam2_triton.repository.build import model_config  # noqa: E402
from sam2_triton.repository.options import ServingOptions  # noqa: E402
from sam2_triton.repository.plan import repository_plan  # noqa: E402
from sam2_triton.triton_models import postprocess, preprocess  # noqa: E402
from sam2_triton.triton_models.metrics import ModelMetrics  # noqa: E402


def _args(name: str) -> dict[str, str]:
    # the ensemble's steps, and the decoder through BLS as on the GPU target
    options = ServingOptions(max_points=3, segment_in_process=False, decoder_in_process=False)
    plan = next(p for p in repository_plan("embedded", options) if p.name == name)
    # Triton hands models their config as JSON, parameters as {"key": {"string_value": v}}.
    config = json_format.MessageToJson(
        model_config(plan, options), preserving_proto_field_name=True
    )
    return {"model_config": config, "model_name": name}


def _png(height: int = 30, width: int = 40) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), np.uint8)


@pytest.fixture
def pre() -> preprocess.TritonPythonModel:
    model = preprocess.TritonPythonModel()
    model.initialize(_args("sam2_preprocess"))
    return model


def test_preprocess_answers_each_request_of_a_batch_on_its_own(pre):
    good = pb.InferenceRequest(
        {
            "image": _png(),
            "point_coords": np.array([[4.0, 5.0]], np.float32),
            "point_labels": np.array([1], np.int32),
        }
    )
    no_image = pb.InferenceRequest({"point_coords": np.array([[4.0, 5.0]], np.float32)})
    too_many = pb.InferenceRequest(
        {
            "image": _png(),
            "point_coords": np.ones((4, 2), np.float32),
            "point_labels": np.ones(4, np.int32),
        }
    )
    responses = pre.execute([good, no_image, too_many])
    assert len(responses) == 3
    outputs = responses[0].outputs()
    assert outputs["image_1024"].shape == (1, 3, 1024, 1024)
    assert outputs["orig_size"].tolist() == [30, 40]
    assert outputs["multimask"].tolist() == [True]  # default when omitted
    np.testing.assert_allclose(outputs["point_coords_1024"], [[[4 / 40 * 1024, 5 / 30 * 1024]]])
    for response, words in (
        (responses[1], "image: required input is missing"),
        (responses[2], "limit of 3"),
    ):  # max_points from the config
        assert response.error().code() == pb.TritonError.INVALID_ARG
        assert words in response.error().message()


def test_postprocess_single_mask_at_original_size():
    model = postprocess.TritonPythonModel()
    model.initialize(_args("sam2_postprocess"))
    logits = np.full((1, 4, 256, 256), -5.0, np.float32)
    logits[0, 0] = 5.0  # token 0 fully stable -> chosen
    request = pb.InferenceRequest(
        {
            "low_res_masks": logits,
            "iou_predictions": np.array([[0.1, 0.9, 0.8, 0.7]], np.float32),
            "orig_size": np.array([30, 40], np.int32),
            "multimask": np.array([False]),
            "mask_format": np.array([b"raw"], dtype=object),
            "cutout_rgb": np.zeros((0, 0, 3), np.uint8),
            "mask_hw": np.array([30, 40], np.int32),
            "polygon_epsilon": np.array([0.5], np.float32),
        }
    )
    (response,) = model.execute([request])
    outputs = response.outputs()
    assert outputs["masks"].shape == (1, 30, 40) and outputs["masks"].all()
    assert outputs["iou_scores"].tolist() == pytest.approx([0.1])


def test_postprocess_encodes_masks_when_asked():
    model = postprocess.TritonPythonModel()
    model.initialize(_args("sam2_postprocess"))
    logits = np.full((1, 4, 256, 256), -5.0, np.float32)
    logits[0, 1:, :, :128] = 5.0  # left half
    request = pb.InferenceRequest(
        {
            "low_res_masks": logits,
            "iou_predictions": np.array([[0.1, 0.9, 0.8, 0.7]], np.float32),
            "orig_size": np.array([30, 40], np.int32),
            "multimask": np.array([True]),
            "mask_format": np.array([b"png"], dtype=object),
            "cutout_rgb": np.zeros((0, 0, 3), np.uint8),
            "mask_hw": np.array([30, 40], np.int32),
            "polygon_epsilon": np.array([0.5], np.float32),
        }
    )
    (response,) = model.execute([request])
    outputs = response.outputs()
    assert outputs["masks"].shape == (0, 30, 40)
    assert [bytes(item[:8]) for item in outputs["encoded_masks"]] == [b"\x89PNG\r\n\x1a\n"] * 3


def test_a_request_cancelled_while_queued_is_not_run(pre):
    request = pb.InferenceRequest({"image": _png()}, cancelled=True)
    (response,) = pre.execute([request])
    assert response.error().code() == pb.TritonError.CANCELLED
    assert "cancelled" in response.error().message()


def _encoder_outputs() -> pb.InferenceResponse:
    return pb.InferenceResponse(
        [
            pb.Tensor("image_embed", np.zeros((1, 4096, 256), np.float32)),
            pb.Tensor("high_res_feats_0", np.zeros((1, 16384, 128), np.float32)),
            pb.Tensor("high_res_feats_1", np.zeros((1, 4096, 256), np.float32)),
        ]
    )


@pytest.mark.parametrize("callee", ["sam2_image_encoder", "sam2_mask_decoder"])
@pytest.mark.parametrize("code", ["NOT_FOUND", "INVALID_ARG", "CANCELLED", "UNAVAILABLE"])
def test_a_bls_callee_error_reaches_the_client_with_its_code_and_name(monkeypatch, callee, code):
    from sam2_triton.triton_models import automatic

    def failing(request: pb.InferenceRequest) -> pb.InferenceResponse:
        error = pb.TritonError("it went wrong", getattr(pb.TritonError, code))
        return pb.InferenceResponse(error=error)

    monkeypatch.setitem(pb.MODELS, "sam2_image_encoder", lambda request: _encoder_outputs())
    monkeypatch.setitem(pb.MODELS, callee, failing)
    model = automatic.TritonPythonModel()
    model.initialize(_args("sam2_automatic"))
    (response,) = model.execute([pb.InferenceRequest({"image": _png()})])
    assert response.error().code() == getattr(pb.TritonError, code)
    assert response.error().message() == f"{callee}: it went wrong"


def test_a_bls_callee_answer_is_returned_by_name(monkeypatch):
    from sam2_triton.triton_models import common

    monkeypatch.setitem(pb.MODELS, "sam2_image_encoder", lambda request: _encoder_outputs())
    features = common.encode_image(np.zeros((1, 3, 1024, 1024), np.float32))
    assert features["image_embed"].shape == (1, 4096, 256)


def test_an_unexpected_exception_is_internal_with_details_in_the_log(monkeypatch):
    from sam2_triton.triton_models import common

    monkeypatch.setattr(pb.Logger, "messages", [])

    def broken(request: pb.InferenceRequest) -> dict[str, np.ndarray]:
        raise KeyError("secret detail")

    (response,) = common.respond_each([pb.InferenceRequest({})], broken, ModelMetrics("m"))
    assert response.error().code() == pb.TritonError.INTERNAL
    assert response.error().message().startswith("internal error: KeyError")
    assert any("secret detail" in m for m in pb.Logger.messages)


def test_each_answer_is_counted_by_outcome(pre):
    good = pb.InferenceRequest(
        {
            "image": _png(),
            "point_coords": np.array([[4.0, 5.0]], np.float32),
            "point_labels": np.array([1], np.int32),
        }
    )
    bad = pb.InferenceRequest({"point_coords": np.array([[4.0, 5.0]], np.float32)})
    gone = pb.InferenceRequest({"image": _png()}, cancelled=True)

    def count(outcome: str) -> float:
        return pb.metric_value("sam2_requests_total", model="sam2_preprocess", outcome=outcome)

    before = {o: count(o) for o in ("success", "invalid_input", "cancelled", "internal")}
    pre.execute([good, bad, gone, good])
    after = {o: count(o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {
        "success": 2,
        "invalid_input": 1,
        "cancelled": 1,
        "internal": 0,
    }
