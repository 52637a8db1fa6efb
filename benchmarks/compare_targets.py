"""Mask drift between two running servers on the same images and prompts, e.g. the GPU target
(TensorRT FP16) against the embedded CPU target (FP32) serving the same export:

    .venv/bin/python benchmarks/compare_targets.py --reference 127.0.0.1:8000 \
        --candidate GPU_HOST:8000 [--images a.jpg b.png ...] [--json drift.json]

Without --images it sends scikit-image's bundled photographs. Prints one row per request and
the worst case. Needs real weights to mean anything: random-weight logits sit within about
+-0.8, so tiny numeric changes flip pixels that a trained model would put far from 0.
Not a test: nothing here asserts a tolerance.
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import asdict
from pathlib import Path

from PIL import Image

from sam2_triton.bench.compare import compare_servers, summarize

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle_left")


def _encode(name: str, image: Image.Image) -> tuple[str, bytes, int, int]:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return name, buffer.getvalue(), image.height, image.width


def load_images(paths: list[Path]) -> list[tuple[str, bytes, int, int]]:
    if paths:
        return [_encode(p.name, Image.open(p)) for p in paths]
    from skimage import data

    return [_encode(n, Image.fromarray(getattr(data, n)())) for n in SKIMAGE_PHOTOS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="host:port of the reference server")
    parser.add_argument("--candidate", required=True, help="host:port of the server to check")
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    parser.add_argument("--images", type=Path, nargs="*", default=[])
    parser.add_argument("--json", type=Path, help="also write the rows and summary here")
    args = parser.parse_args()
    rows = compare_servers(args.reference, args.candidate, load_images(args.images), args.protocol)
    for image, prompt, d in rows:
        print(
            f"{image:>18} {prompt:>6}: pixels equal {d.mask_agreement:.5f}, "
            f"min IoU {d.min_mask_iou:.4f}, |d score| {d.max_score_diff:.2e}, "
            f"|d logit| {d.max_logit_diff:.2e}, same best mask {d.same_best_mask}"
        )
    summary = summarize([d for _, _, d in rows])
    print("worst case:", json.dumps(summary))
    if args.json:
        records = [{"image": i, "prompt": p, **asdict(d)} for i, p, d in rows]
        args.json.write_text(json.dumps({"rows": records, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
