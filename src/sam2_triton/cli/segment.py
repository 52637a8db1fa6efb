"""``sam2-triton segment``: one image and its prompts through a running server, masks to files."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam2_triton.cli.arguments import parse_box, parse_point

PROTOCOLS = ("http", "grpc")


@dataclass(frozen=True)
class SegmentJob:
    """One ``segment`` call: what to send, where to, and where the results go."""

    image: Path
    out: Path
    points: tuple[tuple[float, float, int], ...] = ()
    box: np.ndarray | None = None
    single_mask: bool = False
    protocol: str = "http"
    url: str | None = None
    cutout: Path | None = None
    crop: bool = False
    text: tuple[str, ...] = ()  # SAM 3: every instance of each phrase (box: an example)
    threshold: float | None = None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment an image through a running server")
    p.add_argument("image", type=Path)
    p.add_argument("--point", type=parse_point, action="append", help="X,Y[,LABEL] (1 fg, 0 bg)")
    p.add_argument("--box", type=parse_box, help="X0,Y0,X1,Y1")
    p.add_argument("--single-mask", action="store_true", help="one mask instead of three")
    p.add_argument("--protocol", choices=PROTOCOLS, default="http")
    p.add_argument("--url", help="host:port (default 127.0.0.1:8000 http, :8001 grpc)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--cutout", type=Path, help="also write the best mask's object as an RGBA PNG here"
    )
    p.add_argument("--crop", action="store_true", help="crop the cut-out to the object's box")
    p.add_argument(
        "--text",
        action="append",
        help="SAM 3 (sam3_concepts): every instance of this phrase; repeat for more; --box is "
        "then an example box",
    )
    p.add_argument("--threshold", type=float, help="with --text: confidence (default 0.5)")
    p.set_defaults(func=run)


def segment_image(job: SegmentJob) -> Path:
    from sam2_triton.cli.segment_files import save_result
    from sam2_triton.clients.image import SegmentClient

    coords = labels = None
    if job.points:
        coords = np.array([p[:2] for p in job.points], dtype=np.float32)
        labels = np.array([p[2] for p in job.points], dtype=np.int32)
    image = job.image.read_bytes()
    output_format = None
    if job.cutout:
        output_format = "cutout_cropped" if job.crop else "cutout"
    with SegmentClient(job.url, job.protocol) as client:
        start = time.perf_counter()
        result = client.segment(
            image, coords, labels, job.box, not job.single_mask, output_format=output_format
        )
        elapsed = time.perf_counter() - start
    files = save_result(result, job.out, image)
    if job.cutout:
        best = int(np.argmax(result.iou_scores))
        job.cutout.parent.mkdir(parents=True, exist_ok=True)
        job.cutout.write_bytes(result.encoded_masks[best])
        files.append(job.cutout)
    print(
        f"{len(result.masks)} mask(s) of {result.masks.shape[1]}x{result.masks.shape[2]} in "
        f"{elapsed:.2f} s over {job.protocol}; IoU scores "
        f"{', '.join(f'{s:.3f}' for s in result.iou_scores)}"
    )
    print("wrote " + ", ".join(str(f) for f in files))
    return job.out


def find_instances(job: SegmentJob) -> Path:
    """``--text``: every instance of the phrases (and like the example box) via sam3_concepts."""
    from sam2_triton.cli.segment_files import save_instances
    from sam2_triton.clients.concepts import ConceptClient

    image = job.image.read_bytes()
    with ConceptClient(job.url, job.protocol) as client:
        start = time.perf_counter()
        found = client.find(image, text=list(job.text), boxes=job.box,
                            confidence_threshold=job.threshold, output_format="rle")  # fmt: skip
        elapsed = time.perf_counter() - start
    files = save_instances(found, job.text, job.out, image)
    counts = ", ".join(f"{(found.phrase_index == i).sum()} {t!r}" for i, t in enumerate(job.text))
    print(f"{len(found.scores)} instance(s) in {elapsed:.2f} s over {job.protocol}: {counts}")
    print("wrote " + ", ".join(str(f) for f in files))
    return job.out


def run(args: argparse.Namespace) -> int:
    if args.text and (args.point or args.cutout or args.single_mask):
        print("error: --text finds instances: no --point, --cutout or --single-mask with it",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.threshold is not None and not args.text:
        print("error: --threshold goes with --text", file=sys.stderr)
        return 2
    if not args.text and not args.point and args.box is None:
        print("error: give at least one --point X,Y[,LABEL] or a --box", file=sys.stderr)
        return 2
    job = SegmentJob(
        image=args.image,
        out=args.out,
        points=tuple(args.point or ()),
        box=args.box,
        single_mask=args.single_mask,
        protocol=args.protocol,
        url=args.url,
        cutout=args.cutout,
        crop=args.crop,
        text=tuple(args.text or ()),
        threshold=args.threshold,
    )
    if job.text:
        find_instances(job)
    else:
        segment_image(job)
    return 0
