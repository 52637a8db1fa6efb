"""The benchmark's own machinery (no timing asserted): the load driver sends exactly the
requests asked for, the report renders every ratio with its goal, the plot is written."""

from __future__ import annotations

import threading
import time

import numpy as np
from PIL import Image

from sam2_triton.bench import compute, flows, machine
from sam2_triton.bench.load import run_load
from sam2_triton.bench.report import format_table, plot
from sam2_triton.bench.run import GOALS, _delta, _met, goals, interleaved, measurement_errors


def test_load_driver_sends_each_request_once_over_its_workers():
    calls: list[int] = []
    lock = threading.Lock()
    workers_made = []

    def make_worker():
        index = len(workers_made)
        workers_made.append(index)

        def send():
            time.sleep(0.01)
            with lock:
                calls.append(index)

        return send

    result = run_load(make_worker, concurrency=3, requests=10, warmup_per_worker=1)
    assert len(workers_made) == 3
    assert len(calls) == 10 + 3  # 10 timed + one warm-up per worker
    assert len(result.latencies_ms) == 10 and result.requests == 10
    assert len(set(calls)) == 3  # all workers took part
    assert result.throughput > 0 and result.percentile(50) >= 10


def test_client_side_flow_sends_the_float_image_and_the_features():
    point = (np.zeros((1, 2), np.float32), np.zeros(1, np.int32))
    sent = flows.client_side_request_bytes(point)
    image, features = 3 * 1024 * 1024 * 4, 16_777_216
    assert image + features < sent < image + features + 300_000
    assert flows.ours_request_bytes(b"x" * 1000, point) < 1100


def test_batch_deltas_and_goals():
    assert _delta({1: 5, 2: 3, 4: 1}, {1: 2, 2: 3}) == {"1": 3, "4": 1}
    assert _met(0.95, ">=", 0.9) and not _met(0.05, "<=", 1 / 30)


def _report() -> dict:
    ratios = {name: 1.0 for name in GOALS}
    return {
        "machine": {"cpu": "Test CPU", "cores": 2, "python": "3.11"},
        "model": "tiny",
        "quick": True,
        "sweep": [
            {"concurrency": n, "images_per_s": 0.3 * n, "p50_ms": 3000.0, "p99_ms": 3500.0}
            for n in (1, 2)
        ],
        "batch_sizes_formed": {
            "1": {"sam2_image_encoder": {"1": 3}, "sam2_mask_decoder": {"1": 3}},
            "2": {"sam2_image_encoder": {"2": 2}, "sam2_mask_decoder": {"1": 4}},
        },
        "goals": {
            name: {"value": 1.0, "goal": f"{op} {goal:.4g}", "met": _met(1.0, op, goal)}
            for name, (op, goal) in GOALS.items()
        },
        "ratios": ratios,
        "request_bytes": {"ours": 1000, "client_side_flow": 30_000_000},
    }


def test_table_lists_every_ratio_against_its_goal():
    table = format_table(_report())
    for name in GOALS:
        assert name in table
    assert "2x2" in table  # the encoder formed batches of 2 at concurrency 2
    assert "NO" in table  # click_to_full_ratio 1.0 misses <= 1/30


