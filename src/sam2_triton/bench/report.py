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
        met = "yes" if goal["met"] else "NO"
        if goal.get("measurement_error"):
            met = f"NO: {MEASUREMENT_ERROR}"
        lines.append(f"{name:28} {goal['value']:10.4f} {goal['goal']:>10}  {met}")
    if "decoder_in_process_ms" in report:
        per_prompt = ", ".join(
            f"{name}: {row['median_ms']:.1f} ms/prompt set "
            f"({_utilisation(report['decoder_flops_utilization_by_prompts'][name])})"
            for name, row in report["decoder_in_process_ms"].items()
        )
        lines.append(
            f"decoder ({report['decoder_flops_per_prompt'] / 1e9:.2f} GFLOP per prompt set), "
            f"{per_prompt}"
        )
    lines += _ceilings(report)
    bytes_ = report["request_bytes"]
    lines.append(
        f"request bytes per image: ours {bytes_['ours']:,}, client-side flow "
        f"{bytes_['client_side_flow']:,}"
    )
    return "\n".join(lines)


MEASUREMENT_ERROR = "MEASUREMENT ERROR: above the best measured GEMM"


def _utilisation(value: float) -> str:
    if value > 1.0:
        return f"{value:.2f} of the GEMM rate, {MEASUREMENT_ERROR}"
    return f"{value:.2f} of the GEMM rate"


def _ceilings(report: dict[str, Any]) -> list[str]:
    """What the utilisations divide by: each library's fp32 GEMM and the best, the ISA's peak
    and how it was computed, and the encoder's rate against both."""
    lines = []
    gemms = report.get("gemm_fp32")
    if gemms:
        rates = ", ".join(
            f"{library} {rate / 1e9:.1f}" for library, rate in gemms["flops_per_s"].items()
        )
        missing = (
            f" (not installed: {', '.join(gemms['unavailable'])})" if gemms["unavailable"] else ""
        )
        lines.append(
            f"fp32 GEMM {gemms['n']}x{gemms['n']} at {gemms['threads']} threads: {rates} GFLOP/s; "
            f"best {gemms['best_library']} {gemms['best_flops_per_s'] / 1e9:.1f}{missing}"
        )
    if "gemm_bf16_flops_per_s" in report:
        lines.append(f"bf16 GEMM (OpenVINO): {report['gemm_bf16_flops_per_s'] / 1e9:.1f} GFLOP/s")
    peak = report.get("fp32_theoretical_peak")
    if peak and peak["flops_per_s"]:
        against = ""
        if "gemm_fp32_vs_peak" in report:
            against = f", best GEMM {report['gemm_fp32_vs_peak']:.2f} of it"
            if report["gemm_fp32_vs_peak"] > 1.0:  # measured beats the estimate: inputs too low
                against += (
                    ": the estimate is too low for this machine (the clock read is below what "
                    "its cores run at), so it bounds nothing here"
                )
        lines.append(
            f"fp32 theoretical peak {peak['flops_per_s'] / 1e9:.1f} GFLOP/s = {peak['cores']} "
            f"cores x {peak['clock_mhz']:.0f} MHz ({peak.get('clock_source', '?')}) x "
            f"{peak['fp32_lanes_per_fma']} lanes x 2 x {peak['fma_units_per_core']} FMA units "
            f"(an estimate from the ISA){against}"
        )
    if "encoder_flops_per_s" in report:
        rate = report["encoder_flops_per_s"]
        parts = [f"encoder {rate / 1e9:.1f} GFLOP/s"]
        if "encoder_flops_utilization" in report.get("ratios", {}):
            parts.append(_utilisation(report["ratios"]["encoder_flops_utilization"]))
        if "encoder_flops_vs_fp32_peak" in report:
            parts.append(f"{report['encoder_flops_vs_fp32_peak']:.2f} of the theoretical peak")
        lines.append(", ".join(parts))
    for name, value in report.get("measurement_errors", {}).items():
        lines.append(f"{MEASUREMENT_ERROR}: {name} = {value:.3f}, not a result")
    return lines


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
