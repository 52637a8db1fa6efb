"""Measure the ONNX export choices on one model size: export time, ORT CPU latency, parity.

Not a test: it prints the table behind the defaults in ``sam2_triton.export.onnx_export``
(see docs/export.md). Random weights, so it runs anywhere:

    PYTHONPATH=src python benchmarks/export_choices.py --model tiny --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from sam2_triton.export import build_sam2_model, export_onnx, verify_onnx
from sam2_triton.export.onnx_export import (
    DECODER_OUTPUT_NAMES,
    ENCODER_OUTPUT_NAMES,
    EXPORTERS,
    create_session,
    default_verify_images,
    default_verify_prompts,
)


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def _median_seconds(fn, runs: int) -> float:
    fn()  # warm-up: first run includes allocator and kernel selection
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _latencies(
    result, threads: int, level: str, enc_runs: int, dec_runs: int
) -> tuple[float, float]:
    """Median encoder (B=1) and decoder (B=1, one click) latency in ms."""
    image = default_verify_images(1)
    enc = create_session(result.encoder_path, threads, level)
    enc_ms = 1000 * _median_seconds(
        lambda: enc.run(ENCODER_OUTPUT_NAMES, {"image": image}), enc_runs
    )
    feats = dict(
        zip(ENCODER_OUTPUT_NAMES, enc.run(ENCODER_OUTPUT_NAMES, {"image": image}), strict=True)
    )
    feeds = {**feats, **default_verify_prompts(1)[0]}
    dec = create_session(result.decoder_path, threads, level)
    dec_ms = 1000 * _median_seconds(lambda: dec.run(DECODER_OUTPUT_NAMES, feeds), dec_runs)
    return enc_ms, dec_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads")
    parser.add_argument("--encoder-runs", type=int, default=3)
    parser.add_argument("--decoder-runs", type=int, default=20)
    parser.add_argument("--levels", default="all,basic", help="ORT session optimisation levels")
    parser.add_argument("--out", type=Path, default=None, help="keep the exports here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    model = build_sam2_model(args.model, random_weights=True, seed=0)
    levels = args.levels.split(",")
    print(
        f"# {args.model}, random weights seed 0; {_cpu_model()}, {os.cpu_count()} cores, "
        f"ORT intra_op threads {args.threads}; encoder median of {args.encoder_runs} (B=1), "
        f"decoder median of {args.decoder_runs} (B=1, N=1)"
    )
    header = (
        "exporter",
        "opset",
        "ort-opt",
        "session",
        "export s",
        "enc ms",
        "dec ms",
        "enc maxabs",
        "dec maxabs",
        "MB",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for exporter in EXPORTERS:
            for optimize in (False, True):
                out = root / f"{exporter}{'-opt' if optimize else ''}"
                res = export_onnx(model, out, exporter=exporter, optimize=optimize)
                report = verify_onnx(model, res.encoder_path, res.decoder_path)
                enc_err = max(report.encoder.values())
                dec_err = max(report.decoder.values())
                size = (res.encoder_path.stat().st_size + res.decoder_path.stat().st_size) / 1e6
                for level in levels:
                    enc_ms, dec_ms = _latencies(
                        res, args.threads, level, args.encoder_runs, args.decoder_runs
                    )
                    row = (
                        exporter,
                        res.opset,
                        "yes" if optimize else "no",
                        level,
                        f"{res.total_seconds:.1f}",
                        f"{enc_ms:.0f}",
                        f"{dec_ms:.1f}",
                        f"{enc_err:.1e}",
                        f"{dec_err:.1e}",
                        f"{size:.0f}",
                    )
                    print("| " + " | ".join(str(c) for c in row) + " |", flush=True)


if __name__ == "__main__":
    main()
