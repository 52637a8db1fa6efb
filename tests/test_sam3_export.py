"""SAM 3's exported parts against sam3's own modules on the same weights (issue 34): the vision
backbone (ViT and both necks) as ONNX Runtime runs it, and its real-arithmetic RoPE against
sam3's complex one. Reduced-size models from sam3's constructors (tests/sam3_helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_triton.concepts.graphs import FILES
from sam2_triton.export.sam3_vision import IMAGE_SIZE, OUTPUT_NAMES


def test_real_rope_rotates_as_sam3s_complex_rope():
    from sam3.model.vitdet import apply_rotary_enc, compute_axial_cis

    from sam2_triton.export.tracker_graph import rotate_pairs

    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 576, 32, generator=gen), torch.randn(2, 4, 576, 32, generator=gen)
    freqs = compute_axial_cis(dim=32, end_x=24, end_y=24, scale_pos=24 / 72)
    want_q, want_k = apply_rotary_enc(q, k, freqs_cis=freqs)
    torch.testing.assert_close(rotate_pairs(q, freqs.real, freqs.imag), want_q)
    torch.testing.assert_close(rotate_pairs(k, freqs.real, freqs.imag), want_k)


@pytest.fixture(scope="module")
def sam3_parts(sam3_model, sam3_export):
    """The reduced backbone and the full-size interactive model (conftest's ``sam3_model``) and
    their ONNX graphs, as ``export_sam3`` wrote them (``sam3_export``)."""
    (model, tracker), folder = sam3_model, sam3_export
    return model.backbone, tracker, folder / FILES["vision"], folder / FILES["interactive"]


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_vision_backbone_onnx_gives_sam3s_features(sam3_parts):
    """Two different images in one batch (the batch axis is dynamic): the detector's three
    feature maps equal ``SAM3VLBackbone.forward_image``'s, within float32 rounding (the
    interactive model's are checked through its masks, below)."""
    backbone, _, vision, _ = sam3_parts
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = backbone.forward_image(images)["backbone_fpn"]
    ours = _session(vision).run(list(OUTPUT_NAMES), {"image": images.numpy()})
    assert [o.shape for o in ours] == [(2, 256, s, s) for s in (288, 144, 72)] + [
        (2, 5184, 256), (2, 20736, 128), (2, 5184, 256)]  # fmt: skip
    for name, mine, reference in zip(OUTPUT_NAMES, ours, theirs, strict=False):
        reference = reference.numpy()
        scale = float(np.abs(reference).max())
        assert np.abs(mine - reference).max() <= 1e-5 * max(scale, 1.0), name


def test_interactive_clicks_and_boxes_give_sam3_interactive_predictors_masks(sam3_parts):
    """An image set as ``Sam3Processor.set_image`` sets it, then clicks and a box asked of
    ``Sam3Image.predict_inst`` (SAM3InteractiveImagePredictor over the shared backbone), and the
    same prompts through the two ONNX graphs in SAM 2's encoding (coordinates in the 1008 frame,
    a box as corners 2 and 3): the three candidates' low-resolution logits and IoU."""
    from types import SimpleNamespace

    from PIL import Image
    from sam3.model.sam1_task_predictor import SAM3InteractiveImagePredictor
    from sam3.model.sam3_image import Sam3Image
    from sam3.model.sam3_image_processor import Sam3Processor
    from torchvision.transforms import v2

    backbone, tracker, vision, decoder = sam3_parts
    predictor = SAM3InteractiveImagePredictor(tracker)
    model = SimpleNamespace(backbone=backbone, inst_interactive_predictor=predictor)
    processor = Sam3Processor(model, device="cpu")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    state = processor.set_image(image)
    pixels = processor.transform(v2.functional.to_image(image)).unsqueeze(0).numpy()
    features = _session(vision).run(list(OUTPUT_NAMES[3:]), {"image": pixels})
    scale = np.array([IMAGE_SIZE / 400, IMAGE_SIZE / 300], np.float32)
    clicks = np.array([[120.0, 80.0], [300.0, 200.0]])
    prompts = [
        ({"point_coords": clicks, "point_labels": np.array([1, 0])}, clicks.tolist(), [1, 0]),
        ({"box": np.array([50.0, 40.0, 250.0, 220.0])}, [[50.0, 40.0], [250.0, 220.0]], [2, 3]),
    ]  # fmt: skip
    graph = _session(decoder)
    for kwargs, points, labels in prompts:
        with torch.no_grad():
            _, iou, low_res = Sam3Image.predict_inst(
                model, state, multimask_output=True, return_logits=True, **kwargs
            )
        masks, ious = graph.run(None, {
            "image_embed": features[0], "high_res_feats_0": features[1],
            "high_res_feats_1": features[2],
            "point_coords": (np.array([points], np.float32) * scale),
            "point_labels": np.array([labels], np.int32),
            "mask_input": np.zeros((1, 1, 288, 288), np.float32),
            "has_mask_input": np.zeros((1, 1), np.float32),
        })  # fmt: skip
        np.testing.assert_allclose(np.clip(masks[0, 1:], -32, 32), low_res, atol=5e-4)
        np.testing.assert_allclose(ious[0, 1:], iou, atol=1e-4)


def test_random_weights_in_the_official_layout_load_through_sam3s_own_loader(tmp_path):
    """A state dict saved with ``weights.sam3.to_official`` (detector.*, tracker.*) is what
    sam3's ``_load_checkpoint`` reads into the concept model and the interactive predictor, and
    ``from_official`` reads it back; a file of another model is refused by name."""
    from sam3.model_builder import _load_checkpoint
    from torch import nn

    from sam2_triton.weights.sam3 import SAM3, from_official, to_official

    def model() -> nn.Module:
        root = nn.Module()
        root.backbone = nn.Linear(3, 4)
        root.inst_interactive_predictor = nn.Module()
        root.inst_interactive_predictor.model = nn.Conv2d(2, 2, 1)
        return root

    torch.manual_seed(0)
    source, target = model(), model()
    official = to_official(source.state_dict())
    assert sorted(official) == ["detector.backbone.bias", "detector.backbone.weight",
                                "tracker.bias", "tracker.weight"]  # fmt: skip
    torch.save({"model": official}, tmp_path / "sam3.pt")
    _load_checkpoint(target, str(tmp_path / "sam3.pt"))
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)
    assert from_official(official).keys() == source.state_dict().keys()
    with pytest.raises(ValueError, match="'image_encoder.trunk.x': not a SAM 3 checkpoint key"):
        from_official({"image_encoder.trunk.x": 0})
    assert SAM3.url == ("https://huggingface.co/facebook/sam3/resolve/"
                        "3c879f39826c281e95690f02c7821c4de09afae7/sam3.pt")  # fmt: skip


def test_text_onnx_gives_sam3s_text_features_for_phrases(sam3_model, sam3_export):
    """Phrases tokenised without torch (concepts/tokens.py), then the ONNX text encoder: the
    features and the padding mask ``VETextEncoder.forward`` gives for the same phrases."""
    import onnxruntime as ort

    from sam2_triton.concepts.tokens import Tokenizer
    from sam2_triton.export.sam3_text import INPUT_NAME
    from tests.sam3_helpers import clip_vocabulary

    encoder = sam3_model[0].backbone.language_backbone
    phrases = ["a car", "yellow school bus", "person's left hand"]
    with torch.no_grad():
        padding, memory, _ = encoder(phrases, device="cpu")
    tokens = Tokenizer(clip_vocabulary())(phrases)
    np.testing.assert_array_equal(tokens == 0, padding.numpy())
    session = ort.InferenceSession(
        str(sam3_export / FILES["text"]), providers=["CPUExecutionProvider"]
    )
    (ours,) = session.run(None, {INPUT_NAME: tokens})
    np.testing.assert_allclose(ours, memory.transpose(0, 1).numpy(), atol=1e-5)
