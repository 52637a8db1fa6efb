"""A mask as a video prompt: ``SAM2VideoPredictor.add_new_mask``'s resize to the model's
1024 x 1024, and ``SAM2Base``'s use of a mask as the answer (its logits and its downsampling to
the decoder's dense prompt), with ``F.interpolate``'s antialiased resize in numpy.
"""

from __future__ import annotations

import numpy as np

from sam2_triton.video.heads import MEMORY_IMAGE_SIZE

MASK_OUT_SCALE, MASK_OUT_BIAS = 20.0, -10.0  # a mask prompt's logits: +10 inside, -10 outside


def antialiased_matrix(out_size: int, in_size: int) -> np.ndarray:
    """Weights [out, in] of ``F.interpolate(bilinear, align_corners=False, antialias=True)``
    along one axis: a triangle filter as wide as the scale when shrinking (plain bilinear when
    enlarging), as ATen computes them."""
    scale = in_size / out_size
    support, inverse = (scale, 1.0 / scale) if scale >= 1.0 else (1.0, 1.0)
    matrix = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        weights = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) - center + 0.5) * inverse))
        matrix[i, lo:hi] = weights / weights.sum()
    return matrix.astype(np.float32)


def resize_antialiased(x: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """[H, W] float32 resized as ``F.interpolate(..., antialias=True)`` (to ~1e-6)."""
    rows = antialiased_matrix(out_hw[0], x.shape[0])
    cols = antialiased_matrix(out_hw[1], x.shape[1])
    return (rows @ np.asarray(x, np.float32) @ cols.T).astype(np.float32)


def mask_prompt_1024(mask: np.ndarray) -> np.ndarray:
    """A user's mask [H, W] (bool) -> the model's [1024, 1024] 0/1 float32, as
    ``SAM2VideoPredictor.add_new_mask`` resizes it (antialiased, then >= 0.5)."""
    mask = np.asarray(mask, np.float32)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected [H, W], got shape {mask.shape}")
    if mask.shape == (MEMORY_IMAGE_SIZE, MEMORY_IMAGE_SIZE):
        return mask
    size = (MEMORY_IMAGE_SIZE, MEMORY_IMAGE_SIZE)
    return (resize_antialiased(mask, size) >= 0.5).astype(np.float32)


def mask_downsample(mask_1024: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """SAM2Base.mask_downsample (a 4 x 4, stride-4 convolution) on [1024, 1024] -> [256, 256]:
    the mask as the decoder's dense prompt when a mask is the prompt."""
    side = MEMORY_IMAGE_SIZE // 4
    blocks = mask_1024.reshape(side, 4, side, 4)
    return (np.einsum("iajb,ab->ij", blocks, weight.reshape(4, 4)) + bias.reshape(())).astype(
        np.float32
    )
