"""Run every measurement of ``sam2-triton bench`` against one embedded server, in one process.

Order: load sweep (concurrency 1, 2, 4, 8) with Triton's batch statistics per level; cached
clicks; ours and the client-side flow at concurrency 4, in alternating blocks; then ours, the
in-process baselines (ONNX Runtime on the same files with the same thread settings, Meta's
PyTorch predictor) one request each in turn, so every ratio compares figures taken side by
side on this noisy machine; last the encoder's and decoder's FLOP rates against the best GEMM
measured here (ONNX Runtime's, PyTorch's, numpy's) and the ISA's theoretical peak.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests

from sam2_triton import contract as c
from sam2_triton.bench import compute, flows, machine
from sam2_triton.bench.load import LoadResult, run_load
from sam2_triton.bench.server import bench_server
from sam2_triton.bench.timing import timed
from sam2_triton.clients.image import SegmentClient
from sam2_triton.image.transforms import decode_image, prepare_prompts, preprocess_image
from sam2_triton.repository.model_plan import Runtime
from sam2_triton.repository.options import ServingOptions
from sam2_triton.repository.plan import repository_plan

IMAGE = Path(__file__).resolve().parents[1] / "assets" / "coffee.jpg"
POINT = (np.array([[300.0, 200.0]], np.float32), np.array([1], np.int32))
GOALS = {
    "triton_overhead_ratio": (">=", 0.90),
    "click_to_full_ratio": ("<=", 1 / 30),
    "vs_client_side_flow": (">=", 1.5),
    "request_bytes_ratio": (">=", 10.0),
    "vs_pytorch_eager": (">=", 1.5),
    "encoder_flops_utilization": (">=", 0.5),
    "decoder_flops_utilization": (">=", 0.5),
}
# measured FLOP rate / the best measured GEMM's: above 1.0 is a measurement error
UTILIZATIONS = ("encoder_flops_utilization", "decoder_flops_utilization")


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
        "machine": machine.summary(),
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
        # the models that run sam2_segment's encoder: the ensemble's, or sam2_segment itself
        segment = repository_plan("embedded", config.options)[0]
        executors = (
            (c.IMAGE_ENCODER, c.MASK_DECODER)
            if segment.runtime is Runtime.ENSEMBLE
            else (c.SEGMENT,)
        )
        for level in config.concurrency:
            before = {m: _batch_counts(server.http_url, m) for m in executors}
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

        # Alternatives are measured in alternation with ours, so drift in this machine's speed
        # (other tenants, thermal) hits both sides of each ratio alike.
        level = 4 if 4 in sweep else max(sweep)
        pair: dict[str, list[LoadResult]] = {"ours": [], "client_side": []}
        factories = {
            "ours": lambda: flows.ours(grpc_url, "grpc", image, POINT),
            "client_side": lambda: flows.client_side(grpc_url, image, POINT),
        }
        order = (
            ["client_side", "ours"]
            if config.quick
            else ["client_side", "ours", "ours", "client_side"]
        )
        for name in order:
            pair[name].append(run_load(factories[name], level, config.requests_at(level)))
        concurrent = {name: _combined(results) for name, results in pair.items()}
        report["client_side_flow"] = concurrent["client_side"]
        report["ours_at_client_side_concurrency"] = concurrent["ours"]
        log(
            f"at concurrency {level}: ours {concurrent['ours']['images_per_s']:.3f}, client-side "
            f"flow {concurrent['client_side']['images_per_s']:.3f} images/s"
        )

        threads = config.options.intra_op_threads
        checkpoint = _checkpoint(export)
        variant_config = _variant_config(export)
        sends = {
            "ours": flows.ours(grpc_url, "grpc", image, POINT),
            "in_process_onnxruntime": flows.in_process(
                config.export_dir, image, POINT, threads, config.options.cpu_precision
            ),
        }
        if checkpoint is not None:
            sends["pytorch_eager"] = flows.pytorch(variant_config, checkpoint, image, POINT)
        sequential = interleaved(sends, config.sequential_requests)
        report["sequential_interleaved_ms"] = sequential
        log(
            "one request at a time (p50 ms): "
            + ", ".join(f"{name} {row['median_ms']:.0f}" for name, row in sequential.items())
        )

    encoder_ms = _encoder_ms(config, threads)
    report["encoder_in_process_ms"] = encoder_ms
    decoder_ms = _decoder_ms(config, threads)
    report["decoder_in_process_ms"] = decoder_ms
    flops = compute.encoder_flops(variant_config, checkpoint)
    decoder_flops = compute.decoder_flops(variant_config, checkpoint)
    # the GEMMs at the thread count the encoder and decoder ran at (0: one per physical core,
    # as ONNX Runtime's default is)
    gemm_threads = threads or machine.physical_cores()
    gemms = compute.best_gemm(gemm_threads)
    gemm = gemms["best_flops_per_s"]
    peak = machine.fp32_peak(gemm_threads)
    report["decoder_flops_per_prompt"] = decoder_flops
    report["decoder_flops_per_s"] = {
        name: decoder_flops / (row["median_ms"] / 1e3) for name, row in decoder_ms.items()
    }
    report["encoder_flops"] = flops
    report["gemm_fp32"] = gemms
    report["gemm_fp32_flops_per_s"] = gemm
    report["fp32_theoretical_peak"] = peak
    report["encoder_flops_per_s"] = flops / (encoder_ms["median_ms"] / 1e3)
    report["cpu_precision"] = config.options.cpu_precision
    if peak["flops_per_s"]:
        report["gemm_fp32_vs_peak"] = gemm / peak["flops_per_s"]
        if config.options.cpu_precision == "fp32":
            report["encoder_flops_vs_fp32_peak"] = (
                report["encoder_flops_per_s"] / peak["flops_per_s"]
            )
    ceiling = gemm
    if config.options.cpu_precision == "bf16":  # held against the bf16 ceiling, not fp32's
        ceiling = report["gemm_bf16_flops_per_s"] = compute.gemm_bf16_flops_per_s()
        report["encoder_flops_vs_fp32_gemm"] = report["encoder_flops_per_s"] / gemm
    report["decoder_flops_utilization_by_prompts"] = {
        name: rate / ceiling for name, rate in report["decoder_flops_per_s"].items()
    }

    ours_ms = sequential["ours"]["median_ms"]
    ratios = {
        # images/s ratios of one-at-a-time requests = inverse ratios of their median latencies
        "triton_overhead_ratio": sequential["in_process_onnxruntime"]["median_ms"] / ours_ms,
        "click_to_full_ratio": clicks["median_ms"] / ours_ms,
        "vs_client_side_flow": concurrent["ours"]["images_per_s"]
        / concurrent["client_side"]["images_per_s"],
        "request_bytes_ratio": flows.client_side_request_bytes(POINT)
        / flows.ours_request_bytes(image, POINT),
        "encoder_flops_utilization": report["encoder_flops_per_s"] / ceiling,
        # a click: one prompt set per decoder run (segment-everything's chunks: the by_prompts
        # figures beside it)
        "decoder_flops_utilization": report["decoder_flops_per_s"]["1 prompt"] / ceiling,
    }
    if "pytorch_eager" in sequential:
        ratios["vs_pytorch_eager"] = sequential["pytorch_eager"]["median_ms"] / ours_ms
    report["request_bytes"] = {
        "ours": flows.ours_request_bytes(image, POINT),
        "client_side_flow": flows.client_side_request_bytes(POINT),
    }
    report["ratios"] = ratios
    report["measurement_errors"] = measurement_errors(report)
    report["goals"] = goals(ratios, report["measurement_errors"])
    return report


def measurement_errors(report: dict[str, Any]) -> dict[str, float]:
    """Every utilisation above 1.0, by name: a rate above the best GEMM measured on the same
    machine is an error in the measurement (the FLOP count, a time, or a ceiling measured
    while something else ran), not a result."""
    values = {name: report.get("ratios", {}).get(name) for name in UTILIZATIONS}
    for name, value in report.get("decoder_flops_utilization_by_prompts", {}).items():
        values[f"decoder_flops_utilization_by_prompts[{name}]"] = value
    return {name: value for name, value in values.items() if value is not None and value > 1.0}


def goals(ratios: dict[str, float], errors: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each ratio of ``GOALS`` against its goal; one in ``errors`` is not met, whatever its
    value, and says so."""
    return {
        name: {
            "value": ratios[name],
            "goal": f"{op} {goal:.4g}",
            "met": name not in errors and _met(ratios[name], op, goal),
            **({"measurement_error": True} if name in errors else {}),
        }
        for name, (op, goal) in GOALS.items()
        if name in ratios
    }


