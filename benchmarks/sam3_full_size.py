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

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sam2_triton.concepts.find import ConceptGraphs, example_boxes  # noqa: E402
from sam2_triton.concepts.graphs import DETECTOR_OUTPUTS  # noqa: E402
from sam2_triton.export.sam3_detector import unpinned_memory  # noqa: E402
from sam2_triton.export.sam3_export import build_random_sam3, export_sam3  # noqa: E402
from tests.sam3_helpers import clip_vocabulary  # noqa: E402

PHRASE = "a red square"


def _image() -> np.ndarray:
    rgb = np.random.default_rng(5).integers(0, 256, (300, 420, 3), np.uint8)
    rgb[80:200, 100:260] = (200, 30, 30)
    return rgb


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
    rgb = _image()
    graphs = ConceptGraphs(args.out, clip_vocabulary(), args.threads)
    image, ours_image_s = _timed(lambda: graphs.image(rgb))
    phrase, ours_phrase_s = _timed(lambda: graphs.phrase(PHRASE))
    slots, kinds, padding = example_boxes(None, None, image.orig_hw)
    feeds = {**image.maps, "text_features": phrase.features, "text_mask": phrase.mask,
             "boxes": slots, "box_labels": kinds, "box_mask": padding}  # fmt: skip
    outputs, ours_detector_s = _timed(lambda: graphs.detector.run(list(DETECTOR_OUTPUTS), feeds))
    ours = dict(zip(DETECTOR_OUTPUTS, outputs, strict=True))

    from sam3.model.sam3_image_processor import Sam3Processor

    captured: dict = {}
    grounding = model.forward_grounding

    def keep(*a, **k):
        captured.update(grounding(*a, **k))
        return captured

    model.forward_grounding = keep
    processor = Sam3Processor(model, device="cpu", confidence_threshold=0.0)
    with torch.no_grad(), unpinned_memory():
        state, sam3_image_s = _timed(lambda: processor.set_image(Image.fromarray(rgb)))
        _, sam3_prompt_s = _timed(lambda: processor.set_text_prompt(PHRASE, state))
    theirs = {
        "pred_logits": captured["pred_logits"][..., 0],
        "pred_boxes": captured["pred_boxes"],
        "presence_logit": captured["presence_logit_dec"],
        "pred_masks": captured["pred_masks"],
    }
    differences = {}
    for name, value in theirs.items():
        value = value.numpy()
        assert np.isfinite(value).all(), f"sam3's own {name} is not finite"
        differences[name] = {
            "max_abs": float(np.abs(ours[name] - value).max()),
            "scale": float(np.abs(value).max()),
        }
    print(json.dumps({
        "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6),
        "build_s": build_s, "export_s": export_s,
        "files_mb": {f.name: round(f.stat().st_size / 1e6, 1) for f in sorted(args.out.iterdir())},
        "differences": differences,
        "seconds": {"ours_image": ours_image_s, "ours_phrase": ours_phrase_s,
                    "ours_detector": ours_detector_s, "sam3_set_image": sam3_image_s,
                    "sam3_set_text_prompt": sam3_prompt_s},
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 1),
        "threads": args.threads,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
