"""sam2_video: the video API (logic in ``sam2_triton.video.service``), stateless in front of
sam2_video_sessions, which holds the sessions. A propagate page is tracked a frame a call, so
other sessions' requests interleave with it and propagations under way are batched."""

from __future__ import annotations

from typing import Any

import numpy as np

from sam2_triton import contract as c
from sam2_triton.triton_models.common import model_parameters, read_inputs, respond_each
from sam2_triton.triton_models.metrics import ModelMetrics
from sam2_triton.triton_models.video_calls import call_sessions
from sam2_triton.video.answers import propagate_page
from sam2_triton.video.request import operation


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.page_frames = int(model_parameters(args)["page_frames"])
        self.requests = ModelMetrics(args["model_name"])

    def execute(self, requests: list[Any]) -> list[Any]:
        return respond_each(requests, self._one, self.requests)

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        inputs = read_inputs(request, c.VIDEO_INPUTS)
        if operation(inputs) == "propagate":
            return propagate_page(inputs, call_sessions, self.page_frames, request.is_cancelled)
        return call_sessions({k: v for k, v in inputs.items() if v is not None})
