"""``sam2-triton download``: an official SAM 2.1 checkpoint, or SAM 3's, sha256-checked."""

from __future__ import annotations

import argparse
from pathlib import Path

from sam2_triton.cli.arguments import add_model
from sam2_triton.cli.paths import CHECKPOINT_DIR


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download", help="fetch an official SAM 2.1 checkpoint, or SAM 3's (sha256-checked)"
    )
    add_model(p)
    p.add_argument(
        "--sam3",
        action="store_true",
        help="SAM 3's sam3.pt instead (gated on Hugging Face: accept its licence, set HF_TOKEN)",
    )
    p.add_argument("--dir", type=Path, default=CHECKPOINT_DIR)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.sam3:
        from sam2_triton.weights.sam3 import download_sam3

        print(f"checkpoint: {download_sam3(args.dir)}")
        print("next: sam2-triton export --sam3 (beside an export of SAM 2.1: --model M)")
        return 0
    from sam2_triton.weights.checkpoints import download_checkpoint

    print(f"checkpoint: {download_checkpoint(args.model, args.dir)}")
    return 0
