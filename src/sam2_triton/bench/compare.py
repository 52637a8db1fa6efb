"""How far two servers' answers to the same requests are apart.

Made for the GPU target: TensorRT FP16 changes the encoder's numbers, and what users care about is
whether the masks change. Send the same images and prompts to a reference (the embedded CPU
target, FP32) and a candidate (the GPU target) and measure the masks, scores and logits
(``benchmarks/compare_targets.py`` prints it; docs/gpu.md says what to expect).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sam2_triton.clients.image import SegmentClient
from sam2_triton.clients.tritonclient_io import Protocol
from sam2_triton.image.masks import MaskResult


@dataclass(frozen=True)
class Prompt:
    """One request's prompts, in original image pixels."""

    name: str
    point_coords: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    box: np.ndarray | None = None


@dataclass(frozen=True)
class Drift:
    """Differences between two results for one request (all K masks)."""

    mask_agreement: float  # fraction of mask pixels that are equal
    min_mask_iou: float  # worst IoU between corresponding binary masks (1.0 if both empty)
    max_score_diff: float  # largest |predicted IoU difference|
    max_logit_diff: float  # largest |low-res logit difference|
    same_best_mask: bool  # both rank the same mask first by predicted IoU


def drift(reference: MaskResult, candidate: MaskResult) -> Drift:
    if reference.masks.shape != candidate.masks.shape:
        raise ValueError(f"mask shapes differ: {reference.masks.shape} vs {candidate.masks.shape}")
    a, b = reference.masks.astype(bool), candidate.masks.astype(bool)
    axes = tuple(range(1, a.ndim))
    union = np.logical_or(a, b).sum(axis=axes)
    inter = np.logical_and(a, b).sum(axis=axes)
    ious = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return Drift(
        mask_agreement=float((a == b).mean()),
        min_mask_iou=float(ious.min()),
        max_score_diff=float(np.abs(reference.iou_scores - candidate.iou_scores).max()),
        max_logit_diff=float(np.abs(reference.low_res_logits - candidate.low_res_logits).max()),
        same_best_mask=bool(np.argmax(reference.iou_scores) == np.argmax(candidate.iou_scores)),
    )


def summarize(drifts: Sequence[Drift]) -> dict[str, float]:
    """Worst case over all requests (and how often the best mask agreed)."""
    return {
        "requests": len(drifts),
        "min_mask_agreement": min(d.mask_agreement for d in drifts),
        "min_mask_iou": min(d.min_mask_iou for d in drifts),
        "max_score_diff": max(d.max_score_diff for d in drifts),
        "max_logit_diff": max(d.max_logit_diff for d in drifts),
        "same_best_mask": sum(d.same_best_mask for d in drifts) / len(drifts),
    }


def default_prompts(height: int, width: int) -> list[Prompt]:
    """A click, a click with a background click, and a box: the three usual request kinds."""
    cx, cy = width / 2, height / 2
    return [
        Prompt("point", np.array([[cx, cy]], np.float32), np.array([1], np.int32)),
        Prompt(
            "points",
            np.array([[cx, cy], [width * 0.1, height * 0.1]], np.float32),
            np.array([1, 0], np.int32),
        ),
        Prompt("box", box=np.array([width / 4, height / 4, 3 * width / 4, 3 * height / 4])),
    ]


def compare_servers(
    reference_url: str,
    candidate_url: str,
    images: Iterable[tuple[str, bytes, int, int]],
    protocol: Protocol = "http",
    prompts: Sequence[Prompt] | None = None,
) -> list[tuple[str, str, Drift]]:
    """Send each (name, encoded bytes, height, width) image with ``prompts`` to both servers
    (default: ``default_prompts`` for the image's size).

    Returns (image name, prompt name, drift) per request.
    """
    rows = []
    with (
        SegmentClient(reference_url, protocol) as reference,
        SegmentClient(candidate_url, protocol) as candidate,
    ):
        for name, data, height, width in images:
            for prompt in prompts or default_prompts(height, width):
                args = (data, prompt.point_coords, prompt.point_labels, prompt.box)
                result = drift(reference.segment(*args), candidate.segment(*args))
                rows.append((name, prompt.name, result))
    return rows
