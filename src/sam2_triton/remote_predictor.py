"""``SAM2RemotePredictor``: the API of Meta's ``SAM2ImagePredictor``, served by ``sam2_session``.

Code written against ``SAM2ImagePredictor`` switches to the service by changing the line that
builds the predictor: ``set_image`` sends the image once (the server encodes it and keeps the
embedding) and each ``predict`` is one decoder run on the server, returning what Meta's
``predict`` returns (same shapes and dtypes). Nothing here needs torch or the model weights.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from sam2_triton.client import Protocol, SegmentClient, SegmentResponse
from sam2_triton.contract import LOW_RES_MASK_SIZE, OUTPUT_FORMATS
from sam2_triton.processing import upsample_logits

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]
# Formats that carry the binary masks themselves (decoded back to 0/1 arrays by SegmentClient).
MASK_FORMATS = tuple(f for f in OUTPUT_FORMATS if f in ("raw", "png", "rle"))


class SAM2RemotePredictor:
    """``SAM2ImagePredictor`` over HTTP or gRPC (``sam2_session`` on a sam2-triton server).

    ``output_format`` is how masks travel ("png" by default: a few kB per mask instead of H x W
    bytes; "raw" saves the encode/decode on a local server). It never changes the results.
    """

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        output_format: str = "png",
        timeout_s: float | None = None,
    ) -> None:
        if output_format not in MASK_FORMATS:
            raise ValueError(f"output_format must be one of {MASK_FORMATS}, not {output_format!r}")
        self.client = SegmentClient(url, protocol)
        self.output_format = output_format
        self.timeout_s = timeout_s
        self.reset_predictor()

    # --- SAM2ImagePredictor's API --------------------------------------------------------------

    def set_image(self, image: np.ndarray | Image.Image) -> None:
        """Send the image to the server, which encodes it once (or finds it already cached).

        ``image``: RGB uint8 [H, W, 3] array or a PIL image, as for SAM2ImagePredictor. It
        travels as a lossless PNG, so the server sees exactly these pixels.
        """
        self.reset_predictor()
        rgb = _rgb_array(image)
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
        self._image = buffer.getvalue()
        self._image_id = self.client.embed(self._image, timeout_s=self.timeout_s)
        self._orig_hw = [(int(rgb.shape[0]), int(rgb.shape[1]))]
        self._is_image_set = True

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> Prediction:
        """Masks for prompts on the image set with ``set_image`` (SAM2ImagePredictor.predict).

        point_coords [N, 2] (x, y) in pixels, point_labels [N] (1 fg, 0 bg), box [4] x0 y0 x1 y1
        in pixels, mask_input [1, 256, 256] (low-res logits of an earlier prediction). With
        ``normalize_coords=False`` points and box are fractions of the width and height in
        [0, 1], as in Meta's predictor. Batched prompts ([B, N, 2], [B, N], [B, 4],
        [B, 1, 256, 256]) give one decoder run per row and a leading B axis on every output.

        Returns masks [C, H, W] float32 (0/1, or logits with ``return_logits``), IoU predictions
        [C] float32 and low-res logits [C, 256, 256] float32 (clamped to +-32 by the server).
        """
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        if point_coords is None and box is None:
            raise ValueError(
                "SAM2RemotePredictor needs at least one point or a box: the server does not "
                "decode without prompts"
            )
        if point_coords is not None and point_labels is None:
            raise ValueError("point_labels must be supplied if point_coords is supplied.")
        rows = _batch_rows(point_coords, point_labels, box, mask_input)
        predictions = [
            self._predict_one(*row, multimask_output, return_logits, normalize_coords)
            for row in rows
        ]
        if len(predictions) == 1:
            return predictions[0]
        masks, scores, low_res = zip(*predictions, strict=True)
        return np.stack(masks), np.stack(scores), np.stack(low_res)

    def reset_predictor(self) -> None:
        """Forget the image (the server's cache keeps its embedding until evicted)."""
        self._is_image_set = False
        self._image: bytes | None = None
        self._image_id: str | None = None
        self._orig_hw: list[tuple[int, int]] | None = None

    def get_image_embedding(self) -> Any:
        raise NotImplementedError(
            "SAM2RemotePredictor keeps the image embedding on the server (16.8 MB per image) "
            "and cannot return it; use SAM2ImagePredictor in-process if you need the embedding"
        )

    # --- beyond Meta's API ------------------------------------------------------------------------

    @property
    def image_id(self) -> str | None:
        """The server's id of the current image (sha256 of the PNG sent), or None."""
        return self._image_id

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SAM2RemotePredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------------

    def _predict_one(
        self,
        point_coords: np.ndarray | None,
        point_labels: np.ndarray | None,
        box: np.ndarray | None,
        mask_input: np.ndarray | None,
        multimask_output: bool,
        return_logits: bool,
        normalize_coords: bool,
    ) -> Prediction:
        assert self._orig_hw is not None
        height, width = self._orig_hw[0]
        if not normalize_coords:  # fractions of the image -> pixels, what the server takes
            scale = np.array([width, height], np.float32)
            if point_coords is not None:
                point_coords = point_coords * scale
            if box is not None:
                box = (box.reshape(2, 2) * scale).reshape(4)
        response = self._click(
            point_coords=point_coords,
            point_labels=point_labels,
            box=box,
            mask_input=mask_input,
            multimask_output=multimask_output,
        )
        low_res = response.low_res_logits.astype(np.float32)
        if return_logits:
            masks = upsample_logits(low_res, (height, width)).astype(np.float32)
        else:
            masks = response.masks.astype(np.float32)
        return masks, response.iou_scores.astype(np.float32), low_res

    def _click(self, **prompts: Any) -> SegmentResponse:
        """One click; if the server evicted the image (NOT_FOUND), send it again and retry once."""
        assert self._image is not None and self._image_id is not None
        self._image_id, response = self.client.click_resending(
            self._image,
            self._image_id,
            timeout_s=self.timeout_s,
            output_format=self.output_format,
            **prompts,
        )
        return response


def _rgb_array(image: np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if not isinstance(image, np.ndarray):
        raise NotImplementedError("Image format not supported")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image [H, W, 3] (HWC, values 0-255), got {image.dtype} "
            f"{list(image.shape)}"
        )
    return np.ascontiguousarray(image)


Row = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]


