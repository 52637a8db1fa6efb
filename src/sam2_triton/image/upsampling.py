"""Mask logits [256, 256] -> the binary mask at the image's size, computing only near its edge.

SAM's masks are the low-res logits upsampled bilinearly to the image (``align_corners=False``)
and thresholded at 0. A bilinear value is a convex combination of its 2 x 2 neighbours, so
wherever those are all positive, or all <= 0, the pixel's side is known without computing it.
On a 12 MP photo that is nearly every pixel: values are computed only around the mask's edge,
and what is gathered is where the mask changes down each column (COCO RLE's order), so an RLE
needs no full-size mask at all and a full mask is one ``np.repeat``.

The one formula, used for every pixel that is computed here (the masks of sam2_segment and
sam2_session in every size and format; segment-everything still upsamples each candidate with
two matrix products, for its stability score): horizontal pass
``u = w0 * L[:, j0] + w1 * L[:, j1]`` on the 256 rows, then vertical
``v = w0 * u[i0] + w1 * u[i1]``, float32, no fused multiply-add, so the sparse and dense paths
give the same bits (tests check it against each other and against
PyTorch's ``F.interpolate`` as SAM2Transforms uses it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

# Below this a positive neighbour could underflow to 0 in a product: such cells are computed.
_TINY = np.float32(1e-30)


@dataclass(frozen=True)
class AxisWeights:
    """Bilinear source indices and weights of one output axis (``F.interpolate`` bilinear,
    ``align_corners=False``): output k = w0[k] * in[i0[k]] + w1[k] * in[i1[k]]."""

    i0: np.ndarray
    i1: np.ndarray
    w0: np.ndarray
    w1: np.ndarray

    @classmethod
    def of(cls, out_size: int, in_size: int) -> AxisWeights:
        scale = np.float32(in_size) / np.float32(out_size)
        src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
        src = np.maximum(src, np.float32(0.0))
        i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
        i1 = np.minimum(i0 + 1, in_size - 1)
        w1 = (src - i0.astype(np.float32)).astype(np.float32)
        return cls(i0=i0, i1=i1, w0=np.float32(1.0) - w1, w1=w1)

    def take(self, positions: np.ndarray) -> AxisWeights:
        """The weights of a subset of output positions (a mask at another size)."""
        return AxisWeights(
            self.i0[positions], self.i1[positions], self.w0[positions], self.w1[positions]
        )


def _horizontal(logits: np.ndarray, cols: AxisWeights) -> np.ndarray:
    """[256, 256] -> [256, W]: every low-res row interpolated to the output columns."""
    low = np.asarray(logits, np.float32)
    return cols.w0 * low[:, cols.i0] + cols.w1 * low[:, cols.i1]


def dense_logits(logits: np.ndarray, rows: AxisWeights, cols: AxisWeights) -> np.ndarray:
    """[K, 256, 256] logits -> float32 [K, H, W], every pixel computed."""
    out = np.empty((len(logits), len(rows.i0), len(cols.i0)), np.float32)
    for k, mask in enumerate(logits):
        u = _horizontal(mask, cols)
        out[k] = rows.w0[:, None] * u[rows.i0] + rows.w1[:, None] * u[rows.i1]
    return out


def dense_masks(logits: np.ndarray, rows: AxisWeights, cols: AxisWeights) -> np.ndarray:
    """[K, 256, 256] logits -> uint8 [K, H, W], every pixel computed (the reference path)."""
    return (dense_logits(logits, rows, cols) > 0).astype(np.uint8)


def _dense_columns(logits: np.ndarray, rows: AxisWeights, cols: AxisWeights) -> np.ndarray:
    """One mask, every pixel computed, as uint8 [W, H] (so ``.T`` is the Fortran-ordered [H, W]
    pycocotools encodes), a block of columns at a time to stay in cache. The same products and
    sums as ``dense_logits``, so the same bits."""
    u_t = np.ascontiguousarray(_horizontal(logits, cols).T)  # [W, 256]
    height, width = len(rows.i0), len(cols.i0)
    out = np.empty((width, height), np.uint8)
    step = max(1, (1 << 16) // max(height, 1))
    for start in range(0, width, step):
        block = u_t[start : start + step]
        upper = block[:, rows.i0]
        upper *= rows.w0
        lower = block[:, rows.i1]
        lower *= rows.w1
        upper += lower
        np.greater(upper, 0, out=out[start : start + step], casting="unsafe")
    return out


def _u(low: np.ndarray, cols: AxisWeights, i: np.ndarray, x: np.ndarray) -> np.ndarray:
    """u[i, x] for index arrays, the same float operations as ``_horizontal``."""
    return cols.w0[x] * low[i, cols.i0[x]] + cols.w1[x] * low[i, cols.i1[x]]


def _ranges(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For consecutive ranges of ``sizes``: (which range, position within it) per element."""
    owner = np.repeat(np.arange(len(sizes)), sizes)
    return owner, np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)


