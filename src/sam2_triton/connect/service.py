"""The tools' common ground: images opened once (by content hash, or a tool's own key such as
Label Studio's task and URL) and remembered with the server's id, so that a tool re-sending an
image costs a click and no encoder run; one click answered with the best of SAM's candidates;
segment-everything with the gateway's parameters.

Each tool's module turns its request into these calls and their answers into its encodings;
``ToolError`` is what it renders in its own error shape.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np

from sam2_triton.clients.image import SegmentClient
from sam2_triton.connect import runs
from sam2_triton.connect.config import ConnectConfig
from sam2_triton.errors import InvalidInputError
from sam2_triton.image.automatic import AutomaticParams
from sam2_triton.image.transforms import decode_image

T = TypeVar("T")


class ToolError(Exception):
    """A request the gateway cannot answer: an HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OpenImage:
    """An image a tool sent, checked; ``image_id`` is the server's, once a click embedded it
    (segment-everything sends the bytes and needs none)."""

    key: str
    data: bytes
    image_id: str | None
    width: int
    height: int


@dataclass(frozen=True)
class Mask:
    """One object's mask: [H, W] bool (empty when polygons or the RLE were asked for), SAM's
    predicted IoU, and (asked for) its polygons or its COCO RLE."""

    mask: np.ndarray
    score: float
    polygons: list[list[float]] | None = None  # outer rings, flat [x0, y0, x1, y1, ...]
    rle: dict[str, Any] | None = None  # COCO's record (asked for): its size and counts


@dataclass(frozen=True)
class Prompt:
    """Clicks and a box in the image's pixels, checked against its size."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()  # 1 foreground, 0 background
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2


def check_point(x: Any, y: Any, image: OpenImage, name: str) -> tuple[float, float]:
    """A point of a tool's request as floats inside the image, or a ToolError naming it."""
    try:
        fx, fy = float(x), float(y)
    except (TypeError, ValueError):
        raise ToolError(400, f"{name}: ({x!r}, {y!r}) is not a pair of numbers") from None
    if not (math.isfinite(fx) and math.isfinite(fy)):
        raise ToolError(400, f"{name}: ({x}, {y}) is not finite")
    if not (0 <= fx <= image.width and 0 <= fy <= image.height):
        raise ToolError(
            400,
            f"{name}: ({fx:g}, {fy:g}) lies outside the {image.width} x {image.height} image",
        )
    return fx, fy


def check_box(values: Sequence[Any], image: OpenImage, name: str) -> tuple[float, ...]:
    """[x1, y1, x2, y2] inside the image with x1 < x2 and y1 < y2 (corners in either order)."""
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        raise ToolError(400, f"{name}: expected [x1, y1, x2, y2], got {values!r}")
    x1, y1 = check_point(values[0], values[1], image, name)
    x2, y2 = check_point(values[2], values[3], image, name)
    box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    if box[0] == box[2] or box[1] == box[3]:
        raise ToolError(400, f"{name}: {list(box)} has no area")
    return box


#: How long a click may take (an image's first click includes its encoding): the tools wait
#: about this long too; segment-everything gets the client's 900 s.
CLICK_TIMEOUT_S = 120.0


