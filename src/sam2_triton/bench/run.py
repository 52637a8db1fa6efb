"""Run every measurement of ``sam2-triton bench`` against one embedded server, in one process.

Order: load sweep (concurrency 1, 2, 4, 8) with Triton's batch statistics per level; cached
clicks; the client-side flow at concurrency 4; then the in-process baselines (ONNX Runtime on
the same files with the same thread settings, Meta's PyTorch predictor) and the compute ceiling,
while the server idles. Ratios are computed from figures of this one run.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests

from sam2_triton import contract as c
from sam2_triton.bench import compute, flows
from sam2_triton.bench.load import LoadResult, run_load
from sam2_triton.bench.machine import cpu_model, usable_cores
from sam2_triton.bench.server import bench_server
from sam2_triton.bench.timing import timed
from sam2_triton.client import SegmentClient
from sam2_triton.repository import ServingOptions

IMAGE = Path(__file__).resolve().parents[1] / "assets" / "coffee.jpg"
POINT = (np.array([[300.0, 200.0]], np.float32), np.array([1], np.int32))
GOALS = {
    "triton_overhead_ratio": (">=", 0.90),
    "click_to_full_ratio": ("<=", 1 / 30),
    "vs_client_side_flow": (">=", 1.5),
    "request_bytes_ratio": (">=", 10.0),
    "vs_pytorch_eager": (">=", 1.5),
    "encoder_flops_utilization": (">=", 0.5),
}


@dataclass
class BenchConfig:
    export_dir: Path
    out_dir: Path
    runtime_dir: Path
    quick: bool = False
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    options: ServingOptions = field(default_factory=ServingOptions)

    @property
    def sequential_requests(self) -> int:
        return 3 if self.quick else 8

    def requests_at(self, concurrency: int) -> int:
        return max(concurrency, 4) if self.quick else max(2 * concurrency, 8)


def _batch_counts(http_url: str, model: str) -> dict[int, int]:
    """Executions per batch size Triton formed for ``model`` so far (statistics API)."""
    stats = requests.get(
        f"http://{http_url}/v2/models/{model}/stats", timeout=10, headers={"Connection": "close"}
    ).json()["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats["batch_stats"]}


def _delta(after: dict[int, int], before: dict[int, int]) -> dict[str, int]:
    return {str(k): v - before.get(k, 0) for k, v in sorted(after.items()) if v > before.get(k, 0)}


def run_bench(config: BenchConfig, log: Any = print) -> dict[str, Any]:
    image = IMAGE.read_bytes()
    export = json.loads((config.export_dir / c.EXPORT_METADATA_FILE).read_text())
    report: dict[str, Any] = {
        "machine": {
            "cpu": cpu_model(),
            "cores": usable_cores(),
            "python": platform.python_version(),
        },
        "model": export.get("variant"),
        "image": f"{IMAGE.name} ({len(image)} bytes)",
        "quick": config.quick,
        "serving_options": config.options.__dict__,
    }
    server = bench_server(config.export_dir, config.out_dir, config.options, config.runtime_dir)
    with server.start():
        grpc_url = server.grpc_url
        sweep: dict[int, LoadResult] = {}
        batches: dict[str, dict[str, dict[str, int]]] = {}
        for level in config.concurrency:
            before = {
                m: _batch_counts(server.http_url, m) for m in (c.IMAGE_ENCODER, c.MASK_DECODER)
            }
            sweep[level] = run_load(
                lambda: flows.ours(grpc_url, "grpc", image, POINT),
                level,
                config.requests_at(level) if level > 1 else config.sequential_requests,
                warmup_per_worker=1 if level == 1 else 0,
            )
            batches[str(level)] = {
                m: _delta(_batch_counts(server.http_url, m), before[m]) for m in before
            }
            log(f"sam2_segment at concurrency {level}: {sweep[level].throughput:.3f} images/s")
        report["sweep"] = [sweep[level].summary() for level in config.concurrency]
        report["batch_sizes_formed"] = batches

        with SegmentClient(grpc_url, "grpc") as client:
            image_id = client.embed(image)
            clicks = timed(lambda: client.click(image_id, *POINT), 20 if config.quick else 50, 3)
        report["click_ms"] = clicks
        log(f"cached click p50: {clicks['median_ms']:.1f} ms")

        level = 4 if 4 in sweep else max(sweep)
        client_side = run_load(
            lambda: flows.client_side(grpc_url, image, POINT),
            level,
            config.requests_at(level),
            warmup_per_worker=0,
        )
        report["client_side_flow"] = client_side.summary()
        log(f"client-side flow at concurrency {level}: {client_side.throughput:.3f} images/s")

    threads = config.options.intra_op_threads
    in_process = run_load(
        lambda: flows.in_process(config.export_dir, image, POINT, threads),
        1,
        config.sequential_requests,
        warmup_per_worker=1,
    )
    report["in_process_onnxruntime"] = in_process.summary()
    log(f"in-process ONNX Runtime: {in_process.throughput:.3f} images/s")
    encoder_ms = _encoder_ms(config, threads)
    report["encoder_in_process_ms"] = encoder_ms

    checkpoint = _checkpoint(export)
    variant_config = _variant_config(export)
    if checkpoint is not None:
        torch_run = run_load(
            lambda: flows.pytorch(variant_config, checkpoint, image, POINT),
            1,
            config.sequential_requests,
            warmup_per_worker=1,
        )
        report["pytorch_eager"] = torch_run.summary()
        log(f"PyTorch SAM2ImagePredictor: {torch_run.throughput:.3f} images/s")
    flops = compute.encoder_flops(variant_config, checkpoint)
    gemm = compute.gemm_flops_per_s()
    report["encoder_flops"] = flops
    report["gemm_fp32_flops_per_s"] = gemm
    report["encoder_flops_per_s"] = flops / (encoder_ms["median_ms"] / 1e3)

    sequential = sweep[min(sweep)]
    ratios = {
        "triton_overhead_ratio": sequential.throughput / in_process.throughput,
        "click_to_full_ratio": clicks["median_ms"] / sequential.percentile(50),
        "vs_client_side_flow": sweep[level].throughput / client_side.throughput,
        "request_bytes_ratio": flows.client_side_request_bytes(POINT)
        / flows.ours_request_bytes(image, POINT),
        "encoder_flops_utilization": report["encoder_flops_per_s"] / gemm,
    }
    if "pytorch_eager" in report:
        ratios["vs_pytorch_eager"] = sequential.throughput / report["pytorch_eager"]["images_per_s"]
    report["request_bytes"] = {
        "ours": flows.ours_request_bytes(image, POINT),
        "client_side_flow": flows.client_side_request_bytes(POINT),
    }
    report["ratios"] = ratios
    report["goals"] = {
        name: {
            "value": ratios[name],
            "goal": f"{op} {goal:.4g}",
            "met": _met(ratios[name], op, goal),
        }
        for name, (op, goal) in GOALS.items()
        if name in ratios
    }
    return report


def _met(value: float, op: str, goal: float) -> bool:
    return value >= goal if op == ">=" else value <= goal


def _encoder_ms(config: BenchConfig, threads: int) -> dict[str, float]:
    from sam2_triton import processing
    from sam2_triton.onnx_session import create_session

    session = create_session(config.export_dir / c.ENCODER_FILE, threads)
    tensor = processing.preprocess_image(processing.decode_image(IMAGE.read_bytes()))
    return timed(lambda: session.run(None, {"image": tensor}), config.sequential_requests)


def _checkpoint(export: dict[str, Any]) -> Path | None:
    for key in ("saved_checkpoint", "checkpoint"):
        value = export.get(key)
        if value and Path(value).exists():
            return Path(value)
    return None


def _variant_config(export: dict[str, Any]) -> str:
    from sam2_triton.variants import get_variant

    return get_variant(export["variant"]).config
