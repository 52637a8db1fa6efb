"""sam2_image_encoder / sam2_mask_decoder, embedded target: ONNX Runtime in the Python backend.

Triton's onnxruntime backend is not in the nvidia-pytriton wheel, so on CPU the ONNX file next to
this model is run here: by an ``onnxruntime.InferenceSession`` (fp32) or OpenVINO (bf16), see
``sam2_triton.runtime.runners``. The encoder's requests of one dynamic batch are concatenated and
run together where their shapes allow (``runtime.grouping``); the decoder has no batch
axis (one image's features, N prompt sets per request) and each request is checked
(``image.decoder_feeds.check_decoder_inputs``) and run alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from sam2_triton.image.decoder_feeds import check_decoder_inputs
from sam2_triton.runtime.grouping import run_grouped
from sam2_triton.runtime.runners import create_session
from sam2_triton.triton_models.common import error_response, model_parameters, response
from sam2_triton.triton_models.metrics import ModelMetrics


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = model_parameters(args)
        onnx_path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = create_session(
            onnx_path,
            intra_op_threads=int(params.get("intra_op_num_threads", "0")),
            precision=params.get("precision", "fp32"),
        )
        self.input_names = [t["name"] for t in config["input"]]
        self.output_names = [t["name"] for t in config["output"]]
        self.metrics = ModelMetrics(args["model_name"])
        # the decoder (max_batch_size 0): at most this many prompt sets (and points) per request
        self.max_prompts = int(params["max_prompts"]) if "max_prompts" in params else None
        self.max_points = int(params.get("max_points", "0"))

    def execute(self, requests: list[Any]) -> list[Any]:
        inputs = [
            {n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.input_names}
            for r in requests
        ]
        responses = []
        results = (
            run_grouped(inputs, self._run)
            if self.max_prompts is None
            else [_result_of(self._run, one) for one in inputs]  # decoder: no batch axis
        )
        for result in results:
            if isinstance(result, Exception):
                responses.append(error_response(result, pb_utils.Logger))
                self.metrics.answered(result)
            else:
                responses.append(response(result))
                self.metrics.answered(None)
        return responses

    def _run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.max_prompts is not None:
            check_decoder_inputs(batch, self.max_prompts, self.max_points)
        values = self.session.run(self.output_names, batch)
        return dict(zip(self.output_names, values, strict=True))


def _result_of(run: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray] | Exception:
    try:
        return run(inputs)
    except Exception as exc:  # noqa: BLE001 - reported per request by the caller
        return exc
