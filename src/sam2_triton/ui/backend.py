"""What the gateway asks of the service, through ``SegmentClient``: open an image, click,
segment everything.

An opened image is decoded here with ``decode_image``, the server's own decoder, so
the page learns the size the server segments (EXIF orientation applied) and a readable refusal
of a non-image or an image over the pixel cap comes before any upload to Triton. Its bytes are
kept (a bounded LRU) so that a click on an image the server evicted, or lost in a restart,
re-sends it without the page noticing (``click_resending``).
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from sam2_triton import contract
from sam2_triton.clients.concepts import ConceptClient
from sam2_triton.clients.image import SegmentClient
from sam2_triton.clients.tritonclient_io import Protocol, is_not_found
from sam2_triton.errors import InvalidInputError
from sam2_triton.image.automatic import AutomaticParams, generate_crop_boxes, grid_points
from sam2_triton.image.transforms import decode_image
from sam2_triton.ui.requests import FindAll, Prompts

#: what a lone click costs against an encode on these CPUs (sam2-triton bench's
#: click_to_full_ratio); used for a first estimate before this image's first click is timed
CLICK_TO_ENCODE = 0.021


class GatewayError(Exception):
    """An answer for the page: an HTTP status and a message a person can read."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class OpenImage:
    image_id: str
    data: bytes
    width: int
    height: int
    encode_s: float
    click_s: float | None = None  # this image's last click, as the server answered it


@dataclass
class EverythingJob:
    """One segment-everything request in flight; its progress is an estimate (sam2_automatic
    answers once), from this image's encode and click times."""

    id: str
    image_id: str
    estimate_s: float
    started: float = field(default_factory=time.monotonic)
    state: str = "running"  # running | done | failed | cancelled
    annotations: list[dict[str, Any]] | None = None
    error: str | None = None
    ended: float | None = None
    cancel: Callable[[], None] = lambda: None

    def finish(self, state: str, annotations: list | None = None, error: str | None = None):
        if self.state == "running":
            self.state, self.annotations, self.error = state, annotations, error
            self.ended = time.monotonic()

    def snapshot(self) -> dict[str, Any]:
        elapsed = (self.ended or time.monotonic()) - self.started
        done = self.state != "running"
        return {
            "job_id": self.id,
            "state": self.state,
            "elapsed_s": round(elapsed, 3),
            "estimate_s": round(self.estimate_s, 3),
            "progress": 1.0 if done else min(0.99, elapsed / max(self.estimate_s, 1e-3)),
            "annotations": self.annotations,
            "error": self.error,
        }


