"""Bench results as a table on stdout, a JSON file and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def format_table(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"SAM 2.1 {report['model']} on {machine['cpu']}, {machine['cores']} cores "
        f"(Python {machine['python']}){'  [quick]' if report['quick'] else ''}",
        "",
        f"{'concurrency':>11} {'images/s':>9} {'p50 ms':>9} {'p99 ms':>9}  batches formed "
        "(model: size x count)",
    ]
    for row in report["sweep"]:
        level = str(row["concurrency"])
        formed = " | ".join(
            f"{model.removeprefix('sam2_')}: " + " ".join(f"{k}x{v}" for k, v in sizes.items())
            for model, sizes in report["batch_sizes_formed"][level].items()
        )
        lines.append(
            f"{level:>11} {row['images_per_s']:9.3f} {row['p50_ms']:9.0f} {row['p99_ms']:9.0f}"
            f"  {formed}"
        )
    lines += ["", f"{'ratio':28} {'value':>10} {'goal':>10}  met"]
    for name, goal in report["goals"].items():
        lines.append(
            f"{name:28} {goal['value']:10.4f} {goal['goal']:>10}  {'yes' if goal['met'] else 'NO'}"
        )
    if "decoder_in_process_ms" in report:
        per_prompt = ", ".join(
            f"{name}: {row['median_ms']:.1f} ms/prompt set "
            f"({report['decoder_flops_utilization_by_prompts'][name]:.2f} of the GEMM rate)"
            for name, row in report["decoder_in_process_ms"].items()
        )
        lines.append(
            f"decoder ({report['decoder_flops_per_prompt'] / 1e9:.2f} GFLOP per prompt set), "
            f"{per_prompt}"
        )
    bytes_ = report["request_bytes"]
    lines.append(
        f"request bytes per image: ours {bytes_['ours']:,}, client-side flow "
        f"{bytes_['client_side_flow']:,}"
    )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> Path:
    """Throughput and latency (p50, p99) against concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [row["concurrency"] for row in report["sweep"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(levels, [row["images_per_s"] for row in report["sweep"]], marker="o")
    left.set(xlabel="concurrent clients", ylabel="images / s", title="sam2_segment throughput")
    right.plot(levels, [row["p50_ms"] for row in report["sweep"]], marker="o", label="p50")
    right.plot(levels, [row["p99_ms"] for row in report["sweep"]], marker="s", label="p99")
    right.set(xlabel="concurrent clients", ylabel="ms", title="latency")
    right.legend()
    for axis in (left, right):
        axis.set_xticks(levels)
        axis.grid(alpha=0.3)
    machine = report["machine"]
    fig.suptitle(f"SAM 2.1 {report['model']}, {machine['cpu']}, {machine['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "bench.json"
    json_path.write_text(json.dumps(report, indent=2))
    return json_path, plot(report, out_dir / "bench.png")