def interleaved(
    sends: dict[str, Callable[[], object]], rounds: int, settle_s: float = 0.3
) -> dict[str, dict]:
    """Each send once per round, in turn (after one untimed warm-up each): latency figures.

    The order rotates every round and each send starts ``settle_s`` after the previous one
    ended: a runtime's threads keep spinning for a while after it returns (PyTorch's OpenMP
    pool does), which slowed whatever ran right after it by up to 170 ms per request when the
    order was fixed.
    """
    samples: dict[str, list[float]] = {name: [] for name in sends}
    for send in sends.values():
        send()
    names = list(sends)
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(settle_s)
            start = time.perf_counter()
            sends[name]()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: _latency_summary(values) for name, values in samples.items()}


def _latency_summary(values: list[float]) -> dict[str, float]:
    ms = np.array(values)
    return {
        "median_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "runs": len(values),
    }


def _combined(results: list[LoadResult]) -> dict[str, float]:
    """Several load runs of one flow as one: total images over total time."""
    latencies = [value for result in results for value in result.latencies_ms]
    requests = sum(result.requests for result in results)
    seconds = sum(result.seconds for result in results)
    return {
        "concurrency": results[0].concurrency,
        "requests": requests,
        "seconds": seconds,
        "images_per_s": requests / seconds,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
    }


