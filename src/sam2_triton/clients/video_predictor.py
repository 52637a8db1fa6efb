"""``SAM2RemoteVideoPredictor``: the API of Meta's ``SAM2VideoPredictor``, served by sam2_video.

Code written against ``SAM2VideoPredictor`` (Meta's video notebook) switches to the service by
changing the line that builds the predictor. ``init_state`` sends the video (a folder of JPEG
frames, as the reference reads it, or a video file) and returns a state dict holding the
server's session; every call returns what Meta's returns: mask logits at the video's size,
[N, 1, H, W] float32, as torch tensors when torch is installed (numpy arrays otherwise),
upsampled here from the server's 256 x 256 logits exactly as the reference upsamples them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sam2_triton.clients.tritonclient_io import Protocol, is_not_found
from sam2_triton.clients.video import HTTP_PAGE_FRAMES, VideoAnswer, VideoClient


class SAM2RemoteVideoPredictor:
    """``SAM2VideoPredictor`` over gRPC (propagation streamed) or HTTP (paged)."""

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        timeout_s: float | None = None,
        page_frames: int = HTTP_PAGE_FRAMES,
    ) -> None:
        self.client = VideoClient(url, protocol, timeout_s, page_frames)

    # --- SAM2VideoPredictor's API -----------------------------------------------------------

    def init_state(
        self,
        video_path: str | os.PathLike,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
    ) -> dict[str, Any]:
        """A session for a folder of JPEG frames (named by frame number, as the reference
        requires) or a video file. The offload/async flags are the reference's; the server
        decides where its state lives."""
        answer = self.client.start_path(Path(video_path))
        return {
            "session_id": answer.session_id,
            "num_frames": answer.num_frames,
            "video_height": answer.video_size[0],
            "video_width": answer.video_size[1],
            "obj_ids": [],
        }

    def add_new_points_or_box(
        self,
        inference_state: dict[str, Any],
        frame_idx: int,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: Any = None,
    ) -> tuple[int, list[int], Any]:
        if (points is None) != (labels is None):
            raise ValueError("points and labels must be provided together")
        if points is None and box is None:
            raise ValueError("at least one of points or box must be provided as input")
        answer = self.client.add_points(
            inference_state["session_id"], frame_idx, obj_id, _numpy(points), _numpy(labels),
            _numpy(box), clear_old_points, normalize_coords,
        )  # fmt: skip
        return self._frame(inference_state, answer)

    def add_new_points(self, *args: Any, **kwargs: Any) -> tuple[int, list[int], Any]:
        """The reference's deprecated name of add_new_points_or_box."""
        return self.add_new_points_or_box(*args, **kwargs)

    def add_new_mask(
        self, inference_state: dict[str, Any], frame_idx: int, obj_id: int, mask: Any
    ) -> tuple[int, list[int], Any]:
        answer = self.client.add_mask(inference_state["session_id"], frame_idx, obj_id,
                                      _numpy(mask))  # fmt: skip
        return self._frame(inference_state, answer)

    def propagate_in_video(
        self,
        inference_state: dict[str, Any],
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[int, list[int], Any]]:
        for answer in self.client.propagate(
            inference_state["session_id"], start_frame_idx, max_frame_num_to_track, reverse
        ):
            yield self._frame(inference_state, answer)

    def remove_object(
        self,
        inference_state: dict[str, Any],
        obj_id: int,
        strict: bool = False,
        need_output: bool = True,
    ) -> tuple[list[int], list[tuple[int, Any]]]:
        try:
            answer = self.client.remove_object(inference_state["session_id"], obj_id)
        except Exception as exc:
            if strict or not is_not_found(exc) or "obj_id" not in str(exc):
                raise
            return list(inference_state["obj_ids"]), []
        inference_state["obj_ids"] = answer.obj_ids
        if not need_output:
            return answer.obj_ids, []
        updated = [(f.frame_indices[0], _tensor(f.video_res_logits())) for f in answer.frames()]
        return answer.obj_ids, updated

    def clear_all_prompts_in_frame(
        self,
        inference_state: dict[str, Any],
        frame_idx: int,
        obj_id: int,
        need_output: bool = True,
    ) -> tuple[int, list[int], Any] | None:
        answer = self.client.clear_prompts(inference_state["session_id"], frame_idx, obj_id)
        result = self._frame(inference_state, answer)
        return result if need_output else None

    def reset_state(self, inference_state: dict[str, Any]) -> None:
        self.client.reset(inference_state["session_id"])
        inference_state["obj_ids"] = []

    # --- beyond the reference ---------------------------------------------------------------

    def close_state(self, inference_state: dict[str, Any]) -> None:
        """Free the session on the server now (it is closed after idling anyway)."""
        self.client.close_session(inference_state["session_id"])

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SAM2RemoteVideoPredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _frame(self, state: dict[str, Any], answer: VideoAnswer) -> tuple[int, list[int], Any]:
        state["obj_ids"] = answer.obj_ids
        return answer.frame_indices[0], answer.obj_ids, _tensor(answer.video_res_logits())


def _numpy(value: Any) -> np.ndarray | None:
    """Lists, numpy arrays or torch tensors (as the reference takes them) -> numpy."""
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _tensor(logits: np.ndarray) -> Any:
    try:
        import torch
    except ImportError:
        return logits
    return torch.from_numpy(np.ascontiguousarray(logits, np.float32))
