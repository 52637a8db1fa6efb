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

from sam2_triton.clients.image import SegmentClient, SegmentResponse
from sam2_triton.clients.tritonclient_io import Protocol
from sam2_triton.contract import LOW_RES_MASK_SIZE, MAX_RAW_MASK_BYTES, OUTPUT_FORMATS
from sam2_triton.image.masks import LOW_RES_LOGIT_CLAMP, upsample_logits
from sam2_triton.image.prompts import DEFAULT_MAX_PROMPT_SETS, SET_RANK

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]
# Formats that carry the binary masks themselves (decoded back to 0/1 arrays by SegmentClient).
MASK_FORMATS = tuple(f for f in OUTPUT_FORMATS if f in ("raw", "png", "rle"))


class SAM2RemotePredictor:
    """``SAM2ImagePredictor`` over HTTP or gRPC (``sam2_session`` on a sam2-triton server).

    ``output_format`` is how masks travel ("png" by default: a few kB per mask instead of H x W
    bytes; "raw" saves the encode/decode on a local server). It never changes the results.
    Batched prompts go ``max_sets_per_request`` prompt sets per request (the server's limit,
    64 by default), each request one decoder call sharing the image's features.
    """

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        output_format: str = "png",
        timeout_s: float | None = None,
        max_sets_per_request: int = DEFAULT_MAX_PROMPT_SETS,
    ) -> None:
        if output_format not in MASK_FORMATS:
            raise ValueError(f"output_format must be one of {MASK_FORMATS}, not {output_format!r}")
        self.client = SegmentClient(url, protocol)
        self.output_format = output_format
        self.timeout_s = timeout_s
        self.max_sets_per_request = max_sets_per_request
        # As in SAM2ImagePredictor: masks are logits > mask_threshold (any other value than 0
        # makes the server send logits, thresholded here).
        self.mask_threshold = 0.0
        self.reset_predictor()

    # --- SAM2ImagePredictor's API --------------------------------------------------------------

    def set_image(self, image: np.ndarray | Image.Image) -> None:
        """Send the image to the server, which encodes it once (or finds it already cached).

        ``image``: RGB uint8 [H, W, 3] array or a PIL image, as for SAM2ImagePredictor. It
        travels as a lossless PNG, so the server sees exactly these pixels.
        """
        self.reset_predictor()
        self._set_images([_rgb_array(image)])

    def set_image_batch(self, image_list: list[np.ndarray]) -> None:
        """Send several images (SAM2ImagePredictor.set_image_batch), for ``predict_batch``."""
        self.reset_predictor()
        if not isinstance(image_list, list):
            raise TypeError(f"image_list must be a list of images, got {type(image_list).__name__}")
        self._set_images([_rgb_array(image) for image in image_list])
        self._is_batch = True

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
        [B, 1, 256, 256]) are B prompt sets decoded together, with a leading B axis on every
        output (dropped when B is 1, as Meta's ``squeeze(0)`` does).

        Returns masks [C, H, W] float32 (0/1, or logits with ``return_logits``), IoU predictions
        [C] float32 and low-res logits [C, 256, 256] float32 (clamped to +-32).
        """
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        return self._predict_on(
            -1,  # the last image set, as Meta's predict after set_image_batch
            point_coords,
            point_labels,
            box,
            mask_input,
            multimask_output,
            return_logits,
            normalize_coords,
        )

    def predict_batch(
        self,
        point_coords_batch: list[np.ndarray] | None = None,
        point_labels_batch: list[np.ndarray] | None = None,
        box_batch: list[np.ndarray] | None = None,
        mask_input_batch: list[np.ndarray] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """``predict`` on each image of ``set_image_batch`` with its entry of each list
        (SAM2ImagePredictor.predict_batch): lists of masks, IoU predictions, low-res logits."""
        if not self._is_batch:
            raise AssertionError("This function should only be used when in batched mode")
        if not self._is_image_set:
            raise RuntimeError(
                "An image must be set with .set_image_batch(...) before mask prediction."
            )
        results: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        for index in range(len(self._images)):
            prediction = self._predict_on(
                index,
                *(
                    None if b is None else b[index]
                    for b in (point_coords_batch, point_labels_batch)
                ),
                None if box_batch is None else box_batch[index],
                None if mask_input_batch is None else mask_input_batch[index],
                multimask_output,
                return_logits,
                normalize_coords,
            )
            for out, value in zip(results, prediction, strict=True):
                out.append(value)
        return results

    def reset_predictor(self) -> None:
        """Forget the images (the server's cache keeps their embeddings until evicted)."""
        self._is_image_set = False
        self._is_batch = False
        self._images: list[bytes] = []
        self._image_ids: list[str] = []
        self._orig_hw: list[tuple[int, int]] | None = None

    def get_image_embedding(self) -> Any:
        raise NotImplementedError(
            "SAM2RemotePredictor keeps the image embedding on the server (16.8 MB per image) "
            "and cannot return it; use SAM2ImagePredictor in-process if you need the embedding"
        )

    # --- beyond Meta's API ------------------------------------------------------------------------

    @property
    def image_id(self) -> str | None:
        """The server's id of the (last) image set (sha256 of the PNG sent), or None."""
        return self._image_ids[-1] if self._image_ids else None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SAM2RemotePredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------------

    def _set_images(self, images: list[np.ndarray]) -> None:
        for rgb in images:
            buffer = io.BytesIO()
            Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
            self._images.append(buffer.getvalue())
            self._image_ids.append(self.client.embed(buffer.getvalue(), timeout_s=self.timeout_s))
        self._orig_hw = [(int(rgb.shape[0]), int(rgb.shape[1])) for rgb in images]
        self._is_image_set = True

    def _predict_on(
        self,
        index: int,
        point_coords: np.ndarray | None,
        point_labels: np.ndarray | None,
        box: np.ndarray | None,
        mask_input: np.ndarray | None,
        multimask_output: bool,
        return_logits: bool,
        normalize_coords: bool,
    ) -> Prediction:
        if point_coords is None and box is None:
            raise ValueError(
                "SAM2RemotePredictor needs at least one point or a box: the server does not "
                "decode without prompts"
            )
        if point_coords is not None and point_labels is None:
            raise ValueError("point_labels must be supplied if point_coords is supplied.")
        assert self._orig_hw is not None
        height, width = self._orig_hw[index]
        count, prompts = _prompt_sets(point_coords, point_labels, box, mask_input)
        if not normalize_coords:  # fractions of the image -> pixels, what the server takes
            scale = np.array([width, height], np.float32)
            if prompts["point_coords"] is not None:
                prompts["point_coords"] = prompts["point_coords"] * scale
            if prompts["box"] is not None:
                box_shape = prompts["box"].shape
                prompts["box"] = (prompts["box"].reshape(-1, 2, 2) * scale).reshape(box_shape)
        if count is None:  # one prompt set: [C, ...]
            return self._request(index, prompts, False, multimask_output, return_logits)
        if count == 0:
            raise ValueError("batched prompts with a batch size of 0: give at least one set")
        step = self.max_sets_per_request
        if self.output_format == "raw":  # the server caps a response's raw masks
            step = max(
                1,
                min(step, MAX_RAW_MASK_BYTES // ((3 if multimask_output else 1) * height * width)),
            )
        chunks = []
        for start in range(0, count, step):
            part = {k: None if v is None else v[start : start + step] for k, v in prompts.items()}
            sets = min(step, count - start)
            outputs = self._request(index, part, True, multimask_output, return_logits)
            chunks.append([o.reshape(sets, -1, *o.shape[1:]) for o in outputs])
        masks, scores, low_res = (np.concatenate(parts) for parts in zip(*chunks, strict=True))
        if count == 1:  # SAM2ImagePredictor squeezes a batch of one
            return masks[0], scores[0], low_res[0]
        return masks, scores, low_res

    def _request(
        self,
        index: int,
        prompts: dict[str, np.ndarray | None],
        batched: bool,
        multimask_output: bool,
        return_logits: bool,
    ) -> Prediction:
        """One sam2_session request: [N * C, ...] outputs. Logits (return_logits, or another
        mask_threshold) come unclamped and are upsampled here, as SAM2ImagePredictor does."""
        with_logits = return_logits or self.mask_threshold != 0.0
        response = self._click(
            index,
            **prompts,
            multimask_output=multimask_output,
            output_format="logits" if with_logits else self.output_format,
            batched=batched,
            with_masks=not with_logits,  # upsampled below, once
        )
        logits = response.low_res_logits.astype(np.float32)
        if not with_logits:
            return response.masks.astype(np.float32), response.iou_scores, logits
        assert self._orig_hw is not None
        masks = upsample_logits(logits, self._orig_hw[index]).astype(np.float32)
        if not return_logits:
            masks = (masks > self.mask_threshold).astype(np.float32)
        clamped = np.clip(logits, -LOW_RES_LOGIT_CLAMP, LOW_RES_LOGIT_CLAMP)
        return masks, response.iou_scores.astype(np.float32), clamped

    def _click(self, index: int, **prompts: Any) -> SegmentResponse:
        """One click; if the server evicted the image (NOT_FOUND), send it again and retry once."""
        self._image_ids[index], response = self.client.click_resending(
            self._images[index], self._image_ids[index], timeout_s=self.timeout_s, **prompts
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


def _prompt_sets(
    point_coords: np.ndarray | None,
    point_labels: np.ndarray | None,
    box: np.ndarray | None,
    mask_input: np.ndarray | None,
) -> tuple[int | None, dict[str, np.ndarray | None]]:
    """The prompts as one set (count None) or B sets with a leading B axis on each; a prompt
    given once for a batch (no batch axis, or a batch of one) is repeated for every set."""
    prompts = {
        "point_coords": None if point_coords is None else np.asarray(point_coords, np.float32),
        "point_labels": None if point_labels is None else np.asarray(point_labels, np.int32),
        "box": None if box is None else np.asarray(box, np.float32),
        "mask_input": None if mask_input is None else np.asarray(mask_input, np.float32),
    }
    if prompts["mask_input"] is not None:
        _check_mask(prompts["mask_input"])
    sizes = {
        len(value)
        for name, value in prompts.items()
        if value is not None and value.ndim > SET_RANK[name]
    }
    if len(sizes - {1}) > 1:
        raise ValueError(f"batched prompts disagree on the batch size: {sorted(sizes)}")
    if not sizes:
        return None, prompts
    count = max(sizes)
    for name, value in prompts.items():
        if value is None:
            continue
        rank = SET_RANK[name]
        if value.ndim == rank:  # one prompt for every set
            value = value[None]
        if value.ndim != rank + 1:
            raise ValueError(f"{name}: expected a leading batch axis of {count}, got {value.shape}")
        prompts[name] = np.repeat(value, count, axis=0) if len(value) == 1 else value
    return count, prompts


def _check_mask(mask: np.ndarray) -> None:
    """[1, 256, 256] for one set, [B, 1, 256, 256] for B (SAM2ImagePredictor's shapes; a SAM 3
    server's are 288 x 288, which it checks)."""
    size = mask.shape[-1] if mask.ndim in (3, 4) else LOW_RES_MASK_SIZE
    if mask.shape[-3:] != (1, size, size) or mask.ndim not in (3, 4):
        raise ValueError(
            f"mask_input: expected [1, {size}, {size}] or [B, 1, {size}, {size}], "
            f"got {list(mask.shape)}"
        )
