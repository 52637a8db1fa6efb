"""``sam2-triton bench``: throughput, latency and ratios against alternatives
(the work is ``sam2_triton.bench``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sam2_triton.cli.arguments import add_model
from sam2_triton.cli.paths import RUNTIME_DIR, export_dir
from sam2_triton.contract import CPU_PRECISIONS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="throughput, latency and ratios against alternatives")
    add_model(p)
    p.add_argument("--quick", action="store_true", help="fewer requests (< 5 min on 2 cores)")
    p.add_argument(
        "--cpu-precision",
        choices=CPU_PRECISIONS,
        default="fp32",
        help="the served models' and the in-process baseline's precision (bf16: OpenVINO)",
    )
    p.add_argument("--out", type=Path, default=Path("outputs/bench"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sam2_triton.bench.report import format_table, write
    from sam2_triton.bench.run import BenchConfig, run_bench

    source = export_dir(args.model)
    if not (source / "export.json").exists():
        print(f"error: no export in {source}: run `sam2-triton export` first", file=sys.stderr)
        return 2
    from sam2_triton.repository.options import ServingOptions
    from sam2_triton.runtime.runners import require_precision

    require_precision(args.cpu_precision)
    config = BenchConfig(
        export_dir=source,
        out_dir=args.out,
        runtime_dir=RUNTIME_DIR.resolve(),
        quick=args.quick,
        options=ServingOptions(cpu_precision=args.cpu_precision),
    )
    report = run_bench(config)
    json_path, png_path = write(report, args.out)
    print(format_table(report))
    print(f"written: {json_path}, {png_path}")
    return 0
