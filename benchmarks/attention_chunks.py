"""Memory attention's query chunk (export/tracker_graph.QUERY_CHUNK) against its speed: the
graph exported once per chunk size, one object at SAM 2.1's full memory (7 memory frames, 16
object pointers), as ``sam2_video_sessions`` runs it on the embedded target (ONNX Runtime fp32,
OpenVINO bf16). A smaller chunk keeps each chunk's scores (chunk x 28,736) in cache; more
chunks mean more, smaller products.

    .venv/bin/python benchmarks/attention_chunks.py --checkpoint CKPT [--chunks 1024 256 64]

``CKPT``: a tiny checkpoint (e.g. the tests' build/test-cache/tiny-seed0-*/random-seed0.pt).
Medians of ``--repeats`` runs after one warm-up. Not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from sam2.build_sam import build_sam2

import sam2_triton.export.tracker_graph as graph
from sam2_triton import contract
from sam2_triton.bench import machine
from sam2_triton.bench.timing import timed
from sam2_triton.export.tracker_export import _export, example_memory_attention_inputs
from sam2_triton.runtime.runners import create_session
from sam2_triton.video.runtime import MEMORY_ATTENTION_OPENVINO
from sam2_triton.weights.variants import get_variant


def _feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "vision_feat": rng.standard_normal((1, 4096, 256)).astype(np.float32),
        "memory": rng.standard_normal((1, 7, 4096, 64)).astype(np.float32),
        "memory_tpos": np.arange(7, dtype=np.int64)[None],
        "obj_ptrs": rng.standard_normal((1, 16, 256)).astype(np.float32),
        "obj_ptr_tpos": (np.arange(16, dtype=np.float32) / 15)[None],
    }


def _export_with_chunk(model: torch.nn.Module, chunk: int, path: Path) -> None:
    dims = {
        "objects": torch.export.Dim("objects", min=1, max=256),
        "memories": torch.export.Dim("memories", min=1, max=64),
        "pointers": torch.export.Dim("pointers", min=1, max=256),
    }
    shapes = {
        "vision_feat": {0: dims["objects"]},
        "memory": {0: dims["objects"], 1: dims["memories"]},
        "memory_tpos": {0: dims["objects"], 1: dims["memories"]},
        "obj_ptrs": {0: dims["objects"], 1: dims["pointers"]},
        "obj_ptr_tpos": {0: dims["objects"], 1: dims["pointers"]},
    }
    saved, graph.QUERY_CHUNK = graph.QUERY_CHUNK, chunk
    try:
        outputs = [t.name for t in contract.MEMORY_ATTENTION_OUTPUTS]
        module = graph.MemoryAttentionGraph(model).eval()
        _export(module, example_memory_attention_inputs(), shapes, outputs, path)
    finally:
        graph.QUERY_CHUNK = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1024, 256, 64])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = build_sam2(get_variant("tiny").config, ckpt_path=str(args.checkpoint), device="cpu")
    feeds, figures = _feeds(), {}
    with tempfile.TemporaryDirectory() as folder:
        for chunk in args.chunks:
            path = Path(folder) / f"memory_attention_{chunk}.onnx"
            _export_with_chunk(model, chunk, path)
            for precision in machine.runnable_precisions(["fp32", "bf16"]):
                extra = MEMORY_ATTENTION_OPENVINO if precision == "bf16" else None
                session = create_session(path, 0, precision=precision, openvino_config=extra)
                seconds = timed(lambda s=session: s.run(None, feeds), args.repeats)
                figures[f"chunk_{chunk}_{precision}_s"] = round(seconds["median_ms"] / 1e3, 3)
                print(f"chunk {chunk:5d} {precision}: {figures[f'chunk_{chunk}_{precision}_s']} s")
    print(json.dumps({"machine": machine.summary(), **figures}, indent=2))


if __name__ == "__main__":
    main()
