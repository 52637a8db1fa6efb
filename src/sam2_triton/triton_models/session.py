"""sam2_session: encode once, click many (logic in ``sam2_triton.session``).

The encoder is reached through a BLS call to ``sam2_image_encoder`` (its batching and instances
serve sessions too). The decoder is either ``sam2_mask_decoder`` through BLS (GPU target, config
parameter ``decoder: "bls"``) or, on the embedded CPU target, the decoder ONNX file beside this
model run here by ONNX Runtime: a click then costs no second stub and no copy of the 16.8 MB
features through shared memory.
The embedding cache is shared by every instance of this model (see ``embedding_cache``) and
reports hits, misses, evictions and bytes as Triton custom metrics on the metrics port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sam2_triton import contract as c
from sam2_triton.embedding_cache import EmbeddingCache, server_cache_dir
from sam2_triton.session import Decoder, Limits, SessionService
from sam2_triton.triton_models.common import (
    decode_prompts,
    encode_image,
    model_parameters,
    read_inputs,
    respond_each,
)
from sam2_triton.triton_models.metrics import CacheMetrics, ModelMetrics


def local_decoder(onnx_path: Path, intra_op_threads: int, precision: str) -> Decoder:
    """The decoder ONNX run in this process.

    ORT's thread spinning stays off as everywhere else: with it on, the pools of the idle
    instances a click just left keep spinning and slow the next click (docs/performance.md).
    """
    # Imported here: the GPU image has no onnxruntime (its sessions call the GPU decoder).
    from sam2_triton.onnx_session import onnx_function

    names = [t.name for t in c.DECODER_OUTPUTS]
    return onnx_function(onnx_path, names, intra_op_threads, precision)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = model_parameters(args)
        cache = EmbeddingCache(server_cache_dir(), int(params["cache_bytes"]))
        limits = Limits(int(params["max_image_pixels"]), int(params["max_points"]))
        self.requests = ModelMetrics(args["model_name"])
        decode = decode_prompts
        if params.get("decoder", "bls") != "bls":
            version_dir = Path(args["model_repository"]) / args["model_version"]
            decode = local_decoder(
                version_dir / params["decoder"],
                int(params.get("intra_op_num_threads", "0")),
                params.get("precision", "fp32"),
            )
        self.service = SessionService(
            cache,
            self.requests.timed_encode(encode_image),
            self.requests.timed_decode(decode),
            limits,
        )
        self.metrics = CacheMetrics(args["model_name"])

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = respond_each(requests, self._one, self.requests)
        self.metrics.update(self.service.cache)
        return responses

    def finalize(self) -> None:
        self.service.cache.close()

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        return self.service.handle(read_inputs(request, c.SESSION_INPUTS), request.is_cancelled)
