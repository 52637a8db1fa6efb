"""SAM 3 at full size, checked once: build it with random weights, export its four graphs, and
compare the in-process path (``concepts/find.py`` over the ONNX graphs) with sam3's own
``Sam3Processor`` on one image and phrase, with the time each takes and the peak memory.

    .venv/bin/python benchmarks/sam3_full_size.py [--out build/sam3-full] [--threads 2]

The suite checks a reduced model (tests/sam3_helpers.py); this is the full one (860 M
parameters): about 2 minutes to build and export and 12 GB of memory, too much for every CI run.
Prints JSON: the export's seconds and file sizes, the largest differences of the detector's
outputs (logits, boxes, presence, masks) against ``Sam3Image.forward_grounding`` as
``Sam3Processor`` calls it, and seconds per step on each side. Not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sam2_triton.concepts.tokens import clip_vocabulary  # noqa: E402
from sam2_triton.export.sam3_check import check_sam3  # noqa: E402
from sam2_triton.export.sam3_export import build_random_sam3, export_sam3  # noqa: E402


def _timed(call):
    start = time.perf_counter()
    value = call()
    return value, round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "sam3-full")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, build_s = _timed(lambda: build_random_sam3(clip_vocabulary()))
    tracker = model.inst_interactive_predictor.model
    _, export_s = _timed(lambda: export_sam3(model, tracker, args.out, clip_vocabulary()))
    check = check_sam3(model, args.out, clip_vocabulary(), args.threads)
    print(json.dumps({
        "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6),
        "build_s": build_s, "export_s": export_s,
        "files_mb": {f.name: round(f.stat().st_size / 1e6, 1) for f in sorted(args.out.iterdir())},
        "differences": check.differences,
        "seconds": check.seconds,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 1),
        "threads": args.threads,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
