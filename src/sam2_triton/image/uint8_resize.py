"""torchvision's uint8 bilinear resize with antialiasing (``v2.Resize`` on a uint8 tensor), in
numpy: how ``Sam3Processor`` resizes an image to SAM 3's 1008 x 1008 input, for its concept
detector and its interactive model alike (``transforms.preprocess_image`` then normalises).

The resize is PyTorch's own uint8 kernel (``_upsample_bilinear2d_aa``, after Pillow-SIMD), not
Pillow's: the same triangle filter widened by the scale when shrinking, but its weights are
rounded to int16 at a precision chosen from the largest weight, where Pillow keeps 22 bits, so
the two differ by one level in a fraction of a percent of pixels. Here, as there: each output
pixel is ``(2^(p-1) + sum(k_j * pixel_j)) >> p``, clamped to 0..255, horizontally then
vertically through a uint8 image in between.
"""

from __future__ import annotations

import math

import numpy as np

_MAX_PRECISION = 22


def _axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """For each output position: the first input index [out], int16 weights [out, K] (zero past
    the position's span) and their precision in bits, as PyTorch computes them
    (``_compute_indices_int16_weights_aa`` with the bilinear filter, antialias on)."""
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    width = int(math.ceil(support)) * 2 + 1
    first = np.zeros(out_size, np.int64)
    weights = np.zeros((out_size, width), np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), in_size) - lo
        x = (np.arange(count) + lo - center + 0.5) * invscale
        w = np.maximum(1.0 - np.abs(x), 0.0)
        total = float(np.cumsum(w)[-1]) if count else 0.0  # in order, as PyTorch sums
        weights[i, :count] = w / total if total != 0.0 else w
        first[i] = lo
    w_max = float(weights.max())
    precision = 0
    while precision < _MAX_PRECISION and int(0.5 + w_max * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    scaled = weights * (1 << precision)
    ints = np.where(scaled < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5)).astype(np.int64)
    return first, ints, precision


def _resample(image: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """uint8 ``image`` [H, W, C] resized along ``axis`` (0 rows, 1 columns) to ``out_size``."""
    in_size = image.shape[axis]
    first, ints, precision = _axis_weights(in_size, out_size)
    shape = [1] * image.ndim
    shape[axis] = out_size
    out_shape = list(image.shape)
    out_shape[axis] = out_size
    # int32 holds every sum: 255 * 2^15 per weight, weights summing to about 2^precision
    acc = np.full(out_shape, 1 << (precision - 1) if precision else 0, np.int32)
    for j in range(ints.shape[1]):
        index = np.minimum(first + j, in_size - 1)
        acc += ints[:, j].astype(np.int32).reshape(shape) * np.take(image, index, axis=axis)
    return np.clip(acc >> precision, 0, 255).astype(np.uint8)


def resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size, size, 3], as ``v2.Resize((size, size))`` on a uint8
    tensor (antialiased bilinear)."""
    out = np.ascontiguousarray(rgb)
    if out.shape[1] != size:
        out = _resample(out, 1, size)
    if out.shape[0] != size:
        out = _resample(out, 0, size)
    return out
