"""A synthetic video of moving shapes, and Meta's SAM2VideoPredictor on the test weights, for
the video tests (VideoSession, sam2_video, SAM2RemoteVideoPredictor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HEIGHT, WIDTH = 120, 160
AGREEMENT = 0.999  # of mask pixels, per frame and object, against the reference


def synthetic_video(folder: Path, frames: int = 8) -> list[np.ndarray]:
    """A textured background, a red square moving right and a blue disc moving down, as JPEG
    frames 0.jpg ... (the layout SAM2VideoPredictor reads); returns the decoded frames."""
    rng = np.random.default_rng(0)
    background = rng.integers(60, 120, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    decoded = []
    for t in range(frames):
        frame = background.copy()
        x = 20 + (6 * t) % 100
        frame[40:70, x : x + 30] = (220, 30, 30)
        frame[(yy - (20 + (5 * t) % 80)) ** 2 + (xx - 110) ** 2 < 15**2] = (30, 40, 230)
        path = folder / f"{t}.jpg"
        Image.fromarray(frame).save(path, quality=95)
        decoded.append(np.asarray(Image.open(path).convert("RGB")))
    return decoded


def reference_video_predictor(tiny_export):
    """SAM2VideoPredictor on the test weights, as it runs on a GPU:

    - it stores memories in bfloat16 and, on a CPU without autocast, its memory attention
      would then mix dtypes: it is handed float32 copies of the same (rounded) values, so its
      numbers are unchanged;
    - it fills small holes in its masks (fill_hole_area 8) with its CUDA extension, which a CPU
      lacks (it then skips the step): the extension's connected components are computed here
      by scikit-image instead."""
    import sam2.utils.misc
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    sam2.utils.misc.get_connected_components = connected_components

    predictor = build_sam2_video_predictor(
        tiny_export.config, ckpt_path=str(tiny_export.checkpoint), device="cpu"
    )
    attention = predictor.memory_attention.forward

    def float32_memories(curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        return attention(
            curr, memory.to(torch.float32), curr_pos, memory_pos.to(torch.float32),
            num_obj_ptr_tokens,
        )  # fmt: skip

    predictor.memory_attention.forward = float32_memories
    return predictor


def agreement(ours, theirs) -> list[float]:
    """Per object, the fraction of pixels where both masks (logits > 0) agree."""
    ours = ours.numpy() if hasattr(ours, "numpy") else np.asarray(ours)
    theirs = theirs.numpy() if hasattr(theirs, "numpy") else np.asarray(theirs)
    assert ours.shape == theirs.shape
    return [float(((o > 0) == (t > 0)).mean()) for o, t in zip(ours, theirs, strict=True)]


def connected_components(mask):
    """sam2's CUDA kernel ``_C.get_connected_componnets`` on a CPU: for a binary [N, 1, H, W]
    mask, each foreground pixel's 8-connected component label and that component's area (0 on
    the background)."""
    import torch
    from skimage.measure import label

    planes = mask.cpu().numpy().astype(bool)
    labels = np.zeros(planes.shape, np.int32)
    areas = np.zeros(planes.shape, np.int32)
    for index in np.ndindex(planes.shape[:2]):
        labelled = label(planes[index], connectivity=2)
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        labels[index], areas[index] = labelled, sizes[labelled]
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


class RecordingModels:
    """The in-process graphs batching as the GPU target's BLS models do (up to
    ``batch_objects`` objects of any video in one memory-attention call, frames encoded
    together), recording each call's size: ``attended`` objects, ``encoded`` frames."""

    def __init__(self, models, batch_objects: int) -> None:
        self._models, self.batch_objects = models, batch_objects
        self.attended: list[int] = []
        self.encoded: list[int] = []

    def __getattr__(self, name):
        return getattr(self._models, name)

    def attend(self, feeds):
        self.attended.append(len(feeds["vision_feat"]))
        return self._models.attend(feeds)

    def encode_many(self, images):
        self.encoded.append(len(images))
        return [self._models.encode(image) for image in images]
