"""B boxes on one image: one request with B prompt sets against B requests of one set each.

    .venv/bin/python benchmarks/batched_prompts.py [--export-dir exports/tiny] [--rounds 5]
        [--protocol grpc]

The image (``coffee.jpg``) is embedded first (``sam2_session``), so every request is decoder
work plus masks (RLE, single mask per set) and transfer. For each B the two ways alternate,
``rounds`` times; ``one_request_speedup`` = median time of the B single requests / median time
of the one batched request. Writes ``batched_prompts.json`` next to the export. Not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sam2_triton.bench import machine
from sam2_triton.bench.server import bench_server
from sam2_triton.clients.image import SegmentClient

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
SETS = (1, 4, 16, 64)


def boxes(count: int, width: int = 600, height: int = 400) -> np.ndarray:
    """``count`` boxes spread over the image (fixed seed)."""
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 1, (count, 2, 2)) * [width, height]
    return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--protocol", choices=("http", "grpc"), default="grpc")
    args = parser.parse_args()
    options = {"multimask_output": False, "output_format": "rle"}
    results = {}
    with bench_server(args.export_dir, ROOT / "build" / "bench") as server:
        url = server.grpc_url if args.protocol == "grpc" else server.http_url
        with SegmentClient(url, args.protocol) as client:
            image_id = client.embed(IMAGE.read_bytes())
            client.click(image_id, box=boxes(1)[0], **options)  # warm-up
            for count in SETS:
                prompt_sets = boxes(count)
                batched, single = [], []
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    client.click(image_id, box=prompt_sets, batched=True, **options)
                    batched.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    for box in prompt_sets:
                        client.click(image_id, box=box, **options)
                    single.append(time.perf_counter() - start)
                one, many = float(np.median(batched)), float(np.median(single))
                results[count] = {
                    "one_request_ms": one * 1e3,
                    "single_requests_ms": many * 1e3,
                    "one_request_ms_per_set": one * 1e3 / count,
                    "one_request_speedup": many / one,
                }
    report = {
        "machine": machine.summary(),
        "model": json.loads((args.export_dir / "export.json").read_text()).get("variant"),
        "protocol": args.protocol,
        "rounds": args.rounds,
        "sets": results,
    }
    out = args.export_dir / "batched_prompts.json"
    out.write_text(json.dumps(report, indent=2))
    host = report["machine"]
    print(f"{host['cpu']}, {host['cores']} cores; {report['model']}, {args.protocol}")
    print(
        f"{'B':>4s}{'one request ms':>16s}{'per set ms':>12s}{'B requests ms':>15s}{'speedup':>9s}"
    )
    for count, r in results.items():
        print(
            f"{count:4d}{r['one_request_ms']:16.1f}{r['one_request_ms_per_set']:12.1f}"
            f"{r['single_requests_ms']:15.1f}{r['one_request_speedup']:9.2f}"
        )
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
