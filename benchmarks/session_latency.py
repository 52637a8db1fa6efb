"""Click latency with a cached embedding vs the full pipeline, through the embedded tritonserver.

    .venv/bin/python benchmarks/session_latency.py [--export-dir exports/tiny] [--runs 7]
        [--clicks 40]

In one run, on one server, with the same image and point:
- full: ``sam2_segment`` (decode, encoder, decoder, postprocess) per request;
- click: ``sam2_session`` with only ``image_id`` and the point (one decoder run), raw masks and
  COCO RLE;
then ``click_to_full_ratio`` = click p50 / full p50 per protocol (goal <= 1/30). Writes
``session_latency.json`` next to the export. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sam2_triton.bench import machine
from sam2_triton.bench.server import bench_server
from sam2_triton.bench.timing import timed
from sam2_triton.clients.image import SegmentClient
from sam2_triton.server.embedded import TritonServer

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
POINT = (np.array([[300.0, 200.0]], np.float32), np.array([1], np.int32))


def measure(server: TritonServer, runs: int, clicks: int) -> dict[str, dict]:
    data = IMAGE.read_bytes()
    results: dict[str, dict] = {}
    for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
        with SegmentClient(url, protocol) as client:
            full = timed(lambda c=client: c.segment(data, *POINT), runs)
            image_id = client.embed(data)
            click = timed(lambda c=client, i=image_id: c.click(i, *POINT), clicks, warmup=3)
            click_rle = timed(
                lambda c=client, i=image_id: c.click(i, *POINT, output_format="rle"),
                clicks,
                warmup=3,
            )
        results[protocol] = {
            "full_sam2_segment": full,
            "click_raw": click,
            "click_rle": click_rle,
            "click_to_full_ratio": click["median_ms"] / full["median_ms"],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--runs", type=int, default=7, help="full-pipeline requests")
    parser.add_argument("--clicks", type=int, default=40, help="clicks per format")
    args = parser.parse_args()

    export = json.loads((args.export_dir / "export.json").read_text())
    server = bench_server(args.export_dir, ROOT / "build" / "bench")
    with server:
        results = measure(server, args.runs, args.clicks)
    report = {
        "machine": machine.summary(),
        "model": export.get("variant"),
        "image": IMAGE.name,
        **results,
    }
    out = args.export_dir / "session_latency.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"{report['machine']['cpu']}, {report['machine']['cores']} cores; {report['model']}")
    print(f"{'protocol':10s}{'request':22s}{'p50 ms':>10s}{'p90 ms':>10s}{'p99 ms':>10s}")
    for protocol in ("http", "grpc"):
        for name in ("full_sam2_segment", "click_raw", "click_rle"):
            row = results[protocol][name]
            print(
                f"{protocol:10s}{name:22s}{row['median_ms']:10.1f}{row['p90_ms']:10.1f}"
                f"{row['p99_ms']:10.1f}"
            )
        ratio = results[protocol]["click_to_full_ratio"]
        print(f"{protocol:10s}click p50 / full p50 = {ratio:.4f} (1/{1 / ratio:.1f}; goal <= 1/30)")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
