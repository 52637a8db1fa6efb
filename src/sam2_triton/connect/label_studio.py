"""Label Studio's ML backend protocol (``label_studio_ml/api.py`` of
HumanSignal/label-studio-ml-backend, as Label Studio 1.23 calls it).

    GET  /health    {"status": "UP"}           POST /setup    {"model_version"}
    POST /webhook   any event: 200              POST /predict  {"results": [prediction, ...]}

A click with a smart tool: ``params.context.result`` holds keypoints (``value.x``/``y`` in
percent of the image, ``is_positive``) and rectangles (``x``, ``y``, ``width``, ``height`` in
percent); the answer is one ``brushlabels`` result whose ``value.rle`` is Label Studio's brush
RLE (``connect.brush``), labelled with the prompt's label. Without a context (pre-annotation,
"Retrieve predictions"): every object sam2_automatic finds in each task, one prediction per
task in order. The task's image is fetched from Label Studio with the configured token, once
per task and URL.

Label Studio keeps only the status line of a failed call (``str(HTTPError)``): the problem is
in the reason phrase too.
"""

from __future__ import annotations

import base64
import secrets
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from sam2_triton.connect.answers import RawJson, bytes_json
from sam2_triton.connect.brush import coco_to_rle
from sam2_triton.connect.config import LabelStudioConfig
from sam2_triton.connect.label_studio_video import is_video, track, video_controls
from sam2_triton.connect.service import (
    OpenImage,
    Prompt,
    SegmentService,
    ToolError,
    check_box,
    check_point,
)
from sam2_triton.connect.tracking import LiveTracker


@dataclass(frozen=True)
class Controls:
    """What a labelling config asks of the backend: the brush control and its image."""

    from_name: str  # the BrushLabels control
    to_name: str  # the Image object it labels
    data_key: str  # the task data field holding the image URL ($image -> "image")
    labels: tuple[str, ...]  # the BrushLabels' labels


def controls(label_config: Any) -> Controls:
    """The first BrushLabels and the Image it labels, from the project's labelling config."""
    if not isinstance(label_config, str) or not label_config.strip():
        raise ToolError(400, "label_config: missing (the project's labelling config)")
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as exc:
        raise ToolError(400, f"label_config: not valid XML ({exc})") from None
    images = {e.get("name"): e.get("value", "") for e in root.iter("Image")}
    for brush in root.iter("BrushLabels"):
        target = brush.get("toName")
        if brush.get("name") and target in images and images[target].startswith("$"):
            labels = tuple(label.get("value", "") for label in brush.iter("Label"))
            return Controls(brush.get("name"), target, images[target][1:], labels)  # type: ignore[arg-type]
    raise ToolError(400, 'label_config: no <BrushLabels> labelling an <Image value="$…">')


