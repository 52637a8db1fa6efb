"""Label Studio's brush RLE, the encoding of a ``brushlabels`` result's ``value.rle``.

What ``label_studio_sdk.converter.brush.mask2rle(mask.astype(np.uint8) * 255)`` returns, byte
for byte: the SDK cannot be installed beside this package (label-studio-sdk 2.x needs numpy 2;
nvidia-pytriton needs numpy 1), so its format is written here and the tests decode our output
with the SDK itself, in Label Studio's own environment.

The format: the pixel count x 4 (RGBA, row-major) in 32 bits, the word size - 1 (5 bits) and the
four run-length field sizes - 1 (4 bits each: 3, 4, 8, 16), then each run: a single value as
``0 00 000 <value:8>``, a series as ``1 <size index:2> <length - 1:size> <value:8>`` (series
over 65,536 values split into pieces of 65,536), zero-padded to whole bytes (1 to 8 zeros:
the SDK adds a whole byte when the bits already end on one).
"""

from __future__ import annotations

import numpy as np

RLE_SIZES = (3, 4, 8, 16)
_PIECE = 1 << 16


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """An [H, W] mask (nonzero: inside) as Label Studio's brush RLE bytes (alpha 255)."""
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"a brush mask is a non-empty [H, W] array, not {mask.shape}")
    if mask.size * 4 >= 1 << 32:
        raise ValueError(f"{mask.shape[1]} x {mask.shape[0]} is over 2^30 pixels")
    flat = np.asarray(mask).reshape(-1) != 0
    ends = np.append(np.flatnonzero(flat[1:] != flat[:-1]), flat.size - 1)
    lengths = np.diff(np.append(-1, ends)) * 4  # each pixel is 4 equal channel values
    values = np.where(flat[ends], 255, 0)
    parts = [f"{flat.size * 4:032b}", f"{8 - 1:05b}", *(f"{s - 1:04b}" for s in RLE_SIZES)]
    for length, value in zip(lengths.tolist(), values.tolist(), strict=True):
        word = f"{value:08b}"
        if length <= 8:  # never 1: runs are whole pixels, 4 values each
            parts.append(f"100{length - 1:03b}{word}")
        elif length <= 16:
            parts.append(f"101{length - 1:04b}{word}")
        elif length <= 256:
            parts.append(f"110{length - 1:08b}{word}")
        else:
            while length > _PIECE:
                parts.append(f"111{_PIECE - 1:016b}{word}")
                length -= _PIECE
            parts.append(f"111{length - 1:016b}{word}")
    bits = "".join(parts)
    bits += "0" * (8 - len(bits) % 8)
    return list(int(bits, 2).to_bytes(len(bits) // 8, "big"))
