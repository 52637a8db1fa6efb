"""sam2_preprocess: encoded image bytes + prompts in pixels -> model-frame tensors."""

from __future__ import annotations

from typing import Any

import numpy as np

from sam2_triton import processing
from sam2_triton.contract import SEGMENT_INPUTS
from sam2_triton.triton_models.common import model_parameters, read_inputs, respond_each

_NO_IMAGE = np.zeros((0, 0, 3), np.uint8)  # cutout_rgb when no cut-out was asked for


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = model_parameters(args)
        self.max_pixels = int(params.get("max_image_pixels", processing.DEFAULT_MAX_IMAGE_PIXELS))
        self.max_points = int(params.get("max_points", processing.DEFAULT_MAX_POINTS))

    def execute(self, requests: list[Any]) -> list[Any]:
        return respond_each(requests, self._one)

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        inputs = read_inputs(request, SEGMENT_INPUTS)
        output_format = processing.parse_output_format(inputs["output_format"])
        multimask = processing.parse_multimask(inputs["multimask_output"])
        mask_input, has_mask_input = processing.prepare_mask_input(inputs["mask_input"])
        rgb = processing.decode_image(inputs["image"].tobytes(), self.max_pixels)
        orig_hw = (rgb.shape[0], rgb.shape[1])
        prompts = processing.prepare_prompts(
            inputs["point_coords"], inputs["point_labels"], inputs["box"], orig_hw, self.max_points
        )
        return {
            "image_1024": processing.preprocess_image(rgb),
            "point_coords_1024": prompts.coords,
            "point_labels_1024": prompts.labels,
            "mask_input_1024": mask_input,
            "has_mask_input": has_mask_input,
            "orig_size": np.array(orig_hw, dtype=np.int32),
            "multimask": np.array([multimask]),
            "mask_format": np.array([output_format.encode()], dtype=np.object_),
            "cutout_rgb": rgb if output_format.startswith("cutout") else _NO_IMAGE,
        }
