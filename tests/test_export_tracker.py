"""The video tracker's ONNX parts against sam2's own modules on the same random weights (1e-4):
memory attention with several memory frames and object pointers (RoPE rewritten in real
arithmetic), the memory encoder with and without binarised click masks and with an object
absent; every count a dynamic axis."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sam2_triton.contract import (
    MEMORY_ATTENTION_FILE,
    MEMORY_ENCODER_FILE,
    TRACKING_DECODER_FILE,
)
from sam2_triton.export.tracker_export import (
    example_memory_attention_inputs,
    example_memory_encoder_inputs,
    reference_memory_attention,
    reference_memory_encoder,
    run_onnx,
)
from sam2_triton.export.tracker_graph import rotate_pairs
from sam2_triton.runtime.runners import create_session

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def sam2_model(tiny_export):
    return tiny_export.build()


@pytest.fixture(scope="module")
def tracker_files(tracker_export):
    """What export_tracker_onnx wrote (conftest's tracker_export)."""
    return SimpleNamespace(
        memory_attention=tracker_export / MEMORY_ATTENTION_FILE,
        memory_encoder=tracker_export / MEMORY_ENCODER_FILE,
        tracking_decoder=tracker_export / TRACKING_DECODER_FILE,
    )


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
    [(1, 1, 1), (2, 2, 3), (1, 7, 16), (2, 4, 2), (1, 2, 0)],  # the most the tracker keeps;
    # no pointer: a frame before every prompted frame, tracked forward
)
def test_memory_attention_matches_sam2(sam2_model, tracker_files, objects, memories, pointers):
    inputs = example_memory_attention_inputs(objects, memories, pointers, seed=memories)
    # each object its own rows (objects of different videos share a call)
    inputs["memory_tpos"] = torch.tensor(
        [[(6 - f - i) % 7 for f in range(memories)] for i in range(objects)]
    )
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


def _frame(seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One frame's decoder features: the image embedding [1, 256, 64, 64] and the two
    high-resolution maps, as sam2 holds them (NCHW)."""
    gen = torch.Generator().manual_seed(seed)
    pix = torch.randn(1, 256, 64, 64, generator=gen)
    return pix, [
        torch.randn(1, 32, 256, 256, generator=gen),
        torch.randn(1, 64, 128, 128, generator=gen),
    ]


@pytest.mark.parametrize(
    ("points", "labels"),
    [
        ([[500.0, 380.0]], [1]),  # a lone click: multimask
        ([[100.0, 120.0], [700.0, 800.0], [400.0, 420.0]], [2, 3, 1]),  # box + click: one mask
        ([[300.0, 300.0], [600.0, 200.0]], [1, 0]),
        (None, None),  # a tracking frame: no prompt, multimask
    ],
)
def test_tracking_decoder_and_heads_match_sam2s_forward_sam_heads(
    sam2_model, tracker_files, points, labels
):
    from sam2_triton.export.decoder_graph import decoder_layout
    from sam2_triton.image.decoder_feeds import decoder_feeds
    from sam2_triton.video.heads import decoder_heads, use_multimask

    pix, high_res = _frame(seed=len(labels or []))
    multimask = use_multimask(len(labels or []))
    if points is None:  # sam2's own stand-in: one padding point
        coords, codes = torch.zeros(1, 1, 2), -torch.ones(1, 1, dtype=torch.int32)
    else:
        coords, codes = torch.tensor([points]), torch.tensor([labels], dtype=torch.int32)
    with torch.no_grad():
        want = sam2_model._forward_sam_heads(
            backbone_features=pix,
            point_inputs=None
            if points is None
            else {"point_coords": coords, "point_labels": codes},
            mask_inputs=None,
            high_res_features=high_res,
            multimask_output=multimask,
        )
        tokens, s0, s1 = decoder_layout(pix, *high_res)
    features = {
        "image_embed": tokens.numpy(),
        "high_res_feats_0": s0.numpy(),
        "high_res_feats_1": s1.numpy(),
    }
    session = create_session(tracker_files.tracking_decoder)
    outputs = session.run(None, decoder_feeds(features, coords.numpy(), codes.numpy()))
    no_obj_ptr = sam2_model.no_obj_ptr.detach().numpy()
    got = decoder_heads(*outputs, multimask=multimask, no_obj_ptr=no_obj_ptr)
    low_multi, _, ious, low, high, obj_ptr, score = (t.numpy() for t in want)
    for ours, theirs in [
        (got.low_res_multimasks, low_multi),
        (got.ious, ious),
        (got.low_res_masks, low),
        (got.obj_ptr, obj_ptr),
        (got.object_score_logits, score),
        (got.high_res_masks(), high),
    ]:
        np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0)


def test_an_absent_object_gets_no_object_logits_and_pointer():
    from sam2_triton.video.heads import NO_OBJ_SCORE, decoder_heads

    rng = np.random.default_rng(0)
    masks = rng.normal(size=(2, 4, 256, 256)).astype(np.float32)
    ious, ptrs = rng.uniform(size=(2, 4)).astype(np.float32), rng.normal(size=(2, 4, 256))
    no_obj_ptr = np.full((1, 256), 7.0, np.float32)
    got = decoder_heads(masks, ious, ptrs, np.array([[0.5], [-0.5]]), True, no_obj_ptr)
    best = 1 + int(np.argmax(ious[0, 1:]))
    np.testing.assert_array_equal(got.low_res_masks[0, 0], masks[0, best])
    np.testing.assert_array_equal(got.obj_ptr[0], ptrs[0, best].astype(np.float32))
    assert (got.low_res_multimasks[1] == NO_OBJ_SCORE).all()
    np.testing.assert_array_equal(got.obj_ptr[1], no_obj_ptr[0])


def test_the_export_check_passes_and_catches_a_graph_that_differs(sam2_model, tracker_files):
    from sam2_triton.export.tracker_export import verify_tracker

    assert max(verify_tracker(sam2_model, tracker_files).values()) < TOLERANCE
    weight = sam2_model.memory_attention.norm.weight
    with torch.no_grad():
        weight += 0.5  # the PyTorch model no longer matches the files
        try:
            errors = verify_tracker(sam2_model, tracker_files)
        finally:
            weight -= 0.5
    assert errors["memory_attention"] > 1e-2 and errors["memory_encoder"] < TOLERANCE