class ImageFetcher:
    """Tasks' images from Label Studio, with its token: a legacy API token (``Token``) or a
    personal access token (a JWT, exchanged for a short-lived access token: ``Bearer``)."""

    #: Label Studio's paths that serve a task's file: the token goes to these only
    TOKEN_PATHS = ("/data/", "/tasks/", "/storage-data/")

    def __init__(self, config: LabelStudioConfig, max_bytes: int) -> None:
        self.config, self.max_bytes = config, max_bytes
        self._access: str | None = None
        self._lock = threading.Lock()

    def headers(self, url: str, renew: bool = False) -> dict[str, str]:
        """Credentials only for Label Studio itself (same scheme and host) and its file paths,
        never for a URL elsewhere a task may name."""
        mine, theirs = urlsplit(self.config.url), urlsplit(url)
        if (
            not self.config.token
            or (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc)
            or not theirs.path.startswith(self.TOKEN_PATHS)
        ):
            return {}
        if self.config.token.count(".") != 2:
            return {"Authorization": f"Token {self.config.token}"}
        with self._lock:
            if self._access is None or renew:
                self._access = self._refresh()
            return {"Authorization": f"Bearer {self._access}"}

    def _refresh(self) -> str:
        try:
            reply = requests.post(
                urljoin(self.config.url, "/api/token/refresh/"),
                json={"refresh": self.config.token},
                timeout=10,
            )
            access = reply.json().get("access") if reply.status_code == 200 else None
        except (requests.RequestException, ValueError):
            access = None
        if not isinstance(access, str):
            raise ToolError(502, "Label Studio refused the personal access token ([label_studio])")
        return access

    def url(self, value: str, task_id: Any) -> str:
        if value.startswith(("http://", "https://")):
            return value
        if value.startswith("upload/"):
            value = "/data/" + value
        if value.startswith(("s3://", "gs://", "azure-blob://")):
            uri = base64.urlsafe_b64encode(value.encode()).decode()
            return urljoin(self.config.url, f"/tasks/{task_id}/presign/?fileuri={uri}")
        if not value.startswith("/"):
            raise ToolError(400, f"task {task_id}: {value[:80]!r} is not a URL or path")
        return urljoin(self.config.url, value)

    def fetch(self, value: Any, task_id: Any, max_bytes: int | None = None) -> bytes:
        """The file a task's field names, at most ``max_bytes`` (default: the fetcher's)."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        if not isinstance(value, str) or not value:
            raise ToolError(400, f"task {task_id}: its image field is empty or not a URL")
        url = self.url(value, task_id)
        shown = urlsplit(url)._replace(query="").geturl()  # a presigned URL's signature stays out
        for attempt in range(2):
            try:
                headers = self.headers(url, renew=attempt > 0)
                with requests.get(url, headers=headers, timeout=(10, 60), stream=True) as reply:
                    if reply.status_code == 401 and attempt == 0 and headers:
                        continue  # an access token expired: renew it once
                    if reply.status_code != 200:
                        raise ToolError(
                            502, f"task {task_id}: Label Studio answered {reply.status_code} "
                            f"for {shown}"
                        )  # fmt: skip
                    data = reply.raw.read(limit + 1, decode_content=True)
                break
            except requests.RequestException as exc:
                raise ToolError(502, f"task {task_id}: could not fetch {shown}: {exc}") from None
        if len(data) > limit:
            raise ToolError(413, f"task {task_id}: its image is over {limit >> 20} MB")
        return data


class LabelStudioBackend:
    def __init__(
        self, service: SegmentService, config: LabelStudioConfig, tracker: LiveTracker | None = None
    ) -> None:
        self.service, self.config = service, config
        self.tracker = tracker or LiveTracker(service.config)
        # one fetcher, so that one access token serves images and videos
        self.fetcher = ImageFetcher(config, service.config.gateway.max_body_mb << 20)

    def setup(self, body: Any) -> dict[str, Any]:
        return {"model_version": self.config.model_version}

    def predict(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("tasks"), list):
            raise ToolError(400, "tasks: expected a list of tasks")
        if not body["tasks"]:
            raise ToolError(400, "tasks: empty")
        params = body.get("params") or {}
        context = params.get("context") if isinstance(params, dict) else None
        if context is not None and not isinstance(context, dict):
            raise ToolError(400, "params.context: expected an object")
        if context and is_video(context.get("result")):
            return {"results": [self._track(body, context["result"])]}
        wanted = controls(body.get("label_config"))
        if context and context.get("result"):
            task = body["tasks"][0]
            prediction = self._click(task, wanted, context["result"])
            return {"results": [prediction]}
        return {"results": [self._everything(task, wanted) for task in body["tasks"]]}

    def _track(self, body: dict[str, Any], result: list) -> dict[str, Any]:
        """VideoRectangle keyframes tracked through the task's video (label_studio_video)."""
        config = body.get("label_config")
        wanted = video_controls(config) if isinstance(config, str) else None
        if wanted is None:
            raise ToolError(400, 'label_config: no <VideoRectangle> labelling a <Video value="$…">')
        task = body["tasks"][0]
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise ToolError(400, "tasks[]: expected tasks with data")
        video = self.fetcher.fetch(
            task["data"].get(wanted.data_key),
            task.get("id"),
            self.service.config.gateway.max_video_mb << 20,
        )
        prediction = track(self.tracker, wanted, video, result, self.config.video_frames)
        return {**prediction, "model_version": self.config.model_version, "score": 0.0}

    def _image(self, task: Any, wanted: Controls) -> OpenImage:
        """The task's image: fetched from Label Studio once per task and URL."""
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise ToolError(400, "tasks[]: expected tasks with data")
        value = task["data"].get(wanted.data_key)
        key = f"label-studio:{task.get('id')!r}:{value!r}"
        known = self.service.known(key)
        if known is not None:
            return known
        data = self.fetcher.fetch(value, task.get("id"))
        return self.service.open(data, key=key, name=f"task {task.get('id')}: its image")

    def _click(self, task: Any, wanted: Controls, result: Any) -> dict[str, Any]:
        image = self._image(task, wanted)
        prompt, label = _prompt(result, image)
        mask = self.service.click(image, prompt, rle=True)
        # the prompt's label when the brush control has it (the same names: docs), else its first
        labels = [label if label in wanted.labels else wanted.labels[0]] if wanted.labels else []
        region = _brush(wanted, image, mask.rle, labels, mask.score)
        return {"result": [region], "model_version": self.config.model_version,
                "score": round(mask.score, 4)}  # fmt: skip

    def _everything(self, task: Any, wanted: Controls) -> dict[str, Any]:
        image = self._image(task, wanted)
        regions = [
            _brush(wanted, image, r["segmentation"], list(wanted.labels[:1]), r["predicted_iou"])
            for r in self.service.everything(image)
        ]
        scores = [r["score"] for r in regions]
        return {"result": regions, "model_version": self.config.model_version,
                "score": round(sum(scores) / len(scores), 4) if scores else 0.0}  # fmt: skip