def _met(value: float, op: str, goal: float) -> bool:
    return value >= goal if op == ">=" else value <= goal


def _encoder_ms(config: BenchConfig, threads: int) -> dict[str, float]:
    from sam2_triton.runtime.runners import create_session

    precision = config.options.cpu_precision
    session = create_session(config.export_dir / c.ENCODER_FILE, threads, precision=precision)
    tensor = preprocess_image(decode_image(IMAGE.read_bytes()))
    return timed(lambda: session.run(None, {"image": tensor}), config.sequential_requests)


def _decoder_ms(config: BenchConfig, threads: int) -> dict[str, dict[str, float]]:
    """The decoder ONNX in this process, as the session model runs it: one click on the bench
    image's real features, and a segment-everything chunk of single-point prompt sets (median
    ms per prompt set)."""
    from sam2_triton.image.decoder_feeds import decoder_feeds
    from sam2_triton.runtime.runners import create_session

    precision = config.options.cpu_precision
    encoder = create_session(config.export_dir / c.ENCODER_FILE, threads, precision=precision)
    decoder = create_session(config.export_dir / c.DECODER_FILE, threads, precision=precision)
    rgb = decode_image(IMAGE.read_bytes())
    names = [t.name for t in c.ENCODER_OUTPUTS]
    outputs = encoder.run(names, {"image": preprocess_image(rgb)})
    features = dict(zip(names, outputs, strict=True))
    chunk = config.options.automatic_decoder_chunk
    rows: dict[str, dict[str, float]] = {}
    for count in (1, chunk):
        prompts = prepare_prompts(*POINT, None, rgb.shape[:2])
        coords = np.repeat(prompts.coords, count, axis=0)
        feeds = decoder_feeds(features, coords, np.repeat(prompts.labels, count, axis=0))
        runs = 10 if config.quick else 30
        row = timed(lambda feeds=feeds: decoder.run(None, feeds), max(3, runs // count), 2)
        rows[f"{count} prompt{'s' if count > 1 else ''}"] = {
            key: value / count if key.endswith("_ms") else value for key, value in row.items()
        }
    return rows


def _checkpoint(export: dict[str, Any]) -> Path | None:
    for key in ("saved_checkpoint", "checkpoint"):
        value = export.get(key)
        if value and Path(value).exists():
            return Path(value)
    return None


def _variant_config(export: dict[str, Any]) -> str:
    from sam2_triton.weights.variants import get_variant

    return get_variant(export["variant"]).config
