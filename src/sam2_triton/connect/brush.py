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
    ends, values = _runs(np.asarray(mask))
    lengths = np.diff(np.append(-1, ends)) * 4  # each pixel is 4 equal channel values
    # series over 65,536 values are written as pieces of 65,536 and the rest
    pieces = (lengths + _PIECE - 1) // _PIECE
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    within = np.arange(first.size) - first
    length = np.repeat(lengths, pieces)
    length = np.where(within == np.repeat(pieces, pieces) - 1, length - within * _PIECE, _PIECE)
    kind = np.searchsorted(np.array([8, 16, 256]), length).astype(np.uint32)  # the size index
    size = np.array(RLE_SIZES, np.uint32)[kind]
    value = np.where(np.repeat(values, pieces), 255, 0).astype(np.uint32)
    codes = (((4 | kind) << size | (length.astype(np.uint32) - 1)) << 8) | value
    header = [mask.size * 4, (8 - 1) << 16 | sum((s - 1) << (12 - 4 * k) for k, s in
                                               enumerate(RLE_SIZES))]  # fmt: skip
    codes = np.concatenate([np.array(header, np.uint32), codes])
    widths = np.concatenate([np.array([32, 21], np.uint32), 11 + size])
    # each code left-aligned in 32 bits, its bits unpacked, the first `width` of each kept
    bits = np.unpackbits((codes << (32 - widths)).astype(">u4").view(np.uint8)).reshape(-1, 32)
    stream = bits[np.arange(32) < widths[:, None]]
    padded = np.concatenate([stream, np.zeros(8 - stream.size % 8, np.uint8)])  # 1 to 8 zeros
    return np.packbits(padded).tolist()


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-major runs: the flat index where each ends and whether it is inside. A column-major
    mask (pycocotools decodes RLE so) is read in place, not copied row-major (~30 ms at 12 MP)."""
    height, width = mask.shape
    if not mask.flags.f_contiguous or mask.flags.c_contiguous:
        flat = mask.reshape(-1) != 0
        ends = np.append(np.flatnonzero(flat[1:] != flat[:-1]), flat.size - 1)
        return ends, flat[ends]
    columns = mask.T != 0  # [W, H], contiguous
    x, y = np.divmod(np.flatnonzero(columns[1:] != columns[:-1]), height)  # [y, x+1] != [y, x]
    rows = np.flatnonzero(columns[0, 1:] != columns[-1, :-1]) + 1  # mask[y, 0] != mask[y - 1, -1]
    starts = np.sort(np.concatenate([y * width + x + 1, rows * width]))
    ends = np.append(starts - 1, mask.size - 1)
    return ends, columns[ends % width, ends // width]
