"""Latency of the spine on this machine: ONNX encoder/decoder in-process, sam2_segment end to end
through the embedded tritonserver (HTTP and gRPC), and Meta's SAM2ImagePredictor on the same
weights and image, in one run, so the ratios are comparable on a noisy machine.

    .venv/bin/python benchmarks/spine_latency.py [--export-dir exports/tiny] [--runs 5]

Prints medians (and min/max) and writes the figures as JSON next to the export (latency.json).
Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sam2_triton.bench import machine
from sam2_triton.bench.machine import usable_cores
from sam2_triton.bench.server import bench_server
from sam2_triton.bench.timing import timed
from sam2_triton.clients.image import SegmentClient
from sam2_triton.image.masks import postprocess_masks
from sam2_triton.image.transforms import decode_image, prepare_prompts, preprocess_image
from sam2_triton.repository.build import DECODER_FILE, ENCODER_FILE
from sam2_triton.runtime.runners import create_session

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
POINT = (np.array([[300.0, 200.0]], np.float32), np.array([1], np.int32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--decoder-runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: auto)")
    args = parser.parse_args()

    export = json.loads((args.export_dir / "export.json").read_text())
    rgb = decode_image(IMAGE.read_bytes())
    image = preprocess_image(rgb)
    prompts = prepare_prompts(*POINT, None, rgb.shape[:2])
    results: dict[str, object] = {
        "machine": machine.summary(),
        "export": {k: export.get(k) for k in ("variant", "exporter", "opset", "export_seconds")},
        "image": f"{IMAGE.name} {rgb.shape[1]}x{rgb.shape[0]}",
    }

    encoder = create_session(args.export_dir / ENCODER_FILE, args.threads)
    decoder = create_session(args.export_dir / DECODER_FILE, args.threads)
    feats = dict(
        zip(
            ["image_embed", "high_res_feats_0", "high_res_feats_1"],
            encoder.run(None, {"image": image}),
            strict=True,
        )
    )
    decoder_inputs = {
        **feats,
        "point_coords": prompts.coords,
        "point_labels": prompts.labels,
        "mask_input": np.zeros((1, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros((1, 1), np.float32),
    }
    results["preprocess_ms"] = timed(lambda: preprocess_image(rgb), args.runs)
    results["onnx_encoder_ms"] = timed(lambda: encoder.run(None, {"image": image}), args.runs)
    results["onnx_decoder_ms"] = timed(
        lambda: decoder.run(None, decoder_inputs), args.decoder_runs, warmup=3
    )
    low, iou = decoder.run(None, decoder_inputs)
    results["postprocess_ms"] = timed(
        lambda: postprocess_masks(low[0], iou[0], rgb.shape[:2], True),
        args.decoder_runs,
    )

    server = bench_server(args.export_dir, ROOT / "build" / "bench")
    with server:
        data = IMAGE.read_bytes()
        for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
            with SegmentClient(url, protocol) as client:
                results[f"segment_{protocol}_ms"] = timed(
                    lambda c=client: c.segment(data, *POINT), args.runs
                )

    checkpoint = export.get("saved_checkpoint") or export.get("checkpoint")
    if checkpoint and Path(checkpoint).exists():
        results["pytorch_predictor_ms"] = _pytorch_reference(Path(checkpoint), export, rgb, args)
        segment = results["segment_http_ms"]["median_ms"]  # type: ignore[index]
        reference = results["pytorch_predictor_ms"]["median_ms"]  # type: ignore[index]
        results["served_vs_pytorch_speedup"] = reference / segment

    out = args.export_dir / "latency.json"
    out.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"figures written to {out}")


def print_table(results: dict) -> None:
    host = results["machine"]
    print(f"{host['cpu']}, {host['cores']} cores; {results['image']}")
    print(f"{'step':34s}{'median ms':>12s}{'min':>10s}{'max':>10s}")
    for key, value in results.items():
        if isinstance(value, dict) and "median_ms" in value:
            print(
                f"{key:34s}{value['median_ms']:12.1f}{value['min_ms']:10.1f}{value['max_ms']:10.1f}"
            )
    if "served_vs_pytorch_speedup" in results:
        print(
            "served sam2_segment vs SAM2ImagePredictor: "
            f"{results['served_vs_pytorch_speedup']:.2f}x faster"
        )


def _pytorch_reference(checkpoint: Path, export: dict, rgb: np.ndarray, args) -> dict:
    """set_image + predict with Meta's predictor, same weights, same image and point."""
    import torch
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from sam2_triton.weights.variants import get_variant

    torch.set_num_threads(usable_cores())
    model = build_sam2(get_variant(export["variant"]).config, str(checkpoint), device="cpu")
    predictor = SAM2ImagePredictor(model)

    def run() -> None:
        with torch.inference_mode():
            predictor.set_image(rgb)
            predictor.predict(point_coords=POINT[0], point_labels=POINT[1])

    return timed(run, args.runs)


if __name__ == "__main__":
    main()
