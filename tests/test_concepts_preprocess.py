"""SAM 3's preprocessing in numpy (``transforms.preprocess_image`` with ``uint8_resize``)
against ``Sam3Processor``'s own transform (torchvision's v2: uint8 antialiased bilinear resize
to 1008, to float, normalise): the same float32 bits, enlarging, shrinking, a long strip, and
the identity at 1008."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_triton.errors import InvalidInputError
from sam2_triton.families import SAM3
from sam2_triton.image.transforms import preprocess_image
from sam2_triton.image.uint8_resize import resize

IMAGE_SIZE = SAM3.image_size


@pytest.mark.parametrize("size", [(300, 420), (1200, 800), (97, 1500), (40, 4000), (1008, 1008)])
def test_the_image_sam3_sees_is_the_one_sam3_processor_makes(size):
    from PIL import Image
    from sam3.model.sam3_image_processor import Sam3Processor
    from torchvision.transforms import v2

    rng = np.random.default_rng(sum(size))
    rgb = rng.integers(0, 256, (*size, 3), np.uint8)
    rgb[size[0] // 3 : size[0] // 2] = 255  # flat and saturated runs beside noise
    transform = Sam3Processor(None, device="cpu").transform
    theirs = transform(v2.functional.to_image(Image.fromarray(rgb))).unsqueeze(0).numpy()
    ours = preprocess_image(rgb, SAM3)
    assert ours.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)
    if size == (IMAGE_SIZE, IMAGE_SIZE):
        np.testing.assert_array_equal(resize(rgb, IMAGE_SIZE), rgb)


@pytest.mark.parametrize(
    "image",
    [np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8),
     np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8)],
    ids=["float", "empty", "grey", "rgba"],
)  # fmt: skip
def test_an_image_the_model_cannot_take_is_refused_by_name(image):
    with pytest.raises(InvalidInputError, match="image"):
        preprocess_image(image, SAM3)