class UiBackend:
    """The gateway's one view of the service. Thread-safe: each thread has its own client."""

    def __init__(
        self,
        triton_url: str,
        protocol: Protocol = "grpc",
        max_image_pixels: int = contract.DEFAULT_MAX_IMAGE_PIXELS,
        max_images: int = 32,
        max_image_bytes: int = 1 << 30,
        max_jobs: int = 16,
        max_running_jobs: int = 2,
    ) -> None:
        self.url, self.protocol = triton_url, protocol
        self.max_image_pixels = max_image_pixels
        self.max_images, self.max_image_bytes, self.max_jobs = max_images, max_image_bytes, max_jobs
        self.max_running_jobs = max_running_jobs
        self._local = threading.local()
        self._lock = threading.Lock()
        self._images: OrderedDict[str, OpenImage] = OrderedDict()
        self._jobs: OrderedDict[str, EverythingJob] = OrderedDict()

    # --- images -------------------------------------------------------------------------------

    def open_image(self, data: bytes) -> OpenImage:
        """Decode (refusing what the server would), embed, remember."""
        try:
            rgb = decode_image(data, self.max_image_pixels)
        except InvalidInputError as exc:
            raise GatewayError(400, str(exc)) from None
        start = time.perf_counter()
        image_id = self._call(lambda client: client.embed(data))
        image = OpenImage(image_id, data, rgb.shape[1], rgb.shape[0], time.perf_counter() - start)
        with self._lock:
            self._images[image_id] = image
            self._images.move_to_end(image_id)
            while len(self._images) > self.max_images or (
                len(self._images) > 1
                and sum(len(i.data) for i in self._images.values()) > self.max_image_bytes
            ):
                self._images.popitem(last=False)
        return image

    def image(self, image_id: str) -> OpenImage:
        with self._lock:
            image = self._images.get(image_id)
            if image is not None:
                self._images.move_to_end(image_id)  # least recently *used* goes first
        if image is None:
            raise GatewayError(404, f"image {image_id[:12]}…: not open here; open it again")
        return image

    def view_png(self, image_id: str) -> bytes:
        """The image as the server decodes it, for a browser that cannot show the file."""
        rgb = decode_image(self.image(image_id).data, self.max_image_pixels)
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    # --- clicks -------------------------------------------------------------------------------

    def click(self, image_id: str, prompts: Prompts) -> dict[str, Any]:
        """One decoder run: the object's candidates as COCO RLE with their scores."""
        image = self.image(image_id)
        client = self._client()
        resent = client.images_resent
        start = time.perf_counter()
        _, response = self._call(
            lambda client: client.click_resending(
                image.data,
                image.image_id,
                point_coords=prompts.points if len(prompts.points) else None,
                point_labels=prompts.labels if len(prompts.points) else None,
                box=prompts.box,
                multimask_output=prompts.multimask,
                output_format="rle",
            )
        )
        image.click_s = time.perf_counter() - start
        rles = [json.loads(encoded) for encoded in response.encoded_masks]
        return {
            "candidates": [
                {"score": float(score), "rle": rle}
                for score, rle in zip(response.iou_scores, rles, strict=True)
            ],
            "server_ms": round(image.click_s * 1e3, 2),
            "reembedded": client.images_resent > resent,
        }

    # --- find all (SAM 3) ----------------------------------------------------------------------

    def find_all(self, image_id: str, question: FindAll) -> dict[str, Any]:
        """Every instance of the phrase (sam3_concepts), as segment-everything's annotations:
        the page picks among them the same way. The image goes by its id (sam3_concepts caches
        its features under the same content id), and again only if the server does not hold it."""
        image = self.image(image_id)
        client = getattr(self._local, "concepts", None)
        if client is None:
            client = self._local.concepts = ConceptClient(self.url, self.protocol)
        kwargs = {"text": question.text, "confidence_threshold": question.threshold,
                  "output_format": "rle", "timeout_s": 600.0}  # fmt: skip
        start = time.perf_counter()
        try:
            try:
                found = client.find(image_id=image.image_id, **kwargs)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                found = client.find(image=image.data, **kwargs)
        except Exception as exc:
            raise GatewayError(*failure_status(exc, self.url)) from None
        annotations = []
        for k, encoded in enumerate(found.encoded_masks):
            rle = json.loads(encoded)
            x0, y0, x1, y1 = (float(v) for v in found.boxes[k])
            annotations.append({
                "segmentation": {"size": rle["size"], "counts": rle["counts"]},
                "area": rle["area"], "bbox": rle["bbox"], "predicted_iou": float(found.scores[k]),
                "point_coords": [], "box": [x0, y0, x1, y1], "label": question.text,
            })  # fmt: skip
        return {"annotations": annotations, "elapsed_s": round(time.perf_counter() - start, 3)}

    # --- segment everything ---------------------------------------------------------------

    def start_everything(self, image_id: str, params: dict[str, int | float]) -> EverythingJob:
        image = self.image(image_id)
        job = EverythingJob(secrets.token_hex(16), image_id, estimate_everything_s(image, params))
        with self._lock:
            for other in self._jobs.values():  # a newer run on the image supersedes the last
                if other.image_id == image_id and other.state == "running":
                    other.cancel()
                    other.finish("cancelled", error="superseded by a newer run")
            running = sum(j.state == "running" for j in self._jobs.values())
            if running >= self.max_running_jobs:
                raise GatewayError(
                    429,
                    f"segment everything: {running} runs are going on already (at most "
                    f"{self.max_running_jobs}); wait for one or cancel it",
                )
            self._jobs[job.id] = job
            while len(self._jobs) > self.max_jobs:
                _, old = self._jobs.popitem(last=False)
                old.cancel()
                old.finish("cancelled", error="dropped: too many runs")

        def done(result: dict | None, error: Exception | None) -> None:
            if error is not None:
                job.finish(*_failure(error, self.url))
            else:
                job.finish("done", annotations=(result or {}).get("annotations", []))

        if self.protocol == "grpc":
            try:
                job.cancel = self._client().start_automatic(image.data, done, params)
            except Exception as exc:
                job.finish(*_failure(exc, self.url))
                raise GatewayError(_status(exc), job.error or str(exc)) from None
        else:  # over HTTP a cancelled run's answer is dropped; the server finishes it
            thread = threading.Thread(
                target=self._run_automatic, args=(image, params, done), daemon=True
            )
            thread.start()
        return job

    def job(self, job_id: str) -> EverythingJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise GatewayError(404, f"segment-everything run {job_id[:12]}…: unknown or dropped")
        return job

    def cancel_job(self, job_id: str) -> EverythingJob:
        job = self.job(job_id)
        job.cancel()
        job.finish("cancelled", error="cancelled")
        return job

    def _run_automatic(self, image: OpenImage, params: dict, done: Callable) -> None:
        try:
            with SegmentClient(self.url, self.protocol, network_timeout_s=600) as client:
                result = client.automatic(image.data, params)
        except Exception as exc:
            done(None, exc)
        else:
            done(result, None)

    # --- the service --------------------------------------------------------------------------

    def ready(self) -> bool:
        try:
            return bool(self._client().client.is_server_ready())
        except Exception:
            return False

    def _client(self) -> SegmentClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = SegmentClient(self.url, protocol=self.protocol, network_timeout_s=600)
            self._local.client = client
        return client

    def _call(self, call: Callable[[SegmentClient], Any]) -> Any:
        try:
            return call(self._client())
        except GatewayError:
            raise
        except Exception as exc:
            raise GatewayError(*failure_status(exc, self.url)) from None


