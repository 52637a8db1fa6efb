"""``sam2-triton demo`` (what ``make demo`` runs): weights -> export -> serve -> segment the
shipped example image over HTTP and gRPC -> stop."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sam2_triton.cli.arguments import (
    add_model,
    add_server_address,
    add_serving_options,
    serving_options,
)
from sam2_triton.cli.build_repo import build_repo
from sam2_triton.cli.export import RANDOM_WEIGHTS_WARNING, export_model
from sam2_triton.cli.paths import CHECKPOINT_DIR, EMBEDDED_REPOSITORY_DIR, EXAMPLE_IMAGE, export_dir
from sam2_triton.cli.segment import SegmentJob, segment_image
from sam2_triton.cli.serve import Address, start_server

DEMO_LOG = Path("build/demo-tritonserver.log")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="weights, export, serve, segment the example image, stop")
    add_model(p)
    p.add_argument("--repository", type=Path, default=EMBEDDED_REPOSITORY_DIR)
    p.add_argument("--out", type=Path, default=Path("outputs/demo"))
    add_server_address(p)
    add_serving_options(p)
    p.set_defaults(func=run)


def _weights(model: str) -> tuple[Path | None, bool]:
    """The official checkpoint, or (offline) random weights: (checkpoint, random_weights)."""
    from sam2_triton.weights.checkpoints import CheckpointDownloadError, download_checkpoint

    try:
        return download_checkpoint(model, CHECKPOINT_DIR), False
    except CheckpointDownloadError as exc:
        print(f"download failed: {exc}", file=sys.stderr)
        return None, True


def _export_source_differs(info: Path, checkpoint: Path | None) -> bool:
    recorded = json.loads(info.read_text())
    if checkpoint is None:
        return recorded.get("seed") is None
    return recorded.get("seed") is not None


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.height, image.width


def run(args: argparse.Namespace) -> int:
    from sam2_triton.repository.build import serving

    model = args.model
    checkpoint, random_weights = _weights(model)
    info = export_dir(model) / "export.json"
    if not info.exists() or _export_source_differs(info, checkpoint):
        export_model(model, checkpoint, random_weights, seed=0)
    elif random_weights:
        print(RANDOM_WEIGHTS_WARNING.format(model=model), file=sys.stderr)
    options = serving_options(args)
    address = Address.from_args(args)
    build_repo(model, args.repository, options)
    DEMO_LOG.parent.mkdir(parents=True, exist_ok=True)
    print(f"starting tritonserver (log: {DEMO_LOG}) ...", flush=True)
    height, width = _image_size(EXAMPLE_IMAGE)
    point = (width * 0.45, height * 0.45, 1)
    with serving(args.repository):
        server = start_server(args.repository, address, options.cpu_precision, DEMO_LOG)
        try:
            segment_image(
                SegmentJob(EXAMPLE_IMAGE, args.out, (point,), url=address.url(address.ports.http))
            )
            grpc_out = args.out / "grpc_single"
            segment_image(
                SegmentJob(
                    EXAMPLE_IMAGE,
                    grpc_out,
                    (point,),
                    single_mask=True,
                    protocol="grpc",
                    url=address.url(address.ports.grpc),
                    cutout=grpc_out / "cutout.png",
                    crop=True,
                )
            )
        finally:
            server.stop()
    print(f"\ndemo done: masks and scores are in {args.out.resolve()}")
    if random_weights:
        print(RANDOM_WEIGHTS_WARNING.format(model=model), file=sys.stderr)
    return 0
