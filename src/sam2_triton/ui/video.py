"""The web app's videos: opened here, tracked by ``sam2_video`` (issue 33).

A video arrives as a file (MP4, WebM, MOV: anything FFmpeg reads), a zip or a folder of JPEG
frames. The gateway decodes it as the server does (``video.frames``: PyAV, RGB; the same pixel
cap) so that a non-video or an over-limit one is refused with a readable reason before Triton
sees it, and so that the page shows exactly the frames the server segments (served as JPEG, one
URL a frame). The server gets the original bytes (a file) or the frames and keeps the session;
prompts and tracking name it. Answers are per-frame records in the layout ``sam2-triton
track`` writes (``cli.track_files.frame_record``). A video the page stops using is closed
after ``idle_s``; the server closes its session on its own idle timer as well.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from sam2_triton import contract
from sam2_triton.cli.track_files import frame_record, write_overlay
from sam2_triton.clients.tritonclient_io import Protocol
from sam2_triton.clients.video import VideoAnswer, VideoClient
from sam2_triton.errors import InvalidInputError
from sam2_triton.image.encodings import mask_to_png, rle_to_mask
from sam2_triton.image.transforms import decode_image
from sam2_triton.ui.backend import GatewayError, failure_status
from sam2_triton.ui.requests import VideoPrompt
from sam2_triton.video.frames import video_arrays

T = TypeVar("T")
JPEG_SUFFIXES = (".jpg", ".jpeg")
ZIP_MAGIC = b"PK\x03\x04"
ZIP_FPS = 24.0  # frames carry no rate: played at this one


@dataclass
class OpenVideo:
    video_id: str  # sam2_video's session
    width: int
    height: int
    fps: float
    frames: list[bytes]  # JPEG, as the page shows them
    used: float = field(default_factory=time.monotonic)
    records: dict[int, dict] = field(default_factory=dict)  # the last masks of each frame

    def info(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "width": self.width, "height": self.height,
                "fps": self.fps, "num_frames": len(self.frames)}  # fmt: skip


class VideoBackend:
    """The gateway's videos. Thread-safe: each thread has its own client."""

    def __init__(
        self,
        triton_url: str,
        protocol: Protocol = "grpc",
        max_frames: int = 600,
        max_pixels: int = contract.DEFAULT_MAX_IMAGE_PIXELS,
        max_videos: int = 4,
        idle_s: float = 600.0,
    ) -> None:
        self.url, self.protocol = triton_url, protocol
        self.max_frames, self.max_pixels = max_frames, max_pixels
        self.max_videos, self.idle_s = max_videos, idle_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._videos: OrderedDict[str, OpenVideo] = OrderedDict()

    def open_video(self, data: bytes | list[tuple[str, bytes]]) -> OpenVideo:
        """Decode (refusing what the server would), start a session, remember the frames.
        ``data``: a file's bytes, or a folder's files as (name, bytes)."""
        self.close_idle()
        try:
            if isinstance(data, list) or data.startswith(ZIP_MAGIC):
                shown = _jpeg_frames(data, self.max_frames)
                height, width = _frame_size(shown, self.max_pixels)
                fps, sent = ZIP_FPS, {"frames": shown}
            else:
                shown, height, width = self._decoded(data)
                fps, sent = _frame_rate(data) or ZIP_FPS, {"video": data}
        except InvalidInputError as exc:
            raise GatewayError(400, f"not a video this server can track: {exc}") from None
        answer = self._call(lambda c: c.start(**sent))
        video = OpenVideo(answer.session_id, width, height, fps, shown)
        with self._lock:
            self._videos[video.video_id] = video
            while len(self._videos) > self.max_videos:
                _, oldest = self._videos.popitem(last=False)
                self._close_quietly(oldest.video_id)
        return video

    def _decoded(self, data: bytes) -> tuple[list[bytes], int, int]:
        """A video file's frames as JPEG for the page, and their size."""
        shown: list[bytes] = []
        height = width = 0
        for rgb in video_arrays(data, self.max_pixels):
            if len(shown) == self.max_frames:
                raise InvalidInputError("video", f"more than {self.max_frames} frames, this "
                                                 "gateway's limit")  # fmt: skip
            shown.append(_jpeg(rgb))
            height, width = rgb.shape[:2]
        if not shown:
            raise InvalidInputError("video", "the file holds no decodable frame")
        return shown, height, width

    def video(self, video_id: str) -> OpenVideo:
        with self._lock:
            video = self._videos.get(video_id)
            if video is not None:
                video.used = time.monotonic()
        if video is None:
            raise GatewayError(404, f"video {video_id[:12]}…: not open here (closed when idle); "
                                    "open it again")  # fmt: skip
        return video

    def frame(self, video_id: str, index: int) -> bytes:
        video = self.video(video_id)
        if not 0 <= index < len(video.frames):
            raise GatewayError(404, f"frame {index}: the video has frames 0 to "
                                    f"{len(video.frames) - 1}")  # fmt: skip
        return video.frames[index]

    def prompt(self, video_id: str, prompt: VideoPrompt) -> dict[str, Any]:
        """An object's prompts on one frame (replacing its earlier ones there): every object's
        mask on that frame."""
        video = self.video(video_id)
        if prompt.frame >= len(video.frames):
            raise GatewayError(400, f"frame: {prompt.frame} is past the video's last frame, "
                                    f"{len(video.frames) - 1}")  # fmt: skip
        p = prompt.prompts
        answer = self._call(lambda c: c.call(
            "add_points", session_id=video_id, frame_idx=prompt.frame, obj_id=prompt.obj_id,
            point_coords=p.points if len(p.points) else None,
            point_labels=p.labels if len(p.labels) else None, box=p.box,
            clear_old_points=True, normalize_coords=True, output_format="rle",
        ))  # fmt: skip
        record = _record(answer)
        video.records[record["frame"]] = record
        return record

    def track(self, video_id: str, start: int, reverse: bool) -> Iterator[dict[str, Any]]:
        """Each tracked frame's record as the server sends it; closing the iterator cancels
        the server's propagation."""
        video = self.video(video_id)
        if not 0 <= start < len(video.frames):
            raise GatewayError(400, f"start: frame {start} is not in the video")
        answers = self._call(lambda c: c.propagate(video_id, start, None, reverse, "rle"))
        try:
            while True:
                answer = self._call(lambda c: next(answers, None))
                if answer is None:
                    return
                video.used = time.monotonic()
                record = _record(answer)
                video.records[record["frame"]] = record
                yield record
        finally:
            answers.close()

    def remove_object(self, video_id: str, obj_id: int) -> dict[str, Any]:
        video = self.video(video_id)
        answer = self._call(lambda c: c.remove_object(video_id, obj_id))
        for record in video.records.values():
            record["objects"] = [o for o in record["objects"] if o["obj_id"] != obj_id]
        return {"frames": answer.frame_indices}

    def export(self, video_id: str, name: str) -> tuple[bytes, str]:
        """The masks the page was shown, as files ``sam2-triton track`` writes: ``masks.zip``
        (a PNG a frame and object, named as ``--png`` names them, and each frame's JSON record)
        or ``overlay.mp4`` (the frames with the masks in each object's colour)."""
        video = self.video(video_id)
        records = dict(sorted(video.records.items()))
        if name == "masks.zip":
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
                for frame, record in records.items():
                    archive.writestr(f"masks/{frame:05d}.json", json.dumps(record))
                    for obj in record["objects"]:
                        png = mask_to_png(rle_to_mask(obj["segmentation"]))
                        archive.writestr(f"masks/{frame:05d}_obj{obj['obj_id']}.png", png)
            return out.getvalue(), "application/zip"
        if name == "overlay.mp4":
            frames = (np.asarray(Image.open(io.BytesIO(f)).convert("RGB")) for f in video.frames)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / name
                write_overlay(path, frames, records, video.fps)
                return path.read_bytes(), "video/mp4"
        raise GatewayError(404, f"export {name[:40]!r}: unknown; known: masks.zip, overlay.mp4")

    def close(self, video_id: str) -> None:
        with self._lock:
            video = self._videos.pop(video_id, None)
        if video is not None:
            self._close_quietly(video_id)

    def close_idle(self) -> None:
        now = time.monotonic()
        with self._lock:
            idle = [v for v, video in self._videos.items() if now - video.used > self.idle_s]
            for video_id in idle:
                del self._videos[video_id]
        for video_id in idle:
            self._close_quietly(video_id)

    def _close_quietly(self, video_id: str) -> None:
        try:
            self._client().close_session(video_id)
        except Exception:  # noqa: BLE001 - gone already (the server's idle timer): fine
            pass

    def _client(self) -> VideoClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = VideoClient(self.url, self.protocol, timeout_s=600)
            self._local.client = client
        return client

    def _call(self, call: Callable[[VideoClient], T]) -> T:
        try:
            return call(self._client())
        except GatewayError:
            raise
        except Exception as exc:  # tritonclient's InferenceServerException
            status, message = failure_status(exc, self.url)
            raise GatewayError(status, message) from None


