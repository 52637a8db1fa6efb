"""Measure the ONNX export choices on one model size: export time, ORT CPU latency, parity.

Not a test: it prints the table behind the defaults in ``sam2_triton.export.onnx_export``
(see docs/export.md). Random weights, so it runs anywhere:

    PYTHONPATH=src python benchmarks/export_choices.py --model tiny --threads 2

Latencies are timed round-robin over all variants (one run of each, repeated), so a noisy
neighbour slows every variant alike instead of whichever happened to run at that moment.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sam2_triton.bench.machine import cpu_model
from sam2_triton.export import build_sam2_model, export_onnx, verify_onnx
from sam2_triton.export.onnx_export import (
    DECODER_OUTPUT_NAMES,
    ENCODER_OUTPUT_NAMES,
    EXPORTERS,
    ExportResult,
    create_session,
    default_verify_images,
    default_verify_prompts,
    optimize_onnx_file,
)


@dataclass
class Variant:
    """One exported file pair under one session optimisation level, and its measurements."""

    result: ExportResult
    level: str
    enc_err: float
    dec_err: float
    encoder_times: list[float] = field(default_factory=list)
    decoder_times: list[float] = field(default_factory=list)


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _export(model, out: Path, exporter: str, optimize: bool) -> ExportResult:
    """``export_onnx``, except that TorchScript + ORT optimizer (refused there) is built by hand
    so that the table shows why it is refused."""
    if not (optimize and exporter == "torchscript"):
        return export_onnx(model, out, exporter=exporter, optimize=optimize)
    res = export_onnx(model, out, exporter=exporter, optimize=False)
    t0 = time.perf_counter()
    optimize_onnx_file(res.encoder_path)
    optimize_onnx_file(res.decoder_path)
    return replace(res, optimized=True, optimize_seconds=time.perf_counter() - t0)


def _export_all(model, root: Path, levels: list[str]) -> list[Variant]:
    variants = []
    for exporter in EXPORTERS:
        for optimize in (False, True):
            out = root / f"{exporter}{'-opt' if optimize else ''}"
            res = _export(model, out, exporter, optimize)
            report = verify_onnx(model, res.encoder_path, res.decoder_path)
            enc_err, dec_err = max(report.encoder.values()), max(report.decoder.values())
            variants += [Variant(res, level, enc_err, dec_err) for level in levels]
    return variants


def _time_round_robin(variants: list[Variant], threads: int, enc_runs: int, dec_runs: int) -> None:
    """Encoder B=1 and decoder B=1/N=1 latency, one warm-up each, then interleaved runs."""
    image = default_verify_images(1)
    prompt = default_verify_prompts(1)[0]
    enc_calls, dec_calls = [], []
    for v in variants:
        enc = create_session(v.result.encoder_path, threads, v.level)
        feats = enc.run(ENCODER_OUTPUT_NAMES, {"image": image})  # also the warm-up
        feeds = {**dict(zip(ENCODER_OUTPUT_NAMES, feats, strict=True)), **prompt}
        dec = create_session(v.result.decoder_path, threads, v.level)
        dec.run(DECODER_OUTPUT_NAMES, feeds)
        enc_calls.append(lambda s=enc: s.run(ENCODER_OUTPUT_NAMES, {"image": image}))
        dec_calls.append(lambda s=dec, f=feeds: s.run(DECODER_OUTPUT_NAMES, f))
    for _ in range(enc_runs):
        for v, call in zip(variants, enc_calls, strict=True):
            v.encoder_times.append(_timed(call))
    for _ in range(dec_runs):
        for v, call in zip(variants, dec_calls, strict=True):
            v.decoder_times.append(_timed(call))


def _print_table(variants: list[Variant]) -> None:
    header = (
        "exporter",
        "opset",
        "ORT optimizer",
        "session level",
        "export s",
        "encoder ms",
        "decoder ms",
        "encoder max abs",
        "decoder max abs",
        "MB",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for v in variants:
        res = v.result
        size = (res.encoder_path.stat().st_size + res.decoder_path.stat().st_size) / 1e6
        row = (
            res.exporter, res.opset, "yes" if res.optimized else "no", v.level,
            f"{res.total_seconds:.1f}",
            f"{1000 * statistics.median(v.encoder_times):.0f}",
            f"{1000 * statistics.median(v.decoder_times):.1f}",
            f"{v.enc_err:.1e}", f"{v.dec_err:.1e}", f"{size:.0f}",
        )  # fmt: skip
        print("| " + " | ".join(str(c) for c in row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads")
    parser.add_argument("--encoder-runs", type=int, default=5)
    parser.add_argument("--decoder-runs", type=int, default=20)
    parser.add_argument("--levels", default="all,basic", help="ORT session optimisation levels")
    parser.add_argument("--out", type=Path, default=None, help="keep the exports here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    model = build_sam2_model(args.model, random_weights=True, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        variants = _export_all(model, args.out or Path(tmp), args.levels.split(","))
        _time_round_robin(variants, args.threads, args.encoder_runs, args.decoder_runs)
        print(
            f"# {args.model}, random weights (seed 0); {cpu_model()}, {os.cpu_count()} cores; "
            f"ORT {args.threads} intra-op threads; median of {args.encoder_runs} encoder runs "
            f"(B=1) and {args.decoder_runs} decoder runs (B=1, N=1), interleaved; max abs vs "
            "PyTorch over encoder B=2 and decoder B=2 with N=1 and N=5"
        )
        _print_table(variants)


if __name__ == "__main__":
    main()
