"""Latency and memory of one sam2_automatic request (segment everything) on the embedded target,
against Meta's SAM2AutomaticMaskGenerator in this process on the same weights and image.

    .venv/bin/python benchmarks/automatic_latency.py [--export-dir exports/tiny] [--runs 2]
        [--points-per-side 32] [--cpu-precision fp32|bf16] [--decoder-chunk 8] [--no-reference]

The reference (PyTorch eager, fp32, every core) runs between our requests while the server is
idle, so the ratio compares figures taken side by side; it needs the export's checkpoint.

Memory is that of the tritonserver process and all its backend stubs, sampled every 0.5 s: idle
(models loaded) and the peak during the request, as PSS (proportional set size: a page shared by
n processes, like Triton's shared-memory tensors, counts 1/n in each, so the sum is the machine's
real use) and as RSS (shared pages counted once per process that maps them: an overestimate). Writes
``automatic_latency.json`` next to the export. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from sam2_triton import contract as c
from sam2_triton.bench import machine
from sam2_triton.bench.machine import tree_memory_bytes
from sam2_triton.bench.server import bench_server
from sam2_triton.repository.options import ServingOptions

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--cpu-precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip SAM2AutomaticMaskGenerator"
    )
    parser.add_argument(
        "--sample-every",
        type=float,
        default=0.5,
        help="seconds between memory samples (each reads every stub's smaps: not free)",
    )
    parser.add_argument(
        "--decoder-chunk",
        type=int,
        default=ServingOptions.automatic_decoder_chunk,
        help="grid points per decoder call",
    )
    args = parser.parse_args()
    reference = None if args.no_reference else _reference(args.export_dir, args.points_per_side)
    reference_s: list[float] = []

    options = ServingOptions(
        cpu_precision=args.cpu_precision, automatic_decoder_chunk=args.decoder_chunk
    )
    server = bench_server(args.export_dir, ROOT / "build" / "bench", options)
    image = np.frombuffer(IMAGE.read_bytes(), np.uint8)
    inputs = [grpcclient.InferInput("image", list(image.shape), "UINT8")]
    inputs[0].set_data_from_numpy(image)
    side = np.array([args.points_per_side], np.int32)
    inputs.append(grpcclient.InferInput("points_per_side", [1], "INT32"))
    inputs[1].set_data_from_numpy(side)
    latencies, counts = [], []
    with server.start():
        pid = server.process.pid
        time.sleep(2)
        idle = tree_memory_bytes(pid)
        peak = list(idle)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss, pss = tree_memory_bytes(pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
                time.sleep(args.sample_every)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for _ in range(args.runs):
            start = time.perf_counter()
            result = client.infer(c.AUTOMATIC, inputs)
            latencies.append(time.perf_counter() - start)
            counts.append(len(json.loads(result.as_numpy("annotations")[0])["annotations"]))
            if reference is not None:
                start = time.perf_counter()
                reference()
                reference_s.append(time.perf_counter() - start)
        client.close()
        done.set()
        sampler.join()
    report = {
        "machine": machine.summary(),
        "model": json.loads((args.export_dir / "export.json").read_text()).get("variant"),
        "image": IMAGE.name,
        "points_per_side": args.points_per_side,
        "cpu_precision": args.cpu_precision,
        "decoder_chunk": args.decoder_chunk,
        "latency_s": latencies,
        "median_latency_s": float(np.median(latencies)),
        "masks_returned": counts,
        "server_pss_idle_mb": idle[1] / 2**20,
        "server_pss_peak_mb": peak[1] / 2**20,
        "server_rss_idle_mb": idle[0] / 2**20,
        "server_rss_peak_mb": peak[0] / 2**20,
    }
    if reference_s:
        report["sam2_automatic_mask_generator_s"] = reference_s
        report["vs_sam2_automatic_mask_generator"] = float(
            np.median(reference_s) / np.median(latencies)
        )
    out = args.export_dir / "automatic_latency.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"figures written to {out}")


def _reference(export_dir: Path, points_per_side: int):
    """SAM2AutomaticMaskGenerator.generate on the image, with the export's own weights."""
    import torch
    from PIL import Image
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.build_sam import build_sam2

    from sam2_triton.weights.variants import get_variant

    meta = json.loads((export_dir / "export.json").read_text())
    checkpoint = meta.get("saved_checkpoint") or meta.get("checkpoint")
    if not checkpoint or not Path(checkpoint).exists():
        raise SystemExit("the export names no checkpoint file: run with --no-reference")
    sam = build_sam2(get_variant(meta["variant"]).config, checkpoint, device="cpu")
    generator = SAM2AutomaticMaskGenerator(sam, points_per_side=points_per_side)
    rgb = np.asarray(Image.open(IMAGE).convert("RGB"))

    def run() -> None:
        with torch.inference_mode():
            generator.generate(rgb)

    return run


if __name__ == "__main__":
    main()
