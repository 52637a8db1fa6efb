"""Concepts found in an image, in process (issue 34): SAM 3's exported graphs run by ONNX Runtime
as ``Sam3Processor`` runs the model. An image is encoded once (``preprocess_image``, the vision
graph), a phrase once (``tokens``, the text graph); each question (a phrase, example boxes, a
threshold) then runs the detector graph alone and ``instances`` keeps what scores above the
threshold. The served model wraps this.

Example boxes come as the service takes boxes everywhere, corners in the image's pixels, and
are handed to the detector as ``Sam3Processor.add_geometric_prompt`` takes them (centre and
size in [0, 1] of the image).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from sam2_triton.concepts.graphs import DETECTOR_OUTPUTS, FEATURES, FILES, MAX_BOXES
from sam2_triton.concepts.instances import DEFAULT_THRESHOLD, Instances, instances
from sam2_triton.concepts.tokens import Tokenizer
from sam2_triton.errors import InvalidInputError
from sam2_triton.families import SAM3
from sam2_triton.image.transforms import check_inside, preprocess_image


@dataclass(frozen=True)
class ImageFeatures:
    """One image's detector features [1, 256, S, S] by name, and its (height, width)."""

    maps: dict[str, np.ndarray]
    orig_hw: tuple[int, int]


@dataclass(frozen=True)
class PhraseFeatures:
    """One phrase's text features [1, 32, 256] and padding mask [1, 32] (True: padding)."""

    features: np.ndarray
    mask: np.ndarray


def example_boxes(
    boxes: np.ndarray | None, labels: np.ndarray | None, orig_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes [N, 4] (x0, y0, x1, y1 in pixels) and labels [N] (1 positive, 0 negative) to the
    detector's slots: centre-size in [0, 1] [1, MAX_BOXES, 4], labels [1, MAX_BOXES] and the
    padding mask. Boxes outside the image, inverted, too many or not finite are refused."""
    height, width = orig_hw
    try:
        boxes = np.zeros((0, 4)) if boxes is None else np.asarray(boxes, np.float64)
        labels = None if labels is None else np.asarray(labels, np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidInputError("boxes", f"must be numbers: {error}") from None
    if boxes.shape == (4,):
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InvalidInputError("boxes", f"expected [N, 4] (x0, y0, x1, y1), got {boxes.shape}")
    count = len(boxes)
    labels = np.ones(count) if labels is None else labels.reshape(-1)
    if count > MAX_BOXES:
        raise InvalidInputError("boxes", f"{count} example boxes, at most {MAX_BOXES}")
    if len(labels) != count:
        raise InvalidInputError("box_labels", f"{len(labels)} labels for {count} boxes")
    if not np.isin(labels, (0, 1)).all():
        raise InvalidInputError("box_labels", "must be 1 (positive) or 0 (negative)")
    if not np.isfinite(boxes).all():
        raise InvalidInputError("boxes", "must be finite numbers")
    check_inside("boxes", boxes.reshape(-1, 2), orig_hw)  # both corners, as SAM 2's box
    x0, y0, x1, y1 = boxes.T
    if (x1 <= x0).any() or (y1 <= y0).any():
        raise InvalidInputError("boxes", "need x0 < x1 and y0 < y1")
    slots = np.zeros((1, MAX_BOXES, 4), np.float32)
    slots[0, :count] = np.stack(
        [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height],
        axis=-1,
    )
    kinds = np.zeros((1, MAX_BOXES), np.int64)
    kinds[0, :count] = labels
    return slots, kinds, np.arange(MAX_BOXES)[None] >= count


class Graph(Protocol):
    """How a graph is run: ONNX Runtime's ``run(output_names, feeds)``."""

    def run(self, output_names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list: ...


class ConceptGraphs:
    """The three graphs (vision, text, detector) and the tokenizer: ONNX Runtime sessions of
    an export folder (``ConceptGraphs.onnx``, the embedded target) or the GPU target's models
    through BLS (``triton_models.concepts``)."""

    def __init__(self, vision: Graph, text: Graph, detector: Graph, vocabulary: Path) -> None:
        self.vision, self.text, self.detector = vision, text, detector
        self.tokenizer = Tokenizer(vocabulary)

    @classmethod
    def onnx(cls, folder: Path, vocabulary: Path, threads: int = 0) -> ConceptGraphs:
        """The export folder's graphs (FILES) on ONNX Runtime, in this process."""
        # Imported here: the GPU image has no onnxruntime (its graphs run as models of their own).
        from sam2_triton.runtime.runners import create_session

        folder = Path(folder)
        vision, text, detector = (
            create_session(folder / FILES[name], threads) for name in ("vision", "text", "detector")
        )
        return cls(vision, text, detector, vocabulary)

    def image(self, rgb: np.ndarray) -> ImageFeatures:
        """``Sam3Processor.set_image``: uint8 [H, W, 3] to its detector features."""
        maps = self.vision.run(list(FEATURES), {"image": preprocess_image(rgb, SAM3)})
        return ImageFeatures(dict(zip(FEATURES, maps, strict=True)), rgb.shape[:2])

    def phrase(self, phrase: str, name: str = "phrase") -> PhraseFeatures:
        """A phrase's features (the same for every image); a bad phrase is refused as ``name``."""
        tokens = self.tokenizer([phrase], name=name)
        (features,) = self.text.run(["text_features"], {"tokens": tokens})
        return PhraseFeatures(features, tokens == 0)

    def find(
        self,
        image: ImageFeatures,
        phrase: PhraseFeatures,
        boxes: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> Instances:
        """Every instance of ``phrase`` (and/or like the example ``boxes``) above
        ``threshold``, as ``Sam3Processor`` returns them after ``set_text_prompt`` and
        ``add_geometric_prompt``."""
        slots, kinds, padding = example_boxes(boxes, labels, image.orig_hw)
        feeds = {
            **image.maps,
            "text_features": phrase.features,
            "text_mask": phrase.mask,
            "boxes": slots,
            "box_labels": kinds,
            "box_mask": padding,
        }
        outputs = self.detector.run(list(DETECTOR_OUTPUTS), feeds)
        return instances(*outputs, image.orig_hw, threshold)