def _record(answer: VideoAnswer) -> dict[str, Any]:
    """The answer's (first) frame: ``{"frame", "objects": [{"obj_id", "segmentation", ...}]}``."""
    frame = answer.frame_indices[0] if answer.frame_indices else None
    return frame_record(frame, answer.obj_ids, answer.encoded_masks[: len(answer.obj_ids)])


def _jpeg_frames(data: bytes | list[tuple[str, bytes]], max_frames: int) -> list[bytes]:
    """A zip's or a folder's JPEG frames in name order (``00001.jpg`` ... or ``0.jpg``,
    ``1.jpg`` ...: by number when every name is one, as sam2's frame folders are read)."""
    if isinstance(data, list):
        where, files = "the folder", dict(data)
        read = files.__getitem__
    else:
        where = "the zip"
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            files = dict.fromkeys(archive.namelist())
        except zipfile.BadZipFile as exc:
            raise InvalidInputError("video", f"a broken zip ({exc})") from None
        read = archive.read
    names = [n for n in files if n.lower().endswith(JPEG_SUFFIXES)
             and not n.startswith("__MACOSX/")]  # fmt: skip
    if not names:
        raise InvalidInputError("video", f"{where} holds no .jpg frames")
    if len(names) > max_frames:
        raise InvalidInputError("video", f"{len(names)} frames; at most {max_frames}")
    stems = [n.rsplit("/", 1)[-1].rsplit(".", 1)[0] for n in names]
    order = sorted(range(len(names)), key=lambda k: (int(stems[k]), names[k]) if all(
        s.isdigit() for s in stems) else (0, names[k]))  # fmt: skip
    return [read(names[k]) for k in order]


def _frame_size(jpegs: list[bytes], max_pixels: int) -> tuple[int, int]:
    """The frames' common (height, width), each decoded as the server decodes it."""
    sizes = set()
    for k, jpeg in enumerate(jpegs):
        try:
            sizes.add(decode_image(jpeg, max_pixels, apply_exif=False).shape[:2])
        except InvalidInputError as exc:
            raise InvalidInputError(f"frame {k}", exc.problem) from None
    if len(sizes) > 1:
        raise InvalidInputError("video", f"its frames differ in size: {sorted(sizes)}")
    return sizes.pop()


def _frame_rate(data: bytes) -> float | None:
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            rate = container.streams.video[0].average_rate
            return float(rate) if rate else None
    except Exception:  # noqa: BLE001 - decode_video says what is wrong with the file
        return None


def _jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=92)
    return out.getvalue()
