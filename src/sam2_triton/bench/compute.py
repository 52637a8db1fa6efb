"""How much of the machine the encoder and decoder use: their FLOPs against the GEMM rate here.

FLOPs come from PyTorch's own counter (``torch.utils.flop_counter``: matmuls, convolutions,
attention) on the same model the ONNX files were exported from. The counter has no formula for
the CPU's fused attention kernel (``_scaled_dot_product_flash_attention_for_cpu``), which
``scaled_dot_product_attention`` runs on a CPU when q, k and v share their width (SAM 2's
case), so ``counted_flops`` gives it the one the counter has for the GPU kernels: without it,
SAM 2's attention was left out (85 of the tiny encoder's 292 GFLOP). The ceiling is a large
float32 matrix product through numpy's BLAS on all cores, the best this CPU does on dense fp32
math. A bf16 encoder (OpenVINO, AMX) is held against its own ceiling: the same product in bf16
through OpenVINO, since AMX's bf16 rate is several times its fp32 rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def counted_flops(run: Callable[[], object]) -> dict[str, int]:
    """FLOPs of ``run()`` by ATen operator (``inference_mode``), the CPU attention included."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_attention(
        query: tuple, key: tuple, value: tuple, *args: object, **kwargs: object
    ) -> int:
        return sdpa_flop_count(query, key, value)

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention}
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with torch.inference_mode(), counter:
        run()
    return {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}


def encoder_flops(model_config: str, checkpoint: Path | None) -> int:
    """FLOPs of one 1024x1024 image through the image encoder (``forward_image``)."""
    import torch
    from sam2.build_sam import build_sam2

    sam = build_sam2(model_config, str(checkpoint) if checkpoint else None, device="cpu")
    image = torch.zeros(1, 3, 1024, 1024)
    return sum(counted_flops(lambda: sam.forward_image(image)).values())


def decoder_flops(model_config: str, checkpoint: Path | None) -> int:
    """FLOPs of one click (one point, SAM's padding point) through sam2's own prompt encoder
    and mask decoder (``MaskDecoder.forward``, as ``SAM2ImagePredictor._predict`` runs it): the
    reference's cost per prompt set, whatever our graph does to reach the same numbers."""
    import torch
    from sam2.build_sam import build_sam2

    sam = build_sam2(model_config, str(checkpoint) if checkpoint else None, device="cpu")
    prompt, decoder = sam.sam_prompt_encoder, sam.sam_mask_decoder
    points = (torch.tensor([[[500.0, 400.0]]]), torch.tensor([[1]], dtype=torch.int32))
    features = [torch.zeros(1, 32, 256, 256), torch.zeros(1, 64, 128, 128)]

    def click() -> object:
        sparse, dense = prompt(points=points, boxes=None, masks=None)
        return decoder(
            image_embeddings=torch.zeros(1, 256, 64, 64),
            image_pe=prompt.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=False,
            high_res_features=features,
        )

    return sum(counted_flops(click).values())


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


def gemm_bf16_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` n x n matrix product rate in bf16 (OpenVINO's CPU plugin)."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = ops.constant(rng.standard_normal((n, n), dtype=np.float32))
    x = ops.parameter([n, n], np.float32, name="a")
    model = ov.Model([ops.matmul(x, b, False, False)], [x])
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    request = compiled.create_infer_request()
    request.infer({"a": a})  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        request.infer({"a": a})
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
