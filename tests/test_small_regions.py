"""min_mask_region_area's cleaning against sam2's own functions on the same masks: the same
islands and holes removed, the same masks kept by the NMS, the same boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from sam2_triton.errors import RequestCancelled
from sam2_triton.image.small_regions import postprocess_small_regions, remove_small_regions


def _ragged_masks(count: int, seed: int = 0) -> list[np.ndarray]:
    """Blobs with speckle: islands and holes of many sizes."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(count):
        coarse = rng.standard_normal((12, 16)) > 0.3
        mask = np.kron(coarse, np.ones((8, 8), bool))
        mask ^= rng.random(mask.shape) < 0.02  # single-pixel islands and holes
        masks.append(mask)
    return masks


@pytest.mark.parametrize("mode", ["holes", "islands"])
@pytest.mark.parametrize("area", [1, 30, 200, 10_000])
def test_remove_small_regions_is_sam2s(mode, area):
    from sam2.utils.amg import remove_small_regions as reference

    for mask in _ragged_masks(4):
        got, changed = remove_small_regions(mask, area, mode)
        want, want_changed = reference(mask, area, mode)
        assert changed == want_changed
        np.testing.assert_array_equal(got, want)


def test_all_islands_small_keeps_the_largest():
    mask = np.zeros((20, 20), bool)
    mask[1:3, 1:3] = True  # 4 pixels
    mask[10:13, 10:13] = True  # 9 pixels
    cleaned, changed = remove_small_regions(mask, 50, "islands")
    assert changed and cleaned.sum() == 9 and cleaned[11, 11]


def test_postprocess_small_regions_is_the_generators():
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.utils.amg import MaskData, mask_to_rle_pytorch

    masks = _ragged_masks(12, seed=3)
    masks += [masks[0] | masks[1]]  # a near-duplicate for the NMS
    tensor = torch.as_tensor(np.stack(masks))
    data = MaskData(rles=mask_to_rle_pytorch(tensor), boxes=torch.zeros((len(masks), 4)))
    want = SAM2AutomaticMaskGenerator.postprocess_small_regions(data, 60, 0.7)
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    keep, new_rles, boxes = postprocess_small_regions(rles, 60, 0.7)
    assert len(keep) == len(want["rles"]) < len(masks)
    for index, rle in zip(keep, want["rles"], strict=True):
        np.testing.assert_array_equal(
            mask_utils.decode(new_rles[index]),
            mask_utils.decode(mask_utils.frPyObjects(rle, *rle["size"])),
        )
    changed = [i for i in keep if new_rles[i] is not rles[i]]
    np.testing.assert_array_equal(
        boxes[changed], want["boxes"][[list(keep).index(i) for i in changed]]
    )


def test_a_cancelled_request_stops_between_masks():
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in _ragged_masks(3)]
    calls = []
    with pytest.raises(RequestCancelled):
        postprocess_small_regions(rles, 60, 0.7, lambda: calls.append(1) or len(calls) > 2)
    assert len(calls) == 3  # two masks cleaned, stopped before the third
