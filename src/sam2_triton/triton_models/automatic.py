"""sam2_automatic: segment everything in an image (logic in ``sam2_triton.image.automatic``).

The encoder runs once per crop through BLS (``sam2_image_encoder``'s batching and instances serve
it); the point grid goes to the decoder in chunks (``ServingOptions.automatic_decoder_chunk``
points per call, each call carrying the crop's features once): in this process on the embedded
target, ``sam2_mask_decoder`` through BLS on the GPU target (``chosen_decoder``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sam2_triton import contract as c
from sam2_triton.image import automatic, polygons
from sam2_triton.image.request import parse_segmentation_format, parse_tolerance
from sam2_triton.image.transforms import decode_image
from sam2_triton.triton_models.common import (
    chosen_decoder,
    encode_image,
    model_parameters,
    read_inputs,
    respond_each,
    served_family,
)
from sam2_triton.triton_models.metrics import ModelMetrics


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = model_parameters(args)
        self.max_pixels = int(params["max_image_pixels"])
        self.decoder_batch = int(params["decoder_chunk"])
        self.max_grid_points = int(params["max_grid_points"])
        self.metrics = ModelMetrics(args["model_name"])
        self.encode = self.metrics.timed_encode(encode_image)
        self.decode = self.metrics.timed_decode(chosen_decoder(args, params))
        self.family = served_family(params)

    def execute(self, requests: list[Any]) -> list[Any]:
        return respond_each(requests, self._one, self.metrics)

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        inputs = read_inputs(request, c.AUTOMATIC_INPUTS)
        params = automatic.AutomaticParams.from_inputs(inputs)
        automatic.check_grid_points(params, self.max_grid_points)
        segmentation = parse_segmentation_format(inputs.get("segmentation_format"))
        tolerance = parse_tolerance(inputs.get("polygon_tolerance"), (segmentation,))
        rgb = decode_image(inputs["image"].tobytes(), self.max_pixels)
        annotations = automatic.generate(
            rgb,
            self.encode,
            self.decode,
            params,
            decoder_batch=self.decoder_batch,
            is_cancelled=request.is_cancelled,
            family=self.family,
        )
        if segmentation == "polygons":
            annotations = polygons.as_polygon_annotations(annotations, tolerance)
        document = {
            "image": {"height": int(rgb.shape[0]), "width": int(rgb.shape[1])},
            "annotations": annotations,
        }
        return {"annotations": np.array([json.dumps(document).encode()], dtype=np.object_)}
