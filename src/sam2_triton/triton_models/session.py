"""sam2_session: encode once, click many (logic in ``sam2_triton.session``).

The encoder and decoder are reached through BLS calls to ``sam2_image_encoder`` and
``sam2_mask_decoder``, so their dynamic batching and instances (CPU or GPU) serve sessions too.
The embedding cache is shared by every instance of this model (see ``embedding_cache``) and
reports hits, misses, evictions and bytes as Triton custom metrics on the metrics port.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from sam2_triton import contract as c
from sam2_triton.embedding_cache import CacheStats, EmbeddingCache, server_cache_dir
from sam2_triton.session import Limits, SessionService
from sam2_triton.triton_models.common import (
    decode_prompts,
    encode_image,
    model_parameters,
    read_inputs,
    respond_each,
)


class CacheMetrics:
    """sam2_session_cache_* series on :8002 (counters summed over instances, bytes shared)."""

    def __init__(self, model_name: str) -> None:
        labels = {"model": model_name}
        self.families: list[Any] = []  # a MetricFamily must outlive its Metric objects

        def metric(name: str, description: str, kind: Any) -> Any:
            family = pb_utils.MetricFamily(name=name, description=description, kind=kind)
            self.families.append(family)
            return family.Metric(labels=labels)

        counter, gauge = pb_utils.MetricFamily.COUNTER, pb_utils.MetricFamily.GAUGE
        self.hits = metric("sam2_session_cache_hits", "Embedding cache hits", counter)
        self.misses = metric("sam2_session_cache_misses", "Embedding cache misses", counter)
        self.evictions = metric(
            "sam2_session_cache_evictions", "Embeddings evicted (LRU, byte bound)", counter
        )
        self.bytes = metric("sam2_session_cache_bytes", "Bytes held by the embedding cache", gauge)
        self.reported = CacheStats()

    def update(self, cache: EmbeddingCache) -> None:
        stats = cache.stats
        for name in ("hits", "misses", "evictions"):
            delta = getattr(stats, name) - getattr(self.reported, name)
            if delta:
                getattr(self, name).increment(delta)
        self.reported = CacheStats(stats.hits, stats.misses, stats.evictions)
        self.bytes.set(cache.total_bytes())


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = model_parameters(args)
        cache = EmbeddingCache(server_cache_dir(), int(params["cache_bytes"]))
        limits = Limits(int(params["max_image_pixels"]), int(params["max_points"]))
        self.service = SessionService(cache, encode_image, decode_prompts, limits)
        self.metrics = CacheMetrics(args["model_name"])

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = respond_each(requests, self._one)
        self.metrics.update(self.service.cache)
        return responses

    def finalize(self) -> None:
        self.service.cache.close()

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        return self.service.handle(read_inputs(request, c.SESSION_INPUTS), request.is_cancelled)