@dataclass(frozen=True)
class _Cells:
    """The image's cells: output rows grouped by their upper low-res row (groups), columns by
    their left low-res column (blocks); which cells are all positive, which unsure."""

    groups: np.ndarray
    gstart: np.ndarray
    gsize: np.ndarray
    blocks: np.ndarray
    bstart: np.ndarray
    bsize: np.ndarray
    positive: np.ndarray  # [G, B]
    unsure: np.ndarray  # [G, B]

    @classmethod
    def of(cls, low: np.ndarray, rows: AxisWeights, cols: AxisWeights) -> _Cells:
        groups, gstart, gsize = np.unique(rows.i0, return_index=True, return_counts=True)
        blocks, bstart, bsize = np.unique(cols.i0, return_index=True, return_counts=True)
        r0, r1, c0, c1 = groups, rows.i1[gstart], blocks, cols.i1[bstart]
        corners = np.stack([low[np.ix_(a, b)] for a in (r0, r1) for b in (c0, c1)])
        positive = (corners > _TINY).all(axis=0)
        unsure = ~positive & ~(corners <= 0).all(axis=0)
        return cls(groups, gstart, gsize, blocks, bstart, bsize, positive, unsure)

    def unsure_pixels(self) -> float:
        """The share of the image's pixels in unsure cells."""
        pixels = np.outer(self.gsize, self.bsize)
        return float(pixels[self.unsure].sum() / pixels.sum())


