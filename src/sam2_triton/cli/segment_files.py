"""Masks saved for people: one PNG per mask, the scores, and the image with the masks tinted
(``sam2-triton segment``'s output folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from sam2_triton.clients.concepts import Found
from sam2_triton.clients.image import SegmentResponse
from sam2_triton.image.masks import MaskResult
from sam2_triton.image.transforms import decode_image

OVERLAY_COLOURS = np.array([[30, 144, 255], [255, 64, 64], [64, 200, 64]], dtype=np.float32)


def overlay(image: bytes, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with each mask tinted in its own colour: RGB uint8 [H, W, 3]."""
    canvas = decode_image(image).astype(np.float32)
    for k, mask in enumerate(masks):
        colour = OVERLAY_COLOURS[k % len(OVERLAY_COLOURS)]
        selected = mask.astype(bool)
        canvas[selected] = (1 - alpha) * canvas[selected] + alpha * colour
    return np.clip(canvas, 0, 255).astype(np.uint8)


def save_result(
    result: MaskResult | SegmentResponse, out_dir: Path, image: bytes | None = None
) -> list[Path]:
    """mask_<k>.png (0/255) per mask, scores.json and, given the image, overlay.png."""
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


def save_instances(
    found: Found, phrases: tuple[str, ...], out_dir: Path, image: bytes
) -> list[Path]:
    """``segment --text``: mask_<k>.png per instance, instances.json (phrase, score, box in
    pixels, mask file) and overlay.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written, records = [], []
    for k, mask in enumerate(found.masks):
        path = out_dir / f"mask_{k}.png"
        Image.fromarray(mask * np.uint8(255)).save(path)
        written.append(path)
        records.append({
            "phrase": phrases[int(found.phrase_index[k])] if phrases else "visual",
            "score": float(found.scores[k]),
            "box": [float(v) for v in found.boxes[k]],
            "mask": path.name,
            "mask_pixels": int(mask.sum()),
        })  # fmt: skip
    listing = out_dir / "instances.json"
    listing.write_text(json.dumps({"image_id": found.image_id, "instances": records}, indent=2))
    overlay_path = out_dir / "overlay.png"
    Image.fromarray(overlay(image, found.masks)).save(overlay_path)
    return [*written, listing, overlay_path]
