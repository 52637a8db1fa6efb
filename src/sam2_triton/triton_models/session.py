"""sam2_session: encode once, click many (logic in ``sam2_triton.image.session``).

The encoder is reached through a BLS call to ``sam2_image_encoder`` (its batching and instances
serve sessions too). The decoder is either ``sam2_mask_decoder`` through BLS (GPU target, config
parameter ``decoder: "bls"``) or, on the embedded CPU target, the decoder ONNX file beside this
model run here by ONNX Runtime: a click then costs no second stub and no copy of the 16.8 MB
features through shared memory.
The embedding cache is shared by every instance of this model (see ``embedding_cache``) and
reports hits, misses, evictions and bytes as Triton custom metrics on the metrics port.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sam2_triton import contract as c
from sam2_triton.image.embedding_cache import EmbeddingCache, server_cache_dir
from sam2_triton.image.request import Limits
from sam2_triton.image.session import SessionService
from sam2_triton.triton_models.common import (
    chosen_decoder,
    encode_image,
    model_parameters,
    read_inputs,
    respond_each,
    served_family,
)
from sam2_triton.triton_models.metrics import CacheMetrics, ModelMetrics


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = model_parameters(args)
        cache = EmbeddingCache(server_cache_dir(), int(params["cache_bytes"]))
        limits = Limits(
            int(params["max_image_pixels"]),
            int(params["max_points"]),
            int(params["max_prompt_sets"]),
        )
        self.requests = ModelMetrics(args["model_name"])
        self.service = SessionService(
            cache,
            self.requests.timed_encode(encode_image),
            self.requests.timed_decode(chosen_decoder(args, params)),
            limits,
            served_family(params),
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