def rle_counts(
    logits: np.ndarray, rows: AxisWeights, cols: AxisWeights, cells: _Cells | None = None
) -> np.ndarray:
    """One mask [256, 256] -> its COCO RLE counts at H x W (runs down each column, left to
    right, alternating 0s and 1s, starting with 0s), computing pixels only near its edge.

    The image divides into cells, one per pair of neighbouring low-res rows and columns (the
    pixels that interpolate between them). A cell whose four low-res corners share a sign is
    all that sign. In a cell whose corners disagree, each column's two horizontal values
    u[i0, x], u[i0 + 1, x] are computed; a column whose two agree is one run, and only the
    others are computed pixel by pixel. What is collected is where the mask changes value.
    ``cells``: this mask's, when the caller has them already.
    """
    height, width = len(rows.i0), len(cols.i0)
    low = np.asarray(logits, np.float32)
    cells = cells or _Cells.of(low, rows, cols)
    groups, gstart, gsize = cells.groups, cells.gstart, cells.gsize
    blocks, bstart, bsize = cells.blocks, cells.bstart, cells.bsize
    r0, r1 = groups, rows.i1[gstart]
    positive, unsure = cells.positive, cells.unsure
    changes: list[np.ndarray] = []  # flat column-major pixel indices where the value changes

    # sure cell over sure cell of another value: a change in every column of the block
    pg, pb = np.nonzero(~unsure[:-1] & ~unsure[1:] & (positive[:-1] != positive[1:]))
    owner, within = _ranges(bsize[pb])
    changes.append((bstart[pb][owner] + within) * height + gstart[pg + 1][owner])

    # unsure cells: per column, its first and last value (and the changes inside it)
    ug, ub = np.nonzero(unsure)
    index = np.full(positive.shape, -1, np.int64)
    index[ug, ub] = np.arange(len(ug))
    ny, nx = gsize[ug], bsize[ub]
    column_of = np.cumsum(nx) - nx  # where cell k's columns start in the per-column arrays
    cell, lx = _ranges(nx)
    x = bstart[ub][cell] + lx
    upper, lower = _u(low, cols, r0[ug][cell], x), _u(low, cols, r1[ug][cell], x)
    first = (upper > _TINY) & (lower > _TINY)
    last = first.copy()
    computed = np.flatnonzero(~first & ~((upper <= 0) & (lower <= 0)))
    seg, ly = _ranges(ny[cell[computed]])
    y = gstart[ug[cell[computed]]][seg] + ly
    column = computed[seg]
    value = (rows.w0[y] * upper[column] + rows.w1[y] * lower[column]) > 0
    if len(computed):
        top = np.flatnonzero(ly == 0)
        first[computed], last[computed] = value[top], value[np.r_[top[1:], len(value)] - 1]
    inside = np.flatnonzero(value[1:] != value[:-1]) + 1
    inside = inside[ly[inside] > 0]
    changes.append(x[column[inside]] * height + y[inside])

    # the top edge of each unsure cell, against the cell above (sure or not)
    g, b = ug[cell], ub[cell]
    has = g > 0
    above = index[np.maximum(g - 1, 0), b]
    above_value = np.where(
        above >= 0, last[column_of[np.maximum(above, 0)] + lx], positive[np.maximum(g - 1, 0), b]
    )
    hit = has & (above_value != first)
    changes.append(x[hit] * height + gstart[g[hit]])
    # the bottom edge of an unsure cell over a sure one
    below = np.minimum(g + 1, len(groups) - 1)
    hit = (g < len(groups) - 1) & (index[below, b] < 0) & (positive[below, b] != last)
    changes.append(x[hit] * height + gstart[below[hit]])

    # from the bottom of one column to the top of the next
    block_of_x = np.repeat(np.arange(len(blocks)), bsize)
    lx_of_x = np.arange(width) - bstart[block_of_x]

    def edge(row: int, values: np.ndarray) -> np.ndarray:
        out = positive[row, block_of_x].copy()
        k = index[row, block_of_x]
        out[k >= 0] = values[column_of[k[k >= 0]] + lx_of_x[k >= 0]]
        return out

    tops, bottoms = edge(0, first), edge(len(groups) - 1, last)
    changes.append((np.flatnonzero(bottoms[:-1] != tops[1:]) + 1) * height)

    points = np.sort(np.concatenate(changes))
    counts = np.diff(np.concatenate([[0], points, [height * width]]))
    return np.concatenate([[0], counts]) if tops[0] else counts


#: Above this share of pixels in unsure cells, computing every pixel is faster than finding the
#: edge (a mask as ragged as noise; random weights give such masks). Measured on 0.24 to 12 MP:
#: the edge path costs about 4x per unsure pixel what the dense path costs per pixel.
DENSE_ABOVE_UNSURE = 0.2


def _edge_cells(logits: np.ndarray, rows: AxisWeights, cols: AxisWeights) -> _Cells | None:
    """The mask's cells when finding its edge pays; None when every pixel should be computed."""
    cells = _Cells.of(np.asarray(logits, np.float32), rows, cols)
    return cells if cells.unsure_pixels() <= DENSE_ABOVE_UNSURE else None


def mask_rle(logits: np.ndarray, rows: AxisWeights, cols: AxisWeights) -> dict:
    """One mask's compressed COCO RLE (pycocotools' format) from its logits: from the edge
    alone, or (a ragged mask) every pixel computed. Both give the same mask."""
    size = [len(rows.i0), len(cols.i0)]
    cells = _edge_cells(logits, rows, cols)
    if cells is None:
        return mask_utils.encode(_dense_columns(logits, rows, cols).T)
    uncompressed = {"size": size, "counts": rle_counts(logits, rows, cols, cells).tolist()}
    return mask_utils.frPyObjects(uncompressed, *size)


def mask_array(logits: np.ndarray, rows: AxisWeights, cols: AxisWeights) -> np.ndarray:
    """One mask as uint8 [H, W] (what ``dense_masks`` computes), from its edge when that pays."""
    cells = _edge_cells(logits, rows, cols)
    if cells is None:
        return np.ascontiguousarray(_dense_columns(logits, rows, cols).T)
    counts = rle_counts(logits, rows, cols, cells)
    values = (np.arange(len(counts)) % 2).astype(np.uint8)
    flat = np.repeat(values, counts)
    return np.ascontiguousarray(flat.reshape(len(cols.i0), len(rows.i0)).T)
