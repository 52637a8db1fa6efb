"""SAM 3's concept detector as an ONNX graph (export/sam3_detector.py) against sam3's own
``Sam3Image.forward_grounding`` on the same weights (issue 34): the builder's fusion encoder,
decoder, geometry encoder, segmentation head and scoring at full size, on the reduced vision
backbone and text encoder of tests/sam3_helpers.py. Each prompt is run by the reference alone,
as ``Sam3Processor`` runs it (a phrase, then example boxes appended to its empty geometric
prompt); the graph answers each with its boxes in its fixed slots, the others padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_triton.export.sam3_detector import (
    MAX_BOXES,
    OUTPUT_NAMES,
    export_detector_onnx,
    unpinned_memory,
)
from sam2_triton.export.sam3_vision import IMAGE_SIZE
from tests.sam3_helpers import reduced_concept_model

PHRASES = ["a red square", "the sky"]
# Example boxes per phrase, as Sam3Processor.add_geometric_prompt takes them: centre and size
# in [0, 1] of the image, True for a positive example.
BOXES = [[([0.5, 0.4, 0.3, 0.2], True), ([0.3, 0.6, 0.2, 0.25], False)], []]


@pytest.fixture(scope="module")
def concept(tmp_path_factory):
    model = reduced_concept_model()
    path = export_detector_onnx(model, tmp_path_factory.mktemp("sam3") / "detector.onnx")
    return model, path


def _reference(model, backbone_out: dict, text: dict, prompt: int) -> dict:
    """``Sam3Processor._forward_grounding``'s call for phrase ``prompt`` and its boxes."""
    from sam3.model.data_misc import FindStage

    out = {
        **backbone_out,
        "language_features": text["language_features"][:, prompt : prompt + 1],
        "language_mask": text["language_mask"][prompt : prompt + 1],
    }
    geometry = model._get_dummy_prompt()
    for box, label in BOXES[prompt]:
        geometry.append_boxes(torch.tensor(box).view(1, 1, 4), torch.tensor([label]).view(1, 1))
    zero = torch.tensor([0])
    find = FindStage(img_ids=zero, text_ids=zero, input_boxes=None, input_boxes_mask=None,
                     input_boxes_label=None, input_points=None, input_points_mask=None)  # fmt: skip
    return model.forward_grounding(out, find, None, geometry)


def _feeds(backbone_out: dict, text: dict, prompt: int) -> dict[str, np.ndarray]:
    """The graph's inputs for phrase ``prompt``: its boxes in the first slots, the others
    padding (whatever they hold: here a box in the middle)."""
    examples = BOXES[prompt] + [([0.5, 0.5, 0.4, 0.4], True)] * (MAX_BOXES - len(BOXES[prompt]))
    return {
        **{f"fpn_{x.shape[-1]}": x.numpy() for x in backbone_out["backbone_fpn"]},
        "text_features": text["language_features"][:, prompt : prompt + 1].transpose(0, 1).numpy(),
        "text_mask": text["language_mask"][prompt : prompt + 1].numpy(),
        "boxes": np.array([[box for box, _ in examples]], np.float32),
        "box_labels": np.array([[int(label) for _, label in examples]], np.int64),
        "box_mask": np.arange(MAX_BOXES)[None] >= len(BOXES[prompt]),
    }


def test_phrases_and_example_boxes_give_forward_groundings_scores_boxes_and_masks(concept):
    import onnxruntime as ort

    model, path = concept
    image = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), unpinned_memory():
        backbone_out = model.backbone.forward_image(image)
        text = model.backbone.forward_text(PHRASES, device="cpu")
        theirs = [_reference(model, backbone_out, text, p) for p in range(len(PHRASES))]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for p, reference in enumerate(theirs):
        feeds = _feeds(backbone_out, text, p)
        logits, boxes, presence, masks = session.run(list(OUTPUT_NAMES), feeds)
        assert logits.shape == (1, 200) and boxes.shape == (1, 200, 4)
        assert presence.shape == (1, 1) and masks.shape == (1, 200, 288, 288)
        got = {"logits": logits, "boxes": boxes, "presence": presence, "masks": masks}
        want = {
            "logits": reference["pred_logits"][..., 0],
            "boxes": reference["pred_boxes"],
            "presence": reference["presence_logit_dec"],
            "masks": reference["pred_masks"],
        }
        for name, value in want.items():  # measured: 6e-7 (scores), 1.2e-4 of 2.7 (masks)
            value = value.numpy()
            scale = max(float(np.abs(value).max()), 1.0)
            error = float(np.abs(got[name] - value).max())
            assert error <= (3e-4 if name == "masks" else 1e-5) * scale, (p, name, error, scale)
        if BOXES[p]:  # its example boxes count: masked out, the scores change
            feeds["box_mask"][:] = True
            (without,) = session.run(["pred_logits"], feeds)
            assert np.abs(without - logits).max() > 1e-3


def test_instances_are_the_ones_sam3_processor_keeps(concept):
    """The graph's outputs through ``concepts.instances`` against ``Sam3Processor``'s state for
    the same phrase on a 420 x 300 image (its own backbone features fed to the graph): the same
    instances in the same order, scores within 1e-5, boxes within 1e-3 pixels, masks at the
    image's size on >= 0.999 of pixels. The threshold keeps eight (random weights score about
    alike)."""
    import onnxruntime as ort
    from PIL import Image
    from sam3.model.sam3_image_processor import Sam3Processor

    from sam2_triton.concepts.instances import instances

    model, path = concept
    rgb = np.random.default_rng(3).integers(0, 256, (300, 420, 3), np.uint8)
    processor = Sam3Processor(model, device="cpu")
    with torch.no_grad(), unpinned_memory():
        state = processor.set_image(Image.fromarray(rgb))
        text = model.backbone.forward_text(PHRASES, device="cpu")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(list(OUTPUT_NAMES), _feeds(state["backbone_out"], text, 1))
    scores = np.sort(instances(*outputs, (300, 420), 0.0).scores)[::-1]
    threshold = float(scores[7] + scores[8]) / 2
    processor.set_confidence_threshold(threshold)
    with unpinned_memory():
        state = processor.set_text_prompt(PHRASES[1], state)  # no example boxes
    ours = instances(*outputs, (300, 420), threshold)
    assert len(ours) == len(state["scores"]) == 8
    np.testing.assert_allclose(ours.scores, state["scores"].numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.boxes, state["boxes"].numpy(), atol=1e-3)
    masks = ours.masks()
    for mine, theirs in zip(masks, state["masks"][:, 0].numpy(), strict=True):
        assert np.mean(mine.astype(bool) == theirs) >= 0.999
