"""sam2_segment as one Python model (embedded default) against the ensemble of four models (the
GPU target's structure), side by side on the same machine.

    .venv/bin/python benchmarks/segment_routes.py [--export-dir exports/tiny] [--requests 12]
        [--cpu-precision fp32|bf16] [--concurrency 4]

Two servers run at once, one per route (the idle one costs no CPU). After one request each, their
memory (PSS of tritonserver and its stubs) is printed. Sequential requests alternate between
them, starting with each in turn, with a pause between requests; the medians and their ratio
are printed, then throughput at ``--concurrency`` gRPC clients, in alternating blocks. Not a
test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from sam2_triton.bench import flows
from sam2_triton.bench.load import run_load
from sam2_triton.bench.machine import cpu_model, tree_memory_bytes, usable_cores
from sam2_triton.bench.server import bench_server
from sam2_triton.clients.image import SegmentClient
from sam2_triton.contract import CPU_PRECISIONS
from sam2_triton.repository.options import ServingOptions

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
POINT = (np.array([[300.0, 200.0]], np.float32), np.array([1], np.int32))
ROUTES = {"one model": True, "ensemble": False}  # name -> ServingOptions.segment_in_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--requests", type=int, default=12, help="sequential requests per route")
    parser.add_argument("--cpu-precision", choices=CPU_PRECISIONS, default="fp32")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    data = IMAGE.read_bytes()
    print(f"{cpu_model()}, {usable_cores()} cores, {args.cpu_precision}, {IMAGE.name}, gRPC")
    with ExitStack() as stack:
        servers = {}
        for name, in_process in ROUTES.items():
            options = ServingOptions(
                segment_in_process=in_process, cpu_precision=args.cpu_precision
            )
            work_dir = ROOT / "build" / f"bench-segment-{name.replace(' ', '-')}"
            servers[name] = stack.enter_context(
                bench_server(args.export_dir, work_dir, options).start()
            )
        clients = {name: SegmentClient(server.grpc_url, "grpc") for name, server in servers.items()}
        for client in clients.values():
            client.segment(data, *POINT)  # warm-up
        for name, server in servers.items():
            pss = tree_memory_bytes(server.process.pid)[1] / 2**30
            print(f"{name:10s} server PSS after one request: {pss:.2f} GiB")
        times: dict[str, list[float]] = {name: [] for name in ROUTES}
        for i in range(args.requests):
            for name in list(ROUTES)[:: 1 if i % 2 else -1]:
                start = time.perf_counter()
                clients[name].segment(data, *POINT)
                times[name].append(time.perf_counter() - start)
                time.sleep(0.3)
        medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
        for name, value in medians.items():
            print(f"{name:10s} p50 {value:7.1f} ms over {args.requests} requests")
        print(f"one model / ensemble latency: {medians['one model'] / medians['ensemble']:.3f}")

        rates: dict[str, list[float]] = {name: [] for name in ROUTES}
        for name in [*ROUTES, *reversed(ROUTES)]:
            url = servers[name].grpc_url
            result = run_load(
                lambda url=url: flows.ours(url, "grpc", data, POINT),
                args.concurrency,
                2 * args.concurrency,
            )
            rates[name].append(result.throughput)
        mean = {name: statistics.mean(values) for name, values in rates.items()}
        for name, value in mean.items():
            print(f"{name:10s} {value:.3f} images/s at {args.concurrency} clients")
        print(f"one model / ensemble throughput: {mean['one model'] / mean['ensemble']:.3f}")


if __name__ == "__main__":
    main()
