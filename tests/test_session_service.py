"""sam2_session's logic without Triton: encode once, click by id, clear errors for ids and
prompts, prompts checked before any encoder run."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sam2_triton.contract import content_id
from sam2_triton.errors import ErrorKind, InvalidInputError, UnknownImageError
from sam2_triton.image.embedding_cache import EmbeddingCache
from sam2_triton.image.request import Limits
from sam2_triton.image.session import SessionService
from tests.helpers import FakeNetworks, png_bytes


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
    image = png_bytes()
    first = service.handle({"image": image})
    again = service.handle({"image": image})
    assert _id(first) == _id(again) == content_id(image.tobytes())
    assert len(nets.encoded) == 1 and nets.decoded == []
    assert first["masks"].shape == (0, 30, 40) and first["iou_scores"].shape == (0,)


def test_click_by_id_runs_only_the_decoder_on_the_cached_embedding(service, nets):
    image_id = _id(service.handle({"image": png_bytes()}))
    id_tensor = np.array([image_id.encode()], dtype=object)
    out = service.handle({"image_id": id_tensor, **POINT, "multimask_output": np.array([True])})
    assert len(nets.encoded) == 1 and len(nets.decoded) == 1
    assert out["masks"].shape == (3, 30, 40)
    assert out["masks"][0, :15].all() and not out["masks"][0, 15:].any()
    decoded = nets.decoded[0]
    assert decoded["image_embed"].shape == (1, 4096, 256) and decoded["image_embed"].max() == 1
    np.testing.assert_allclose(decoded["point_coords"], [[[10 / 40 * 1024, 5 / 30 * 1024]]])
    assert decoded["has_mask_input"].tolist() == [[0.0]]
    assert _id(out) == image_id


def test_mask_input_reaches_the_decoder(service, nets):
    mask = np.full((1, 256, 256), 3.0, np.float32)
    service.handle({"image": png_bytes(), **POINT, "mask_input": mask})
    assert nets.decoded[0]["has_mask_input"].tolist() == [[1.0]]
    np.testing.assert_array_equal(nets.decoded[0]["mask_input"][0], mask)


def test_encoded_output_formats(service):
    out = service.handle(
        {"image": png_bytes(), **POINT, "output_format": np.array([b"rle"], object)}
    )
    assert out["masks"].shape == (0, 30, 40) and out["encoded_masks"].shape == (3,)


def test_unknown_id_tells_the_client_to_send_the_image_again(service):
    with pytest.raises(UnknownImageError, match="send the image again") as info:
        service.handle({"image_id": np.array([b"0" * 64], object), **POINT})
    assert info.value.kind is ErrorKind.NOT_FOUND


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ({"image_id": np.array([b"not-an-id"], object)}, "image_id: 'not-an-id' is not an image"),
        ({**POINT}, "image: missing"),
        ({"image": png_bytes(), "image_id": np.array([b"a" * 64], object)}, "is not the id of"),
        (
            {"image": png_bytes(), "point_coords": np.zeros((0, 2)), "point_labels": np.zeros(0)},
            "no",
        ),
        ({"image": png_bytes(), **POINT, "output_format": np.array([b"gif"], object)}, "gif"),
        (
            {"image": png_bytes(), "point_coords": np.ones((5, 2)), "point_labels": np.ones(5)},
            "limit",
        ),
    ],
)
def test_bad_requests_are_refused_before_any_encoder_run(service, nets, inputs, words):
    with pytest.raises(InvalidInputError) as info:
        service.handle(inputs)
    assert words in str(info.value)
    assert nets.encoded == []


def test_cutout_of_a_click_by_id_uses_the_cached_image_file(service):
    image = png_bytes(value=200)
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
    from sam2_triton.errors import RequestCancelled

    image_id = _id(service.handle({"image": png_bytes()}))
    with pytest.raises(RequestCancelled):
        service.handle({"image_id": np.array([image_id.encode()], object), **POINT}, lambda: True)
    assert nets.decoded == []
