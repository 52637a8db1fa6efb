"""``VideoClient``: sam2_video's operations over HTTP or gRPC, one method each.

``propagate`` yields one ``VideoAnswer`` per frame: over gRPC from sam2_video_stream's
stream (each frame as soon as it is tracked; closing the generator cancels the rest), over
HTTP from pages of sam2_video (``video.answers.propagation_pages``, the loop the stream model
runs on the server).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sam2_triton import contract as c
from sam2_triton.clients.tritonclient_io import (
    DEFAULT_URLS,
    Protocol,
    close_once,
    make_input,
    timeout_kwargs,
    tritonclient_module,
)
from sam2_triton.image.masks import upsample_logits
from sam2_triton.video.answers import propagation_pages

OUTPUT_NAMES = [t.name for t in c.VIDEO_OUTPUTS]
#: Encoded frames per request when a video is sent frame by frame (about 3 MB of JPEG at 720p).
FRAMES_PER_REQUEST = 32
HTTP_PAGE_FRAMES = 8  # the server caps a page at its own video_page_frames
JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclass(frozen=True)
class VideoAnswer:
    """One sam2_video response: the session, and masks of F frames x N objects."""

    session_id: str
    num_frames: int
    video_size: tuple[int, int]  # (height, width)
    frame_indices: list[int]
    obj_ids: list[int]
    low_res_logits: np.ndarray  # [F, N, 256, 256] (output_format "logits")
    encoded_masks: list[bytes]  # rle: F x N JSON records
    masks: np.ndarray  # raw: [F, N, H, W]
    next_frame_idx: int
    frames_left: int

    def video_res_logits(self, i: int = 0) -> np.ndarray:
        """Frame i's logits at the video's size [N, 1, H, W], as the server would upsample
        them (SAM2VideoPredictor's video_res_masks)."""
        return np.stack([upsample_logits(m[None], self.video_size) for m in self.low_res_logits[i]])

    def frames(self) -> Iterator[VideoAnswer]:
        """This answer split into one answer per frame."""
        n = len(self.obj_ids)
        for i, frame in enumerate(self.frame_indices):
            yield VideoAnswer(
                self.session_id,
                self.num_frames,
                self.video_size,
                [frame],
                self.obj_ids,
                self.low_res_logits[i : i + 1],
                self.encoded_masks[i * n : (i + 1) * n],
                self.masks[i : i + 1],
                self.next_frame_idx,
                self.frames_left,
            )


class VideoClient:
    """A connection to sam2_video (and sam2_video_stream over gRPC)."""

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        timeout_s: float | None = None,
        page_frames: int = HTTP_PAGE_FRAMES,
    ) -> None:
        """``page_frames``: frames an HTTP propagate request asks for (smaller pages show the
        first frames sooner; the server answers at most its ``video_page_frames``)."""
        if page_frames < 1:
            raise ValueError(f"page_frames must be at least 1, got {page_frames}")
        self.protocol, self.url = protocol, url or DEFAULT_URLS[protocol]
        self.page_frames = page_frames
        self._tc = tritonclient_module(protocol)
        self.timeout_s = timeout_s
        if protocol == "http":
            self.client = self._tc.InferenceServerClient(
                self.url, network_timeout=timeout_s or 600.0, connection_timeout=60.0
            )
        else:
            self.client = self._tc.InferenceServerClient(self.url)

    # --- operations -------------------------------------------------------------------------

    def start(
        self,
        video: bytes | None = None,
        frames: Sequence[bytes] = (),
        num_frames: int | None = None,
    ) -> VideoAnswer:
        """A new session from a video file or encoded frames (sent FRAMES_PER_REQUEST at a
        time); neither: an empty session for a live stream (``add_frames``)."""
        first, rest = list(frames[:FRAMES_PER_REQUEST]), frames[FRAMES_PER_REQUEST:]
        answer = self.call(
            "start",
            video=None if video is None else np.frombuffer(video, np.uint8),
            frames=_bytes_tensor(first) if first else None,
            num_frames=num_frames,
        )
        for k in range(0, len(rest), FRAMES_PER_REQUEST):
            answer = self.add_frames(answer.session_id, rest[k : k + FRAMES_PER_REQUEST])
        return answer

    def start_path(self, path: Path) -> VideoAnswer:
        """A new session from a folder of JPEG frames (``jpeg_frames``) or a video file."""
        if path.is_dir():
            return self.start(frames=[p.read_bytes() for p in jpeg_frames(path)])
        if path.is_file():
            return self.start(video=path.read_bytes())
        raise FileNotFoundError(f"no video file or frame folder at {path}")

    def add_frames(self, session_id: str, frames: Sequence[bytes]) -> VideoAnswer:
        return self.call("add_frames", session_id=session_id, frames=_bytes_tensor(frames))

    def add_points(
        self,
        session_id: str,
        frame_idx: int,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
    ) -> VideoAnswer:
        return self.call(
            "add_points",
            session_id=session_id,
            frame_idx=frame_idx,
            obj_id=obj_id,
            point_coords=None if points is None else np.asarray(points, np.float32).reshape(-1, 2),
            point_labels=None if labels is None else np.asarray(labels, np.int32).reshape(-1),
            box=None if box is None else np.asarray(box, np.float32).reshape(4),
            clear_old_points=clear_old_points,
            normalize_coords=normalize_coords,
        )

    def add_mask(self, session_id: str, frame_idx: int, obj_id: int, mask: Any) -> VideoAnswer:
        mask = np.asarray(mask) != 0
        return self.call("add_mask", session_id=session_id, frame_idx=frame_idx, obj_id=obj_id,
                         mask=mask)  # fmt: skip

    def propagate(
        self,
        session_id: str,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
        output_format: str | None = None,
    ) -> Iterator[VideoAnswer]:
        """Every tracked frame's answer, in order."""
        values = self._values(
            operation="propagate",
            session_id=session_id,
            start_frame_idx=start_frame_idx,
            max_frame_num_to_track=max_frame_num_to_track,
            reverse=reverse,
            output_format=output_format,
        )
        if self.protocol == "grpc":
            yield from self._streamed(values)
            return
        for outputs in propagation_pages(values, self._infer, self.page_frames):
            yield from _answer(outputs).frames()

    def track_video(
        self, session_id: str, first_prompted_frame: int, output_format: str | None = None
    ) -> Iterator[VideoAnswer]:
        """Every frame of the video tracked, as Meta's notebook does it: forward from the first
        prompted frame, then, unless that is frame 0, backward from that frame itself (which
        comes again: ``1 + num_frames`` answers then, the last one for each frame is final)."""
        for start, reverse in propagation_passes(first_prompted_frame):
            yield from self.propagate(
                session_id, start, reverse=reverse, output_format=output_format
            )

    def remove_object(self, session_id: str, obj_id: int) -> VideoAnswer:
        return self.call("remove_object", session_id=session_id, obj_id=obj_id)

    def clear_prompts(self, session_id: str, frame_idx: int, obj_id: int) -> VideoAnswer:
        return self.call("clear_prompts", session_id=session_id, frame_idx=frame_idx,
                         obj_id=obj_id)  # fmt: skip

    def reset(self, session_id: str) -> VideoAnswer:
        return self.call("reset", session_id=session_id)

    def close_session(self, session_id: str) -> VideoAnswer:
        return self.call("close", session_id=session_id)

    # --- transport --------------------------------------------------------------------------

    def call(self, operation: str, **inputs: Any) -> VideoAnswer:
        """One sam2_video request; None inputs are not sent."""
        return _answer(self._infer(self._values(operation=operation, **inputs)))

    def _values(self, **inputs: Any) -> dict[str, np.ndarray]:
        values = {}
        for name, value in inputs.items():
            if value is None:
                continue
            if isinstance(value, str):
                value = np.array([value.encode()], dtype=np.object_)
            elif isinstance(value, bool):
                value = np.array([value], bool)
            elif isinstance(value, int):
                value = np.array([value], np.int32)
            values[name] = value
        return values

    def _infer(self, values: dict[str, np.ndarray], model: str = c.VIDEO) -> dict[str, Any]:
        inputs = [make_input(self._tc, self.protocol, n, v) for n, v in values.items()]
        outputs = [self._tc.InferRequestedOutput(n) for n in OUTPUT_NAMES]
        kwargs = timeout_kwargs(self.protocol, self.timeout_s)
        result = self.client.infer(model, inputs, outputs=outputs, **kwargs)
        return {n: result.as_numpy(n) for n in OUTPUT_NAMES}

    def _streamed(self, values: dict[str, np.ndarray]) -> Iterator[VideoAnswer]:
        """sam2_video_stream: one response per frame, then an empty final one."""
        answers: queue.Queue = queue.Queue()
        self.client.start_stream(callback=lambda result, error: answers.put((result, error)))
        done = False
        try:
            inputs = [make_input(self._tc, "grpc", n, v) for n, v in values.items()]
            outputs = [self._tc.InferRequestedOutput(n) for n in OUTPUT_NAMES]
            self.client.async_stream_infer(
                c.VIDEO_STREAM, inputs, outputs=outputs, enable_empty_final_response=True
            )
            while True:
                try:  # timeout_s: for each frame, not the whole stream
                    result, error = answers.get(timeout=self.timeout_s)
                except queue.Empty:
                    raise TimeoutError(
                        f"no frame from {c.VIDEO_STREAM} in {self.timeout_s} s"
                    ) from None
                if error is not None:
                    done = True
                    raise error
                response = result.get_response()
                if response.outputs:
                    answer = _answer({n: result.as_numpy(n) for n in OUTPUT_NAMES})
                    yield from answer.frames()
                if response.parameters["triton_final_response"].bool_param:
                    done = True
                    return
        finally:
            self.client.stop_stream(cancel_requests=not done)

    def close(self) -> None:
        close_once(self.client)

    def __enter__(self) -> VideoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def propagation_passes(first_prompted_frame: int) -> list[tuple[int, bool]]:
    """(start frame, reverse) of the passes that track a whole video from its first prompt."""
    first = first_prompted_frame
    return [(first, False)] + ([(first, True)] if first > 0 else [])


