"""The request logic of ``sam3_concepts``, free of Triton: phrases and example boxes on an image
sent once.

A request carrying ``image`` has its backbone features computed unless its content id is cached
(the same ``EmbeddingCache`` as sam2_session's embeddings, shared by the model's instances); a
request carrying ``image_id`` reuses them, so a new phrase on a cached image runs the text graph
(once per phrase per process) and the detector alone. Bad phrases and boxes are refused before
the backbone runs. The graphs come as a ``ConceptGraphs`` (ONNX Runtime in this process).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from sam2_triton.concepts.find import ConceptGraphs, ImageFeatures, PhraseFeatures, example_boxes
from sam2_triton.concepts.graphs import FEATURES
from sam2_triton.concepts.instances import Instances
from sam2_triton.concepts.request import ConceptLimits, ConceptRequest, parse_concept_request
from sam2_triton.contract import MAX_RAW_MASK_BYTES
from sam2_triton.errors import InvalidInputError
from sam2_triton.image.embedding_cache import EmbeddingCache
from sam2_triton.image.encodings import mask_to_png, rle_record
from sam2_triton.image.polygons import polygon_record
from sam2_triton.image.session import ORIG_SIZE, cached_features, id_tensor
from sam2_triton.image.transforms import decode_image

PHRASES_KEPT = 1024  # text features kept per process: 32 KB each


class ConceptService:
    """One ``handle`` call per request; the image cache is shared between processes."""

    def __init__(
        self, graphs: ConceptGraphs, cache: EmbeddingCache, limits: ConceptLimits | None = None
    ) -> None:
        self.graphs = graphs
        self.cache = cache
        self.limits = limits or ConceptLimits()
        self._phrases: OrderedDict[str, PhraseFeatures] = OrderedDict()

    def handle(self, inputs: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        """CONCEPTS_INPUTS (None where omitted) -> CONCEPTS_OUTPUTS."""
        request = parse_concept_request(inputs, self.limits)
        texts = [self.phrase(text, _name(request, i)) for i, text in enumerate(request.questions)]
        image_id, image = self._image(inputs.get("image"), inputs.get("image_id"), request)
        found = [
            self.graphs.find(image, text, request.boxes, request.box_labels, request.threshold)
            for text in texts
        ]
        return {**_outputs(found, image.orig_hw, request), "image_id": id_tensor(image_id)}

    def phrase(self, text: str, name: str = "text") -> PhraseFeatures:
        """A phrase's text features, computed once per process (most recent PHRASES_KEPT)."""
        if text in self._phrases:
            self._phrases.move_to_end(text)
            return self._phrases[text]
        features = self.graphs.phrase(text, name)
        self._phrases[text] = features
        if len(self._phrases) > PHRASES_KEPT:
            self._phrases.popitem(last=False)
        return features

    def _image(
        self, image: np.ndarray | None, image_id: np.ndarray | None, request: ConceptRequest
    ) -> tuple[str, ImageFeatures]:
        key, stored = cached_features(
            self.cache, image, image_id, lambda data: self._encode(data, request)
        )
        orig_hw = (int(stored[ORIG_SIZE][0]), int(stored[ORIG_SIZE][1]))
        if request.boxes is not None:  # refused before the detector runs
            example_boxes(request.boxes, request.box_labels, orig_hw)
        return key, ImageFeatures({name: stored[name] for name in FEATURES}, orig_hw)

    def _encode(self, data: bytes, request: ConceptRequest) -> dict[str, np.ndarray]:
        rgb = decode_image(data, self.limits.max_image_pixels)
        if request.boxes is not None:
            example_boxes(request.boxes, request.box_labels, rgb.shape[:2])
        image = self.graphs.image(rgb)
        return {**image.maps, ORIG_SIZE: np.array(image.orig_hw, np.int64)}


def _name(request: ConceptRequest, i: int) -> str:
    return f"text[{i}]" if len(request.phrases) > 1 else "text"


def _outputs(
    found: list[Instances], orig_hw: tuple[int, int], request: ConceptRequest
) -> dict[str, np.ndarray]:
    """The instances of every phrase, in order, with their masks as the request asks."""
    height, width = orig_hw
    count = sum(len(f) for f in found)
    masks = np.zeros((0, height, width), np.uint8)
    encoded = np.empty(0, dtype=np.object_)
    if request.output_format == "raw":
        if count * height * width > MAX_RAW_MASK_BYTES:
            raise InvalidInputError(
                "output_format",
                f"'raw' would return {count} masks of {width}x{height} (over "
                f"{MAX_RAW_MASK_BYTES} bytes): ask for 'rle' or 'png'",
            )
        masks = np.concatenate([f.masks() for f in found]) if count else masks
    else:
        encoded = np.empty(count, dtype=np.object_)
        encoded[:] = [item for f in found for item in _encoded(f, request)]
    return {
        "masks": masks,
        "scores": np.concatenate([f.scores for f in found] or [np.zeros(0)]).astype(np.float32),
        "boxes": np.concatenate([f.boxes for f in found] or [np.zeros((0, 4))]).astype(np.float32),
        "phrase_index": np.repeat(np.arange(len(found), dtype=np.int32), [len(f) for f in found]),
        "encoded_masks": encoded,
    }


def _encoded(found: Instances, request: ConceptRequest) -> list[bytes]:
    """One instance at a time: never every full-size mask at once."""
    if request.output_format == "rle":
        return [json.dumps(rle_record(rle)).encode() for rle in found.rles()]
    if request.output_format == "png":
        return [mask_to_png(found.mask(k)) for k in range(len(found))]
    tolerance = request.polygon_tolerance
    return [
        json.dumps(polygon_record(found.mask(k), tolerance)).encode() for k in range(len(found))
    ]
