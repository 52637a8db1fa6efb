"""SAM 3 at full size, checked once: build it with random weights, export its four graphs, and
compare the in-process path (``concepts/find.py`` over the ONNX graphs) with sam3's own
``Sam3Processor`` on one image and phrase, with the time each takes and the peak memory; then
clicks answered by SAM 3's interactive model as ``sam2_session`` answers them (``SessionService``
with ``families.SAM3`` over the vision and interactive graphs) against ``Sam3Image.predict_inst``.

    .venv/bin/python benchmarks/sam3_full_size.py [--out build/sam3-full] [--threads 2]

The suite checks a reduced model (tests/sam3_helpers.py); this is the full one (860 M
parameters): about 2 minutes to build and export and 12 GB of memory, too much for every CI run.
Prints JSON: the export's seconds and file sizes, the largest differences of the detector's
outputs (logits, boxes, presence, masks) against ``Sam3Image.forward_grounding`` as
``Sam3Processor`` calls it, seconds per step on each side, and for clicks (a click, a box) the
masks' agreement, the largest IoU and low-res differences and the median seconds of a click on
an encoded image on each side. Not a test.
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


def _median_seconds(call, repeats: int = 5):
    times = []
    for _ in range(repeats):
        value, seconds = _timed(call)
        times.append(seconds)
    return value, sorted(times)[repeats // 2]


def check_clicks(model, folder: Path, threads: int) -> dict:
    """Clicks through the session logic on the graphs against predict_inst on the model."""
    import io
    import tempfile
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image
    from sam3.model.sam3_image import Sam3Image
    from sam3.model.sam3_image_processor import Sam3Processor

    from sam2_triton.families import SAM3
    from sam2_triton.image.embedding_cache import EmbeddingCache
    from sam2_triton.image.session import SessionService
    from sam2_triton.runtime.runners import sam2_functions

    rgb = np.asarray(
        Image.open(ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg").convert("RGB")
    )
    height, width = rgb.shape[:2]
    reference = SimpleNamespace(
        backbone=model.backbone, inst_interactive_predictor=model.inst_interactive_predictor
    )
    with torch.no_grad():
        state, set_image_s = _timed(
            lambda: Sam3Processor(reference, device="cpu").set_image(Image.fromarray(rgb))
        )
    encode, decode = sam2_functions(folder / SAM3.encoder_file, folder / SAM3.decoder_file, threads)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    png = np.frombuffer(buffer.getvalue(), np.uint8)
    prompts = {
        "click": {"point_coords": np.array([[width * 0.5, height * 0.5]], np.float32),
                  "point_labels": np.array([1], np.int32)},
        "box": {"box": np.array([0.2 * width, 0.2 * height, 0.7 * width, 0.8 * height],
                                np.float32)},
    }  # fmt: skip
    results: dict = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        service = SessionService(
            EmbeddingCache(Path(cache_dir), 1 << 30), encode, decode, family=SAM3
        )
        first, encode_s = _timed(lambda: service.handle({"image": png}))
        results["seconds"] = {"set_image": set_image_s, "ours_encode": encode_s}
        image_id = first["image_id"]
        for name, prompt in prompts.items():
            request = {"image_id": image_id, **prompt}
            ours, ours_s = _median_seconds(lambda r=request: service.handle(r))
            with torch.no_grad():
                theirs, theirs_s = _median_seconds(
                    lambda p=prompt: Sam3Image.predict_inst(
                        model, state, multimask_output=True, **p
                    )
                )
            masks, iou, low_res = theirs
            results[name] = {
                "mask_agreement": float((ours["masks"] == masks.astype(np.uint8)).mean()),
                "iou_max_difference": float(np.abs(ours["iou_scores"] - iou).max()),
                "low_res_max_difference": float(np.abs(ours["low_res_logits"] - low_res).max()),
                "ours_click_s": ours_s,
                "predict_inst_s": theirs_s,
            }
    return results


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
    }, indent=2), flush=True)  # fmt: skip
    clicks = check_clicks(model, args.out, args.threads)
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 1)
    print(json.dumps({"clicks": clicks, "peak_rss_gb": peak}, indent=2))


if __name__ == "__main__":
    main()
