"""``sam2-triton export``: a checkpoint (or random weights) -> ONNX encoder and decoder, checked
against PyTorch, then placed into the committed model repository."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sam2_triton.cli.arguments import add_model
from sam2_triton.cli.paths import CHECKPOINT_DIR, REPOSITORY_DIR, export_dir
from sam2_triton.errors import ExportCheckError
from sam2_triton.weights.variants import get_variant

EXPORT_TOLERANCE = 1e-3  # ORT vs PyTorch, max abs; a correct export is ~1e-5

RANDOM_WEIGHTS_WARNING = """
##############################################################################
  WARNING: RANDOM WEIGHTS. The official SAM 2.1 checkpoint is not available,
  so this model has random weights (fixed seed): its masks are MEANINGLESS.
  Everything else (export, serving, protocol) is real. For real masks run
    sam2-triton download --model {model}     (needs access to Meta's host), or
    sam2-triton export --model {model} --checkpoint PATH
##############################################################################
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the ONNX image encoder and mask decoder")
    add_model(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--checkpoint", type=Path, help='a checkpoint in the official {"model": ...} format'
    )
    source.add_argument(
        "--random-weights", action="store_true", help="random weights (testing only)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --random-weights")
    p.add_argument(
        "--no-ort-fusions",
        action="store_true",
        help="standard ONNX only, without onnxruntime's fused ops (for TensorRT, see docs/gpu.md)",
    )
    p.add_argument(
        "--video",
        action="store_true",
        help="also export the video tracker's graphs (memory attention, memory encoder, "
        "tracking decoder) and check them against sam2's modules",
    )
    p.add_argument(
        "--sam3",
        action="store_true",
        help="export SAM 3 (concept prompts) instead, into exports/sam3/, checked against "
        "sam3, and link it beside --model's export so that serve answers sam3_concepts too "
        "(--checkpoint: Meta's sam3.pt; full size: about 15 GB of memory)",
    )
    p.add_argument("--dir", type=Path, default=CHECKPOINT_DIR, help="where downloads are")
    p.add_argument(
        "--repository",
        type=Path,
        default=REPOSITORY_DIR,
        help=f"model repository to place the ONNX files into (default {REPOSITORY_DIR}/)",
    )
    p.set_defaults(func=run)


def random_checkpoint_path(model: str, seed: int) -> Path:
    stem = Path(get_variant(model).checkpoint_file).stem
    return CHECKPOINT_DIR / f"{stem}.random-seed{seed}.pt"


def export_model(
    model: str,
    checkpoint: Path | None,
    random_weights: bool,
    seed: int,
    ort_fusions: bool = True,
    video: bool = False,
) -> Path:
    """Export ``model`` to ``exports/<model>/`` and return that folder.

    ``ort_fusions=False`` keeps the graphs standard ONNX, which TensorRT can take whole.
    ``video``: the tracker's graphs too (``export/tracker_export.py``).
    """
    from sam2_triton.export import build_sam2_model, export_onnx, verify_onnx

    out_dir = export_dir(model)
    save_to = random_checkpoint_path(model, seed) if random_weights else None
    if random_weights:
        print(RANDOM_WEIGHTS_WARNING.format(model=model), file=sys.stderr)
    sam = build_sam2_model(
        model,
        checkpoint=checkpoint,
        random_weights=random_weights,
        seed=seed,
        save_random_to=save_to,
    )
    if save_to is not None:
        print(f"random-weight checkpoint saved: {save_to}")
    result = export_onnx(sam, out_dir, optimize=ort_fusions)
    print(
        f"exported {model} to {out_dir} in {result.total_seconds:.1f} s "
        f"({result.exporter} exporter, opset {result.opset})"
    )
    report = verify_onnx(sam, result.encoder_path, result.decoder_path)
    print(report.format())
    if report.max_abs > EXPORT_TOLERANCE:
        raise ExportCheckError(
            f"the ONNX files differ from PyTorch by {report.max_abs:.2e} "
            f"(> {EXPORT_TOLERANCE:g}); do not serve them"
        )
    if video:
        from sam2_triton.export.tracker_export import export_tracker_onnx, verify_tracker

        tracker = export_tracker_onnx(sam, out_dir)
        errors = verify_tracker(sam, tracker)
        print(
            f"video tracker exported in {tracker.seconds:.1f} s; max |ONNX - PyTorch|: "
            + ", ".join(f"{name} {error:.2e}" for name, error in errors.items())
        )
        if max(errors.values()) > EXPORT_TOLERANCE:
            raise ExportCheckError(
                f"the tracker's ONNX files differ from PyTorch by {max(errors.values()):.2e}"
            )
    return out_dir


def place_into_repository(model: str, repository: Path) -> None:
    """Hard-link the export where ``repository``'s configs expect it (if sam2-triton wrote it)."""
    from sam2_triton.repository.build import refresh_exports
    from sam2_triton.repository.gpu_configs import export_notes

    changed = refresh_exports(repository, export_dir(model))
    if changed is None:
        print(f"note: {repository} is not a repository sam2-triton wrote; nothing placed there")
        return
    print(f"ONNX files of {model} {'placed in' if changed else 'already in'} {repository}/")
    missing = missing_video_files(repository)
    if missing:
        print(
            f"note: {repository} serves video, but {export_dir(model)} has no video tracker: "
            f"its video models lack {', '.join(missing)} and will not load. Export with "
            f"`sam2-triton export --model {model} --video`, or leave video out with "
            "`sam2-triton build-repo --target gpu --no-video`.",
            file=sys.stderr,
        )
    for note in export_notes(export_dir(model)):
        print(f"note: {note}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.sam3:
        from sam2_triton.cli import export_sam3

        return export_sam3.run(args)
    checkpoint = args.checkpoint
    if checkpoint is None and not args.random_weights:
        default = args.dir / get_variant(args.model).checkpoint_file
        if not default.exists():
            print(
                f"error: no checkpoint for {args.model}: run `sam2-triton download --model "
                f"{args.model}`, or pass --checkpoint PATH, or --random-weights (testing only)",
                file=sys.stderr,
            )
            return 2
        checkpoint = default
    export_model(
        args.model,
        checkpoint,
        args.random_weights,
        args.seed,
        not args.no_ort_fusions,
        video=args.video,
    )
    place_into_repository(args.model, args.repository)
    return 0


def missing_video_files(repo_dir: Path) -> list[str]:
    """Files the repository's video models expect that are not placed (empty: none missing,
    or no video models)."""
    from sam2_triton import contract as c
    from sam2_triton.repository.build import export_placements, read_marker, recorded_options

    marker = read_marker(repo_dir)
    if marker is None:
        return []
    placements = export_placements(*recorded_options(marker))
    return sorted(
        rel
        for rel, name in placements.items()
        if name in c.VIDEO_EXPORT_FILES and not (repo_dir / rel).is_file()
    )