def estimate_everything_s(image: OpenImage, params: dict[str, int | float]) -> float:
    """Seconds a segment-everything run should take: an encode per crop and a click's decoder
    time per grid point (0.8 of a lone click's: points share a call). An estimate for the
    progress bar, not a promise."""
    try:
        p = AutomaticParams(**params).validate()
    except ValueError as exc:  # checked before the grid is built: a huge one would not fit
        raise GatewayError(400, str(exc)) from None
    boxes, _ = generate_crop_boxes(
        (image.height, image.width), p.crop_n_layers, p.crop_overlap_ratio
    )
    click_s = image.click_s if image.click_s is not None else image.encode_s * CLICK_TO_ENCODE
    return len(boxes) * image.encode_s + 0.8 * grid_points(p) * click_s


def failure_status(exc: Exception, url: str) -> tuple[int, str]:
    """A failed server call as (the page's HTTP status, a message a person can read)."""
    _, _, message = _failure(exc, url)
    return _status(exc), message


def _code(exc: Exception) -> str:
    """tritonclient's status ("400", "StatusCode.UNAVAILABLE", ...); "" for other errors."""
    status = getattr(exc, "status", None)
    return str(status()) if callable(status) else ""


def _status(exc: Exception) -> int:
    code = _code(exc)
    if code in ("400", "StatusCode.INVALID_ARGUMENT"):
        return 400
    if is_not_found(exc):
        return 404
    if code in ("StatusCode.CANCELLED", "499"):
        return 499
    return 503 if _unreachable(exc) else 502


def _unreachable(exc: Exception) -> bool:
    return isinstance(exc, OSError) or _code(exc) in ("StatusCode.UNAVAILABLE", "None", "")


def _failure(exc: Exception, url: str) -> tuple[str, None, str]:
    """(job state, no annotations, message) for a failed call."""
    message = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    status = _status(exc)
    if status == 499:
        return "cancelled", None, "cancelled"
    if status in (400, 404):
        return "failed", None, message
    if status == 503:
        return "failed", None, f"the SAM 2 server at {url} is not answering ({message[:200]})"
    return "failed", None, f"the SAM 2 server failed: {message[:300]}"