def _batch_rows(
    point_coords: np.ndarray | None,
    point_labels: np.ndarray | None,
    box: np.ndarray | None,
    mask_input: np.ndarray | None,
) -> list[Row]:
    """Split prompts into one prompt set per decoder run (B = 1 unless they are batched)."""
    coords = None if point_coords is None else np.asarray(point_coords, np.float32)
    labels = None if point_labels is None else np.asarray(point_labels, np.int32)
    boxes = None if box is None else np.asarray(box, np.float32)
    masks = None if mask_input is None else np.asarray(mask_input, np.float32)
    sizes = {
        len(value)
        for value, unbatched_ndim in ((coords, 2), (boxes, 1), (masks, 3))
        if value is not None and value.ndim > unbatched_ndim
    }
    if len(sizes) > 1:
        raise ValueError(f"batched prompts disagree on the batch size: {sorted(sizes)}")
    if not sizes:
        return [(coords, labels, boxes, _one_mask(masks))]
    batch = sizes.pop()

    def rows(value: np.ndarray | None, unbatched_ndim: int, name: str) -> list[Any]:
        if value is None:
            return [None] * batch
        if value.ndim != unbatched_ndim + 1 and not (batch == 1 and value.ndim == unbatched_ndim):
            raise ValueError(f"{name}: expected a leading batch axis of {batch}, got {value.shape}")
        return list(value) if value.ndim == unbatched_ndim + 1 else [value]

    return list(
        zip(
            rows(coords, 2, "point_coords"),
            rows(labels, 1, "point_labels"),
            rows(boxes, 1, "box"),
            [_one_mask(m) for m in rows(masks, 3, "mask_input")],
            strict=True,
        )
    )


def _one_mask(mask: np.ndarray | None) -> np.ndarray | None:
    size = LOW_RES_MASK_SIZE
    if mask is not None and mask.size != size * size:
        raise ValueError(f"mask_input: expected [1, {size}, {size}], got {list(mask.shape)}")
    return None if mask is None else mask.reshape(1, size, size)
