"""Call ``sam2_segment`` over HTTP or gRPC with tritonclient (KServe v2 protocol)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from sam2_triton.contract import SEGMENT, SEGMENT_OUTPUTS
from sam2_triton.processing import MaskResult

Protocol = Literal["http", "grpc"]
DEFAULT_URLS = {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}


def _module(protocol: Protocol) -> ModuleType:
    """tritonclient.http or tritonclient.grpc (same API for what we use)."""
    if protocol == "http":
        import tritonclient.http as module
    elif protocol == "grpc":
        import tritonclient.grpc as module
    else:
        raise ValueError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
    return module


class SegmentClient:
    """A reusable connection to the server; ``segment()`` is one ``sam2_segment`` call.

    gRPC: tritonclient already raises the channel's message limits to 2 GiB, so masks of large
    images (K x H x W bytes) are not cut at gRPC's 4 MiB default.
    """

    def __init__(self, url: str | None = None, protocol: Protocol = "http") -> None:
        self.protocol = protocol
        self._tc = _module(protocol)
        self.url = url or DEFAULT_URLS[protocol]
        self.client = self._tc.InferenceServerClient(self.url)

    def segment(
        self,
        image: bytes,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
        timeout_s: float | None = None,
    ) -> MaskResult:
        """Segment one encoded image (PNG/JPEG/... bytes) with points in original pixels."""
        inputs = [self._input("image", np.frombuffer(image, dtype=np.uint8))]
        if point_coords is not None:
            inputs.append(self._input("point_coords", np.asarray(point_coords, np.float32)))
            inputs.append(self._input("point_labels", np.asarray(point_labels, np.int32)))
        if box is not None:
            inputs.append(self._input("box", np.asarray(box, np.float32).reshape(4)))
        inputs.append(self._input("multimask_output", np.array([multimask_output], dtype=bool)))
        outputs = [self._tc.InferRequestedOutput(t.name) for t in SEGMENT_OUTPUTS]
        kwargs = {}
        if timeout_s is not None:
            key = "client_timeout" if self.protocol == "grpc" else "timeout"
            kwargs[key] = timeout_s if self.protocol == "grpc" else int(timeout_s * 1e6)
        result = self.client.infer(SEGMENT, inputs, outputs=outputs, **kwargs)
        return MaskResult(
            masks=result.as_numpy("masks"),
            iou_scores=result.as_numpy("iou_scores"),
            low_res_logits=result.as_numpy("low_res_logits"),
        )

    def _input(self, name: str, value: np.ndarray) -> Any:
        dtype = {np.dtype(np.uint8): "UINT8", np.dtype(np.float32): "FP32"}.get(value.dtype)
        dtype = dtype or {np.dtype(np.int32): "INT32", np.dtype(bool): "BOOL"}[value.dtype]
        tensor = self._tc.InferInput(name, list(value.shape), dtype)
        if self.protocol == "http":
            tensor.set_data_from_numpy(value, binary_data=True)
        else:
            tensor.set_data_from_numpy(value)
        return tensor

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SegmentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


OVERLAY_COLOURS = np.array([[30, 144, 255], [255, 64, 64], [64, 200, 64]], dtype=np.float32)


def overlay(image: bytes, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with each mask tinted in its own colour: RGB uint8 [H, W, 3]."""
    from sam2_triton.processing import decode_image

    canvas = decode_image(image).astype(np.float32)
    for k, mask in enumerate(masks):
        colour = OVERLAY_COLOURS[k % len(OVERLAY_COLOURS)]
        selected = mask.astype(bool)
        canvas[selected] = (1 - alpha) * canvas[selected] + alpha * colour
    return np.clip(canvas, 0, 255).astype(np.uint8)


def save_result(result: MaskResult, out_dir: Path, image: bytes | None = None) -> list[Path]:
    """mask_<k>.png (0/255) per mask, scores.json and, given the image, overlay.png."""
    import json

    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k, mask in enumerate(result.masks):
        path = out_dir / f"mask_{k}.png"
        Image.fromarray(mask * np.uint8(255)).save(path)
        written.append(path)
    scores = out_dir / "scores.json"
    scores.write_text(
        json.dumps(
            {
                "iou_scores": [float(s) for s in result.iou_scores],
                "masks": [p.name for p in written],
                "mask_pixels": [int(m.sum()) for m in result.masks],
            },
            indent=2,
        )
    )
    written.append(scores)
    if image is not None:
        path = out_dir / "overlay.png"
        Image.fromarray(overlay(image, result.masks)).save(path)
        written.append(path)
    return written
