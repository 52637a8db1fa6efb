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

from sam2_triton.connect import runs

RLE_SIZES = (3, 4, 8, 16)
_PIECE = 1 << 16
#: Fewer COCO runs than one per this many pixels: brush runs from them, not from the pixels.
_PIXELS_PER_RUN = 64


def mask_to_rle(mask: np.ndarray) -> bytes:
    """An [H, W] mask (nonzero: inside) as Label Studio's brush RLE bytes (alpha 255)."""
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"a brush mask is a non-empty [H, W] array, not {mask.shape}")
    _check_size(*mask.shape)
    return _encode(*_runs(np.asarray(mask)), mask.size)


def coco_to_rle(rle: dict) -> bytes:
    """A COCO RLE record ({"size": [H, W], "counts": compressed}) as brush RLE bytes: the same
    bytes as ``mask_to_rle`` of its decoded mask. COCO's runs go down the columns and the
    brush's along the rows: a mask of a few thousand runs has its rows' runs found from where
    each column differs from the one on its left, without its pixels (1 ms at 12 MP); a
    ragged one (more runs than one per ``_PIXELS_PER_RUN`` pixels) is decoded and read."""
    counts, height, width = runs.checked_counts(rle)
    if height < 1 or width < 1:
        raise ValueError(f"a brush mask is non-empty, not {height} x {width}")
    _check_size(height, width)
    if counts.size * _PIXELS_PER_RUN < height * width:
        return _encode(*_runs_of_columns(counts, height, width), height * width)
    return mask_to_rle(runs.pixels(counts, height, width))


def _check_size(height: int, width: int) -> None:
    if height * width * 4 >= 1 << 32:
        raise ValueError(f"{width} x {height} is over 2^30 pixels")


def _encode(ends: np.ndarray, values: np.ndarray, pixels: int) -> bytes:
    """The brush bytes of row-major runs: where each ends (flat index) and whether inside."""
    lengths = np.diff(np.append(-1, ends)) * 4  # each pixel is 4 equal channel values
    # series over 65,536 values are written as pieces of 65,536 and the rest
    pieces = (lengths + _PIECE - 1) // _PIECE
    length, values = np.repeat(lengths, pieces), np.repeat(values, pieces)
    long = np.flatnonzero(pieces > 1)  # few: the pieces of these runs are set apart
    if long.size:
        count = pieces[long]
        first = (np.cumsum(pieces) - pieces)[long]  # where each long run's pieces begin
        within = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        length[np.repeat(first, count) + within] = _PIECE
        length[first + count - 1] = lengths[long] - (count - 1) * _PIECE
    kind = np.searchsorted(np.array([8, 16, 256]), length).astype(np.uint32)  # the size index
    size = np.array(RLE_SIZES, np.uint32)[kind]
    value = np.where(values, 255, 0).astype(np.uint32)
    codes = (((4 | kind) << size | (length.astype(np.uint32) - 1)) << 8) | value
    header = [pixels * 4, (8 - 1) << 16 | sum((s - 1) << (12 - 4 * k) for k, s in
                                              enumerate(RLE_SIZES))]  # fmt: skip
    codes = np.concatenate([np.array(header, np.uint32), codes])
    widths = np.concatenate([np.array([32, 21], np.uint32), 11 + size])
    return _pack(codes, widths)


def _pack(codes: np.ndarray, widths: np.ndarray) -> bytes:
    """Codes of ``widths`` bits (at most 32) one after another, then 1 to 8 zero bits to the
    next whole byte (the SDK's padding). Each code lands in the 32-bit word where it starts
    and the next; the codes' bits never overlap, so a word is the sum of its parts (exact in
    bincount's float64: under 2^32)."""
    ends = np.cumsum(widths.astype(np.int64))
    starts = ends - widths
    word, shift = starts >> 5, starts & 31
    aligned = codes.astype(np.uint64) << (64 - widths - shift).astype(np.uint64)
    count = int(ends[-1] >> 5) + 2
    words = np.bincount(word, (aligned >> np.uint64(32)).astype(np.float64), count)
    words += np.bincount(word + 1, (aligned & np.uint64(0xFFFFFFFF)).astype(np.float64), count)
    return words.astype(">u4").tobytes()[: int(ends[-1]) // 8 + 1]


def _runs_of_columns(counts: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major runs (as ``_runs``) of a mask given by COCO's column-major run lengths."""
    toggles = np.cumsum(counts)[:-1]  # column-major indices where the value flips
    toggles = toggles[toggles < height * width]
    # each column's value at its top row: the parity of the flips up to there
    top = np.searchsorted(toggles, np.arange(width) * height, side="right") % 2
    inner = toggles[toggles % height > 0]  # flips inside a column, between rows y - 1 and y
    # where a column differs from the one on its left: its flips and its left neighbour's
    # (shifted a column right), those in both cancelling out
    keys = _merge(inner[inner >= height], inner[inner < (width - 1) * height] + height)
    repeated = np.zeros(keys.size, bool)
    if keys.size > 1:
        same = keys[1:] == keys[:-1]
        repeated[1:] |= same
        repeated[:-1] |= same
    keys = keys[~repeated]
    # segments of each column x >= 1 between its top, those flips and its bottom; the first
    # differs where the tops differ, then each flip toggles
    marks = _merge(np.arange(1, width) * height, keys)
    column, row = np.divmod(marks, height)
    new_column = row == 0
    index = np.arange(marks.size)
    segment = index - np.maximum.accumulate(np.where(new_column, index, 0))
    differs = (top[column] ^ top[column - 1] ^ (segment % 2)).astype(bool)
    # a segment ends at the next mark in its column, or at the column's bottom
    end = np.where(np.append(~new_column[1:], False), np.append(row[1:], 0), height)
    lengths = (end - row)[differs]
    rows = np.repeat(row[differs] - np.cumsum(lengths) + lengths, lengths) + np.arange(
        lengths.sum()
    )
    columns = np.repeat(column[differs], lengths)
    # column by column, rows ascending: a stable sort by row alone is row-major order
    order = np.argsort(rows.astype(np.uint16) if height <= 1 << 16 else rows, kind="stable")
    changes = rows[order] * width + columns[order]
    # a row's first pixel against the previous row's last
    every = np.arange(height)
    first = np.searchsorted(toggles, every, side="right") % 2
    last = np.searchsorted(toggles, (width - 1) * height + every, side="right") % 2
    wraps = np.flatnonzero(first[1:] != last[:-1]) + 1
    starts = _merge(changes, wraps * width)
    ends = np.append(starts - 1, height * width - 1)
    values = (top[0] + np.arange(ends.size)) % 2 == 1
    return ends, values


def _merge(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Two sorted arrays as one: numpy's stable sort (timsort for 64-bit integers) finds the
    two runs and merges them in linear time, where its default sort starts over (ten times
    slower for the 250,000 flips of a ragged 12 MP mask)."""
    return np.sort(np.concatenate([first, second]), kind="stable")


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-major runs: the flat index where each ends and whether it is inside (a column-major
    mask, as pycocotools decodes one, read from its rows)."""
    flat = runs.row_major(mask).reshape(-1) != 0
    ends = np.append(np.flatnonzero(flat[1:] != flat[:-1]), flat.size - 1)
    return ends, flat[ends]
