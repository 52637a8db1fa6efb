"""The video tracker's ONNX parts against sam2's own modules on the same random weights (1e-4):
memory attention with several memory frames and object pointers (RoPE rewritten in real
arithmetic), the memory encoder with and without binarised click masks and with an object
absent; every count a dynamic axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_triton.export.tracker_export import (
    example_memory_attention_inputs,
    example_memory_encoder_inputs,
    export_tracker_onnx,
    reference_memory_attention,
    reference_memory_encoder,
    run_onnx,
)
from sam2_triton.export.tracker_graph import rotate_pairs

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def sam2_model(tiny_export):
    from sam2.build_sam import build_sam2

    return build_sam2(tiny_export.config, ckpt_path=str(tiny_export.checkpoint), device="cpu")


@pytest.fixture(scope="module")
def tracker_files(sam2_model, tmp_path_factory):
    return export_tracker_onnx(sam2_model, tmp_path_factory.mktemp("tracker"))


def test_real_rotation_equals_sam2s_complex_rope():
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis

    cis = compute_axial_cis(dim=256, end_x=64, end_y=64)
    q = torch.randn(2, 1, 4096, 256)
    k = torch.randn(2, 1, 3 * 4096, 256)
    want_q, want_k = apply_rotary_enc(q, k, cis, repeat_freqs_k=True)
    got_q = rotate_pairs(q, cis.real, cis.imag)
    got_k = rotate_pairs(k.reshape(2, 1, 3, 4096, 256), cis.real, cis.imag).reshape(k.shape)
    torch.testing.assert_close(got_q, want_q, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_k, want_k, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("objects", "memories", "pointers"),
    [(1, 1, 1), (2, 2, 3), (1, 7, 16), (3, 4, 2), (1, 2, 0)],  # the most the tracker keeps;
    # no pointer: a frame before every prompted frame, tracked forward
)
def test_memory_attention_matches_sam2(sam2_model, tracker_files, objects, memories, pointers):
    inputs = example_memory_attention_inputs(objects, memories, pointers, seed=memories)
    inputs["memory_tpos"] = torch.tensor([(6 - f) % 7 for f in range(memories)])
    got = run_onnx(tracker_files.memory_attention, inputs)
    want = reference_memory_attention(sam2_model, inputs)
    assert got.shape == (objects, 4096, 256)
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("binarize", [True, False])
def test_memory_encoder_matches_sam2(sam2_model, tracker_files, binarize):
    inputs = example_memory_encoder_inputs(objects=3, seed=int(binarize))
    inputs["binarize"] = torch.tensor([binarize])
    inputs["object_score_logits"] = torch.tensor([[2.0], [-0.5], [0.1]])  # one object absent
    got = run_onnx(tracker_files.memory_encoder, inputs)
    want = reference_memory_encoder(sam2_model, inputs)
    assert got.shape == (3, 4096, 64)
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
