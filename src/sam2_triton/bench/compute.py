"""How much of the machine the encoder uses: its FLOPs against the fp32 GEMM rate measured here.

FLOPs come from PyTorch's own counter (``torch.utils.flop_counter``: matmuls, convolutions,
attention) on the same model the ONNX files were exported from; the ceiling is a large float32
matrix product through numpy's BLAS on all cores, the best this CPU does on dense fp32 math.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def encoder_flops(model_config: str, checkpoint: Path | None) -> int:
    """FLOPs of one 1024x1024 image through the image encoder (``forward_image``)."""
    import torch
    from sam2.build_sam import build_sam2
    from torch.utils.flop_counter import FlopCounterMode

    sam = build_sam2(model_config, str(checkpoint) if checkpoint else None, device="cpu")
    image = torch.zeros(1, 3, 1024, 1024)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        sam.forward_image(image)
    return int(counter.get_total_flops())


def gemm_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 n x n matrix product rate (2 n^3 FLOPs each)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up (BLAS threads, caches)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
