"""sam2_session's logic without Triton: encode once, click by id, clear errors for ids and
prompts, prompts checked before any encoder run."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sam2_triton.embedding_cache import EmbeddingCache, content_id
from sam2_triton.processing import InvalidInputError
from sam2_triton.session import Limits, SessionService, UnknownImageError


def _png(height: int = 30, width: int = 40, value: int = 0) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), np.uint8)


class FakeNetworks:
    """Stands in for the encoder and decoder; records what they were given."""

    def __init__(self) -> None:
        self.encoded: list[np.ndarray] = []
        self.decoded: list[dict[str, np.ndarray]] = []

    def encode(self, image_1024: np.ndarray) -> dict[str, np.ndarray]:
        self.encoded.append(image_1024)
        return {
            "image_embed": np.full((1, 256, 64, 64), len(self.encoded), np.float32),
            "high_res_feats_0": np.zeros((1, 32, 256, 256), np.float32),
            "high_res_feats_1": np.zeros((1, 64, 128, 128), np.float32),
        }

    def decode(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.decoded.append(dict(inputs))
        logits = np.full((1, 4, 256, 256), -1.0, np.float32)
        logits[0, 1, :128] = 1.0  # top half of the image
        return {"low_res_masks": logits, "iou_predictions": np.array([[0.1, 0.9, 0.5, 0.4]])}


@pytest.fixture
def nets() -> FakeNetworks:
    return FakeNetworks()


@pytest.fixture
def service(tmp_path, nets) -> SessionService:
    cache = EmbeddingCache(tmp_path, max_bytes=1 << 30)
    return SessionService(cache, nets.encode, nets.decode, Limits(max_points=4))


POINT = {"point_coords": np.array([[10.0, 5.0]], np.float32), "point_labels": np.array([1])}


def _id(outputs: dict[str, np.ndarray]) -> str:
    return outputs["image_id"][0].decode()


def test_image_alone_is_encoded_once_and_answered_with_its_content_id(service, nets):
    image = _png()
    first = service.handle({"image": image})
    again = service.handle({"image": image})
    assert _id(first) == _id(again) == content_id(image.tobytes())
    assert len(nets.encoded) == 1 and nets.decoded == []
    assert first["masks"].shape == (0, 30, 40) and first["iou_scores"].shape == (0,)


def test_click_by_id_runs_only_the_decoder_on_the_cached_embedding(service, nets):
    image_id = _id(service.handle({"image": _png()}))
    id_tensor = np.array([image_id.encode()], dtype=object)
    out = service.handle({"image_id": id_tensor, **POINT, "multimask_output": np.array([True])})
    assert len(nets.encoded) == 1 and len(nets.decoded) == 1
    assert out["masks"].shape == (3, 30, 40)
    assert out["masks"][0, :15].all() and not out["masks"][0, 15:].any()
    decoded = nets.decoded[0]
    assert decoded["image_embed"].shape == (1, 256, 64, 64) and decoded["image_embed"].max() == 1
    np.testing.assert_allclose(decoded["point_coords"], [[[10 / 40 * 1024, 5 / 30 * 1024]]])
    assert decoded["has_mask_input"].tolist() == [[0.0]]
    assert _id(out) == image_id


def test_mask_input_reaches_the_decoder(service, nets):
    mask = np.full((1, 256, 256), 3.0, np.float32)
    service.handle({"image": _png(), **POINT, "mask_input": mask})
    assert nets.decoded[0]["has_mask_input"].tolist() == [[1.0]]
    np.testing.assert_array_equal(nets.decoded[0]["mask_input"][0], mask)


def test_encoded_output_formats(service):
    out = service.handle({"image": _png(), **POINT, "output_format": np.array([b"rle"], object)})
    assert out["masks"].shape == (0, 30, 40) and out["encoded_masks"].shape == (3,)


def test_unknown_id_tells_the_client_to_send_the_image_again(service):
    with pytest.raises(UnknownImageError, match="send the image again") as info:
        service.handle({"image_id": np.array([b"0" * 64], object), **POINT})
    assert info.value.triton_code == "NOT_FOUND"


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ({"image_id": np.array([b"not-an-id"], object)}, "image_id: 'not-an-id' is not an image"),
        ({**POINT}, "image: missing"),
        ({"image": _png(), "image_id": np.array([b"a" * 64], object)}, "is not the id of"),
        ({"image": _png(), "point_coords": np.zeros((0, 2)), "point_labels": np.zeros(0)}, "no"),
        ({"image": _png(), **POINT, "output_format": np.array([b"gif"], object)}, "gif"),
        ({"image": _png(), "point_coords": np.ones((5, 2)), "point_labels": np.ones(5)}, "limit"),
    ],
)
def test_bad_requests_are_refused_before_any_encoder_run(service, nets, inputs, words):
    with pytest.raises(InvalidInputError) as info:
        service.handle(inputs)
    assert words in str(info.value)
    assert nets.encoded == []


def test_cutout_of_a_click_by_id_uses_the_cached_image_file(service):
    image = _png(value=200)
    image_id = _id(service.handle({"image": image}))
    out = service.handle(
        {
            "image_id": np.array([image_id.encode()], object),
            **POINT,
            "output_format": np.array([b"cutout"], object),
        }
    )
    with Image.open(io.BytesIO(out["encoded_masks"][0])) as cutout:
        rgba = np.asarray(cutout)
    assert rgba.shape == (30, 40, 4)
    assert (rgba[:15, :, 3] == 255).all() and not rgba[15:, :, 3].any()  # the fake top-half mask
    assert (rgba[..., :3] == 200).all()


def test_a_click_cancelled_before_decoding_runs_no_decoder(service, nets):
    from sam2_triton.processing import RequestCancelled

    image_id = _id(service.handle({"image": _png()}))
    with pytest.raises(RequestCancelled):
        service.handle({"image_id": np.array([image_id.encode()], object), **POINT}, lambda: True)
    assert nets.decoded == []
