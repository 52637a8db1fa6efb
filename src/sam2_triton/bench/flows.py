"""The request flows the benchmark compares, each as a factory of per-worker send functions.

- ``ours``: one ``sam2_segment`` call with the image file's bytes (what this service offers);
- ``client_side``: what public Triton SAM 2 deployments ask of clients: preprocess locally,
  send a float32 [1,3,1024,1024] image to the encoder, receive 16.8 MB of features, send them
  back to the decoder with the prompts, postprocess locally (same functions, same server);
- ``in_process``: the same ONNX files run by ONNX Runtime in this process (no Triton);
- ``pytorch``: Meta's ``SAM2ImagePredictor`` (set_image + predict) in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from sam2_triton.image.masks import MaskResult, postprocess_masks
from sam2_triton.image.transforms import (
    decode_image,
    prepare_mask_input,
    prepare_prompts,
    preprocess_image,
)

Send = Callable[[], object]


def ours(url: str, protocol: str, image: bytes, point: tuple[np.ndarray, np.ndarray]) -> Send:
    client = SegmentClient(url, protocol)
    return lambda: client.segment(image, *point)


def ours_request_bytes(image: bytes, point: tuple[np.ndarray, np.ndarray]) -> int:
    return len(image) + point[0].nbytes + point[1].nbytes + 1  # + multimask flag


def client_side(grpc_url: str, image: bytes, point: tuple[np.ndarray, np.ndarray]) -> Send:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(grpc_url)

    def tensor(name: str, value: np.ndarray, dtype: str) -> grpcclient.InferInput:
        item = grpcclient.InferInput(name, list(value.shape), dtype)
        item.set_data_from_numpy(value)
        return item

    def send() -> MaskResult:
        rgb = decode_image(image)
        encoded = client.infer(
            c.IMAGE_ENCODER,
            [tensor("image", preprocess_image(rgb), "FP32")],
            outputs=[grpcclient.InferRequestedOutput(t.name) for t in c.ENCODER_OUTPUTS],
        )
        prompts = prepare_prompts(*point, None, rgb.shape[:2])
        mask_input, has_mask_input = prepare_mask_input(None)
        decoder_inputs = [
            *(tensor(t.name, encoded.as_numpy(t.name), "FP32") for t in c.ENCODER_OUTPUTS),
            tensor("point_coords", prompts.coords, "FP32"),
            tensor("point_labels", prompts.labels, "INT32"),
            tensor("mask_input", mask_input, "FP32"),
            tensor("has_mask_input", has_mask_input, "FP32"),
        ]
        decoded = client.infer(c.MASK_DECODER, decoder_inputs)
        return postprocess_masks(
            decoded.as_numpy("low_res_masks")[0],
            decoded.as_numpy("iou_predictions")[0],
            rgb.shape[:2],
            multimask_output=True,
        )

    return send


def client_side_request_bytes(point: tuple[np.ndarray, np.ndarray]) -> int:
    """Bytes the client-side flow sends per image: the float image, then features + prompts."""
    image = 3 * c.IMAGE_SIZE * c.IMAGE_SIZE * 4
    features = sum(4 * int(np.prod(t.dims)) for t in c.ENCODER_OUTPUTS)
    prompts = (len(point[0]) + 1) * 3 * 4  # coords + labels, with SAM's padding point
    mask = c.LOW_RES_MASK_SIZE * c.LOW_RES_MASK_SIZE * 4 + 4
    return image + features + prompts + mask


def in_process(
    export_dir: Path, image: bytes, point, threads: int, precision: str = "fp32"
) -> Send:
    """The same ONNX files, runner, precision and request steps (``sam2_triton.image.segment``) as
    the server's, in this process."""
    from sam2_triton.image.segment import segment
    from sam2_triton.runtime.runners import sam2_functions

    encode, decode = sam2_functions(
        export_dir / c.ENCODER_FILE, export_dir / c.DECODER_FILE, threads, precision
    )
    inputs = {
        "image": np.frombuffer(image, np.uint8),
        "point_coords": point[0],
        "point_labels": point[1],
    }
    return lambda: segment(inputs, encode, decode)


def pytorch(model_config: str, checkpoint: Path, image: bytes, point) -> Send:
    import torch
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(build_sam2(model_config, str(checkpoint), device="cpu"))

    def send() -> object:
        with torch.inference_mode():
            predictor.set_image(decode_image(image))
            return predictor.predict(point_coords=point[0], point_labels=point[1])

    return send
