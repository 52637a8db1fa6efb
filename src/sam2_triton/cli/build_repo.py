"""``sam2-triton build-repo``: write a target's Triton model repository.

``--target gpu`` writes the committed ``model_repository/`` (``--configs-only``: without an
export, what ``make repository`` runs); ``--target embedded`` what ``serve`` runs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from sam2_triton.cli.arguments import (
    add_served_model,
    add_serving_options,
    parse_gpus,
    positive_int,
    serving_options,
)
from sam2_triton.cli.paths import default_repository, export_dir
from sam2_triton.families import SAM2, SAM3
from sam2_triton.repository.model_plan import PRECISIONS, TARGETS, GpuOptions
from sam2_triton.repository.options import ServingOptions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-repo", help="write the Triton model repository for an export")
    add_served_model(p)
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="embedded",
        help="embedded: what `serve` runs (CPU); gpu: the NGC tritonserver image (docs/gpu.md)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help=", ".join(f"default for {t}: {default_repository(t)}/" for t in TARGETS),
    )
    p.add_argument(
        "--configs-only",
        action="store_true",
        help="render configs, model.py files and README without an export (keeps ONNX files "
        "placed earlier); `make repository` regenerates the committed repository so",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="rewrite even when up to date, and replace a repository of the other target",
    )
    add_serving_options(p)
    gpu = p.add_argument_group("gpu target")
    defaults = GpuOptions()
    gpu.add_argument(
        "--gpu-instances",
        type=positive_int,
        default=defaults.instances,
        help=f"encoder/decoder instances per GPU (default {defaults.instances})",
    )
    gpu.add_argument("--gpus", type=parse_gpus, default=(), help="GPU ids, e.g. 0,1 (default all)")
    gpu.add_argument("--precision", choices=PRECISIONS, default=defaults.precision, help="TensorRT")
    gpu.add_argument(
        "--trt-cache-dir", default=defaults.trt_cache_dir, help="TensorRT engine cache folder"
    )
    gpu.add_argument(
        "--no-video",
        dest="gpu_video",
        action="store_false",
        help="leave out the video models (served by default; the export needs --video)",
    )
    gpu.add_argument(
        "--decoder-tensorrt",
        action="store_true",
        help="run the decoder on TensorRT too (default: CUDA EP, see docs/gpu.md)",
    )
    p.set_defaults(func=run)


def gpu_options(args: argparse.Namespace) -> GpuOptions:
    return GpuOptions(
        instances=args.gpu_instances,
        gpus=tuple(args.gpus),
        precision=args.precision,
        trt_cache_dir=args.trt_cache_dir,
        decoder_tensorrt=args.decoder_tensorrt,
        video=args.gpu_video,
    )


def with_video_if_exported(
    options: ServingOptions, source: Path | None, target: str, gpu: GpuOptions | None = None
) -> tuple[ServingOptions, GpuOptions | None]:
    """Video tracking is served when the export has the tracker's graphs (``sam2-triton export
    --video``): turned on for the embedded target, left out of the GPU target (which serves it
    by default, as the committed repository does) when they are missing. SAM 3's concept
    prompts (sam3_concepts, and on the GPU target SAM 3's graphs as models of their own) are
    turned on for either target when the export has its concept graphs, and SAM 3's
    interactive model answers clicks when the export is SAM 3's alone (no SAM 2.1 encoder)."""
    from sam2_triton import contract as c
    from sam2_triton.contract import TRACKER_CONSTANTS_FILE

    if source is None:
        return options, gpu
    if all((source / name).is_file() for name in c.CONCEPT_FILES):
        options = replace(options, concepts=True)  # SAM 3's concept graphs: sam3_concepts
    sam3 = (SAM3.encoder_file, SAM3.decoder_file)
    if not (source / c.ENCODER_FILE).is_file() and all((source / n).is_file() for n in sam3):
        options = replace(options, family=SAM3.name)  # SAM 3 alone: its clicks model
    has_tracker = (source / TRACKER_CONSTANTS_FILE).exists()
    note = f"note: {source} has no video tracker: `sam2-triton export --video` adds it"
    if target == "embedded":
        if has_tracker:
            return replace(options, video=True), gpu
        if not options.video and options.family == SAM2.name:
            print(note)
        return options, gpu
    if gpu is not None and gpu.video and not has_tracker:
        print(f"{note} (the GPU repository is built without the video models)")
        return options, replace(gpu, video=False)
    return options, gpu


def build_repo(
    model: str | None,
    out: Path,
    options: ServingOptions | None = None,
    target: str = "embedded",
    gpu: GpuOptions | None = None,
    force: bool = False,
) -> Path:
    """Write ``target``'s repository into ``out``; ``model`` None: configs only."""
    from sam2_triton.repository.build import write_repository
    from sam2_triton.repository.gpu_configs import export_notes

    source = export_dir(model) if model else None
    if target == "gpu":
        gpu = gpu or GpuOptions()
    options, gpu = with_video_if_exported(options or ServingOptions(), source, target, gpu)
    changed = write_repository(out, target, options, gpu, source, force)
    what = f"model {model}" if model else "configs only"
    print(f"{target} model repository {'built' if changed else 'up to date'}: {out} ({what})")
    if target == "gpu" and source is not None:
        for note in export_notes(source):
            print(f"note: {note}", file=sys.stderr)
    return out


def run(args: argparse.Namespace) -> int:
    on_gpu = args.target == "gpu"
    build_repo(
        None if args.configs_only else args.model,
        args.out or default_repository(args.target),
        serving_options(args, args.target),
        target=args.target,
        gpu=gpu_options(args) if on_gpu else None,
        force=args.force,
    )
    return 0