def _brush(wanted: Controls, image: OpenImage, rle: Any, labels: list[str], score: float):
    """A ``brushlabels`` region of a COCO RLE record (its brush RLE made from its runs)."""
    return {
        "id": secrets.token_hex(5),
        "from_name": wanted.from_name,
        "to_name": wanted.to_name,
        "original_width": image.width,
        "original_height": image.height,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": _rle(rle), "brushlabels": labels},
        "score": round(float(score), 4),
        "type": "brushlabels",
        "readonly": False,
    }


def _rle(rle: Any) -> RawJson:
    try:
        return bytes_json(coco_to_rle(rle))
    except ValueError as exc:  # over the format's 2^32 values
        raise ToolError(413, f"the mask cannot be a brush: {exc}") from None


def _prompt(result: Any, image: OpenImage) -> tuple[Prompt, str | None]:
    """Keypoints and the last rectangle of a smart tool's context, in the image's pixels, and
    the label they carry."""
    if not isinstance(result, list):
        raise ToolError(400, "params.context.result: expected a list of regions")
    points: list[tuple[float, float]] = []
    labels: list[int] = []
    box, label = None, None
    for k, region in enumerate(result):
        name = f"params.context.result[{k}]"
        value = region.get("value") if isinstance(region, dict) else None
        if not isinstance(value, dict):
            raise ToolError(400, f"{name}: expected a region with a value")
        kind = region.get("type")
        names = value.get(kind) if isinstance(kind, str) else None
        if isinstance(names, list) and names:
            label = str(names[0])
        if kind == "keypointlabels":
            x, y = _pixels(value, ("x", "y"), image, name)
            points.append(check_point(x, y, image, name))
            labels.append(1 if region.get("is_positive", value.get("positive", True)) else 0)
        elif kind == "rectanglelabels":
            x, y, w, h = _pixels(value, ("x", "y", "width", "height"), image, name)
            box = check_box([x, y, x + w, y + h], image, name)
        else:
            raise ToolError(400, f"{name}.type: expected keypointlabels or rectanglelabels, "
                                 f"got {kind!r}")  # fmt: skip
    return Prompt(tuple(points), tuple(labels), box), label  # type: ignore[arg-type]


def _pixels(value: dict[str, Any], keys: tuple[str, ...], image: OpenImage, name: str):
    scale = {"x": image.width, "width": image.width, "y": image.height, "height": image.height}
    out = []
    for key in keys:
        given = value.get(key)
        if isinstance(given, bool) or not isinstance(given, (int, float)):
            raise ToolError(400, f"{name}.value.{key}: expected a percentage, got {given!r}")
        out.append(given * scale[key] / 100.0)
    return out
