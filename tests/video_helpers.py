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
    """SAM2VideoPredictor on the test weights. It stores memories in bfloat16 and, on a CPU
    without autocast, its memory attention would then mix dtypes: it is handed float32 copies
    of the same (rounded) values, so its numbers are unchanged."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

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
