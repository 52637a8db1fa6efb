"""sam3_concepts: SAM 3's concept prompts (logic in ``sam2_triton.concepts.service``).

The three graphs (vision, text, detector) run here by ONNX Runtime (embedded target: the files
beside this model) or are models of their own reached through BLS (GPU target, parameter
``graphs: "bls"``). An image's backbone features are cached by content id in a shared cache
like sam2_session's embeddings (a folder of its own, counted as ``sam3_concepts_cache_*``), so
every instance reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sam2_triton import contract as c
from sam2_triton.concepts.find import ConceptGraphs
from sam2_triton.concepts.request import ConceptLimits
from sam2_triton.concepts.service import ConceptService
from sam2_triton.image.embedding_cache import EmbeddingCache, server_cache_dir
from sam2_triton.metrics import CONCEPTS_CACHE
from sam2_triton.triton_models.common import (
    BlsGraph,
    model_parameters,
    read_inputs,
    respond_each,
)
from sam2_triton.triton_models.metrics import CacheMetrics, ModelMetrics


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = model_parameters(args)
        folder = Path(args["model_repository"]) / args["model_version"]
        vocabulary = folder / c.VOCABULARY_FILE
        if params.get("graphs") == "bls":  # repository.model_plan.GRAPHS_PARAMETER
            graphs = ConceptGraphs(
                *(BlsGraph(m) for m in (c.SAM3_VISION, c.SAM3_TEXT, c.SAM3_DETECTOR)), vocabulary
            )
        else:
            graphs = ConceptGraphs.onnx(folder, vocabulary, int(params["intra_op_num_threads"]))
        cache = EmbeddingCache(server_cache_dir() / c.CONCEPTS, int(params["cache_bytes"]))
        limits = ConceptLimits(int(params["max_image_pixels"]), int(params["max_phrases"]))
        self.service = ConceptService(graphs, cache, limits)
        self.requests = ModelMetrics(args["model_name"])
        self.metrics = CacheMetrics(args["model_name"], CONCEPTS_CACHE)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = respond_each(requests, self._one, self.requests)
        self.metrics.update(self.service.cache)
        return responses

    def finalize(self) -> None:
        self.service.cache.close()

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        return self.service.handle(read_inputs(request, c.CONCEPTS_INPUTS))
