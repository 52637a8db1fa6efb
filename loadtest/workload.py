"""What the simulated users send: real photos at three sizes, made unique per use, and clicks.

The photos come from scikit-image's bundled data (no download), resized to a small, medium and
large JPEG once at start. Every request that stands for a *new* image gets a different file:
a random JPEG comment is inserted after the SOI marker, so the pixels are the same but the bytes
(and so sam2_session's content id, the sha256 of the file) differ. Without that, every
"new image" after the first would be a cache hit and no encoder would run.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

# name -> (skimage.data photo, size it is resized to): about 0.1, 1.1 and 4.4 megapixels.
SIZES = {
    "small": ("chelsea", (451, 300)),
    "medium": ("coffee", (1280, 853)),
    "large": ("rocket", (2560, 1707)),
}
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Photo:
    name: str
    jpeg: bytes
    width: int
    height: int

    def unique(self) -> bytes:
        """The same JPEG with a random comment segment: a new file, identical pixels."""
        nonce = os.urandom(16).hex().encode()
        segment = b"\xff\xfe" + (len(nonce) + 2).to_bytes(2, "big") + nonce
        return self.jpeg[:2] + segment + self.jpeg[2:]


@cache
def photos() -> tuple[Photo, ...]:
    """The three test photos, encoded once per process."""
    import skimage.data

    made = []
    for name, (source, (width, height)) in SIZES.items():
        pixels = getattr(skimage.data, source)()
        image = Image.fromarray(pixels).convert("RGB").resize((width, height), Image.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        made.append(Photo(name, buffer.getvalue(), width, height))
    return tuple(made)


def random_point(photo: Photo, rng: np.random.Generator) -> list[float]:
    """A click somewhere in the middle 80 % of the image, in pixels."""
    x = rng.uniform(0.1, 0.9) * photo.width
    y = rng.uniform(0.1, 0.9) * photo.height
    return [round(x, 1), round(y, 1)]


@dataclass
class ClickState:
    """An annotator's clicks on one image: each click adds a point (the first is foreground,
    later ones are foreground or background) and refines the previous best mask."""

    coords: list[list[float]]
    labels: list[int]
    mask_input: np.ndarray | None = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.coords, np.float32), np.array(self.labels, np.int32)


def next_click(state: ClickState | None, photo: Photo, rng: np.random.Generator) -> ClickState:
    if state is None:
        return ClickState([random_point(photo, rng)], [1])
    label = int(rng.random() < 0.7)  # mostly "add this", sometimes "not this"
    return ClickState(
        [*state.coords, random_point(photo, rng)], [*state.labels, label], state.mask_input
    )