def test_plot_is_a_png(tmp_path):
    path = plot(_report(), tmp_path / "bench.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 500


def test_interleaved_runs_each_flow_in_turn_in_a_rotating_order():
    calls: list[str] = []
    sends = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    summary = interleaved(sends, 3, settle_s=0)
    # one warm-up each, then rounds in which every flow follows every other one in turn
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")
    assert summary["a"]["runs"] == summary["b"]["runs"] == summary["c"]["runs"] == 3


def test_flop_count_includes_attention_on_a_cpu():
    # On a CPU scaled_dot_product_attention runs a fused kernel (when q, k and v share their
    # width, as in SAM 2) that PyTorch's FLOP counter has no formula for: SAM 2's attention
    # (29 % of the tiny encoder) went uncounted.
    import torch

    from sam2_triton.bench.compute import counted_flops

    q, k, v = torch.randn(1, 2, 8, 4), torch.randn(1, 2, 16, 4), torch.randn(1, 2, 16, 4)
    proj = torch.nn.Linear(4, 3)
    flops = counted_flops(lambda: proj(torch.nn.functional.scaled_dot_product_attention(q, k, v)))
    scores, mixing, linear = 2 * 2 * 8 * 16 * 4, 2 * 2 * 8 * 16 * 4, 2 * 2 * 8 * 4 * 3
    assert sum(flops.values()) == scores + mixing + linear


def test_the_gemm_ceiling_is_the_best_library_at_the_given_threads():
    seen: list[tuple[str, int, int]] = []

    def fake(name: str, rate: float):
        def measure(n: int, threads: int, repeats: int) -> float:
            seen.append((name, n, threads))
            return rate

        return measure

    def absent(n: int, threads: int, repeats: int) -> float:
        raise ImportError("No module named 'torch'")

    measures = {"onnxruntime": fake("onnxruntime", 2.6e11), "pytorch": absent}
    measures["numpy"] = fake("numpy", 2.5e11)
    gemms = compute.best_gemm(3, n=64, measures=measures)
    assert gemms["best_library"] == "onnxruntime" and gemms["best_flops_per_s"] == 2.6e11
    assert gemms["flops_per_s"] == {"onnxruntime": 2.6e11, "numpy": 2.5e11}
    assert list(gemms["unavailable"]) == ["pytorch"]
    assert seen == [("onnxruntime", 64, 3), ("numpy", 64, 3)]


def test_every_installed_library_measures_a_small_gemm():
    gemms = compute.best_gemm(1, n=64, repeats=1)
    assert gemms["flops_per_s"] and all(rate > 0 for rate in gemms["flops_per_s"].values())
    assert gemms["best_flops_per_s"] == max(gemms["flops_per_s"].values())
    assert "onnxruntime" in gemms["flops_per_s"]  # a dependency: its MatMul model must build


def test_theoretical_peak_from_flags_and_clock():
    avx512 = machine.theoretical_fp32_peak(2, 2600.0, {"fma", "avx2", "avx512f"})
    assert avx512["fp32_lanes_per_fma"] == 16
    assert avx512["flops_per_s"] == 2 * 2600e6 * 16 * 2 * 2  # 332.8 GFLOP/s
    assert machine.theoretical_fp32_peak(4, 3000.0, {"fma", "avx2"})["flops_per_s"] == (
        4 * 3000e6 * 8 * 2 * 2
    )
    assert machine.fp32_lanes({"avx2"}) == 4  # AVX2 without FMA: no 8-lane FMA
    assert machine.theoretical_fp32_peak(2, None, {"avx512f"})["flops_per_s"] is None


def test_a_utilisation_above_one_is_a_measurement_error_not_a_met_goal():
    ratios = {"encoder_flops_utilization": 1.058, "decoder_flops_utilization": 0.6}
    report = _report() | {
        "ratios": ratios,
        "decoder_flops_utilization_by_prompts": {"1 prompt": 0.6, "8 prompts": 1.2},
    }
    errors = measurement_errors(report)
    assert errors == {
        "encoder_flops_utilization": 1.058,
        "decoder_flops_utilization_by_prompts[8 prompts]": 1.2,
    }
    report["goals"] = goals(ratios, errors)
    assert not report["goals"]["encoder_flops_utilization"]["met"]  # 1.058 >= 0.5, yet not met
    assert report["goals"]["encoder_flops_utilization"]["measurement_error"]
    assert report["goals"]["decoder_flops_utilization"]["met"]
    report["measurement_errors"] = errors
    table = format_table(report)
    line = next(row for row in table.splitlines() if row.startswith("encoder_flops_utilization"))
    assert "MEASUREMENT ERROR: above the best measured GEMM" in line
    assert "decoder_flops_utilization_by_prompts[8 prompts] = 1.200, not a result" in table


def test_table_shows_each_gemm_the_best_and_the_peak():
    report = _report() | {
        "gemm_fp32": compute.best_gemm(
            2, n=8, measures={"onnxruntime": lambda *_: 2.0e11, "numpy": lambda *_: 1.5e11}
        ),
        "fp32_theoretical_peak": machine.theoretical_fp32_peak(2, 2600.0, {"avx512f"})
        | {"clock_source": "test"},
        "gemm_fp32_vs_peak": 2.0e11 / 332.8e9,
        "encoder_flops_per_s": 1.4e11,
        "encoder_flops_vs_fp32_peak": 1.4e11 / 332.8e9,
    }
    table = format_table(report)
    assert "onnxruntime 200.0, numpy 150.0 GFLOP/s; best onnxruntime 200.0" in table
    assert "fp32 theoretical peak 332.8 GFLOP/s = 2 cores x 2600 MHz" in table
    assert "encoder 140.0 GFLOP/s" in table and "0.42 of the theoretical peak" in table


def test_a_gemm_above_the_estimated_peak_says_the_estimate_bounds_nothing():
    """Zen 5 at a nominal 2596 MHz: ONNX Runtime's GEMM ran at 483 GFLOP/s, 1.45 of the peak
    estimated from that clock (its cores boost far above it)."""
    peak = machine.theoretical_fp32_peak(2, 2596.0, {"avx512f"}) | {"clock_source": "test"}
    report = _report() | {"fp32_theoretical_peak": peak}
    below = format_table(report | {"gemm_fp32_vs_peak": 0.9})
    above = format_table(report | {"gemm_fp32_vs_peak": 1.45})
    assert "best GEMM 0.90 of it" in below and "bounds nothing" not in below
    assert "best GEMM 1.45 of it: the estimate is too low for this machine" in above
