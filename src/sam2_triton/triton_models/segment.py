"""sam2_segment, embedded target: the whole request in one Python model (``image.segment``).

The encoder and decoder ONNX files beside this model run here (ONNX Runtime fp32 or OpenVINO
bf16, ``sam2_triton.runtime.runners``). Compared with the ensemble the GPU target keeps, no image or
features cross shared memory between stubs, and on a CPU dynamic batching bought no throughput
(figures: docs/benchmarks.md). A request its client cancelled stops before
the encoder or the decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sam2_triton import contract as c
from sam2_triton.image.request import Limits
from sam2_triton.image.segment import segment
from sam2_triton.runtime.runners import sam2_functions
from sam2_triton.triton_models.common import (
    model_parameters,
    read_inputs,
    respond_each,
    served_family,
)
from sam2_triton.triton_models.metrics import ModelMetrics


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = model_parameters(args)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        threads = int(params.get("intra_op_num_threads", "0"))
        precision = params.get("precision", "fp32")
        encode, decode = sam2_functions(
            version_dir / params["encoder"], version_dir / params["decoder"], threads, precision
        )
        self.metrics = ModelMetrics(args["model_name"])
        self.encode = self.metrics.timed_encode(encode)
        self.decode = self.metrics.timed_decode(decode)
        self.limits = Limits(
            int(params["max_image_pixels"]),
            int(params["max_points"]),
            int(params["max_prompt_sets"]),
        )
        self.family = served_family(params)

    def execute(self, requests: list[Any]) -> list[Any]:
        return respond_each(requests, self._one, self.metrics)

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        inputs = read_inputs(request, c.SEGMENT_INPUTS)
        return segment(
            inputs, self.encode, self.decode, self.limits, request.is_cancelled, self.family
        )
