"""sam2_video_sessions: the video tracking sessions (logic in ``sam2_triton.video.service``),
internal: sam2_video and sam2_video_stream call it through BLS, a propagation a frame a call.

One instance owns every session. ``execute`` only hands requests to the frame scheduler
(``sam2_triton.video.scheduler``) and returns None, so Triton gives it the next at once: the
scheduler sees every waiting request and tracks the propagations of different videos together,
and answers each through its response sender (default mode; not decoupled, see
``video_calls``).
The tracker's graphs are the export files beside this model, run here by ONNX Runtime or
OpenVINO for bf16 (embedded target, parameter ``tracker: "onnx"``), or the GPU target's
onnxruntime-backend models reached by BLS (``tracker: "bls"``). Triton calls a model only when
a request comes, so a sweeper thread closes idle sessions between requests and keeps the
metrics current.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from sam2_triton import contract as c
from sam2_triton.errors import ServiceError
from sam2_triton.repository.video_plan import TRACKER_PARAMETER
from sam2_triton.triton_models.common import error_response, model_parameters, read_inputs, response
from sam2_triton.triton_models.metrics import ModelMetrics, VideoMetrics
from sam2_triton.triton_models.video_calls import tagged
from sam2_triton.video.scheduler import FrameScheduler
from sam2_triton.video.service import VideoLimits, VideoService
from sam2_triton.video.state import TrackerModels

SWEEP_SECONDS = 30.0
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


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
        self.scheduler = FrameScheduler(self.service, float(params["step_wait_us"]) / 1e6)
        self.requests = ModelMetrics(args["model_name"])
        self.metrics = VideoMetrics(c.VIDEO)  # sam2_video_* gauges, as the public model's
        self._stop = threading.Event()
        period = max(1.0, min(SWEEP_SECONDS, limits.idle_seconds / 4))
        self._sweeper = threading.Thread(target=self._sweep, args=(period,), daemon=True)
        self._sweeper.start()

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                inputs = read_inputs(request, c.VIDEO_INPUTS)
            except Exception as exc:  # noqa: BLE001 - every request gets an answer
                self._reply(sender, exc)
                continue
            reply = functools.partial(self._reply, sender)
            self.scheduler.submit(inputs, reply, request.is_cancelled)
        return None

    def _reply(self, sender: Any, result: dict[str, np.ndarray] | Exception) -> None:
        """One request's only response (from the scheduler's thread)."""
        error = result if isinstance(result, Exception) else None
        if error is None:
            answer = response(result)
        else:
            told = tagged(error) if isinstance(error, ServiceError) else error
            answer = error_response(told, pb_utils.Logger)
        self.requests.answered(error)
        self.metrics.update(self.service)
        sender.send(answer, flags=FINAL)

    def finalize(self) -> None:
        self._stop.set()
        self.scheduler.stop()

    def _sweep(self, period: float) -> None:
        while not self._stop.wait(period):
            if self.service.evict_idle():
                self.metrics.update(self.service)


def _tracker_models(version_dir: Path, params: dict[str, str]) -> TrackerModels:
    if params.get(TRACKER_PARAMETER, "onnx") == "bls":
        from sam2_triton.triton_models.tracker_bls import BlsTrackerModels

        per_call, encoder_batch = int(params["objects_per_call"]), int(params["encoder_batch"])
        return BlsTrackerModels(version_dir / c.TRACKER_CONSTANTS_FILE, per_call, encoder_batch)
    # imported here: the GPU image has no onnxruntime
    from sam2_triton.video.runtime import OnnxTrackerModels

    return OnnxTrackerModels(version_dir, int(params["intra_op_num_threads"]), params["precision"])
