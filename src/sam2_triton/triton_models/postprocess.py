"""sam2_postprocess (ensemble, GPU target): all four mask tokens -> the chosen masks at the
original image size, raw or encoded as the request asked (``sam2_triton.image.segment``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sam2_triton.contract import POSTPROCESS_INPUTS
from sam2_triton.image.request import OutputOptions, parse_output_format
from sam2_triton.image.segment import finish_request
from sam2_triton.triton_models.common import (
    model_parameters,
    read_inputs,
    respond_each,
    served_family,
)
from sam2_triton.triton_models.metrics import ModelMetrics


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.metrics = ModelMetrics(args["model_name"])
        self.family = served_family(model_parameters(args))

    def execute(self, requests: list[Any]) -> list[Any]:
        return respond_each(requests, self._one, self.metrics)

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        inputs = read_inputs(request, POSTPROCESS_INPUTS)
        height, width = (int(v) for v in inputs["orig_size"])
        mask_height, mask_width = (int(v) for v in inputs["mask_hw"])
        options = OutputOptions(
            output_format=parse_output_format(inputs["mask_format"]),
            multimask=bool(inputs["multimask"][0]),
            mask_size=(mask_height, mask_width),
            polygon_tolerance=float(inputs["polygon_epsilon"][0]),
            family=self.family,
        )
        return finish_request(inputs, (height, width), options, inputs["cutout_rgb"])
