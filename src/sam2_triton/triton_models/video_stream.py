"""sam2_video_stream: sam2_video's propagation streamed, one response per frame (decoupled;
gRPC's streaming RPC). Each frame is one BLS call to sam2_video_sessions, so other sessions'
requests interleave with a long propagation frame by frame, propagations under way at once are
tracked together, and a client that cancels the stream stops it at the next frame."""

from __future__ import annotations

from typing import Any

import triton_python_backend_utils as pb_utils

from sam2_triton import contract as c
from sam2_triton.errors import InvalidInputError
from sam2_triton.triton_models.common import error_response, read_inputs, response
from sam2_triton.triton_models.metrics import ModelMetrics
from sam2_triton.triton_models.video_calls import call_sessions
from sam2_triton.video.answers import propagation_pages
from sam2_triton.video.request import operation

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.requests = ModelMetrics(args["model_name"])

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            error: Exception | None = None
            try:
                self._stream(request, sender)
            except Exception as exc:  # noqa: BLE001 - every stream ends with an answer
                error = exc
            # Counted before the stream ends, so a client that reads the metrics after its
            # stream finds its request there (as sam2_video_sessions counts before answering).
            self.requests.answered(error)
            try:  # a client gone away cannot be told: the stream ends anyway
                if error is None:
                    sender.send(flags=FINAL)
                else:
                    sender.send(error_response(error, pb_utils.Logger), flags=FINAL)
            except Exception as exc:  # noqa: BLE001
                pb_utils.Logger.log_warn(f"{c.VIDEO_STREAM}: could not end a stream: {exc}")
        return None

    def _stream(self, request: Any, sender: Any) -> None:
        inputs = read_inputs(request, c.VIDEO_INPUTS)
        if operation(inputs) != "propagate":
            raise InvalidInputError(
                "operation", f"{c.VIDEO_STREAM} streams propagate only; send others to {c.VIDEO}"
            )
        for outputs in propagation_pages(inputs, call_sessions, 1, request.is_cancelled):
            sender.send(response(outputs))
