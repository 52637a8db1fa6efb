"""Where a tracked frame's time goes: each of the tracker's graphs on its own, ours against
sam2's PyTorch modules, at SAM 2.1's full memory (7 memory frames, 16 object pointers).

    .venv/bin/python benchmarks/tracker_steps.py [--export-dir exports/tiny] [--repeats 3]

Ours: the export's ONNX files as ``sam2_video`` runs them on the embedded target
(``OnnxTrackerModels``: ONNX Runtime fp32, OpenVINO bf16), random inputs of the real shapes,
1 and 3 objects per memory-attention call. Reference: sam2's ``forward_image`` and
``memory_attention`` (PyTorch fp32, ``inference_mode``) on the same shapes, loaded from the
export's checkpoint. Medians of ``--repeats`` runs after one warm-up. Not a test.

Beside the times, each step's GFLOP (PyTorch's FLOP counter, ``bench.compute.counted_flops``,
on sam2's modules and on the torch module our memory-attention graph was exported from) and
the rate it ran at, against this CPU's fp32 GEMM rate: both sides spend a frame in matrix
products, so the FLOP ratio per frame is the speed-up to expect at equal rates.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sam2_triton.bench import compute, machine
from sam2_triton.bench.timing import timed
from sam2_triton.video.runtime import OnnxTrackerModels
from sam2_triton.weights.variants import get_variant

MEMORIES, POINTERS = 7, 16


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    return round(timed(run, repeats)["median_ms"] / 1e3, 3)


def ours(export_dir: Path, precision: str, repeats: int) -> dict[str, float]:
    models = OnnxTrackerModels(export_dir, 0, precision)
    rng = np.random.default_rng(0)
    image = rng.standard_normal((1, 3, 1024, 1024)).astype(np.float32)
    figures = {"encoder": median_seconds(lambda: models.encode(image), repeats)}
    for objects in (1, 3):
        feeds = {
            "vision_feat": rng.standard_normal((objects, 4096, 256)).astype(np.float32),
            "memory": rng.standard_normal((objects, MEMORIES, 4096, 64)).astype(np.float32),
            "memory_tpos": np.tile(np.arange(MEMORIES, dtype=np.int64), (objects, 1)),
            "obj_ptrs": rng.standard_normal((objects, POINTERS, 256)).astype(np.float32),
            "obj_ptr_tpos": np.tile(np.arange(POINTERS, dtype=np.float32), (objects, 1))
            / (POINTERS - 1),
        }
        attend = median_seconds(lambda f=feeds: models.attend(f), repeats)
        figures[f"memory_attention_{objects}_objects"] = attend
    memory_feeds = {
        "vision_feat": rng.standard_normal((1, 4096, 256)).astype(np.float32),
        "mask_logits": rng.standard_normal((1, 1, 1024, 1024)).astype(np.float32),
        "object_score_logits": np.ones((1, 1), np.float32),
        "binarize": np.array([False]),
    }
    figures["memory_encoder"] = median_seconds(lambda: models.encode_memory(memory_feeds), repeats)
    decoder_feeds = {
        "image_embed": rng.standard_normal((1, 4096, 256)).astype(np.float32),
        "high_res_feats_0": rng.standard_normal((1, 16384, 128)).astype(np.float32),
        "high_res_feats_1": rng.standard_normal((1, 4096, 256)).astype(np.float32),
        "point_coords": np.zeros((1, 1, 2), np.float32),
        "point_labels": -np.ones((1, 1), np.int32),
        "mask_input": np.zeros((1, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros((1, 1), np.float32),
    }
    figures["decoder"] = median_seconds(lambda: models.decode(decoder_feeds), repeats)
    return figures


def reference_steps(model: object) -> dict[str, Callable[[], object]]:
    """sam2's encoder and memory attention (one object, full memory) on random inputs, as
    calls: what is timed, and what the FLOPs are counted on."""
    import torch

    tokens = MEMORIES * 4096 + POINTERS * 4  # a pointer is 4 tokens of 64 channels
    image = torch.randn(1, 3, 1024, 1024)
    curr, pos = torch.randn(4096, 1, 256), torch.randn(4096, 1, 256)
    memory, memory_pos = torch.randn(tokens, 1, 64), torch.randn(tokens, 1, 64)

    def attend() -> object:
        return model.memory_attention(
            curr=[curr], curr_pos=[pos], memory=memory, memory_pos=memory_pos,
            num_obj_ptr_tokens=POINTERS * 4,
        )  # fmt: skip

    return {
        "encoder": lambda: model.forward_image(image),
        "memory_attention_1_objects": attend,
    }


def reference(export_dir: Path, repeats: int) -> dict[str, float]:
    import torch

    steps = reference_steps(_load_reference(export_dir))
    with torch.inference_mode():
        return {name: median_seconds(run, repeats) for name, run in steps.items()}


def _load_reference(export_dir: Path) -> object:
    """sam2's model (SAM2Base) with the export's weights."""
    from sam2.build_sam import build_sam2

    meta = json.loads((export_dir / "export.json").read_text())
    checkpoint = meta.get("saved_checkpoint") or meta.get("checkpoint")
    config = get_variant(meta["variant"]).config
    return build_sam2(config, ckpt_path=str(checkpoint), device="cpu").eval()


def gflop(export_dir: Path) -> dict[str, dict[str, float]]:
    """GFLOP of a frame's two big steps, sam2's modules against the graphs we export (the
    encoder is sam2's own forward_image; memory attention is MemoryAttentionGraph, whose score
    by value product runs on 64 channels instead of 256), 1 object, full memory."""
    import torch

    from sam2_triton.export.tracker_graph import MemoryAttentionGraph

    model = _load_reference(export_dir)

    def total(run: Callable[[], object]) -> float:
        return round(sum(compute.counted_flops(run).values()) / 1e9, 1)

    theirs = {name: total(run) for name, run in reference_steps(model).items()}
    graph = MemoryAttentionGraph(model).eval()
    ours_attention = total(
        lambda: graph(
            torch.zeros(1, 4096, 256),
            torch.zeros(1, MEMORIES, 4096, 64),
            torch.arange(MEMORIES)[None],
            torch.zeros(1, POINTERS, 256),
            torch.zeros(1, POINTERS),
        )
    )
    return {
        "reference": theirs,
        "served": {
            "encoder": theirs["encoder"],
            "memory_attention_1_objects": ours_attention,
            "memory_attention_3_objects": 3 * ours_attention,
        },
    }


def print_rates(report: dict) -> None:
    """GFLOP/s of every timed step with a FLOP count, and the FLOP ratio of whole frames."""
    counts, gemm = report["gflop"], report["gemm_fp32_gflop_per_s"]
    print(f"GFLOP/s (fp32 GEMM here: {gemm:.0f})")
    for name, figures in report["seconds"].items():
        side = "reference" if name.startswith("reference") else "served"
        rates = {
            step: counts[side][step] / seconds
            for step, seconds in figures.items()
            if step in counts[side]
        }
        print(f"  {name}: " + "  ".join(f"{step} {rate:.0f}" for step, rate in rates.items()))
    for objects in (1, 3):
        ref, ours = (
            counts[side]["encoder"] + objects * counts[side]["memory_attention_1_objects"]
            for side in ("reference", "served")
        )
        print(
            f"  a frame of {objects} object(s): reference {ref:.0f} GFLOP, served {ours:.0f}: "
            f"{ref / ours:.2f}x at equal rates"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args()
    timed = {"reference_fp32": reference(args.export_dir, args.repeats)}
    for precision in machine.runnable_precisions(args.precisions):
        timed[f"served_{precision}"] = ours(args.export_dir, precision, args.repeats)
    report = {
        "machine": machine.summary(),
        "seconds": timed,
        "gflop": gflop(args.export_dir),
        "gemm_fp32_gflop_per_s": compute.gemm_flops_per_s() / 1e9,
    }
    host = report["machine"]
    print(f"{host['cpu']}, {host['cores']} cores; seconds, medians of {args.repeats}")
    for step in sorted({step for figures in timed.values() for step in figures}):
        row = "  ".join(
            f"{name} {figures[step]:.3f}" for name, figures in timed.items() if step in figures
        )
        print(f"{step:>28s}: {row}")
    print_rates(report)
    out = args.export_dir / "tracker_steps.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
