"""sam2_video_sessions: the video tracking sessions (logic in ``sam2_triton.video_service``),
internal: sam2_video and sam2_video_stream call it, each request with a batch axis of one.

One instance owns every session. Triton's dynamic batcher hands it the requests that arrived
together (propagations of different videos, a frame each, tracked together). The tracker's
graphs are the export files beside this model, run here by ONNX Runtime or OpenVINO for bf16
(embedded target, parameter ``tracker: "onnx"``), or the GPU target's onnxruntime-backend
models reached by BLS (``tracker: "bls"``). Triton calls a model only when a request comes, so
a sweeper thread closes idle sessions between requests and keeps the metrics current.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from sam2_triton import contract as c
from sam2_triton.errors import InvalidInputError, RequestCancelled, ServiceError
from sam2_triton.plan_video import TRACKER_PARAMETER
from sam2_triton.triton_models.common import error_response, model_parameters, read_inputs, response
from sam2_triton.triton_models.metrics import ModelMetrics, VideoMetrics
from sam2_triton.triton_models.video_calls import tagged
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
        self.metrics = VideoMetrics(c.VIDEO)  # sam2_video_* gauges, as the public model's
        self._stop = threading.Event()
        period = max(1.0, min(SWEEP_SECONDS, limits.idle_seconds / 4))
        self._sweeper = threading.Thread(target=self._sweep, args=(period,), daemon=True)
        self._sweeper.start()

    def execute(self, requests: list[Any]) -> list[Any]:
        batch: list[dict[str, np.ndarray | None]] = []
        results: dict[int, dict[str, np.ndarray] | Exception] = {}
        for i, request in enumerate(requests):
            try:
                if request.is_cancelled():
                    raise RequestCancelled("cancelled by the client")
                batch.append(_unbatched(read_inputs(request, c.VIDEO_INPUTS)))
            except Exception as exc:  # noqa: BLE001 - every request gets an answer
                results[i] = exc
        answers = iter(self.service.handle_many(batch))
        responses = []
        for i in range(len(requests)):
            result = results[i] if i in results else next(answers)
            error = result if isinstance(result, Exception) else None
            if error is None:
                responses.append(response({k: v[None] for k, v in result.items()}))
            else:
                told = tagged(error) if isinstance(error, ServiceError) else error
                responses.append(error_response(told, pb_utils.Logger))
            self.requests.answered(error)
        self.metrics.update(self.service)
        return responses

    def finalize(self) -> None:
        self._stop.set()

    def _sweep(self, period: float) -> None:
        while not self._stop.wait(period):
            if self.service.evict_idle():
                self.metrics.update(self.service)


def _unbatched(inputs: dict[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
    """A request's inputs without the batch axis its caller added (one request each)."""
    for name, value in inputs.items():
        if value is not None and value.shape[0] != 1:
            raise InvalidInputError(name, f"one request per call, got a batch of {value.shape[0]}")
    return {name: None if value is None else value[0] for name, value in inputs.items()}


def _tracker_models(version_dir: Path, params: dict[str, str]) -> TrackerModels:
    if params.get(TRACKER_PARAMETER, "onnx") == "bls":
        from sam2_triton.triton_models.tracker_bls import BlsTrackerModels

        per_call, encoder_batch = int(params["objects_per_call"]), int(params["encoder_batch"])
        return BlsTrackerModels(version_dir / c.TRACKER_CONSTANTS_FILE, per_call, encoder_batch)
    # imported here: the GPU image has no onnxruntime
    from sam2_triton.tracker_runtime import OnnxTrackerModels

    return OnnxTrackerModels(version_dir, int(params["intra_op_num_threads"]), params["precision"])
