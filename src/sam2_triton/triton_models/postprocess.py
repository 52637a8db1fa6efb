"""sam2_postprocess: all four mask tokens -> the chosen masks at the original image size,
raw or encoded as the request asked."""

from __future__ import annotations

from typing import Any

import numpy as np

from sam2_triton import processing
from sam2_triton.contract import POSTPROCESS_INPUTS
from sam2_triton.mask_formats import response_outputs
from sam2_triton.triton_models.common import read_inputs, respond_each


class TritonPythonModel:
    def execute(self, requests: list[Any]) -> list[Any]:
        return respond_each(requests, self._one)

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        inputs = read_inputs(request, POSTPROCESS_INPUTS)
        height, width = (int(v) for v in inputs["orig_size"])
        result = processing.postprocess_masks(
            inputs["low_res_masks"][0],
            inputs["iou_predictions"][0],
            (height, width),
            multimask_output=bool(inputs["multimask"][0]),
        )
        output_format = processing.parse_output_format(inputs["mask_format"])
        return response_outputs(result, output_format, inputs["cutout_rgb"])
