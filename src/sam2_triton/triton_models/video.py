"""sam2_video: video tracking sessions (logic in ``sam2_triton.video_service``).

One instance owns every session. The tracker's graphs are the export files beside this model,
run here by ONNX Runtime or OpenVINO for bf16 (embedded target, parameter ``tracker: "onnx"``),
or the GPU target's onnxruntime-backend models reached by BLS (``tracker: "bls"``). Triton calls
a model only when a request comes, so a sweeper thread closes idle sessions between requests and
keeps the metrics current.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from sam2_triton import contract as c
from sam2_triton.plan_video import TRACKER_PARAMETER
from sam2_triton.triton_models.common import model_parameters, read_inputs, respond_each
from sam2_triton.triton_models.metrics import ModelMetrics, VideoMetrics
from sam2_triton.video_service import VideoLimits, VideoService
from sam2_triton.video_state import TrackerModels

SWEEP_SECONDS = 30.0


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = model_parameters(args)
        models = _tracker_models(Path(args["model_repository"]) / args["model_version"], params)
        limits = VideoLimits(
            max_sessions=int(params["max_sessions"]),
            max_bytes=int(params["max_bytes"]),
            idle_seconds=float(params["idle_seconds"]),
            max_frames=int(params["max_frames"]),
            page_frames=int(params["page_frames"]),
            memory_frames=int(params["memory_frames"]),
            max_image_pixels=int(params["max_image_pixels"]),
            max_points=int(params["max_points"]),
        )
        self.service = VideoService(models, limits)
        self.requests = ModelMetrics(args["model_name"])
        self.metrics = VideoMetrics(args["model_name"])
        self._stop = threading.Event()
        period = max(1.0, min(SWEEP_SECONDS, limits.idle_seconds / 4))
        self._sweeper = threading.Thread(target=self._sweep, args=(period,), daemon=True)
        self._sweeper.start()

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = respond_each(requests, self._one, self.requests)
        self.metrics.update(self.service)
        return responses

    def finalize(self) -> None:
        self._stop.set()

    def _one(self, request: Any) -> dict[str, np.ndarray]:
        return self.service.handle(read_inputs(request, c.VIDEO_INPUTS))

    def _sweep(self, period: float) -> None:
        while not self._stop.wait(period):
            if self.service.evict_idle():
                self.metrics.update(self.service)


def _tracker_models(version_dir: Path, params: dict[str, str]) -> TrackerModels:
    if params.get(TRACKER_PARAMETER, "onnx") == "bls":
        from sam2_triton.triton_models.tracker_bls import BlsTrackerModels

        per_call = int(params["objects_per_call"])
        return BlsTrackerModels(version_dir / c.TRACKER_CONSTANTS_FILE, per_call)
    # imported here: the GPU image has no onnxruntime
    from sam2_triton.tracker_runtime import OnnxTrackerModels

    return OnnxTrackerModels(version_dir, int(params["intra_op_num_threads"]), params["precision"])
