"""Masks from low-res logits computed only near their edge equal every pixel computed, and
PyTorch's F.interpolate (what SAM2Transforms runs) up to float rounding at the threshold."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sam2_triton.image.upsampling import AxisWeights, dense_masks, mask_array, mask_rle, rle_counts

SIZES = [(400, 600), (3000, 4000), (100, 150), (256, 256), (1, 1), (7, 300), (1000, 37)]


def _smooth(seed: int) -> np.ndarray:
    """Logits like a real mask's: a few large smooth blobs (16x16 noise upsampled)."""
    coarse = np.random.default_rng(seed).standard_normal((16, 16)).astype(np.float32)
    return np.kron(coarse, np.ones((16, 16), np.float32)) * 3.0


LOGITS = {
    "smooth": _smooth(1),
    "noise": np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32),
    "zeros": np.zeros((256, 256), np.float32),  # 0 is not > 0: all background
    "ones": np.ones((256, 256), np.float32),
    "tiny": np.full((256, 256), 1e-38, np.float32),  # positive, but near underflow
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", list(LOGITS))
def test_edge_only_masks_equal_the_dense_computation(size, kind):
    rows, cols = AxisWeights.of(size[0], 256), AxisWeights.of(size[1], 256)
    logits = LOGITS[kind]
    dense = dense_masks(logits[None], rows, cols)[0]
    assert dense.shape == size
    # the edge path itself, whatever mask_array/mask_rle would choose for this mask
    counts = rle_counts(logits, rows, cols)
    assert counts.sum() == size[0] * size[1] and (counts[1:] > 0).all()
    edge = np.repeat((np.arange(len(counts)) % 2).astype(np.uint8), counts)
    np.testing.assert_array_equal(edge.reshape(size[1], size[0]).T, dense)
    np.testing.assert_array_equal(mask_array(logits, rows, cols), dense)
    rle = mask_rle(logits, rows, cols)
    assert list(rle["size"]) == list(size)
    np.testing.assert_array_equal(mask_utils.decode(rle), dense)


@pytest.mark.parametrize("size", [(400, 600), (1500, 1000), (100, 150)])
def test_dense_masks_match_torch_interpolate(size):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rows, cols = AxisWeights.of(size[0], 256), AxisWeights.of(size[1], 256)
    for kind in ("smooth", "noise"):
        logits = LOGITS[kind]
        want = F.interpolate(
            torch.from_numpy(logits)[None, None], size=size, mode="bilinear", align_corners=False
        )[0, 0].numpy()
        got = dense_masks(logits[None], rows, cols)[0]
        differ = got != (want > 0)
        # only where the value is within float rounding of the threshold
        assert np.all(np.abs(want[differ]) < 1e-5), kind
