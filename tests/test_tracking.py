"""The tracker's memory choices against SAM2Base._prepare_memory_conditioned_features itself:
every frame's memories are tagged with their frame number and sam2's memory attention is
replaced by a recorder, so the test reads back which memories and pointers sam2 chose, in
which order and with which temporal positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sam2_triton.video.memory import MemoryConfig, plan_memories, select_closest_cond_frames


class _Recorder(nn.Module):
    def forward(self, curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens):
        self.seen = (memory, memory_pos, num_obj_ptr_tokens)
        return curr[0]


def _output(frame: int) -> dict:
    return {
        "maskmem_features": torch.full((1, 64, 64, 64), float(frame)),
        "maskmem_pos_enc": [torch.zeros(1, 64, 64, 64)],
        "obj_ptr": torch.full((1, 256), float(frame)),
    }


def sam2_plan(model, frame_idx, cond, non_cond, num_frames, reverse):
    """(memories [(frame, tpos row)], pointers [(frame, tpos)]) as sam2 chooses them."""
    import sam2.modeling.sam2_base as sam2_base

    output_dict = {
        "cond_frame_outputs": {t: _output(t) for t in cond},
        "non_cond_frame_outputs": {t: _output(t) for t in non_cond},
    }
    positions = []
    real_sine = sam2_base.get_1d_sine_pe

    def sine(pos_inds, dim):
        positions.extend(pos_inds.tolist())
        return real_sine(pos_inds, dim)

    recorder, saved = _Recorder(), model.memory_attention
    rows = model.maskmem_tpos_enc.data.clone()
    model.memory_attention = recorder
    model.maskmem_tpos_enc.data.copy_(torch.arange(7.0).reshape(7, 1, 1, 1) * 1000)
    sam2_base.get_1d_sine_pe = sine
    try:
        with torch.no_grad():
            model._prepare_memory_conditioned_features(
                frame_idx, False, [torch.zeros(4096, 1, 256)], [torch.zeros(4096, 1, 256)],
                [(64, 64)], output_dict, num_frames, track_in_reverse=reverse,
            )  # fmt: skip
    finally:
        model.memory_attention = saved
        model.maskmem_tpos_enc.data.copy_(rows)
        sam2_base.get_1d_sine_pe = real_sine
    memory, memory_pos, ptr_tokens = recorder.seen
    spatial = memory.shape[0] - ptr_tokens
    memories = [
        (int(memory[k, 0, 0]), int(round(float(memory_pos[k, 0, 0]) / 1000)))
        for k in range(0, spatial, 4096)
    ]
    pointer_frames = [int(v) for v in memory[spatial::4, 0, 0]]
    return memories, list(zip(pointer_frames, positions, strict=True))


@pytest.fixture(scope="module")
def sam2_model(tiny_export):
    return tiny_export.build()


CASES = {
    "just after the prompted frame": (1, [0], set(), 20, False),
    "forward, six memories": (9, [0], set(range(1, 9)), 20, False),
    "two prompted frames, one ahead": (10, [0, 12], set(range(1, 10)), 30, False),
    "a mid-video prompt": (25, [0, 20], set(range(1, 20)) | set(range(21, 25)), 40, False),
    "pointers capped at 15 frames back": (40, [0], set(range(1, 40)), 60, False),
    "reverse": (3, [10], set(range(4, 10)), 20, True),
    "reverse, both sides prompted": (5, [2, 15], set(range(6, 15)), 20, True),
    "forward from before the prompt (no pointer)": (0, [10], set(), 20, False),
    "short video": (3, [0], {1, 2}, 4, False),
}


@pytest.mark.parametrize("case", CASES)
def test_memory_plan_is_sam2s(sam2_model, case):
    frame_idx, cond, non_cond, num_frames, reverse = CASES[case]
    want_memories, want_pointers = sam2_plan(
        sam2_model, frame_idx, cond, non_cond, num_frames, reverse
    )
    plan = plan_memories(frame_idx, cond, non_cond, num_frames, reverse)
    assert plan.memories == want_memories
    assert [t for t, _ in plan.pointers] == [t for t, _ in want_pointers]
    np.testing.assert_array_equal(
        np.array([p for _, p in plan.pointers], np.float32),
        np.array([p for _, p in want_pointers], np.float32),
    )


def test_at_most_the_closest_prompted_frames_are_attended_when_capped(sam2_model):
    sam2_model.max_cond_frames_in_attn = 2
    try:
        args = (10, [0, 4, 8, 20, 30], set(range(11, 20)) | {9}, 40, False)
        want_memories, want_pointers = sam2_plan(sam2_model, *args)
    finally:
        sam2_model.max_cond_frames_in_attn = -1
    plan = plan_memories(*args, config=MemoryConfig(max_cond_frames_in_attn=2))
    assert plan.memories == want_memories and [t for t, _ in plan.pointers] == [
        t for t, _ in want_pointers
    ]
    assert select_closest_cond_frames(10, [0, 4, 8, 20, 30], 3) == ([8, 20, 4], [0, 30])


@pytest.mark.parametrize(("size", "out"), [((120, 160), (1024, 1024)), ((1024, 1024), (256, 256))])
def test_antialiased_resize_is_torchs(size, out):
    import torch.nn.functional as F

    from sam2_triton.video.mask_prompts import resize_antialiased

    x = (np.random.default_rng(0).uniform(size=size) > 0.5).astype(np.float32) * 20 - 10
    want = F.interpolate(
        torch.from_numpy(x)[None, None], size=out, mode="bilinear", align_corners=False,
        antialias=True,
    )[0, 0].numpy()  # fmt: skip
    np.testing.assert_allclose(resize_antialiased(x, out), want, atol=1e-5, rtol=0)


def test_mask_downsample_is_sam2s_convolution(sam2_model):
    from sam2_triton.video.mask_prompts import mask_downsample

    mask = (np.random.default_rng(1).uniform(size=(1024, 1024)) > 0.5).astype(np.float32)
    conv = sam2_model.mask_downsample
    with torch.no_grad():
        want = conv(torch.from_numpy(mask)[None, None])[0, 0].numpy()
    got = mask_downsample(mask, conv.weight.detach().numpy(), conv.bias.detach().numpy())
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_memories_keep_exactly_the_references_bfloat16_values():
    from sam2_triton.video.memory import from_bfloat16_bits, to_bfloat16_bits

    x = np.random.default_rng(0).normal(0, 30, 10_000).astype(np.float32)
    x[:4] = [0.0, -0.0, 1e-40, 3.0e38]  # signed zero, a subnormal, near the largest
    bits = to_bfloat16_bits(x)
    assert bits.dtype == np.uint16 and bits.nbytes == x.nbytes // 2
    theirs = torch.from_numpy(x).to(torch.bfloat16)
    assert np.array_equal(bits.view(np.int16), theirs.view(torch.int16).numpy())
    assert np.array_equal(from_bfloat16_bits(bits), theirs.to(torch.float32).numpy())


def test_holes_are_filled_as_sam2_fills_them():
    """fill_holes against sam2's fill_holes_in_mask_scores (its CUDA kernel's connected
    components computed by scikit-image): background pieces of up to 8 pixels, 8-connected,
    become 0.1; larger ones and the foreground stay."""
    import sam2.utils.misc as misc

    from sam2_triton.video.heads import fill_holes
    from tests.video_helpers import connected_components

    rng = np.random.default_rng(0)
    logits = rng.normal(5.0, 1.0, (2, 1, 64, 64)).astype(np.float32)  # all foreground
    logits[0, 0, 10:12, 10:14] = -3.0  # 8 pixels: filled
    logits[0, 0, 20:23, 20:23] = -3.0  # 9 pixels: kept
    logits[1, 0, 5, 5] = logits[1, 0, 6, 6] = -1.0  # diagonal neighbours: one piece of 2
    logits[1, 0, 30:, :] = -5.0  # the background
    saved = misc.get_connected_components
    misc.get_connected_components = connected_components
    try:
        want = misc.fill_holes_in_mask_scores(torch.from_numpy(logits), 8).numpy()
    finally:
        misc.get_connected_components = saved
    got = fill_holes(logits, 8)
    np.testing.assert_array_equal(got, want)
    assert (got[0, 0, 10:12, 10:14] == np.float32(0.1)).all()
    assert (got[0, 0, 20:23, 20:23] == -3.0).all() and (got[1, 0, 30:] == -5.0).all()
    assert got[1, 0, 5, 5] == got[1, 0, 6, 6] == np.float32(0.1)
    assert fill_holes(logits, 0) is logits
