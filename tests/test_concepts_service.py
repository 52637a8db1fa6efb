"""sam3_concepts' request logic (concepts/request.py, concepts/service.py) without Triton or a
model: graphs that count their runs stand in for the ONNX ones. An image's backbone runs once
however many questions name it; a phrase's text graph once; bad input is refused by name before
the backbone runs; several phrases answer in order; every format holds the raw masks. (Against
Sam3Processor through a server: tests/test_e2e_concepts.py.)"""

from __future__ import annotations

import io
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from sam2_triton.concepts.find import ImageFeatures, PhraseFeatures, example_boxes
from sam2_triton.concepts.instances import instances
from sam2_triton.concepts.request import ConceptLimits
from sam2_triton.concepts.service import ConceptService
from sam2_triton.concepts.tokens import Tokenizer
from sam2_triton.errors import InvalidInputError, UnknownImageError
from sam2_triton.image.embedding_cache import EmbeddingCache
from sam2_triton.image.encodings import decode_masks
from tests.sam3_helpers import clip_vocabulary

HEIGHT, WIDTH = 60, 80


class CountingGraphs:
    """ConceptGraphs' three calls: the real tokenizer (it refuses bad phrases), features that
    are the phrase's tokens, and per phrase a few instances whose masks differ."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.tokenizer = Tokenizer(clip_vocabulary())

    def image(self, rgb: np.ndarray) -> ImageFeatures:
        self.runs["image"] += 1
        maps = {name: np.zeros((1, 2, side, side), np.float32) for name, side in
                (("fpn_288", 4), ("fpn_144", 2), ("fpn_72", 1))}  # fmt: skip
        return ImageFeatures(maps, rgb.shape[:2])

    def phrase(self, text: str, name: str = "phrase") -> PhraseFeatures:
        self.runs["phrase"] += 1
        tokens = self.tokenizer([text], name=name)
        return PhraseFeatures(tokens.astype(np.float32), tokens == 0)

    def find(self, image, phrase, boxes=None, labels=None, threshold=0.5):
        self.runs["find"] += 1
        example_boxes(boxes, labels, image.orig_hw)
        seed = int(phrase.features.sum()) % 1000
        logits = np.full((1, 200), -5.0, np.float32)
        logits[0, [seed % 200, (seed + 1) % 200]] = 3.0
        pred_boxes = np.full((1, 200, 4), 0.25, np.float32)
        masks = np.random.default_rng(seed).normal(size=(1, 200, 16, 16)).astype(np.float32)
        return instances(logits, pred_boxes, np.array([[4.0]], np.float32), masks,
                         image.orig_hw, threshold)  # fmt: skip


@pytest.fixture
def service(tmp_path):
    return ConceptService(CountingGraphs(), EmbeddingCache(tmp_path, 1 << 24), ConceptLimits())


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 90, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _ask(service, **inputs):
    values = {"image": np.frombuffer(_png(), np.uint8)} if "image_id" not in inputs else {}
    for name, value in inputs.items():
        if name in ("text", "output_format", "image_id"):
            value = np.array([v.encode() for v in np.atleast_1d(value)], dtype=object)
        values[name] = np.asarray(value)
    return service.handle(values)


def test_an_image_is_encoded_once_and_a_phrase_once(service):
    first = _ask(service, text="a car")
    image_id = first["image_id"][0].decode()
    again = _ask(service, image_id=image_id, text="a car")
    other = _ask(service, image_id=image_id, text="a bus", boxes=[[10, 10, 40, 30]])
    assert service.graphs.runs == {"image": 1, "phrase": 2, "find": 3}
    np.testing.assert_array_equal(first["masks"], again["masks"])
    assert len(first["scores"]) == len(other["scores"]) == 2
    assert _ask(service)["masks"].shape == (0, HEIGHT, WIDTH)  # an image alone: cached, no run
    assert service.graphs.runs["find"] == 3


def test_phrases_answer_in_order_and_boxes_alone_ask_visual(service):
    out = _ask(service, text=["a car", "a bus"])
    np.testing.assert_array_equal(out["phrase_index"], [0, 0, 1, 1])
    car = _ask(service, text="a car")
    np.testing.assert_array_equal(out["masks"][:2], car["masks"])
    boxes_only = _ask(service, boxes=[[10, 10, 40, 30]], box_labels=[0])
    visual = _ask(service, text="visual")
    np.testing.assert_array_equal(boxes_only["scores"], visual["scores"])


@pytest.mark.parametrize("output_format", ["png", "rle", "polygons"])
def test_every_format_holds_the_raw_masks(service, output_format):
    raw = _ask(service, text=["a car", "a bus"])
    extra = {"polygon_tolerance": [0.0]} if output_format == "polygons" else {}
    out = _ask(service, text=["a car", "a bus"], output_format=output_format, **extra)
    assert out["masks"].shape == (0, HEIGHT, WIDTH) and len(out["encoded_masks"]) == 4
    np.testing.assert_array_equal(decode_masks(out["encoded_masks"], output_format), raw["masks"])
    if output_format == "rle":
        assert json.loads(out["encoded_masks"][0])["size"] == [HEIGHT, WIDTH]


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": ["a car", ""]}, r"text\[1\]"),
        ({"text": ["x"] * 17}, "text"),
        ({"text": "word " * 40}, "text"),
        ({"text": "a car", "boxes": [[0, 0, 90, 10]]}, "boxes"),
        ({"text": "a car", "boxes": [[0, 0, 10]]}, "boxes"),
        ({"text": "a car", "boxes": [[0, 0, 10, 10]], "box_labels": [2]}, "box_labels"),
        ({"text": "a car", "box_labels": [1]}, "box_labels"),
        ({"text": "a car", "confidence_threshold": [1.5]}, "confidence_threshold"),
        ({"text": "a car", "output_format": "cutout"}, "output_format"),
        ({"text": "a car", "polygon_tolerance": [1.0]}, "polygon_tolerance"),
    ],
)
def test_bad_input_is_refused_by_name_before_the_backbone_runs(service, inputs, field):
    with pytest.raises(InvalidInputError, match=f"^{field}"):
        _ask(service, **inputs)
    assert service.graphs.runs["image"] == 0


def test_an_unknown_id_asks_for_the_image_again(service):
    with pytest.raises(UnknownImageError, match="image_id"):
        _ask(service, image_id="0" * 64, text="a car")
    with pytest.raises(InvalidInputError, match="^image_id"):
        _ask(service, image_id="not-an-id", text="a car")
