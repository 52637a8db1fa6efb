"""How much of the machine the encoder and decoder use: their FLOPs against the GEMM rate here.

FLOPs come from PyTorch's own counter (``torch.utils.flop_counter``: matmuls, convolutions,
attention) on the same model the ONNX files were exported from. The counter has no formula for
the CPU's fused attention kernel (``_scaled_dot_product_flash_attention_for_cpu``), which
``scaled_dot_product_attention`` runs on a CPU when q, k and v share their width (SAM 2's
case), so ``counted_flops`` gives it the one the counter has for the GPU kernels: without it,
SAM 2's attention was left out (85 of the tiny encoder's 292 GFLOP). The ceiling is the best
large float32 matrix product measured here at the bench's thread count, through each library
that is installed (ONNX Runtime, PyTorch, numpy's BLAS; ``best_gemm``): one library's GEMM is
not the machine's limit (numpy's read 253 GFLOP/s on a Zen 5 where the encoder ran at 267). A
bf16 encoder (OpenVINO, AMX) is held against its own ceiling: the same product in bf16 through
OpenVINO, since AMX's bf16 rate is several times its fp32 rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


GemmMeasure = Callable[[int, int, int], float]
"""``(n, threads, repeats)`` -> float32 FLOP/s of an n x n product; ImportError if absent."""


def _best_rate(product: Callable[[], object], n: int, repeats: int) -> float:
    """2 n^3 FLOPs over the fastest of ``repeats`` timed calls, after one untimed warm-up."""
    product()  # warm-up (thread pools, caches, packed weights)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def _matrices(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((n, n), dtype=np.float32),
        rng.standard_normal((n, n), dtype=np.float32),
    )


def gemm_numpy(n: int = 2048, threads: int | None = None, repeats: int = 5) -> float:
    """numpy's ``matmul`` (its BLAS) at ``threads`` (``threadpoolctl`` sets the BLAS's threads:
    a GEMM on more threads than the encoder ran on would lift the ceiling)."""
    from threadpoolctl import threadpool_limits

    a, b = _matrices(n)
    with threadpool_limits(limits=threads, user_api="blas"):
        return _best_rate(lambda: a @ b, n, repeats)


def gemm_pytorch(n: int = 2048, threads: int | None = None, repeats: int = 5) -> float:
    """PyTorch's ``matmul`` at ``torch.set_num_threads(threads)`` (restored afterwards)."""
    import torch

    a, b = (torch.from_numpy(m) for m in _matrices(n))
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return _best_rate(lambda: torch.matmul(a, b), n, repeats)
    finally:
        torch.set_num_threads(previous)


def gemm_onnxruntime(n: int = 2048, threads: int | None = None, repeats: int = 5) -> float:
    """ONNX Runtime's CPU MatMul: a one-node model built in memory, B a constant as the
    encoder's weights are, ``intra_op_num_threads=threads`` (0 or None: ORT's default),
    ``inter_op_num_threads=1``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    a, b = _matrices(n)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return _best_rate(lambda: session.run(None, {"a": a}), n, repeats)


FP32_GEMMS: dict[str, GemmMeasure] = {
    "onnxruntime": gemm_onnxruntime,
    "pytorch": gemm_pytorch,
    "numpy": gemm_numpy,
}


def best_gemm(
    threads: int,
    n: int = 2048,
    repeats: int = 5,
    measures: dict[str, GemmMeasure] | None = None,
) -> dict[str, Any]:
    """The n x n product rate of each library in ``measures`` (default ``FP32_GEMMS``) at
    ``threads`` threads, and the best of them: the ceiling utilisations divide by. A library
    that does not import is listed under ``unavailable``; any other failure is raised."""
    rates: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    for name, measure in (FP32_GEMMS if measures is None else measures).items():
        try:
            rates[name] = measure(n, threads, repeats)
        except ImportError as error:
            unavailable[name] = str(error)
    if not rates:
        raise RuntimeError(f"no GEMM could be measured: {unavailable}")
    library = max(rates, key=rates.__getitem__)
    return {
        "n": n,
        "threads": threads,
        "flops_per_s": rates,
        "best_library": library,
        "best_flops_per_s": rates[library],
        "unavailable": unavailable,
    }


def gemm_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 n x n product rate through numpy at its BLAS's own thread
    count (the scripts under benchmarks/; ``sam2-triton bench`` uses ``best_gemm``)."""
    return gemm_numpy(n, None, repeats)


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
    return _best_rate(lambda: request.infer({"a": a}), n, repeats)
