"""fp32 (ONNX Runtime) against bf16 (OpenVINO) on the same ONNX files, in one process: speed of
the encoder and decoder, and how far bf16's features, masks and IoU scores drift from fp32's.

    .venv/bin/python benchmarks/cpu_precision.py [--export-dir exports/tiny] [--runs 7]

Runs alternate between the two runners (side by side on a noisy machine). Writes
``cpu_precision.json`` next to the export. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sam2_triton import contract as c
from sam2_triton.bench import machine
from sam2_triton.bench.run import interleaved
from sam2_triton.image.masks import postprocess_masks
from sam2_triton.image.transforms import (
    decode_image,
    prepare_mask_input,
    prepare_prompts,
    preprocess_image,
)
from sam2_triton.runtime.runners import create_session

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
POINTS = ([[300.0, 200.0]], [[100.0, 100.0]], [[500.0, 300.0]], [[300.0, 200.0], [320.0, 210.0]])
PRECISIONS = ("fp32", "bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    rgb = decode_image(IMAGE.read_bytes())
    image = {"image": preprocess_image(rgb)}
    encoders = {
        p: create_session(args.export_dir / c.ENCODER_FILE, precision=p) for p in PRECISIONS
    }
    decoders = {
        p: create_session(args.export_dir / c.DECODER_FILE, precision=p) for p in PRECISIONS
    }
    feature_names = [t.name for t in c.ENCODER_OUTPUTS]
    decoder_names = [t.name for t in c.DECODER_OUTPUTS]
    features = {
        p: dict(zip(feature_names, encoders[p].run(feature_names, image), strict=True))
        for p in PRECISIONS
    }

    def prompts(points: list[list[float]], precision: str) -> dict[str, np.ndarray]:
        prepared = prepare_prompts(
            np.array(points, np.float32), np.ones(len(points), np.int32), None, rgb.shape[:2]
        )
        mask_input, has_mask_input = prepare_mask_input(None)
        return {
            **features[precision],
            "point_coords": prepared.coords,
            "point_labels": prepared.labels,
            "mask_input": mask_input,
            "has_mask_input": has_mask_input,
        }

    encoder_ms = interleaved(
        {p: (lambda p=p: encoders[p].run(feature_names, image)) for p in PRECISIONS}, args.runs
    )
    decoder_ms = interleaved(
        {
            p: (lambda p=p: decoders[p].run(decoder_names, prompts(POINTS[0], p)))
            for p in PRECISIONS
        },
        args.runs * 3,
        settle_s=0.05,
    )
    drift = {
        name: {
            "max_abs_difference": float(
                np.abs(features["fp32"][name] - features["bf16"][name]).max()
            ),
            "max_abs_value": float(np.abs(features["fp32"][name]).max()),
        }
        for name in feature_names
    }
    agreement, iou_difference = [], []
    for points in POINTS:
        results = {}
        for p in PRECISIONS:
            low_res, iou = decoders[p].run(decoder_names, prompts(points, p))
            results[p] = postprocess_masks(low_res[0], iou[0], rgb.shape[:2], multimask_output=True)
        agreement += [
            float(np.mean(a == b))
            for a, b in zip(results["fp32"].masks, results["bf16"].masks, strict=True)
        ]
        iou_difference.append(
            float(np.abs(results["fp32"].iou_scores - results["bf16"].iou_scores).max())
        )
    report = {
        "machine": machine.summary(),
        "image": IMAGE.name,
        "encoder_ms": encoder_ms,
        "decoder_ms": decoder_ms,
        "encoder_speedup_bf16": encoder_ms["fp32"]["median_ms"] / encoder_ms["bf16"]["median_ms"],
        "feature_drift": drift,
        "mask_pixel_agreement": {"min": min(agreement), "max": max(agreement)},
        "iou_max_abs_difference": max(iou_difference),
    }
    out = args.export_dir / "cpu_precision.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"{report['machine']['cpu']}, {report['machine']['cores']} cores")
    for part, figures in (("encoder", encoder_ms), ("decoder", decoder_ms)):
        print(
            f"{part}: fp32 {figures['fp32']['median_ms']:.0f} ms, "
            f"bf16 {figures['bf16']['median_ms']:.0f} ms p50"
        )
    print(f"encoder speed-up (bf16): {report['encoder_speedup_bf16']:.2f}x")
    for name, d in drift.items():
        print(
            f"{name}: max |fp32 - bf16| {d['max_abs_difference']:.3g} "
            f"(values up to {d['max_abs_value']:.3g})"
        )
    print(
        f"masks equal to fp32's: {min(agreement):.4%} - {max(agreement):.4%} of pixels; "
        f"IoU max difference {max(iou_difference):.2g}"
    )
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
