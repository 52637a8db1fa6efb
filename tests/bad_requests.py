"""Requests a client gets wrong, each with the words its error must contain: shared by the
end-to-end error tests of both targets (test_e2e_errors.py, test_gpu_runtime.py)."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pytest
import tritonclient.grpc
import tritonclient.http
from PIL import Image
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from tests.helpers import image_bytes

W, H = 64, 48  # the size of the good test image


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None, **save) -> bytes:
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


@cache
def good_png() -> bytes:
    return encode(np.full((H, W, 3), 127, np.uint8))


@cache
def bomb_png() -> bytes:
    """A 10000 x 7000 (70 MP) PNG of a few kB: over the 64 MP default cap."""
    return encode(np.zeros((7000, 10000), bool))


def points(*xy: tuple[float, float], labels: tuple[int, ...] | None = None) -> dict:
    coords = np.array(xy, np.float32).reshape(-1, 2)
    return {
        "point_coords": coords,
        "point_labels": np.array(labels if labels is not None else [1] * len(xy), np.int32),
    }


def image(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8)


def good(**override: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": image(good_png()), **points((10, 10)), **override}


def text(value: str) -> np.ndarray:
    return np.array([value.encode()], dtype=np.object_)


# name -> (request tensors, words the error must contain). Wrong dtypes/shapes are refused by
# Triton against the config (400 / INVALID_ARGUMENT naming the input); the rest by our models.
BAD: dict[str, tuple[dict[str, np.ndarray], str]] = {
    # image bytes
    "corrupt image": (good(image=image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)), "image: "),
    "truncated jpeg": (good(image=image(image_bytes("coffee.jpg")[:5000])), "truncated"),
    "empty image": (good(image=np.zeros(0, np.uint8)), "image: is empty"),
    "non-image bytes": (good(image=image(b"%PDF-1.7 hello")), "not a recognised image"),
    "over the pixel cap": (good(image=image(bomb_png())), "exceeds the limit"),
    # points
    "nan point": (good(**points((np.nan, 1))), "NaN"),
    "infinite point": (good(**points((np.inf, 1))), "infinite"),
    "point right of the image": (good(**points((W + 1, 10))), "outside"),
    "negative point": (good(**points((-1, 10))), "outside"),
    "label 7": (good(**points((10, 10), labels=(7,))), "point_labels"),
    "label -1": (good(**points((10, 10), labels=(-1,))), "point_labels"),
    "fewer labels than points": (
        good(point_coords=np.ones((2, 2), np.float32), point_labels=np.ones(1, np.int32)),
        "1 labels for 2 points",
    ),
    "coords without labels": (
        {"image": image(good_png()), "point_coords": np.ones((1, 2), np.float32)},
        "point_labels: missing",
    ),
    "labels without coords": (
        {"image": image(good_png()), "point_labels": np.ones(1, np.int32)},
        "point_coords: missing",
    ),
    "zero points and no box": (
        good(point_coords=np.zeros((0, 2), np.float32), point_labels=np.zeros(0, np.int32)),
        "no prompt",
    ),
    "too many points": (good(**points(*[(5, 5)] * 65)), "limit of 64"),
    # boxes
    "inverted box": (good(box=np.array([30, 30, 10, 10], np.float32)), "inverted"),
    "nan box": (good(box=np.array([0, 0, np.nan, 10], np.float32)), "box: contains NaN"),
    "box outside": (good(box=np.array([0, 0, W + 5, 10], np.float32)), "outside"),
    # options
    "unknown output format": (good(output_format=text("gif")), "unknown format 'gif'"),
    "two output formats": (
        good(output_format=np.array([b"rle", b"png"], np.object_)),
        "input 'output_format'",
    ),
    "wrong-size mask_input": (
        good(mask_input=np.zeros((1, 128, 128), np.float32)),
        "input 'mask_input'",
    ),
    "nan mask_input": (
        good(mask_input=np.full((1, 256, 256), np.nan, np.float32)),
        "mask_input: contains NaN",
    ),
    "zero mask_size": (good(mask_size=np.array([0, 10], np.int32)), "mask_size: (0, 10)"),
    "huge mask_size": (
        good(mask_size=np.array([8000, 8000], np.int32)),
        "mask_size: 8000 x 8000 exceeds",
    ),
    "mask_size with a cut-out": (
        good(mask_size=np.array([10, 10], np.int32), output_format=text("cutout")),
        "cannot be combined with output_format 'cutout'",
    ),
    # polygons
    "polygon_tolerance without polygons": (
        good(polygon_tolerance=np.array([1.0], np.float32)),
        "polygon_tolerance: only applies with output_format 'polygons'",
    ),
    "nan polygon_tolerance": (
        good(output_format=text("polygons"), polygon_tolerance=np.array([np.nan], np.float32)),
        "polygon_tolerance: nan must be between 0 and 100",
    ),
    # B prompt sets
    "a box set outside": (
        {
            "image": image(good_png()),
            "box_batch": np.array([[0, 0, 5, 5], [0, 0, W + 5, 10]], np.float32),
        },
        "box_batch: prompt set 1: (69, 10) lies outside",
    ),
    "one set and B sets": (
        good(box_batch=np.array([[0, 0, 5, 5]], np.float32)),
        "point_coords: cannot be combined with box_batch",
    ),
    "sets disagreeing on B": (
        {
            "image": image(good_png()),
            "box_batch": np.array([[0, 0, 5, 5]] * 2, np.float32),
            "point_coords_batch": np.ones((3, 1, 2), np.float32),
            "point_labels_batch": np.ones((3, 1), np.int32),
        },
        "has 2 prompt sets but point_coords_batch has 3",
    ),
    "65 box sets": (
        {"image": image(good_png()), "box_batch": np.array([[0, 0, 5, 5]] * 65, np.float32)},
        "65 prompt sets: send 1 to 64",
    ),
    "box_batch of 3 values": (
        {"image": image(good_png()), "box_batch": np.ones((2, 3), np.float32)},
        "input 'box_batch'",
    ),
    # wrong dtypes, one per input
    "image as FP32": (good(image=np.zeros(10, np.float32)), "input 'image'"),
    "point_coords as INT32": (good(point_coords=np.ones((1, 2), np.int32)), "input 'point_coords'"),
    "point_labels as FP32": (good(point_labels=np.ones(1, np.float32)), "input 'point_labels'"),
    "box as INT64": (good(box=np.array([1, 1, 5, 5], np.int64)), "input 'box'"),
    "multimask_output as INT32": (
        good(multimask_output=np.ones(1, np.int32)),
        "input 'multimask_output'",
    ),
    "mask_input as FP16": (
        good(mask_input=np.zeros((1, 256, 256), np.float16)),
        "input 'mask_input'",
    ),
    "output_format as UINT8": (good(output_format=np.zeros(1, np.uint8)), "input 'output_format'"),
    # wrong shapes, one per input
    "image 2-D": (good(image=image(good_png()).reshape(1, -1)), "input 'image'"),
    "point_coords [N, 3]": (good(point_coords=np.ones((1, 3), np.float32)), "input 'point_coords'"),
    "point_labels 2-D": (good(point_labels=np.ones((1, 1), np.int32)), "input 'point_labels'"),
    "box of 5": (good(box=np.ones(5, np.float32)), "input 'box'"),
    "multimask_output of 2": (good(multimask_output=np.ones(2, bool)), "input 'multimask_output'"),
    # unknown input
    "unknown input name": (good(points=np.ones((1, 2), np.float32)), "input 'points'"),
}

SESSION_ONLY: dict[str, tuple[dict[str, np.ndarray], str]] = {
    "malformed image_id": ({"image_id": text("../../etc/passwd"), **points((1, 1))}, "image_id"),
    "neither image nor image_id": (points((1, 1)), "image: missing"),
    "image_id of another image": (good(image_id=text("a" * 64)), "is not the id of the image"),
    "image_id as INT32": ({"image_id": np.ones(1, np.int32), **points((1, 1))}, "image_id"),
}


def send(triton, protocol: str, model: str, tensors: dict[str, np.ndarray]) -> None:
    """One raw KServe v2 request, datatypes taken from the arrays as they are."""
    module = tritonclient.http if protocol == "http" else tritonclient.grpc
    url = triton.http_url if protocol == "http" else triton.grpc_url
    client = module.InferenceServerClient(url)
    try:
        inputs = []
        for name, value in tensors.items():
            tensor = module.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
            if protocol == "http":
                tensor.set_data_from_numpy(value, binary_data=True)
            else:
                tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        client.infer(model, inputs)
    finally:
        client.close()


def assert_refused(triton, protocol, model, tensors, words) -> None:
    with pytest.raises(InferenceServerException) as info:
        send(triton, protocol, model, tensors)
    message = info.value.message()
    assert words in message, message
    status = str(info.value.status())
    assert "400" in status or "INVALID_ARGUMENT" in status, f"{status}: {message}"
