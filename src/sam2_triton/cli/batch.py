"""``sam2-triton batch``: masks for every image of a folder through a running server, resumable
(the work is ``sam2_triton.batch``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from sam2_triton.cli.arguments import parse_automatic_param, positive_int
from sam2_triton.cli.segment import PROTOCOLS
from sam2_triton.contract import DEFAULT_POLYGON_TOLERANCE as DEFAULT_TOLERANCE

if TYPE_CHECKING:
    from sam2_triton.batch.shard import Shard


def parse_shard(text: str) -> Shard:
    """--shard I/N (imported here: sam2_triton.batch loads the client, which other commands do
    not need at start)."""
    from sam2_triton.batch.shard import Shard

    try:
        return Shard.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="masks for every image of a folder (prompts file or automatic), resumable",
        description="Segment every image under INPUT_DIR through a running server: images named "
        "in --prompts get one mask per labelled object, the others automatic masks. Finished "
        "images are skipped, so an interrupted run is resumed by running it again.",
    )
    p.add_argument("input_dir", type=Path, metavar="INPUT_DIR")
    p.add_argument("--prompts", type=Path, help='JSON: {"file name": {"label": [[x, y], ...]}}')
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    p.add_argument(
        "--concurrency", type=positive_int, default=4, help="requests in flight (default 4)"
    )
    p.add_argument("--protocol", choices=PROTOCOLS, default="http")
    p.add_argument("--url", help="host:port (default 127.0.0.1:8000 http, :8001 grpc)")
    p.add_argument(
        "--automatic",
        type=parse_automatic_param,
        action="append",
        metavar="NAME=VALUE",
        help="a SAM2AutomaticMaskGenerator parameter for images without prompts, e.g. "
        "points_per_side=16 (repeatable)",
    )
    p.add_argument(
        "--timeout", type=positive_int, default=3600, help="seconds per request (default 3600)"
    )
    p.add_argument(
        "--shard",
        type=parse_shard,
        metavar="I/N",
        help="take only shard I of N (0 <= I < N; an image's shard is a hash of its path), so N "
        "runs share the folder and one OUT_DIR; summary and report get the suffix .shard-I-of-N",
    )
    p.add_argument(
        "--segmentation",
        choices=("rle", "polygons"),
        default="rle",
        help="how masks are written: COCO RLE (default) or COCO polygons with their holes",
    )
    p.add_argument(
        "--polygon-tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        metavar="PIXELS",
        help=f"how far a simplified polygon may stray from the mask's contour "
        f"(default {DEFAULT_TOLERANCE:g}; 0 keeps every point)",
    )
    p.add_argument(
        "--text",
        action="append",
        metavar="PHRASE",
        help="SAM 3 (sam3_concepts): images without prompts get every instance of this phrase, "
        "labelled with it (repeatable), instead of automatic masks",
    )
    p.add_argument("--threshold", type=float, help="with --text: confidence (default 0.5)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report and plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sam2_triton.batch import BatchOptions, run_batch
    from sam2_triton.batch.runner import abandon
    from sam2_triton.batch.store import ResultStore

    options = BatchOptions(
        input_dir=args.input_dir,
        out_dir=args.out,
        prompts=args.prompts,
        url=args.url,
        protocol=args.protocol,
        concurrency=args.concurrency,
        automatic_params=dict(args.automatic or []),
        timeout_s=args.timeout,
        report=not args.no_report,
        progress=not args.no_progress,
        shard=args.shard,
        segmentation=args.segmentation,
        polygon_tolerance=args.polygon_tolerance,
        text=tuple(args.text or ()),
        threshold=args.threshold,
    )
    if args.threshold is not None and not args.text:
        print("error: --threshold goes with --text")
        return 2
    result = run_batch(options)
    s = result.summary
    store = ResultStore(args.out, args.shard)
    shard = f" of shard {args.shard}" if args.shard else ""
    print(
        f"{s['finished_this_run']} image(s) done in {s['wall_seconds']:.1f} s "
        f"({s['images_per_second']:.3f} img/s), {s['skipped_already_finished']} already done, "
        f"{s['failed_this_run']} failed, {s['not_started']} not started; "
        f"{s['finished_total']}/{s['images_found']}{shard} finished in {args.out}"
    )
    for failure in s["failures"]:
        print(f"  failed: {failure['file_name']}: {failure['error']}")
    for name in s["prompts_without_image"]:
        print(f"  warning: the prompts file names {name!r}, which is not in {args.input_dir}")
    print(f"summary: {store.summary}")
    if not args.no_report:
        print(f"report: {store.report / 'index.html'}")
    if result.interrupted:
        abandon(result.exit_code)  # threads may still wait on the server: do not join them
    return result.exit_code