def jpeg_frames(folder: Path) -> list[Path]:
    """The JPEG frames of a folder in frame order, as SAM2VideoPredictor lists them (names are
    frame numbers: 0.jpg, 00001.jpeg, ...)."""
    frames = [p for p in folder.iterdir() if p.suffix.lower() in JPEG_SUFFIXES]
    try:
        frames.sort(key=lambda p: int(p.stem))
    except ValueError:
        raise ValueError(
            f"{folder}: JPEG frames must be named by their frame number (0.jpg, 1.jpg, ...)"
        ) from None
    if not frames:
        raise FileNotFoundError(f"no JPEG frames (*.jpg, *.jpeg) in {folder}")
    return frames


def _bytes_tensor(items: Sequence[bytes]) -> np.ndarray:
    return np.array([bytes(b) for b in items], dtype=np.object_)


def _answer(outputs: dict[str, Any]) -> VideoAnswer:
    raw_id = outputs["session_id"].reshape(-1)[0]
    return VideoAnswer(
        session_id=raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id),
        num_frames=int(outputs["num_frames"][0]),
        video_size=(int(outputs["video_size"][0]), int(outputs["video_size"][1])),
        frame_indices=[int(f) for f in outputs["frame_indices"]],
        obj_ids=[int(i) for i in outputs["obj_ids"]],
        low_res_logits=outputs["low_res_logits"],
        encoded_masks=[bytes(b) for b in outputs["encoded_masks"].reshape(-1)],
        masks=outputs["masks"],
        next_frame_idx=int(outputs["next_frame_idx"][0]),
        frames_left=int(outputs["frames_left"][0]),
    )
