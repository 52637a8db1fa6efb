"""SAM 3's exported parts against sam3's own modules on the same weights (issue 34): the vision
backbone (ViT and both necks) as ONNX Runtime runs it, and its real-arithmetic RoPE against
sam3's complex one. Reduced-size models from sam3's constructors (tests/sam3_helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_triton.export.sam3_vision import IMAGE_SIZE, OUTPUT_NAMES, export_vision_onnx
from tests.sam3_helpers import reduced_vision_backbone


def test_real_rope_rotates_as_sam3s_complex_rope():
    from sam3.model.vitdet import apply_rotary_enc, compute_axial_cis

    from sam2_triton.export.tracker_graph import rotate_pairs

    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 576, 32, generator=gen), torch.randn(2, 4, 576, 32, generator=gen)
    freqs = compute_axial_cis(dim=32, end_x=24, end_y=24, scale_pos=24 / 72)
    want_q, want_k = apply_rotary_enc(q, k, freqs_cis=freqs)
    torch.testing.assert_close(rotate_pairs(q, freqs.real, freqs.imag), want_q)
    torch.testing.assert_close(rotate_pairs(k, freqs.real, freqs.imag), want_k)


def test_vision_backbone_onnx_gives_sam3s_features(tmp_path):
    """Two different images in one batch (the batch axis is dynamic): each of the six feature
    maps equals ``SAM3VLBackbone.forward_image``'s, the detector's pyramid and the interactive
    model's (its own neck), within float32 rounding."""
    import onnxruntime as ort

    backbone = reduced_vision_backbone()
    path = export_vision_onnx(backbone, tmp_path / "vision.onnx")
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = backbone.forward_image(images)
    theirs = [*out["backbone_fpn"], *out["sam2_backbone_out"]["backbone_fpn"]]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run(list(OUTPUT_NAMES), {"image": images.numpy()})
    assert [o.shape for o in ours] == [tuple(t.shape) for t in theirs] == [
        (2, 256, s, s) for s in (288, 144, 72) * 2]  # fmt: skip
    for name, mine, reference in zip(OUTPUT_NAMES, ours, theirs, strict=True):
        reference = reference.numpy()
        scale = float(np.abs(reference).max())
        assert np.abs(mine - reference).max() <= 1e-5 * max(scale, 1.0), name
    # the two necks differ, so a swap would show
    assert not np.allclose(ours[0], ours[3], atol=1e-3)


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


def test_text_onnx_gives_sam3s_text_features_for_phrases(tmp_path):
    """Phrases tokenised without torch (concepts/tokens.py), then the ONNX text encoder: the
    features and the padding mask ``VETextEncoder.forward`` gives for the same phrases."""
    import onnxruntime as ort

    from sam2_triton.concepts.tokens import Tokenizer
    from sam2_triton.export.sam3_text import INPUT_NAME, export_text_onnx
    from tests.sam3_helpers import clip_vocabulary, reduced_text_encoder

    encoder = reduced_text_encoder()
    phrases = ["a car", "yellow school bus", "person's left hand"]
    with torch.no_grad():
        padding, memory, _ = encoder(phrases, device="cpu")
    tokens = Tokenizer(clip_vocabulary())(phrases)
    np.testing.assert_array_equal(tokens == 0, padding.numpy())
    session = ort.InferenceSession(
        str(export_text_onnx(encoder, tmp_path / "text.onnx")), providers=["CPUExecutionProvider"]
    )
    (ours,) = session.run(None, {INPUT_NAME: tokens})
    np.testing.assert_allclose(ours, memory.transpose(0, 1).numpy(), atol=1e-5)
