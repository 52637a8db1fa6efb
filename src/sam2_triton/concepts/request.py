"""sam3_concepts' one typed request, parsed and checked in one place before any graph runs.

``parse_concept_request`` turns CONCEPTS_INPUTS (None where omitted) into a ``ConceptRequest``:
the phrases, the example boxes and their labels, the threshold and how masks are encoded. What
needs the image's size (boxes inside it) or the vocabulary (a phrase's tokens) is checked by
the service before the image's backbone runs. Every mistake names its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sam2_triton.concepts.instances import DEFAULT_THRESHOLD, check_threshold
from sam2_triton.contract import CONCEPT_OUTPUT_FORMATS, DEFAULT_MAX_IMAGE_PIXELS
from sam2_triton.errors import InvalidInputError
from sam2_triton.image.polygons import DEFAULT_TOLERANCE
from sam2_triton.image.request import parse_choice, parse_tolerance

#: sam3's phrase when only example boxes are given (``Sam3Processor.add_geometric_prompt``).
VISUAL = "visual"
DEFAULT_MAX_PHRASES = 16  # one detector run each


@dataclass(frozen=True)
class ConceptLimits:
    """A server's caps on one request (its config's parameters)."""

    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_phrases: int = DEFAULT_MAX_PHRASES


@dataclass(frozen=True)
class ConceptRequest:
    """What a sam3_concepts request asks, besides its image."""

    phrases: tuple[str, ...]  # as sent; empty with boxes: sam3's VISUAL prompt
    boxes: np.ndarray | None  # [N, 4] x0 y0 x1 y1 in pixels
    box_labels: np.ndarray | None  # [N] 1 positive, 0 negative
    threshold: float = DEFAULT_THRESHOLD
    output_format: str = "raw"
    polygon_tolerance: float = DEFAULT_TOLERANCE

    @property
    def prompted(self) -> bool:
        """A phrase or a box: without either the request only caches its image."""
        return bool(self.phrases) or self.boxes is not None

    @property
    def questions(self) -> tuple[str, ...]:
        """The phrases the detector is asked, one run each."""
        return self.phrases or ((VISUAL,) if self.boxes is not None else ())


def parse_concept_request(
    inputs: Mapping[str, np.ndarray | None], limits: ConceptLimits
) -> ConceptRequest:
    """CONCEPTS_INPUTS -> a ConceptRequest, or an InvalidInputError naming the input."""
    output_format = parse_choice(inputs.get("output_format"), "output_format",
                                 CONCEPT_OUTPUT_FORMATS, "raw")  # fmt: skip
    boxes = inputs.get("boxes")
    labels = inputs.get("box_labels")
    if labels is not None and boxes is None:
        raise InvalidInputError("box_labels", "given without boxes")
    return ConceptRequest(
        phrases=_phrases(inputs.get("text"), limits.max_phrases),
        boxes=None if boxes is None else _boxes(boxes),
        box_labels=None if labels is None else np.asarray(labels).reshape(-1),
        threshold=_threshold(inputs.get("confidence_threshold")),
        output_format=output_format,
        polygon_tolerance=parse_tolerance(inputs.get("polygon_tolerance"), (output_format,)),
    )


def _phrases(value: np.ndarray | None, most: int) -> tuple[str, ...]:
    if value is None:
        return ()
    flat = np.asarray(value, dtype=object).reshape(-1)
    if len(flat) == 0:
        raise InvalidInputError("text", "no phrase given: send one or more, or omit the input")
    if len(flat) > most:
        raise InvalidInputError("text", f"{len(flat)} phrases, at most {most} per request")
    phrases = []
    for i, raw in enumerate(flat):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            raise InvalidInputError(f"text[{i}]", "is not UTF-8") from None
        phrases.append(text)
    return tuple(phrases)


def _boxes(value: np.ndarray) -> np.ndarray:
    boxes = np.asarray(value)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
        raise InvalidInputError("boxes", f"expected [N, 4] (x0, y0, x1, y1), got {boxes.shape}")
    return boxes.astype(np.float64)


def _threshold(value: np.ndarray | None) -> float:
    if value is None:
        return DEFAULT_THRESHOLD
    flat = np.asarray(value).reshape(-1)
    if flat.shape[0] != 1:
        raise InvalidInputError("confidence_threshold", f"expected one value, got {len(flat)}")
    return check_threshold(float(flat[0]))
