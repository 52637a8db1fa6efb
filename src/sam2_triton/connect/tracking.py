"""Objects tracked a frame at a time, as CVAT's tracker functions are called: sam2_video live
sessions that grow by one frame per call and step.

A first call starts a session with its frame and each object's box (SAM 2's box prompt on that
frame); each later call appends its frame (``add_frames``) and tracks that frame alone
(``propagate`` from it, no frame further), reading the memories of the frames before, as a
propagation over the whole video would. Each object's box is its mask's bounding box; an
object SAM lost keeps the box it was given. What a tool keeps between calls is the session and
the object's id, nothing else: the frames and memories stay on the server, within its video
limits (docs/video.md), and a session the server closed is an error naming it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sam2_triton.clients.tritonclient_io import is_not_found
from sam2_triton.clients.video import VideoAnswer, VideoClient
from sam2_triton.connect.config import ConnectConfig
from sam2_triton.connect.service import ToolError, server_error

T = TypeVar("T")
Box = tuple[float, float, float, float]  # x1, y1, x2, y2


class LiveTracker:
    """The gateway's view of sam2_video. Thread-safe: each thread has its own client."""

    def __init__(self, config: ConnectConfig) -> None:
        self.config = config
        self._local = threading.local()

    def client(self) -> VideoClient:
        client = getattr(self._local, "client", None)
        if client is None:
            server = self.config.server
            client = VideoClient(server.url, server.protocol, timeout_s=300)  # type: ignore[arg-type]
            self._local.client = client
        return client

    def start(self, frame: bytes, boxes: Sequence[Box]) -> tuple[str, list[int]]:
        """A new session on ``frame`` with one object per box: (session, object ids)."""
        session = self.call(lambda client: client.start(frames=[frame])).session_id
        ids = list(range(1, len(boxes) + 1))
        for obj_id, box in zip(ids, boxes, strict=True):
            prompt = {"obj_id": obj_id, "box": list(box)}
            self.call(lambda client, p=prompt: client.add_points(session, 0, **p))
        return session, ids

    def step(self, session: str, frame: bytes) -> dict[int, Box | None]:
        """``frame`` appended to the session and tracked: each object's box (None: lost)."""
        added = self.call(lambda client: client.add_frames(session, [frame]), session)
        index = added.num_frames - 1
        answers = self.call(
            lambda client: list(client.propagate(session, index, 0, output_format="rle")), session
        )
        boxes: dict[int, Box | None] = {}
        for answer in answers:
            if answer.frame_indices == [index]:
                boxes = _boxes(answer)
        return boxes

    def call(self, call: Callable[[VideoClient], T], session: str | None = None) -> T:
        """``call(client)``; the server's answers as ToolErrors (an unknown ``session``: 404)."""
        try:
            return call(self.client())
        except StopIteration:  # a stream's end, not an error
            raise
        except Exception as exc:  # tritonclient's InferenceServerException
            if session is not None and is_not_found(exc):
                raise ToolError(
                    404, f"tracking state: session {session} is gone (closed when idle or over "
                    "the server's limits, or the server restarted): track the object again"
                ) from None  # fmt: skip
            raise server_error(exc) from None


def _boxes(answer: VideoAnswer) -> dict[int, Box | None]:
    """Each object's mask's bounding box (its RLE record's COCO bbox [x, y, w, h])."""
    boxes: dict[int, Box | None] = {}
    for obj_id, encoded in zip(answer.obj_ids, answer.encoded_masks, strict=True):
        record = json.loads(encoded)
        x, y, w, h = (float(v) for v in record["bbox"])
        boxes[obj_id] = (x, y, x + w, y + h) if record["area"] else None
    return boxes


def state(session: str, obj_id: int) -> dict[str, Any]:
    """What a tool keeps for one object between calls."""
    return {"session": session, "object": obj_id}
