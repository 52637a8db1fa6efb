"""Clicks per second on one cached image against concurrent clients, with sam2_session running the
decoder in its own process (embedded default) and through BLS to sam2_mask_decoder.

    .venv/bin/python benchmarks/click_concurrency.py [--export-dir exports/tiny] [--clicks 12]

Each configuration gets its own server; every client sends ``--clicks`` clicks over gRPC. Not a
test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from sam2_triton.bench.machine import cpu_model, usable_cores
from sam2_triton.bench.server import bench_server
from sam2_triton.clients.image import SegmentClient
from sam2_triton.repository.options import ServingOptions

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
POINT = (np.array([[300.0, 200.0]], np.float32), np.array([1], np.int32))


def measure(url: str, image_id: str, concurrency: int, clicks: int) -> tuple[float, float]:
    """(clicks/s, p50 seconds) of ``concurrency`` gRPC clients clicking ``clicks`` times each."""
    latencies: list[float] = []

    def user(_: int) -> None:
        with SegmentClient(url, "grpc") as client:
            for _ in range(clicks):
                start = time.perf_counter()
                client.click(image_id, *POINT)
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(user, range(concurrency)))
    return len(latencies) / (time.perf_counter() - start), statistics.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--clicks", type=int, default=12, help="clicks per client")
    args = parser.parse_args()
    data = IMAGE.read_bytes()
    print(f"{cpu_model()}, {usable_cores()} cores")
    for in_process in (True, False):
        options = ServingOptions(decoder_in_process=in_process)
        work_dir = ROOT / "build" / f"bench-clicks-{'local' if in_process else 'bls'}"
        server = bench_server(args.export_dir, work_dir, options)
        with server.start():
            with SegmentClient(server.grpc_url, "grpc") as client:
                image_id = client.embed(data)
                for _ in range(3):
                    client.click(image_id, *POINT)
            for concurrency in (1, 4, 8):
                rate, p50 = measure(server.grpc_url, image_id, concurrency, args.clicks)
                route = "in-process" if in_process else "BLS"
                print(
                    f"decoder {route:10s} clients {concurrency}: {rate:5.1f} clicks/s, "
                    f"p50 {p50 * 1e3:4.0f} ms"
                )


if __name__ == "__main__":
    main()
