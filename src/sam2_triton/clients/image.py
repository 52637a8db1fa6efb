"""Call ``sam2_segment``, ``sam2_session`` and ``sam2_automatic`` over HTTP or gRPC with
tritonclient (KServe v2).

Every request about an image carries its id in the ``sam2-image-id`` header
(``sam2_triton.clients.affinity``), so behind a balancer hashing on it (``sam2-triton cluster``, the
Kubernetes Ingress) all of an image's requests reach the replica that caches its embedding.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sam2_triton.clients.affinity import affinity_headers
from sam2_triton.clients.tritonclient_io import (
    DEFAULT_URLS,
    Protocol,
    close_once,
    is_not_found,
    make_input,
    timeout_kwargs,
    tritonclient_module,
)
from sam2_triton.contract import (
    AUTOMATIC,
    AUTOMATIC_PARAMETERS,
    ENCODED_ONLY_FORMATS,
    SEGMENT,
    SEGMENT_OUTPUTS,
    SESSION,
)
from sam2_triton.image.encodings import decode_masks
from sam2_triton.image.masks import masks_from_logits
from sam2_triton.image.request import parse_mask_size


@dataclass(frozen=True)
class SegmentResponse:
    """What sam2_segment / sam2_session return, with encoded masks already decoded.

    ``masks`` is [K, H, W] uint8 0/1 whatever the output format (decoded client-side from PNG or
    RLE); ``encoded_masks`` holds the PNG files / JSON RLE objects as received (empty for raw);
    ``image_id`` is set by sam2_session (the id to click on next time).
    """

    masks: np.ndarray
    iou_scores: np.ndarray
    low_res_logits: np.ndarray
    encoded_masks: list[bytes] = field(default_factory=list)
    image_id: str | None = None


class SegmentClient:
    """A reusable connection to the server: ``segment()`` calls sam2_segment, ``embed()`` and
    ``click()`` call sam2_session.

    gRPC: tritonclient already raises the channel's message limits to 2 GiB, so masks of large
    images (K x H x W bytes) are not cut at gRPC's 4 MiB default.
    """

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "http",
        network_timeout_s: float | None = None,
    ) -> None:
        """``network_timeout_s``: give up waiting for an answer after this long (default: 60 s
        over HTTP, tritonclient's default; no limit over gRPC)."""
        self.protocol = protocol
        self._tc = tritonclient_module(protocol)
        self.url = url or DEFAULT_URLS[protocol]
        self.network_timeout_s = network_timeout_s
        self.images_resent = 0  # evicted images click_resending sent again
        if protocol == "http" and network_timeout_s is not None:
            self.client = self._tc.InferenceServerClient(
                self.url, network_timeout=network_timeout_s
            )
        else:
            self.client = self._tc.InferenceServerClient(self.url)

    def segment(
        self,
        image: bytes,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
        timeout_s: float | None = None,
        mask_input: np.ndarray | None = None,
        output_format: str | None = None,
        mask_size: tuple[int, int] | None = None,
        batched: bool = False,
        polygon_tolerance: float | None = None,
    ) -> SegmentResponse:
        """Segment one encoded image (PNG/JPEG/... bytes) with prompts in original pixels.

        ``mask_size`` (height, width): masks resized nearest-neighbour from the full size (e.g.
        to a display's). ``output_format="logits"``: the server sends only the logits and the
        masks are upsampled here, to ``mask_size`` if given, exactly as the server would.
        ``batched``: the prompts are B sets (point_coords [B, P, 2], point_labels [B, P], box
        [B, 4], mask_input [B, 1, 256, 256]) decoded in one call; the response holds each set's
        K masks in turn ([B * K, ...]).
        """
        return self.infer(
            SEGMENT,
            image=image,
            point_coords=point_coords,
            point_labels=point_labels,
            box=box,
            multimask_output=multimask_output,
            mask_input=mask_input,
            output_format=output_format,
            mask_size=mask_size,
            timeout_s=timeout_s,
            batched=batched,
            polygon_tolerance=polygon_tolerance,
        )

    def embed(self, image: bytes, timeout_s: float | None = None) -> str:
        """Have sam2_session encode ``image`` (or find it cached); returns its image_id."""
        response = self.infer(SESSION, image=image, timeout_s=timeout_s)
        assert response.image_id is not None
        return response.image_id

    def click(
        self,
        image_id: str,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
        mask_input: np.ndarray | None = None,
        output_format: str | None = None,
        timeout_s: float | None = None,
        mask_size: tuple[int, int] | None = None,
        batched: bool = False,
        with_masks: bool = True,
        polygon_tolerance: float | None = None,
    ) -> SegmentResponse:
        """Prompts on an image encoded earlier: one decoder run on the server (``mask_size``,
        ``output_format="logits"``, ``batched`` and ``with_masks`` as for ``infer``).

        Raises tritonclient's InferenceServerException with status 404 / NOT_FOUND when the
        image was evicted: call ``embed`` again.
        """
        return self.infer(
            SESSION,
            image_id=image_id,
            point_coords=point_coords,
            point_labels=point_labels,
            box=box,
            multimask_output=multimask_output,
            mask_input=mask_input,
            output_format=output_format,
            mask_size=mask_size,
            timeout_s=timeout_s,
            batched=batched,
            with_masks=with_masks,
            polygon_tolerance=polygon_tolerance,
        )

    def click_resending(
        self, image: bytes, image_id: str, timeout_s: float | None = None, **prompts: Any
    ) -> tuple[str, SegmentResponse]:
        """``click``; if the server evicted the image (NOT_FOUND), ``embed`` it again and retry
        once. Returns the image id to use from now on (new if re-embedded) and the response."""
        for attempt in range(2):
            try:
                return image_id, self.click(image_id, timeout_s=timeout_s, **prompts)
            except Exception as error:
                if attempt > 0 or not is_not_found(error):
                    raise
                image_id = self.embed(image, timeout_s=timeout_s)
                self.images_resent += 1
        raise AssertionError("unreachable")

    def automatic(
        self,
        image: bytes,
        params: Mapping[str, float | int | bool] | None = None,
        timeout_s: float | None = None,
        segmentation_format: str | None = None,
        polygon_tolerance: float | None = None,
    ) -> dict[str, Any]:
        """Every object in ``image`` (sam2_automatic): ``{"image": {"height", "width"},
        "annotations": [SA-1B records]}``. ``params`` are SAM2AutomaticMaskGenerator's
        (points_per_side, pred_iou_thresh, ...); omitted ones keep its defaults.

        ``segmentation_format="polygons"``: each ``segmentation`` is a list of COCO polygons
        with the holes' in ``holes`` (simplified to ``polygon_tolerance`` pixels).
        This takes tens of seconds per image on CPU: give the client a ``network_timeout_s``.
        """
        inputs = self._automatic_inputs(image, params, segmentation_format, polygon_tolerance)
        result = self.client.infer(
            AUTOMATIC,
            inputs,
            outputs=[self._tc.InferRequestedOutput("annotations")],
            headers=affinity_headers(image),
            **self._timeout_kwargs(timeout_s),
        )
        return _annotations(result)

    def start_automatic(
        self,
        image: bytes,
        done: Callable[[dict[str, Any] | None, Exception | None], None],
        params: Mapping[str, float | int | bool] | None = None,
        timeout_s: float | None = None,
    ) -> Callable[[], None]:
        """``automatic`` without waiting (gRPC only): ``done(result, error)`` is called from
        gRPC's thread when the answer comes. Returns a function that cancels the request: the
        server stops within one decoder call (sam2_automatic checks between calls) and ``done``
        gets a cancelled error."""
        if self.protocol != "grpc":
            raise ValueError("start_automatic needs the gRPC protocol (HTTP cannot cancel)")
        inputs = self._automatic_inputs(image, params, None, None)

        def finished(result: Any, error: Exception | None) -> None:
            if error is not None:
                done(None, error)
                return
            try:
                annotations = _annotations(result)
            except Exception as exc:  # a malformed answer reaches the caller, not gRPC
                done(None, exc)
                return
            done(annotations, None)

        call = self.client.async_infer(
            AUTOMATIC,
            inputs,
            finished,
            outputs=[self._tc.InferRequestedOutput("annotations")],
            headers=affinity_headers(image),
            **self._timeout_kwargs(timeout_s),
        )
        return call.cancel

    def _automatic_inputs(
        self,
        image: bytes,
        params: Mapping[str, float | int | bool] | None,
        segmentation_format: str | None,
        polygon_tolerance: float | None,
    ) -> list[Any]:
        known = {t.name: t.dtype for t in AUTOMATIC_PARAMETERS}
        values = {"image": np.frombuffer(image, dtype=np.uint8)}
        for name, value in (params or {}).items():
            if name not in known:
                raise ValueError(
                    f"unknown automatic-mask parameter {name!r}; known: {sorted(known)}"
                )
            dtype = {"INT32": np.int32, "FP32": np.float32, "FP64": np.float64, "BOOL": bool}[
                known[name]
            ]
            values[name] = np.array([value], dtype=dtype)
        if segmentation_format is not None:
            values["segmentation_format"] = np.array([segmentation_format.encode()], np.object_)
        if polygon_tolerance is not None:
            values["polygon_tolerance"] = np.array([polygon_tolerance], np.float32)
        return [self._input(name, value) for name, value in values.items()]

    def infer(
        self,
        model: str,
        *,
        image: bytes | None = None,
        image_id: str | None = None,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool | None = None,
        mask_input: np.ndarray | None = None,
        output_format: str | None = None,
        mask_size: tuple[int, int] | None = None,
        timeout_s: float | None = None,
        batched: bool = False,
        with_masks: bool = True,
        polygon_tolerance: float | None = None,
    ) -> SegmentResponse:
        """One call of sam2_segment or sam2_session; omitted arguments are not sent.
        ``batched``: the prompts are B sets, sent as the ``*_batch`` inputs. ``with_masks=False``:
        no masks are made here (``masks`` stays the server's [0, H, W]): logits are not
        upsampled, PNG, RLE and polygons not decoded, for a caller that decodes only what it
        needs from ``low_res_logits`` or ``encoded_masks``."""
        values: dict[str, np.ndarray] = {}
        suffix = "_batch" if batched else ""
        if image is not None:
            values["image"] = np.frombuffer(image, dtype=np.uint8)
        if image_id is not None:
            values["image_id"] = np.array([image_id.encode()], dtype=np.object_)
        if point_coords is not None:
            values["point_coords" + suffix] = np.asarray(point_coords, np.float32)
        if point_labels is not None:
            values["point_labels" + suffix] = np.asarray(point_labels, np.int32)
        if box is not None:
            values["box" + suffix] = np.asarray(box, np.float32).reshape((-1, 4) if batched else 4)
        if multimask_output is not None:
            values["multimask_output"] = np.array([multimask_output], dtype=bool)
        if mask_input is not None:  # low-res logits: 256 x 256 (SAM 2.1) or 288 x 288 (SAM 3)
            mask = np.asarray(mask_input, np.float32)
            shape = (-1, 1, *mask.shape[-2:]) if batched else (1, *mask.shape[-2:])
            values["mask_input" + suffix] = mask.reshape(shape)
        if output_format is not None:
            values["output_format"] = np.array([output_format.encode()], dtype=np.object_)
        if polygon_tolerance is not None:
            values["polygon_tolerance"] = np.array([polygon_tolerance], np.float32)
        if mask_size is not None:
            size = np.array(mask_size, np.int32).reshape(-1)
            if output_format == "logits":  # resized here: checked as the server would
                parse_mask_size(size, "raw")
            else:
                values["mask_size"] = size
        inputs = [self._input(name, value) for name, value in values.items()]
        outputs = [self._tc.InferRequestedOutput(t.name) for t in SEGMENT_OUTPUTS]
        if model == SESSION:
            outputs.append(self._tc.InferRequestedOutput("image_id"))
        result = self.client.infer(
            model,
            inputs,
            outputs=outputs,
            headers=affinity_headers(image, image_id),
            **self._timeout_kwargs(timeout_s),
        )
        return _response(result, output_format or "raw", model == SESSION, mask_size, with_masks)

    def _timeout_kwargs(self, timeout_s: float | None) -> dict[str, Any]:
        if timeout_s is None and self.protocol == "grpc":
            timeout_s = self.network_timeout_s
        return timeout_kwargs(self.protocol, timeout_s)

    def _input(self, name: str, value: np.ndarray) -> Any:
        return make_input(self._tc, self.protocol, name, value)

    def close(self) -> None:
        close_once(self.client)

    def __enter__(self) -> SegmentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _annotations(result: Any) -> dict[str, Any]:
    return json.loads(result.as_numpy("annotations").reshape(-1)[0])


def _response(
    result: Any,
    output_format: str,
    with_id: bool,
    mask_size: tuple[int, int] | None = None,
    with_masks: bool = True,
) -> SegmentResponse:
    encoded = [bytes(item) for item in result.as_numpy("encoded_masks").reshape(-1)]
    masks = result.as_numpy("masks")
    if output_format in ENCODED_ONLY_FORMATS and with_masks:
        masks = decode_masks(np.array(encoded, dtype=np.object_), output_format)
    elif output_format == "logits" and with_masks:  # masks [0, H, W] carries the image's size
        orig_hw = (masks.shape[1], masks.shape[2])
        logits = result.as_numpy("low_res_logits")
        masks = masks_from_logits(logits, orig_hw, mask_size) if len(logits) else masks
    image_id = None
    if with_id:
        raw_id = result.as_numpy("image_id").reshape(-1)[0]
        image_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
    return SegmentResponse(
        masks=masks,
        iou_scores=result.as_numpy("iou_scores"),
        low_res_logits=result.as_numpy("low_res_logits"),
        encoded_masks=encoded,
        image_id=image_id,
    )
