"""``SAM2RemoteAutomaticMaskGenerator``: Meta's ``SAM2AutomaticMaskGenerator``, served by
``sam2_automatic``.

Code written against ``SAM2AutomaticMaskGenerator(model, **kwargs).generate(image)`` switches
to the service by changing the line that builds the generator: the keyword arguments are
Meta's, ``generate`` sends the image once (a lossless PNG) and returns the same list of SA-1B
records (same keys, value types and ``output_mode``). Nothing here needs torch or the weights.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from sam2_triton.clients.image import SegmentClient
from sam2_triton.clients.tritonclient_io import Protocol
from sam2_triton.image.automatic import AutomaticParams

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")


class SAM2RemoteAutomaticMaskGenerator:
    """``SAM2AutomaticMaskGenerator`` over HTTP or gRPC (``sam2_automatic`` on a server).

    Takes Meta's keyword arguments with Meta's defaults; ``point_grids`` (explicit grids) and
    ``use_m2m`` (a second decoder pass per mask) are not served and are refused when set.
    Segment-everything takes tens of seconds per image on a CPU: ``timeout_s`` (default 900)
    bounds one ``generate``.
    """

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
        timeout_s: float = 900.0,
        **kwargs: Any,
    ) -> None:
        if point_grids is not None or points_per_side is None:
            raise NotImplementedError(
                "point_grids: the server builds its grid from points_per_side (and the crop "
                "options); explicit grids are not served"
            )
        if use_m2m:
            raise NotImplementedError("use_m2m: the mask-to-mask refinement pass is not served")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"Unknown output_mode {output_mode}.")
        self.params = AutomaticParams(
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            mask_threshold=mask_threshold,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            min_mask_region_area=min_mask_region_area,
            multimask_output=multimask_output,
        ).validate()
        self.output_mode = output_mode
        self.timeout_s = timeout_s
        self.client = SegmentClient(url, protocol, network_timeout_s=timeout_s)

    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """SA-1B records for every object in ``image`` (RGB uint8 [H, W, 3]), as Meta's
        ``generate``: segmentation (per ``output_mode``), area, bbox (XYWH), predicted_iou,
        point_coords, stability_score, crop_box (XYWH)."""
        if (
            not isinstance(image, np.ndarray)
            or image.ndim != 3
            or image.shape[2] != 3
            or image.dtype != np.uint8
        ):
            described = (
                f"{image.dtype} {list(image.shape)}"
                if isinstance(image, np.ndarray)
                else type(image).__name__
            )
            raise ValueError(f"image: expected an RGB uint8 array [H, W, 3] (HWC), got {described}")
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buffer, "PNG", compress_level=1)
        params = {name: getattr(self.params, name) for name in AutomaticParams.names()}
        document = self.client.automatic(buffer.getvalue(), params, timeout_s=self.timeout_s)
        return [self._record(a) for a in document["annotations"]]

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SAM2RemoteAutomaticMaskGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, annotation: dict[str, Any]) -> dict[str, Any]:
        rle = {
            "size": annotation["segmentation"]["size"],
            "counts": annotation["segmentation"]["counts"],
        }
        if self.output_mode == "binary_mask":
            segmentation: Any = mask_utils.decode({**rle, "counts": rle["counts"].encode()})
            segmentation = segmentation.astype(bool)
        elif self.output_mode == "uncompressed_rle":
            segmentation = uncompressed_rle(
                mask_utils.decode({**rle, "counts": rle["counts"].encode()})
            )
        else:
            segmentation = rle
        return {
            "segmentation": segmentation,
            "area": int(annotation["area"]),
            "bbox": [float(v) for v in annotation["bbox"]],
            "predicted_iou": float(annotation["predicted_iou"]),
            "point_coords": [[float(v) for v in p] for p in annotation["point_coords"]],
            "stability_score": float(annotation["stability_score"]),
            "crop_box": [float(v) for v in annotation["crop_box"]],
        }


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """A [H, W] mask -> ``{"size": [h, w], "counts": [int, ...]}`` in column-major order,
    starting with the count of zeros (``sam2.utils.amg.mask_to_rle_pytorch``)."""
    height, width = mask.shape
    flat = np.asarray(mask, bool).reshape(-1, order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [height, width], "counts": counts}