class SegmentService:
    """The gateway's one view of the server. Thread-safe: each thread has its own client."""

    def __init__(self, config: ConnectConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._lock = threading.Lock()
        self._images: OrderedDict[str, OpenImage] = OrderedDict()
        known = {f.name for f in fields(AutomaticParams)}
        unknown = set(config.automatic) - known
        if unknown:
            raise ToolError(500, f"[automatic]: unknown parameter(s) {sorted(unknown)}")
        defaults = AutomaticParams()
        for name, value in config.automatic.items():
            expected = type(getattr(defaults, name))
            wrong = isinstance(value, bool) != (expected is bool) or not isinstance(
                value, (int, float) if expected is float else expected
            )
            if wrong:
                raise ToolError(500, f"[automatic] {name}: expected a {expected.__name__}")
        try:
            self.automatic = AutomaticParams(**config.automatic).validate()
        except InvalidInputError as exc:
            raise ToolError(500, f"[automatic]: {exc}") from None

    def client(self) -> SegmentClient:
        client = getattr(self._local, "client", None)
        if client is None:
            server = self.config.server
            client = SegmentClient(server.url, server.protocol, network_timeout_s=900)  # type: ignore[arg-type]
            self._local.client = client
        return client

    # --- images -------------------------------------------------------------------------------

    def known(self, key: str) -> OpenImage | None:
        """The image remembered under ``key`` (a tool's own key), if any."""
        with self._lock:
            image = self._images.get(key)
            if image is not None:
                self._images.move_to_end(key)
            return image

    def open(self, data: bytes, key: str | None = None, name: str = "image") -> OpenImage:
        """The image under ``key`` (default: its content hash), checked once and remembered
        with the server's id once a click has embedded it."""
        key = key or "sha256:" + hashlib.sha256(data).hexdigest()
        known = self.known(key)
        if known is not None and known.data == data:
            return known
        try:
            rgb = decode_image(data, self.config.gateway.max_image_pixels)
        except InvalidInputError as exc:
            raise ToolError(400, f"{name}: {exc.problem}") from None
        return self._remember(OpenImage(key, data, None, rgb.shape[1], rgb.shape[0]))

    def open_base64(self, text: Any, expected: str) -> OpenImage:
        """An image sent as base64 (CVAT's and X-AnyLabeling's, with every click), remembered
        under the hash of that text: sent again, it is neither decoded nor checked again."""
        if not isinstance(text, str) or not text:
            raise ToolError(400, f"image: expected {expected}")
        key = "base64:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        known = self.known(key)
        if known is not None:
            return known
        max_bytes = self.config.gateway.max_body_mb << 20
        return self.open(decode_base64(text, max_bytes, expected), key)

    def _remember(self, image: OpenImage) -> OpenImage:
        """Keep ``image`` (the most recent), forgetting the least recently used beyond the
        gateway's count and bytes."""
        gateway = self.config.gateway
        with self._lock:
            self._images[image.key] = image
            self._images.move_to_end(image.key)
            while len(self._images) > 1 and (
                len(self._images) > gateway.images
                or sum(len(i.data) for i in self._images.values()) > gateway.image_mb << 20
            ):
                self._images.popitem(last=False)
        return image

    # --- clicks -------------------------------------------------------------------------------

    def click(
        self, image: OpenImage, prompt: Prompt, polygons: bool = False, rle: bool = False
    ) -> Mask:
        """SAM's best candidate for ``prompt``: three candidates for a lone click (ambiguous:
        Meta's advice), one otherwise. The image is embedded at its first click; one the server
        evicted since is sent again."""
        if not prompt.points and prompt.box is None:
            raise ToolError(400, "no prompt: give at least one point or a box")
        lone_click = len(prompt.points) == 1 and prompt.box is None
        kwargs: dict[str, Any] = {
            "multimask_output": lone_click,
            "output_format": "polygons" if polygons else "rle",
            "timeout_s": CLICK_TIMEOUT_S,
            "with_masks": False,  # only the best candidate is decoded, below
        }
        if prompt.points:
            kwargs["point_coords"] = np.asarray(prompt.points, np.float32)
            kwargs["point_labels"] = np.asarray(prompt.labels, np.int32)
        if prompt.box is not None:
            kwargs["box"] = np.asarray(prompt.box, np.float32)
        current = self.known(image.key) or image
        image_id = current.image_id
        if image_id is None:
            image_id = self._call(lambda client: client.embed(image.data, CLICK_TIMEOUT_S))
        image_id, response = self._call(
            lambda client: client.click_resending(image.data, image_id, **kwargs)
        )
        if image_id != current.image_id:
            self._remember(dataclasses.replace(current, image_id=image_id))
        best = int(np.argmax(response.iou_scores.reshape(-1)))
        score = float(response.iou_scores.reshape(-1)[best])
        if polygons:  # the tool takes the rings: no mask rasterised here
            return Mask(np.zeros((0, 0), bool), score, outer_rings(response.encoded_masks[best]))
        if rle:  # the tool's encoding is made from the runs: no mask rasterised here
            return Mask(np.zeros((0, 0), bool), score, rle=json.loads(response.encoded_masks[best]))
        # column-major, as pycocotools decodes it (answers.digits_json reads it so)
        return Mask(runs.decode(json.loads(response.encoded_masks[best])).view(bool), score)

    def everything(self, image: OpenImage, polygons: bool = False) -> list[dict[str, Any]]:
        """sam2_automatic's SA-1B records for the image with the configured parameters."""
        params = {f.name: getattr(self.automatic, f.name) for f in fields(AutomaticParams)}
        answer = self._call(
            lambda client: client.automatic(
                image.data, params, segmentation_format="polygons" if polygons else None
            )
        )
        return answer["annotations"]

    def _call(self, call: Callable[[SegmentClient], T]) -> T:
        """A server call; the server's refusals of bad input become a 400 naming it, anything
        else a 502 (the server is down or failing)."""
        try:
            return call(self.client())
        except ToolError:
            raise
        except Exception as exc:  # tritonclient raises its own InferenceServerException
            raise server_error(exc) from None


_SEGMENTATION = re.compile(rb'"segmentation"\s*:\s*')


def outer_rings(record: bytes) -> list[list[float]]:
    """The outer rings (``segmentation``) of sam2_session's polygons record, its holes left
    unread: a ragged mask has thousands of holes, most of the record (``json.loads`` of it all
    took 9 ms for a 600 x 400 image with random weights; its rings alone, 0.1 ms). The record
    holds no string but its keys, so the first ``"segmentation"`` is the key."""
    found = _SEGMENTATION.search(record)
    if found is None:
        raise ToolError(502, "the server's polygons record has no segmentation")
    rings, _ = json.JSONDecoder().raw_decode(record[found.end() :].decode())
    return rings


def server_error(exc: Exception) -> ToolError:
    """A server call's failure for a tool: its refusal of bad input a 400 naming it, anything
    else a 502 (the server is down or failing)."""
    text = getattr(exc, "message", None)
    message = text() if callable(text) else str(exc)
    code = getattr(exc, "status", None)
    if str(code() if callable(code) else "") in ("400", "StatusCode.INVALID_ARGUMENT"):
        return ToolError(400, f"the server refused the request: {message}")
    return ToolError(502, f"the SAM 2 server failed: {message}")


def decode_base64(value: Any, max_bytes: int, expected: str) -> bytes:
    """A tool's base64 payload (an image, a frame), within ``max_bytes`` once decoded;
    ``expected`` says what it should have been when it is not a string."""
    if not isinstance(value, str) or not value:
        raise ToolError(400, f"image: expected {expected}")
    if len(value) * 3 // 4 > max_bytes:
        raise ToolError(413, f"image: over the gateway's limit of {max_bytes >> 20} MB")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ToolError(400, "image: not valid base64") from None
