"""sam2_preprocess (ensemble, GPU target): encoded image bytes + prompts in pixels ->
model-frame tensors (logic in ``sam2_triton.image.segment.prepare_request``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sam2_triton import contract
from sam2_triton.contract import SEGMENT_INPUTS
from sam2_triton.image.prompts import DEFAULT_MAX_PROMPT_SETS
from sam2_triton.image.request import Limits
from sam2_triton.image.segment import prepare_request
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
        self.metrics = ModelMetrics(args["model_name"])
        self.limits = Limits(
            int(params.get("max_image_pixels", contract.DEFAULT_MAX_IMAGE_PIXELS)),
            int(params.get("max_points", contract.DEFAULT_MAX_POINTS)),
            int(params.get("max_prompt_sets", DEFAULT_MAX_PROMPT_SETS)),
        )
        self.family = served_family(params)

    def execute(self, requests: list[Any]) -> list[Any]:
        return respond_each(requests, self._one, self.metrics)

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        inputs = read_inputs(request, SEGMENT_INPUTS)
        prepared = prepare_request(inputs, self.limits, self.family)
        return {
            "image_1024": prepared.image_1024,
            "point_coords_1024": prepared.sets.coords,
            "point_labels_1024": prepared.sets.labels,
            "mask_input_1024": prepared.sets.mask_input,
            "has_mask_input": prepared.sets.has_mask_input,
            "orig_size": np.array(prepared.orig_hw, dtype=np.int32),
            "multimask": np.array([prepared.options.multimask]),
            "mask_format": np.array([prepared.options.output_format.encode()], dtype=np.object_),
            "cutout_rgb": prepared.cutout_rgb,
            "mask_hw": np.array(prepared.options.mask_size or prepared.orig_hw, dtype=np.int32),
            "polygon_epsilon": np.array([prepared.options.polygon_tolerance], np.float32),
        }
