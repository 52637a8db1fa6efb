"""SAM 3 in process through its three ONNX graphs (concepts/find.py: preprocess, the vision
graph, the tokenizer and text graph, the detector graph, instances) against ``Sam3Processor``
on the same weights (the reduced backbone and text encoder, the builder's full-size detector):
a phrase, then a positive example box added, on a 420 x 300 photo-sized image. The same
instances in the same order, scores within 1e-4 (issue 34's bound for served instances), boxes
within 0.01 pixels, masks on at least 0.999 of pixels (measured: 6e-8, 1.5e-4 px, every
pixel). Each threshold keeps eight."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_triton.concepts.find import FILES, ConceptGraphs
from sam2_triton.export.sam3_detector import export_detector_onnx, unpinned_memory
from sam2_triton.export.sam3_text import export_text_onnx
from sam2_triton.export.sam3_vision import export_vision_onnx
from tests.sam3_helpers import clip_vocabulary, interactive_tracker, reduced_concept_model

PHRASE = "a red square"
BOX = [100.0, 80.0, 260.0, 200.0]  # x0, y0, x1, y1 in pixels


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = reduced_concept_model()
    folder = tmp_path_factory.mktemp("sam3-export")
    export_vision_onnx(model.backbone, interactive_tracker(), folder / FILES["vision"])
    export_text_onnx(model.backbone.language_backbone, folder / FILES["text"])
    export_detector_onnx(model, folder / FILES["detector"])
    return model, ConceptGraphs(folder, clip_vocabulary())


def _eight(found) -> float:
    """A threshold halfway between the eighth and ninth best scores."""
    scores = np.sort(found.scores)[::-1]
    return float(scores[7] + scores[8]) / 2


def _same(ours, state) -> None:
    assert len(ours) == len(state["scores"]) == 8
    np.testing.assert_allclose(ours.scores, state["scores"].numpy(), atol=1e-4)
    np.testing.assert_allclose(ours.boxes, state["boxes"].numpy(), atol=0.01)
    for mine, theirs in zip(ours.masks(), state["masks"][:, 0].numpy(), strict=True):
        assert np.mean(mine.astype(bool) == theirs) >= 0.999


def test_a_phrase_then_an_example_box_find_what_sam3_processor_finds(exported):
    from PIL import Image
    from sam3.model.sam3_image_processor import Sam3Processor

    model, graphs = exported
    rgb = np.random.default_rng(5).integers(0, 256, (300, 420, 3), np.uint8)
    rgb[80:200, 100:260] = (200, 30, 30)  # something for the box to hold
    image, phrase = graphs.image(rgb), graphs.phrase(PHRASE)
    processor = Sam3Processor(model, device="cpu")
    with torch.no_grad(), unpinned_memory():
        state = processor.set_image(Image.fromarray(rgb))
        threshold = _eight(graphs.find(image, phrase, threshold=0.0))
        processor.set_confidence_threshold(threshold)
        state = processor.set_text_prompt(PHRASE, state)
        _same(graphs.find(image, phrase, threshold=threshold), state)

        with_box = dict(boxes=np.array([BOX]), labels=np.array([1]))
        threshold = _eight(graphs.find(image, phrase, **with_box, threshold=0.0))
        processor.set_confidence_threshold(threshold)
        x0, y0, x1, y1 = BOX
        centre_size = [(x0 + x1) / 2 / 420, (y0 + y1) / 2 / 300, (x1 - x0) / 420, (y1 - y0) / 300]
        state = processor.add_geometric_prompt(centre_size, True, state)
        _same(graphs.find(image, phrase, **with_box, threshold=threshold), state)
